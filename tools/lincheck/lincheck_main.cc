// raft-kv-lincheck: decides whether a recorded client history is linearizable
// against the key-value model.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <chrono>
#include <fstream>
#include <iostream>
#include <sstream>

#include "tools/lincheck/lincheck.h"

namespace {

constexpr int kExitLinearizable = 0;
constexpr int kExitNotLinearizable = 1;
constexpr int kExitUnknown = 2;
constexpr int kExitBadInput = 3;

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "raft-kv-lincheck: check that a client history is linearizable against a key-value map\n"
      "(put, get, delete, cas), one key at a time.\n"
      "\n"
      "The history is text, one event per line ('#' starts a comment):\n"
      "  <time> <client> invoke put <key> <value>\n"
      "  <time> <client> invoke get <key>\n"
      "  <time> <client> invoke delete <key>\n"
      "  <time> <client> invoke cas <key> <expected>|absent <new>\n"
      "  <time> <client> ok [<value>|absent]   (a get's ok carries what it read)\n"
      "  <time> <client> fail                  (cas: the comparison failed; others: no effect)\n"
      "  <time> <client> rejected              (known not to have taken effect)\n"
      "  <time> <client> unknown               (may or may not have taken effect)\n"
      "Times are integers (order only); keys and values are percent-encoded (space, '%', '#',\n"
      "bytes outside printable ASCII), the empty string is \"\". Full description:\n"
      "docs/formats/history.md.\n"
      "\n"
      "Exit status: 0 linearizable, 1 not linearizable, 2 unknown (the budget ran out),\n"
      "3 bad input or usage."};
  std::string path;
  uint64_t max_steps = rkv::lincheck::CheckOptions{}.max_steps;
  double time_limit_s = 0;
  bool quiet = false;
  app.add_option("file", path, "history file ('-' for standard input)")->required();
  app.add_option("--max-steps", max_steps, "search steps before giving up (0 = no limit)")
      ->capture_default_str();
  app.add_option("--time-limit", time_limit_s, "seconds before giving up (0 = no limit)")
      ->capture_default_str();
  app.add_flag("-q,--quiet", quiet, "print only the verdict line");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : kExitBadInput;
  }

  std::string text;
  if (path == "-") {
    std::ostringstream ss;
    ss << std::cin.rdbuf();
    text = ss.str();
  } else {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      fmt::print(stderr, "raft-kv-lincheck: cannot open {}\n", path);
      return kExitBadInput;
    }
    std::ostringstream ss;
    ss << in.rdbuf();
    if (in.bad()) {
      fmt::print(stderr, "raft-kv-lincheck: cannot read {}\n", path);
      return kExitBadInput;
    }
    text = ss.str();
  }

  auto history = rkv::lincheck::ReadHistory(text);
  if (!history.ok()) {
    fmt::print(stderr, "raft-kv-lincheck: {}: {}\n", path, history.status().message());
    return kExitBadInput;
  }

  rkv::lincheck::CheckOptions options;
  options.max_steps = max_steps;
  options.time_limit = std::chrono::milliseconds(static_cast<int64_t>(time_limit_s * 1000));
  const auto start = std::chrono::steady_clock::now();
  const rkv::lincheck::CheckResult result = rkv::lincheck::Check(*history, options);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  fmt::print("{}: {}\n", path, rkv::lincheck::VerdictName(result.verdict));
  if (!quiet) {
    if (!result.explanation.empty()) fmt::print("{}", result.explanation);
    fmt::print("{} operations ({} dropped), {} key(s), {} steps, {} cache entries, {:.3f} s\n",
               result.stats.operations, result.stats.dropped, result.stats.partitions, result.stats.steps,
               result.stats.cache_entries, secs);
  }
  switch (result.verdict) {
    case rkv::lincheck::Verdict::kLinearizable: return kExitLinearizable;
    case rkv::lincheck::Verdict::kNotLinearizable: return kExitNotLinearizable;
    case rkv::lincheck::Verdict::kUnknown: return kExitUnknown;
  }
  return kExitUnknown;
}
