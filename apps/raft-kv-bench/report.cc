#include "report.h"

#include <fmt/format.h>

#include <iterator>
#include <string_view>
#include <vector>

namespace rkv::bench {
namespace {

constexpr double kPercentiles[] = {50, 90, 99, 99.9};

double Ms(uint64_t us) { return static_cast<double>(us) / 1000.0; }

std::string_view DistributionName(KeyDistribution d) {
  return d == KeyDistribution::kUniform ? "uniform" : "zipfian";
}

std::string Plural(uint64_t n, std::string_view one, std::string_view many) {
  return fmt::format("{} {}", n, n == 1 ? one : many);
}

// "HTTP 503 x12, timeout x1", or "" when there were none.
std::string DescribeErrors(const ErrorCounts& errors) {
  std::vector<std::string> parts;
  for (const auto& [code, count] : errors.status) parts.push_back(fmt::format("HTTP {} x{}", code, count));
  if (errors.closed) parts.push_back(fmt::format("connection closed x{}", errors.closed));
  if (errors.timeout) parts.push_back(fmt::format("timeout x{}", errors.timeout));
  if (errors.malformed) parts.push_back(fmt::format("malformed reply x{}", errors.malformed));
  return fmt::format("{}", fmt::join(parts, ", "));
}

std::string Workload(const BenchConfig& c) {
  std::string reads;
  if (c.read_ratio > 0) {
    reads = fmt::format("{:g}% reads ({})", c.read_ratio * 100, ConsistencyName(c.consistency));
  }
  std::string writes;
  if (c.read_ratio < 1) {
    writes = fmt::format("{:g}% writes of {}-byte values", (1 - c.read_ratio) * 100, c.value_size);
  }
  std::string keys = c.distribution == KeyDistribution::kZipfian
                         ? fmt::format("{} keys (zipfian, theta {:g})", c.keys, c.zipf_theta)
                         : fmt::format("{} keys (uniform)", c.keys);
  return fmt::format("{}{}{}, {}, seed {}", reads, (!reads.empty() && !writes.empty()) ? ", " : "",
                     writes, keys, c.seed);
}

void AppendRow(std::string* out, std::string_view name, const OpStats& op, double elapsed_s) {
  const Histogram& h = op.latency;
  fmt::format_to(std::back_inserter(*out), "{:<6}{:>11}{:>11.1f}", name, op.requests(),
                 OkPerSecond(op, elapsed_s));
  for (double p : kPercentiles) {
    fmt::format_to(std::back_inserter(*out), "{:>10.3f}", Ms(h.ValueAtPercentile(p)));
  }
  fmt::format_to(std::back_inserter(*out), "{:>10.3f}\n", Ms(h.max()));
}

// JSON pieces. Every string is escaped; numbers are finite.
std::string Quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      default:
        // Controls, and bytes past ASCII (a server's error text may not
        // be UTF-8), as \u00XX: the output stays valid JSON.
        if (static_cast<uint8_t>(c) < 0x20 || static_cast<uint8_t>(c) >= 0x7f) {
          fmt::format_to(std::back_inserter(out), "\\u{:04x}", static_cast<uint8_t>(c));
        } else {
          out += c;
        }
    }
  }
  out += '"';
  return out;
}

std::string Number(double v, int decimals = 3) {
  if (!(v == v) || v > 1e300 || v < -1e300) return "0";
  return fmt::format("{:.{}f}", v, decimals);
}

