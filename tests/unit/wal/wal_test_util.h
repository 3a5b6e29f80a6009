// Helpers shared by the WAL tests: building entries and configurations, and
// a printable fingerprint of everything a LogStorage presents, so a Wal can
// be compared with MemoryLogStorage (the model) in one string comparison.
#ifndef RKV_TESTS_UNIT_WAL_WAL_TEST_UTIL_H_
#define RKV_TESTS_UNIT_WAL_WAL_TEST_UTIL_H_

#include <fmt/format.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "raft/log_storage.h"
#include "raft/message.h"

namespace rkv::wal::test {

inline raft::Entry MakeEntry(uint64_t index, uint64_t term, std::string data = {}) {
  return raft::Entry{Term{term}, LogIndex{index}, raft::EntryType::kNormal, std::move(data)};
}

// Entries lo..hi (inclusive) of `term`, data naming index, term and `tag`.
inline std::vector<raft::Entry> MakeEntries(uint64_t lo, uint64_t hi, uint64_t term,
                                            const std::string& tag = "") {
  std::vector<raft::Entry> out;
  for (uint64_t i = lo; i <= hi; ++i) {
    out.push_back(MakeEntry(i, term, fmt::format("i{}-t{}{}", i, term, tag)));
  }
  return out;
}

inline raft::Configuration MakeConfiguration(std::vector<uint64_t> voters,
                                             std::vector<uint64_t> learners = {}) {
  raft::Configuration c;
  for (uint64_t v : voters) c.voters.push_back(NodeId{v});
  for (uint64_t l : learners) c.learners.push_back(NodeId{l});
  return c;
}

inline std::string DescribeConfiguration(const raft::Configuration& c) {
  std::string out = "voters=[";
  for (NodeId id : c.voters) out += fmt::format("{} ", id.value());
  out += "] learners=[";
  for (NodeId id : c.learners) out += fmt::format("{} ", id.value());
  return out + "]";
}

// Everything `log` presents through the LogStorage interface.
inline std::string Fingerprint(const raft::LogStorage& log) {
  const raft::InitialState init = log.GetInitialState();
  std::string out = fmt::format(
      "hard_state term={} vote={} commit={}\nconfiguration {}\n",
      init.hard_state.current_term.value(), init.hard_state.voted_for.value(),
      init.hard_state.commit_index.value(), DescribeConfiguration(init.configuration));
  auto snapshot = log.GetSnapshot();
  if (snapshot.ok()) {
    out += fmt::format("snapshot index={} term={} {} data={}\n", snapshot->metadata.last_index.value(),
                       snapshot->metadata.last_term.value(),
                       DescribeConfiguration(snapshot->metadata.configuration), snapshot->data.size());
  } else {
    out += "snapshot " + snapshot.status().ToString() + "\n";
  }
  const LogIndex first = log.FirstIndex();
  const LogIndex last = log.LastIndex();
  out += fmt::format("first={} last={}\n", first.value(), last.value());
  auto term = log.TermAt(first - 1);
  out += fmt::format("term_before_first={}\n", term.ok() ? std::to_string(term->value()) : term.status().ToString());
  auto entries = log.Entries(first, last + 1, std::numeric_limits<uint64_t>::max());
  if (!entries.ok()) return out + "entries " + entries.status().ToString() + "\n";
  for (const raft::Entry& e : *entries) {
    out += fmt::format("{}/{}/{}:{}\n", e.index.value(), e.term.value(), static_cast<int>(e.type), e.data);
  }
  return out;
}

}  // namespace rkv::wal::test

#endif  // RKV_TESTS_UNIT_WAL_WAL_TEST_UTIL_H_
