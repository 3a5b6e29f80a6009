// raft-kv-bench: an HTTP load generator for raft-kv (its v1 API or the
// original JSON routes) and etcd (its v3 JSON gateway), so both are measured
// the same way. See docs/benchmarks.md.
#include <signal.h>

#include <CLI/CLI.hpp>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "config.h"
#include "load.h"
#include "report.h"

namespace {

constexpr char kFooter[] = R"(Examples:
  raft-kv-bench --endpoints 127.0.0.1:8080 --preload --keys 100000 --duration 0
                                    write every key once (so reads find them), then stop
  raft-kv-bench -c 64 --duration 10                      writes, 64 connections, 10 s
  raft-kv-bench -c 64 --read-ratio 1 --consistency lease  lease reads
  raft-kv-bench -c 16 --read-ratio 0.5 --distribution zipfian --rate 5000
                                    a 50/50 mix on hot keys, paced at 5000 requests/s
  raft-kv-bench --api etcd --endpoints 127.0.0.1:2379 -c 64 --read-ratio 1
                                    the same load against etcd's JSON gateway

Prints throughput and latency percentiles (p50, p90, p99, p99.9, max) for
reads and writes; --json FILE writes the same as one JSON object. Exit
codes: 0 ran (even with failed requests: they are counted), 1 the run could
not start or the preload failed, 2 bad arguments.)";

}  // namespace

int main(int argc, char** argv) {
  ::signal(SIGPIPE, SIG_IGN);
  rkv::bench::BenchConfig config;
  CLI::App app{"raft-kv-bench: HTTP load for raft-kv and etcd, one tool measuring both alike.",
               "raft-kv-bench"};
  app.set_version_flag("--version", std::string("raft-kv-bench ") + RKV_VERSION);
  app.footer(kFooter);

  std::vector<std::string> endpoints;
  std::string api = "raft-kv";
  std::string distribution = "uniform";
  std::string consistency = "linearizable";
  std::string json_file;
  app.add_option("-e,--endpoints", endpoints,
                 "HOST:PORT to send to, comma-separated or repeated; connection i goes to endpoint i mod N "
                 "(default 127.0.0.1:8080)")
      ->delimiter(',');
  app.add_option("-c,--connections", config.connections, "Connections, each with one request outstanding")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  app.add_option("-t,--threads", config.threads, "Threads, each running the epoll loop of its share of connections")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  app.add_option("--api", api,
                 "raft-kv (PUT/GET /v1/kv/KEY, raw bytes), raft-kv-json (the original POST/GET /KEY) "
                 "or etcd (POST /v3/kv/put and /v3/kv/range)")
      ->check(CLI::IsMember({"raft-kv", "raft-kv-json", "etcd"}))
      ->capture_default_str();
  app.add_option("--keys", config.keys, "Distinct keys: key0 .. key(N-1)")
      ->check(CLI::Range(uint64_t{1}, uint64_t{1} << 40))
      ->capture_default_str();
  app.add_option("--key-prefix", config.key_prefix, "What every key starts with")->capture_default_str();
  app.add_option("--key-width", config.key_width, "Zero-pad key numbers to this many digits (0: none)")
      ->check(CLI::Range(0, 20))
      ->capture_default_str();
  app.add_option("--distribution", distribution, "Which keys: uniform, or zipfian (a few keys take most requests)")
      ->check(CLI::IsMember({"uniform", "zipfian"}))
      ->capture_default_str();
  app.add_option("--zipf-theta", config.zipf_theta, "The zipfian skew (0 < theta < 1; higher is more skewed)")
      ->check(CLI::Range(0.01, 0.9999))
      ->capture_default_str();
  app.add_option("--value-size", config.value_size, "Bytes per written value")
      ->check(CLI::Range(size_t{0}, size_t{64} << 20))
      ->capture_default_str();
  app.add_option("--read-ratio", config.read_ratio, "Share of reads: 0 all writes, 1 all reads, 0.5 a 50/50 mix")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  app.add_option("--consistency", consistency,
                 "Reads: linearizable, lease (raft-kv only) or stale (etcd: serializable)")
      ->check(CLI::IsMember({"linearizable", "lease", "stale"}))
      ->capture_default_str();
  app.add_option("-d,--duration", config.duration_s, "Seconds to measure (unless --requests)")
      ->check(CLI::Range(0.0, 86400.0))
      ->capture_default_str();
  app.add_option("-n,--requests", config.requests, "Measure this many requests instead of a duration")
      ->capture_default_str();
  app.add_option("--rate", config.rate,
                 "Requests per second over all connections, on a fixed schedule (latency counts from each "
                 "request's slot, so falling behind shows); 0: as fast as answered")
      ->check(CLI::Range(0.0, 1e9))
      ->capture_default_str();
  app.add_option("--warmup", config.warmup_s, "Seconds of load before measuring")
      ->check(CLI::Range(0.0, 3600.0))
      ->capture_default_str();
  app.add_flag("--preload", config.preload, "Write every key once before the load (retrying failures)");
  app.add_option("--timeout", config.timeout_s, "Seconds before a request without a reply counts as failed")
      ->check(CLI::Range(0.001, 3600.0))
      ->capture_default_str();
  app.add_option("--seed", config.seed, "Seed of the key choices (the same seed, the same keys)")
      ->capture_default_str();
  app.add_option("--json", json_file, "Also write the report as one JSON object to this file ('-': stdout)");
  CLI11_PARSE(app, argc, argv);

  if (!endpoints.empty()) config.endpoints = endpoints;
  config.api = *rkv::bench::ParseApi(api);
  config.consistency = *rkv::bench::ParseConsistency(consistency);
  config.distribution =
      distribution == "zipfian" ? rkv::bench::KeyDistribution::kZipfian : rkv::bench::KeyDistribution::kUniform;

  auto resolved = rkv::bench::ResolveEndpoints(config.endpoints);
  if (!resolved.ok()) {
    std::fprintf(stderr, "raft-kv-bench: error: %s\n", resolved.status().ToString().c_str());
    return 2;
  }
  struct sigaction sa {};
  sa.sa_handler = [](int) { rkv::bench::StopLoad(); };
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);

  auto result = rkv::bench::RunLoad(config, *resolved);
  if (!result.ok()) {
    std::fprintf(stderr, "raft-kv-bench: error: %s\n", result.status().ToString().c_str());
    return result.status().IsInvalidArgument() ? 2 : 1;
  }
  rkv::bench::Report report;
  report.version = RKV_VERSION;
  report.config = config;
  report.preload = result->preload;
  report.stats = result->stats;
  report.elapsed_s = result->elapsed_s;
  report.interrupted = result->interrupted;
  const std::string json = rkv::bench::FormatJson(report);
  if (json_file == "-") {
    std::printf("%s\n", json.c_str());
  } else {
    std::fputs(rkv::bench::FormatText(report).c_str(), stdout);
    if (!json_file.empty()) {
      std::ofstream out(json_file);
      out << json << "\n";
      if (!out) {
        std::fprintf(stderr, "raft-kv-bench: error: cannot write %s\n", json_file.c_str());
        return 1;
      }
    }
  }
  if (report.preload.ran && !report.preload.ok) {
    std::fprintf(stderr, "raft-kv-bench: error: preload failed: %s\n", report.preload.error.c_str());
    return 1;
  }
  return 0;
}