std::string OpJson(const OpStats& op, double elapsed_s) {
  const Histogram& h = op.latency;
  std::string status;
  for (const auto& [code, count] : op.errors.status) {
    if (!status.empty()) status += ',';
    status += fmt::format("\"{}\":{}", code, count);
  }
  return fmt::format(
      "{{\"requests\":{},\"ok\":{},\"not_found\":{},\"ok_per_s\":{},"
      "\"latency_us\":{{\"count\":{},\"min\":{},\"mean\":{},\"p50\":{},\"p90\":{},\"p99\":{},"
      "\"p999\":{},\"max\":{}}},"
      "\"errors\":{{\"total\":{},\"status\":{{{}}},\"closed\":{},\"timeout\":{},\"malformed\":{}}}}}",
      op.requests(), op.ok, op.not_found, Number(OkPerSecond(op, elapsed_s), 1), h.count(), h.min(),
      Number(h.mean(), 1), h.ValueAtPercentile(50), h.ValueAtPercentile(90),
      h.ValueAtPercentile(99), h.ValueAtPercentile(99.9), h.max(), op.errors.total(), status,
      op.errors.closed, op.errors.timeout, op.errors.malformed);
}

}  // namespace

double OkPerSecond(const OpStats& op, double elapsed_s) {
  return elapsed_s > 0 ? static_cast<double>(op.ok) / elapsed_s : 0.0;
}

std::string FormatText(const Report& r) {
  const BenchConfig& c = r.config;
  std::string out;
  auto line = [&out](std::string_view text) {
    out.append(text);
    out += '\n';
  };
  line(fmt::format("raft-kv-bench {}: api {}, {} ({}) to {}", r.version, ApiName(c.api),
                   Plural(static_cast<uint64_t>(c.connections), "connection", "connections"),
                   Plural(static_cast<uint64_t>(c.threads), "thread", "threads"),
                   fmt::join(c.endpoints, ",")));
  if (!c.preload_only()) line(fmt::format("workload: {}", Workload(c)));
  if (r.preload.ran) {
    if (r.preload.ok) {
      line(fmt::format("preload: {} keys in {:.2f} s ({:.0f} writes/s), {}", r.preload.keys,
                       r.preload.seconds,
                       r.preload.seconds > 0 ? static_cast<double>(r.preload.keys) / r.preload.seconds : 0.0,
                       Plural(r.preload.retries, "retry", "retries")));
    } else {
      line(fmt::format("preload FAILED after {} keys: {}", r.preload.keys, r.preload.error));
    }
  }
  if (c.preload_only() || (r.preload.ran && !r.preload.ok)) return out;

  std::string pace = c.rate > 0 ? fmt::format("paced at {:g} requests/s (latency from each request's "
                                              "scheduled start)", c.rate)
                                : std::string("closed loop, as fast as answered");
  line(fmt::format("measured: {:.2f} s{}{}, {}", r.elapsed_s,
                   c.warmup_s > 0 ? fmt::format(" after {:g} s of warm-up", c.warmup_s) : "",
                   r.interrupted ? " (INTERRUPTED)" : "", pace));
  line("");
  line(fmt::format("{:<6}{:>11}{:>11}{:>10}{:>10}{:>10}{:>10}{:>10}", "op", "requests", "ok/s",
                   "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms"));
  const OpStats all = r.stats.All();
  if (r.stats.read.requests() > 0) AppendRow(&out, "read", r.stats.read, r.elapsed_s);
  if (r.stats.write.requests() > 0) AppendRow(&out, "write", r.stats.write, r.elapsed_s);
  AppendRow(&out, "all", all, r.elapsed_s);
  line("");
  if (r.stats.read.not_found > 0) {
    line(fmt::format("reads of missing keys (404, counted as successes): {}", r.stats.read.not_found));
  }
  if (all.errors.total() == 0) {
    line("errors: none");
  } else {
    std::vector<std::string> parts;
    if (r.stats.read.errors.total()) parts.push_back("read: " + DescribeErrors(r.stats.read.errors));
    if (r.stats.write.errors.total()) parts.push_back("write: " + DescribeErrors(r.stats.write.errors));
    line(fmt::format("errors: {} ({})", all.errors.total(), fmt::join(parts, "; ")));
  }
  if (!r.stats.first_error.empty()) line(fmt::format("first error: {}", r.stats.first_error));
  const ConnectionStats& k = r.stats.connections;
  std::string connections = fmt::format("connections: {} opened, {} reopened, {} failed to connect",
                                        k.opened, k.reconnects, k.connect_errors);
  if (k.server_closed) connections += fmt::format(", {} closed by the server while idle", k.server_closed);
  if (k.unsolicited) connections += fmt::format(", {} sent bytes nobody asked for", k.unsolicited);
  line(connections);
  return out;
}

