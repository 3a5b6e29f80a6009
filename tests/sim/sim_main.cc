// raft-kv-sim: runs whole simulated clusters under faults and checks them
// (safety after every event, liveness after healing, linearizability of the
// client history). See docs/testing.md.
#include <CLI/CLI.hpp>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/logging.h"
#include "sim/simulation.h"

namespace {

using Clock = std::chrono::steady_clock;

// The seed each thread is running, for the message printed when an
// assertion in the Raft core aborts the process.
thread_local uint64_t current_seed = 0;
// The flags that shape a run besides its seed (" --swarm --log memory ..."),
// set once before any seed runs, so the signal handler can print them.
char replay_flags[160] = "";

void AppendNumber(char** p, uint64_t v) {
  char digits[24];
  int n = 0;
  do {
    digits[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  while (n > 0) *(*p)++ = digits[--n];
}

void AppendText(char** p, const char* s) {
  while (*s != '\0') *(*p)++ = *s++;
}

extern "C" void OnAbort(int signal) {
  // Only async-signal-safe calls here.
  char buffer[256];
  char* p = buffer;
  AppendText(&p, "\nFAIL seed ");
  AppendNumber(&p, current_seed);
  AppendText(&p, ": the process aborted (assertion above)\n  replay: raft-kv-sim --seed ");
  AppendNumber(&p, current_seed);
  AppendText(&p, replay_flags);
  AppendText(&p, "\n");
  ssize_t ignored = write(STDERR_FILENO, buffer, static_cast<size_t>(p - buffer));
  (void)ignored;
  std::signal(signal, SIG_DFL);
  std::raise(signal);
}

std::string ReplayCommand(uint64_t seed) {
  return "raft-kv-sim --seed " + std::to_string(seed) + replay_flags;
}

// "A..B" or "A.." (open-ended, for --for) or "A".
bool ParseRange(const std::string& text, uint64_t* first, std::optional<uint64_t>* last) {
  const size_t dots = text.find("..");
  char* end = nullptr;
  if (dots == std::string::npos) {
    *first = std::strtoull(text.c_str(), &end, 10);
    *last = *first;
    return end != text.c_str() && *end == '\0';
  }
  const std::string a = text.substr(0, dots);
  const std::string b = text.substr(dots + 2);
  *first = std::strtoull(a.c_str(), &end, 10);
  if (a.empty() || *end != '\0') return false;
  if (b.empty()) {
    last->reset();
    return true;
  }
  *last = std::strtoull(b.c_str(), &end, 10);
  return *end == '\0' && **last >= *first;
}

// "90s", "10m", "2h", or plain seconds.
bool ParseDuration(const std::string& text, std::chrono::seconds* out) {
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (end == text.c_str() || v < 0) return false;
  double scale = 1;
  const std::string unit(end);
  if (unit == "m") scale = 60;
  else if (unit == "h") scale = 3600;
  else if (!unit.empty() && unit != "s") return false;
  *out = std::chrono::seconds(static_cast<int64_t>(v * scale));
  return true;
}

void PrintReport(const rkv::sim::SimReport& r, bool swarm, bool node) {
  std::printf("seed %lu%s: %s\n", static_cast<unsigned long>(r.seed), swarm ? " (swarm)" : "",
              r.passed ? "passed" : (r.inconclusive ? "inconclusive (checker budget)" : "FAILED"));
  std::printf("  setup: %s\n", r.setup.c_str());
  std::printf("  %lu events over %.2f s simulated; %lu terms, %lu crashes, %lu partitions, "
              "%lu snapshots installed, %lu compactions, %lu membership changes, %lu transfers\n",
              static_cast<unsigned long>(r.events), static_cast<double>(r.simulated_us) / 1e6,
              static_cast<unsigned long>(r.terms), static_cast<unsigned long>(r.crashes),
              static_cast<unsigned long>(r.partitions),
              static_cast<unsigned long>(r.snapshots_installed),
              static_cast<unsigned long>(r.compactions),
              static_cast<unsigned long>(r.membership_changes),
              static_cast<unsigned long>(r.transfers));
  std::printf("  client operations: %lu ok, %lu cas failed, %lu unknown; recovery after heal %.0f ms\n",
              static_cast<unsigned long>(r.ops_ok), static_cast<unsigned long>(r.ops_failed),
              static_cast<unsigned long>(r.ops_unknown), static_cast<double>(r.recovery_us) / 1e3);
  if (node) {
    std::printf("  node faults: %lu power losses mid-work, %lu I/O errors, %lu power losses in recovery; "
                "%lu client retries (%lu write errors); exactly-once model %s\n",
                static_cast<unsigned long>(r.crash_points_hit), static_cast<unsigned long>(r.io_errors_hit),
                static_cast<unsigned long>(r.recovery_crashes), static_cast<unsigned long>(r.client_retries),
                static_cast<unsigned long>(r.write_retries),
                r.model_checks > 0 ? "compared" : (r.model_gaps > 0 ? "incomplete" : "not reached"));
  }
  std::printf("  trace hash %016lx\n", static_cast<unsigned long>(r.trace_hash));
  if (!r.passed && !r.inconclusive) {
    std::printf("  failure: %s\n  replay: %s\n", r.failure.c_str(), ReplayCommand(r.seed).c_str());
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "raft-kv-sim: deterministic simulation of whole raft-kv clusters.\n"
      "\n"
      "Each seed runs a cluster of 3 or 5 voters (sometimes a learner, and spare servers that\n"
      "join) on simulated time under message loss, duplication, delay and reordering,\n"
      "partitions, crashes that lose unsynced writes, slow disks, membership changes,\n"
      "leadership transfers and log compaction, while clients run put/get/delete/cas.\n"
      "After every event it checks election safety, log matching, leader completeness,\n"
      "state machine safety and that terms never decrease; after the faults heal the\n"
      "cluster must elect a leader, commit and converge in bounded time; finally the client\n"
      "history must be linearizable. A seed always replays the same run.\n"
      "\n"
      "Examples:\n"
      "  raft-kv-sim --seed 42              one run, with a summary\n"
      "  raft-kv-sim --seeds 1..1000 --swarm --jobs 2\n"
      "  raft-kv-sim --seeds 5000.. --for 10m --swarm   sweep for ten minutes\n"
      "\n"
      "Exit status: 0 every seed passed, 1 a seed failed (its seed and replay command are\n"
      "printed), 2 bad usage."};
  std::optional<uint64_t> seed;
  std::string seeds;
  bool swarm = false;
  unsigned jobs = 1;
  std::string duration_text;
  bool trace = false;
  std::string history;
  bool keep_going = false;
  std::string plant;
  std::string log_kind = "wal";
  std::string server = "core";
  std::optional<uint64_t> compact_every;
  app.add_option("--seed", seed, "Run one seed and print its summary");
  app.add_option("--seeds", seeds, "Sweep a range of seeds: A..B, or A.. with --for");
  app.add_flag("--swarm", swarm, "Draw the fault rates from each seed (swarm testing)");
  app.add_option("--jobs,-j", jobs, "Seeds run in parallel (threads)")->check(CLI::Range(1u, 256u));
  app.add_option("--for", duration_text, "Sweep for this long (90s, 10m, 2h), then stop");
  app.add_flag("--trace", trace, "Print every event of the run to stderr (with --seed)");
  app.add_option("--history", history, "Write the client history of --seed to this file");
  app.add_flag("--keep-going", keep_going, "Do not stop a sweep at the first failure");
  app.add_option("--log", log_kind,
                 "Where servers keep the Raft log: wal (the real WAL on a simulated file system "
                 "whose crashes tear unsynced bytes; the default) or memory (a model of the Ready "
                 "contract; faster)")
      ->check(CLI::IsMember({"wal", "memory"}));
  app.add_option("--server", server,
                 "What a simulated server is: core (the Raft core in the simulator's node loop; the "
                 "default) or node (a real rkv::Node with its WAL, engine and state machine on a "
                 "simulated file system, crashed also in the middle of its work)")
      ->check(CLI::IsMember({"core", "node"}));
  app.add_option("--compact-every", compact_every,
                 "With --server node: each node compacts its WAL (and followers that lag get a "
                 "snapshot) every N applied entries (default: drawn from each seed, 10 to 100; a large N "
                 "turns compaction off)");
  app.add_option("--plant-harness-bug", plant,
                 "Break the simulated server on purpose, to see the checks fail: ack-before-persist "
                 "(send acknowledgements before the disk write), local-reads (answer gets without "
                 "ReadIndex) or torn-commit (the log loses commit indexes: a torn write keeps "
                 "entries but not the commit index that came with them; implies --log memory); with "
                 "--server node: node-stale-reads (linearizable reads served from local state) or "
                 "node-fresh-key-on-retry (a retried write gets a new idempotency key)")
      ->check(CLI::IsMember({"ack-before-persist", "local-reads", "torn-commit", "node-stale-reads",
                             "node-fresh-key-on-retry"}));
  CLI11_PARSE(app, argc, argv);

  // The WAL logs every recovery; thousands of simulated crashes would bury
  // the report. --trace shows them.
  // Nodes log every injected failure as an error; --server node expects them.
  rkv::log::SetLevel(trace ? rkv::log::Level::kInfo
                           : (server == "node" ? rkv::log::Level::kOff : rkv::log::Level::kError));
  {
    std::string flags;
    if (server != "core") flags += " --server " + server;
    if (compact_every) flags += " --compact-every " + std::to_string(*compact_every);
    if (swarm) flags += " --swarm";
    if (log_kind != "wal") flags += " --log " + log_kind;
    if (!plant.empty()) flags += " --plant-harness-bug " + plant;
    std::snprintf(replay_flags, sizeof replay_flags, "%s", flags.c_str());
  }
  std::signal(SIGABRT, OnAbort);
  rkv::sim::SimOptions base;
  base.swarm = swarm;
  base.unsafe_ack_before_persist = plant == "ack-before-persist";
  base.unsafe_local_reads = plant == "local-reads";
  base.unsafe_torn_commit = plant == "torn-commit";
  base.server = server == "node" ? rkv::sim::ServerKind::kNode : rkv::sim::ServerKind::kCore;
  if (compact_every) base.compact_every_entries = *compact_every;
  base.unsafe_node_stale_reads = plant == "node-stale-reads";
  base.unsafe_node_fresh_key_on_retry = plant == "node-fresh-key-on-retry";
  if ((base.server == rkv::sim::ServerKind::kNode) != (plant.rfind("node-", 0) == 0) && !plant.empty()) {
    std::fprintf(stderr, "raft-kv-sim: --plant-harness-bug %s does not go with --server %s\n", plant.c_str(),
                 server.c_str());
    return 2;
  }
  // The torn-commit bug is planted in the model disk.
  base.real_wal = log_kind == "wal" && !base.unsafe_torn_commit;

  if (seed.has_value() == !seeds.empty()) {
    std::fprintf(stderr, "raft-kv-sim: give exactly one of --seed N or --seeds A..B (see --help)\n");
    return 2;
  }
  if (seed) {
    rkv::sim::SimOptions options = base;
    options.seed = *seed;
    options.trace = trace;
    options.history_path = history;
    current_seed = *seed;
    const rkv::sim::SimReport report = rkv::sim::RunSimulation(options);
    PrintReport(report, swarm, base.server == rkv::sim::ServerKind::kNode);
    return report.passed || report.inconclusive ? 0 : 1;
  }

  uint64_t first = 0;
  std::optional<uint64_t> last;
  if (!ParseRange(seeds, &first, &last)) {
    std::fprintf(stderr, "raft-kv-sim: --seeds wants A..B (or A.. with --for), got '%s'\n", seeds.c_str());
    return 2;
  }
  std::optional<std::chrono::seconds> duration;
  if (!duration_text.empty()) {
    std::chrono::seconds d{};
    if (!ParseDuration(duration_text, &d)) {
      std::fprintf(stderr, "raft-kv-sim: --for wants a duration like 90s, 10m or 2h\n");
      return 2;
    }
    duration = d;
  }
  if (!last && !duration) {
    std::fprintf(stderr, "raft-kv-sim: an open range (A..) needs --for\n");
    return 2;
  }

  const Clock::time_point start = Clock::now();
  std::atomic<uint64_t> next{first};
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> passed{0};
  std::atomic<uint64_t> failed{0};
  std::atomic<uint64_t> inconclusive{0};
  std::atomic<uint64_t> events{0};
  std::mutex print_mu;
  Clock::time_point last_progress = start;
  uint64_t highest_done = 0;

  auto worker = [&] {
    for (;;) {
      if (stop.load()) return;
      if (duration && Clock::now() - start >= *duration) return;
      const uint64_t s = next.fetch_add(1);
      if (last && s > *last) return;
      rkv::sim::SimOptions options = base;
      options.seed = s;
      current_seed = s;
      const rkv::sim::SimReport report = rkv::sim::RunSimulation(options);
      events += report.events;
      std::lock_guard<std::mutex> lock(print_mu);
      highest_done = std::max(highest_done, s);
      if (report.passed) {
        ++passed;
      } else if (report.inconclusive) {
        ++inconclusive;
        std::printf("seed %lu: inconclusive (the linearizability checker's budget ran out)\n",
                    static_cast<unsigned long>(s));
      } else {
        ++failed;
        std::printf("FAIL seed %lu: %s\n  setup: %s\n  replay: %s\n", static_cast<unsigned long>(s),
                    report.failure.c_str(), report.setup.c_str(), ReplayCommand(s).c_str());
        if (!keep_going) stop = true;
      }
      const Clock::time_point now = Clock::now();
      if (now - last_progress >= std::chrono::seconds(30)) {
        last_progress = now;
        const double secs = std::chrono::duration<double>(now - start).count();
        std::printf("  ... %lu seeds in %.0f s (%.1f seeds/s), up to seed %lu\n",
                    static_cast<unsigned long>(passed + failed + inconclusive), secs,
                    static_cast<double>(passed + failed + inconclusive) / secs,
                    static_cast<unsigned long>(highest_done));
      }
      std::fflush(stdout);
    }
  };
  std::vector<std::thread> threads;
  for (unsigned i = 0; i < jobs; ++i) threads.emplace_back(worker);
  for (std::thread& t : threads) t.join();

  const double secs = std::chrono::duration<double>(Clock::now() - start).count();
  const uint64_t total = passed + failed + inconclusive;
  std::printf("%lu seeds (%lu..%lu%s): %lu passed, %lu failed, %lu inconclusive in %.1f s, "
              "%.1f seeds/s, %.0f events/s\n",
              static_cast<unsigned long>(total), static_cast<unsigned long>(first),
              static_cast<unsigned long>(highest_done), swarm ? ", swarm" : "",
              static_cast<unsigned long>(passed.load()), static_cast<unsigned long>(failed.load()),
              static_cast<unsigned long>(inconclusive.load()), secs, static_cast<double>(total) / secs,
              static_cast<double>(events.load()) / secs);
  return failed == 0 ? 0 : 1;
}
