// Random WAL workloads for the model and crash tests: each operation is
// generated against MemoryLogStorage (so it is valid there), run on a Wal,
// and applied to the model the same way.
#ifndef RKV_TESTS_UNIT_WAL_WAL_WORKLOAD_H_
#define RKV_TESTS_UNIT_WAL_WAL_WORKLOAD_H_

#include <fmt/format.h>

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "common/random.h"
#include "raft/log_storage.h"
#include "wal/wal.h"
#include "wal_test_util.h"

namespace rkv::wal::test {

struct WalOp {
  enum class Kind { kSave, kSync, kCompact, kSetConfiguration };
  Kind kind = Kind::kSync;
  std::optional<raft::SnapshotMetadata> snapshot;  // kSave
  std::vector<raft::Entry> entries;                // kSave
  std::optional<raft::HardState> hard_state;       // kSave
  LogIndex compact_index;                          // kCompact
  raft::Configuration configuration;               // kCompact, kSetConfiguration

  bool syncs() const { return kind == Kind::kSync || kind == Kind::kCompact; }

  std::string Describe() const {
    switch (kind) {
      case Kind::kSave: {
        std::string out = "Save(";
        if (snapshot) out += fmt::format("snapshot={}/{} ", snapshot->last_index.value(), snapshot->last_term.value());
        if (!entries.empty()) {
          out += fmt::format("entries={}..{}/t{} ", entries.front().index.value(),
                             entries.back().index.value(), entries.back().term.value());
        }
        if (hard_state) out += fmt::format("hs=t{} ", hard_state->current_term.value());
        return out + ")";
      }
      case Kind::kSync: return "Sync()";
      case Kind::kCompact: return fmt::format("Compact({})", compact_index.value());
      case Kind::kSetConfiguration: return "SetConfiguration(" + DescribeConfiguration(configuration) + ")";
    }
    return "?";
  }
};

inline Status RunOp(Wal* wal, const WalOp& op) {
  switch (op.kind) {
    case WalOp::Kind::kSave: return wal->Save(op.snapshot, op.entries, op.hard_state);
    case WalOp::Kind::kSync: return wal->Sync();
    case WalOp::Kind::kCompact: return wal->Compact(op.compact_index, op.configuration);
    case WalOp::Kind::kSetConfiguration: return wal->SetConfiguration(op.configuration);
  }
  return Status::InvalidArgument("unknown op");
}

inline void ApplyToModel(const WalOp& op, raft::MemoryLogStorage* model) {
  switch (op.kind) {
    case WalOp::Kind::kSave:
      if (op.snapshot) model->ApplySnapshot(raft::Snapshot{*op.snapshot, ""});
      model->Append(op.entries);
      if (op.hard_state) model->SetHardState(*op.hard_state);
      break;
    case WalOp::Kind::kSync:
      break;
    case WalOp::Kind::kCompact:
      RKV_ASSERT(model->CreateSnapshot(op.compact_index, op.configuration, "").ok());
      break;
    case WalOp::Kind::kSetConfiguration:
      model->SetConfiguration(op.configuration);
      break;
  }
}

inline raft::Configuration RandomConfiguration(Random* rnd) {
  raft::Configuration c;
  for (uint64_t id = 1; id <= 5; ++id) {
    const uint64_t pick = rnd->Uniform(3);
    if (pick == 0) c.voters.push_back(NodeId{id});
    if (pick == 1) c.learners.push_back(NodeId{id});
  }
  if (c.voters.empty()) c.voters.push_back(NodeId{9});
  return c;
}

// A random operation valid on `model`; `term` is the workload's current term
// (raised by conflicts and snapshots) and `serial` makes entry data unique,
// so an entry rewritten at the same index is told apart from the old one.
inline WalOp RandomOp(Random* rnd, const raft::MemoryLogStorage& model, uint64_t* term, uint64_t serial) {
  WalOp op;
  const LogIndex first = model.FirstIndex();
  const LogIndex last = model.LastIndex();
  const uint64_t r = rnd->Uniform(100);
  if (r < 55) {
    op.kind = WalOp::Kind::kSave;
    uint64_t start = last.value() + 1;
    if (rnd->OneIn(12)) {
      ++*term;
      const LogIndex index = last + rnd->Range(1, 6);
      op.snapshot = raft::SnapshotMetadata{index, Term{*term}, RandomConfiguration(rnd)};
      start = index.value() + 1;
    } else if (last >= first && rnd->OneIn(5)) {
      ++*term;  // a new leader overwrites a suffix
      start = rnd->Range(first.value(), last.value());
    }
    const uint64_t count = rnd->Uniform(op.snapshot ? 3 : 4) + (op.snapshot ? 0 : 1);
    for (uint64_t i = 0; i < count; ++i) {
      raft::Entry e = MakeEntry(start + i, *term, fmt::format("op{}-i{}", serial, start + i));
      e.data += std::string(rnd->Uniform(80), 'd');
      if (rnd->OneIn(10)) e.type = raft::EntryType::kConfChange;
      op.entries.push_back(std::move(e));
    }
    if (rnd->OneIn(2) || op.entries.empty()) {
      const uint64_t new_last = op.entries.empty() ? start - 1 : op.entries.back().index.value();
      op.hard_state = raft::HardState{Term{*term}, NodeId{rnd->Uniform(4)}, LogIndex{rnd->Uniform(new_last + 1)}};
    }
  } else if (r < 80) {
    op.kind = WalOp::Kind::kSync;
  } else if (r < 92 && last >= first) {
    op.kind = WalOp::Kind::kCompact;
    op.compact_index = LogIndex{rnd->Range(first.value(), last.value())};
    op.configuration = RandomConfiguration(rnd);
  } else {
    op.kind = WalOp::Kind::kSetConfiguration;
    op.configuration = RandomConfiguration(rnd);
  }
  return op;
}

// `n` operations from `seed`, starting from a fresh log of `initial`, ending
// with a Sync.
inline std::vector<WalOp> MakeWorkload(uint64_t seed, const raft::Configuration& initial, size_t n) {
  Random rnd(seed);
  raft::MemoryLogStorage model(initial);
  uint64_t term = 1;
  std::vector<WalOp> ops;
  for (size_t i = 0; i < n; ++i) {
    ops.push_back(RandomOp(&rnd, model, &term, i));
    ApplyToModel(ops.back(), &model);
  }
  ops.push_back(WalOp{});
  return ops;
}

}  // namespace rkv::wal::test

#endif  // RKV_TESTS_UNIT_WAL_WAL_WORKLOAD_H_
