#include "sim/sim_common.h"

#include <cstdio>
#include <fstream>

namespace rkv::sim {

void TraceEvent(int64_t now_us, int kind, uint64_t target, const raft::Message* message) {
  std::fprintf(stderr, "%10.3f ms kind %d target %lu", static_cast<double>(now_us) / 1000, kind,
               static_cast<unsigned long>(target));
  if (message != nullptr) std::fprintf(stderr, " %s", raft::DescribeMessage(*message).c_str());
  std::fprintf(stderr, "\n");
}

std::string FailureAt(int64_t now_us, const std::string& what) {
  char prefix[64];
  std::snprintf(prefix, sizeof prefix, "at %.3f s: ", static_cast<double>(now_us) / 1e6);
  return prefix + what;
}

void Links::Isolate(uint64_t lone, const std::vector<uint64_t>& ids) {
  for (uint64_t other : ids) {
    if (other != lone) {
      blocked_.insert({lone, other});
      blocked_.insert({other, lone});
    }
  }
}

void Links::SplitInTwo(Random& random, const std::vector<uint64_t>& ids, uint64_t bridge) {
  std::map<uint64_t, bool> side;
  for (uint64_t id : ids) side[id] = random.OneIn(2);
  for (uint64_t a : ids) {
    for (uint64_t b : ids) {
      if (a != bridge && b != bridge && side[a] != side[b]) blocked_.insert({a, b});
    }
  }
}

void Links::CutOneWayAtRandom(Random& random, const std::vector<uint64_t>& ids) {
  for (uint64_t a : ids) {
    for (uint64_t b : ids) {
      if (a != b && random.OneIn(3)) blocked_.insert({a, b});
    }
  }
}

std::optional<size_t> PickWeighted(Random& random, std::span<const uint32_t> weights) {
  uint64_t total = 0;
  for (uint32_t w : weights) total += w;
  if (total == 0) return std::nullopt;
  uint64_t pick = random.Uniform(total);
  size_t action = 0;
  while (pick >= weights[action]) pick -= weights[action++];
  return action;
}

void DrawSwarmNetworkRates(Random& random, FaultRates& rates) {
  rates.message_loss = random.OneIn(3) ? 0 : random.NextDouble() * 0.3;
  rates.message_duplicate = random.OneIn(2) ? 0 : random.NextDouble() * 0.1;
  rates.min_delay_us = static_cast<int64_t>(random.Range(10, 1'000));
  // Delays stay well below the election timeout (100 ms): a network whose
  // round trip outlasts it cannot keep a leader, and no Raft can be live
  // there.
  rates.max_delay_us =
      rates.min_delay_us + static_cast<int64_t>(random.Range(0, random.OneIn(3) ? 30'000 : 8'000));
}

void ChooseKeys(Random& random, int64_t& key_epoch_us, std::vector<std::string>& keys) {
  key_epoch_us = static_cast<int64_t>(random.Range(200'000, 1'000'000));
  const uint64_t key_count = random.Range(1, 4);
  for (uint64_t i = 0; i < key_count; ++i) keys.push_back(std::string(1, static_cast<char>('a' + i)));
}

std::optional<std::string> DrawCasExpected(
    Random& random, const std::map<std::string, std::optional<std::string>>& seen, const std::string& key) {
  auto it = seen.find(key);
  return it != seen.end() && !random.OneIn(4) ? it->second : std::nullopt;
}

std::string CheckClientHistory(const lincheck::Recorder& recorder, const SimOptions& options,
                               SimReport& report) {
  lincheck::History history = recorder.Snapshot();
  for (const lincheck::Operation& op : history.ops) {
    switch (op.outcome) {
      case lincheck::Outcome::kOk: ++report.ops_ok; break;
      case lincheck::Outcome::kFail: ++report.ops_failed; break;
      default: ++report.ops_unknown; break;
    }
  }
  if (!options.history_path.empty()) {
    std::ofstream out(options.history_path);
    out << lincheck::WriteHistory(history);
  }
  if (!report.failure.empty()) return "";
  lincheck::CheckOptions check_options;
  check_options.max_steps = 20'000'000;
  lincheck::CheckResult result = lincheck::Check(history, check_options);
  if (result.verdict == lincheck::Verdict::kNotLinearizable) return "linearizability: " + result.explanation;
  if (result.verdict == lincheck::Verdict::kUnknown) report.inconclusive = true;
  return "";
}

}  // namespace rkv::sim