std::string FormatJson(const Report& r) {
  const BenchConfig& c = r.config;
  const OpStats all = r.stats.All();
  const Histogram& h = all.latency;
  std::vector<std::string> endpoints;
  for (const auto& e : c.endpoints) endpoints.push_back(Quote(e));
  std::string out = fmt::format(
      "{{\"tool\":\"raft-kv-bench\",\"version\":{},\"interrupted\":{},"
      "\"config\":{{\"api\":{},\"endpoints\":[{}],\"connections\":{},\"threads\":{},\"keys\":{},"
      "\"key_prefix\":{},\"key_width\":{},\"distribution\":{},\"zipf_theta\":{},\"value_size\":{},"
      "\"read_ratio\":{},\"consistency\":{},\"duration_s\":{},\"requests\":{},\"rate\":{},"
      "\"warmup_s\":{},\"preload\":{},\"timeout_s\":{},\"seed\":{}}},",
      Quote(r.version), r.interrupted, Quote(ApiName(c.api)), fmt::join(endpoints, ","),
      c.connections, c.threads, c.keys, Quote(c.key_prefix), c.key_width,
      Quote(DistributionName(c.distribution)), Number(c.zipf_theta), c.value_size,
      Number(c.read_ratio), Quote(ConsistencyName(c.consistency)), Number(c.duration_s),
      c.requests, Number(c.rate), Number(c.warmup_s), c.preload, Number(c.timeout_s), c.seed);
  fmt::format_to(std::back_inserter(out),
                 "\"preload\":{{\"ran\":{},\"ok\":{},\"keys\":{},\"seconds\":{},\"retries\":{},"
                 "\"error\":{}}},",
                 r.preload.ran, r.preload.ok, r.preload.keys, Number(r.preload.seconds),
                 r.preload.retries, Quote(r.preload.error));
  fmt::format_to(
      std::back_inserter(out),
      "\"summary\":{{\"elapsed_s\":{},\"requests\":{},\"ok\":{},\"errors\":{},\"ok_per_s\":{},"
      "\"p50_ms\":{},\"p90_ms\":{},\"p99_ms\":{},\"p999_ms\":{},\"max_ms\":{},\"mean_ms\":{},"
      "\"finished_all\":{}}},",
      Number(r.elapsed_s), all.requests(), all.ok, all.errors.total(),
      Number(OkPerSecond(all, r.elapsed_s), 1), Number(Ms(h.ValueAtPercentile(50))),
      Number(Ms(h.ValueAtPercentile(90))), Number(Ms(h.ValueAtPercentile(99))),
      Number(Ms(h.ValueAtPercentile(99.9))), Number(Ms(h.max())), Number(h.mean() / 1000.0),
      r.stats.finished_all);
  fmt::format_to(std::back_inserter(out), "\"ops\":{{\"read\":{},\"write\":{},\"all\":{}}},",
                 OpJson(r.stats.read, r.elapsed_s), OpJson(r.stats.write, r.elapsed_s),
                 OpJson(all, r.elapsed_s));
  const ConnectionStats& k = r.stats.connections;
  fmt::format_to(std::back_inserter(out),
                 "\"connections\":{{\"opened\":{},\"reconnects\":{},\"connect_errors\":{},"
                 "\"server_closed\":{},\"unsolicited\":{}}},\"first_error\":{}}}\n",
                 k.opened, k.reconnects, k.connect_errors, k.server_closed, k.unsolicited,
                 Quote(r.stats.first_error));
  return out;
}

}  // namespace rkv::bench
