// RaftLog: the core's view of the log = what LogStorage holds (persisted)
// followed by an unstable tail the caller has not yet persisted.
//
//   storage:  [snapshot][first .. unstable_offset_-1]
//   unstable: [unstable_snapshot_?][unstable_offset_ .. last]
//
// Invariants (CheckInvariants):
//   - unstable_entries_[i].index == unstable_offset_ + i;
//   - if unstable_snapshot_ is set, unstable_offset_ == its last_index + 1;
//   - applied_ <= committed_ <= LastIndex();
//   - committed entries are never overwritten (Append asserts it).
// An unstable entry may replace a persisted one at the same index (a
// follower's conflicting suffix); the caller's storage drops the old suffix
// when it persists the new entries.
#ifndef RKV_RAFT_RAFT_LOG_H_
#define RKV_RAFT_RAFT_LOG_H_

#include <optional>
#include <vector>

#include "common/result.h"
#include "common/types.h"
#include "raft/log_storage.h"
#include "raft/message.h"

namespace rkv::raft {

class RaftLog {
 public:
  // Starts after what `storage` holds; committed and applied come from the
  // caller's restart state. REQUIRES: applied <= committed <= LastIndex().
  RaftLog(const LogStorage* storage, LogIndex committed, LogIndex applied);

  LogIndex FirstIndex() const;
  LogIndex LastIndex() const;
  Term LastTerm() const;
  // NotFound when index is compacted or beyond LastIndex().
  Result<Term> TermAt(LogIndex index) const;
  bool MatchTerm(LogIndex index, Term term) const;
  // §5.4.1: a log ending in (last_index, last_term) is at least as
  // up-to-date as ours.
  bool IsUpToDate(LogIndex last_index, Term last_term) const;

  LogIndex committed() const { return committed_; }
  LogIndex applied() const { return applied_; }
  // The last index the caller has persisted (entries beyond are unstable).
  LogIndex StableLastIndex() const { return unstable_offset_ - 1; }

  // Entries [lo, hi) limited to max_bytes (at least one when lo < hi).
  // NotFound if lo is compacted. REQUIRES: hi <= LastIndex() + 1.
  Result<std::vector<Entry>> Slice(LogIndex lo, LogIndex hi, uint64_t max_bytes) const;

  // Appends entries to the tail, replacing any entries at or after
  // entries.front().index. REQUIRES: entries consecutive, the first not
  // beyond LastIndex() + 1 and after committed().
  void Append(const std::vector<Entry>& entries);

  // The AppendEntries receiver rules 2-4 of Figure 2: if our log has an entry
  // at prev_index with prev_term, delete conflicting entries, append new
  // ones and return the index of the last new entry; else nullopt.
  std::optional<LogIndex> MaybeAppend(LogIndex prev_index, Term prev_term,
                                      const std::vector<Entry>& entries);

  // The index of the first entry in `entries` whose term differs from ours
  // at that index (or that we lack); nullopt if all match.
  std::optional<LogIndex> FindConflict(const std::vector<Entry>& entries) const;

  // The largest index <= index whose term is <= term (used for the fast
  // back-tracking hint on both sides). Stops at the first available index.
  LogIndex FindConflictByTerm(LogIndex index, Term term) const;

  // REQUIRES: index <= LastIndex(). Lowering the commit index is ignored.
  void CommitTo(LogIndex index);
  // REQUIRES: applied() <= index <= committed().
  void AppliedTo(LogIndex index);

  // Replaces the whole log by a snapshot (installed from the leader).
  void Restore(const Snapshot& snapshot);

  // ---- The Ready/Advance bookkeeping. ----
  const std::vector<Entry>& unstable_entries() const { return unstable_entries_; }
  const std::optional<Snapshot>& unstable_snapshot() const { return unstable_snapshot_; }
  // The caller persisted entries up to (index, term); ignored if that entry
  // has since been replaced.
  void StableTo(LogIndex index, Term term);
  // The caller persisted the snapshot at index.
  void StableSnapshotTo(LogIndex index);
  // Committed, persisted entries not yet handed out for applying, after
  // `from` (the last index handed out), limited to max_bytes.
  std::vector<Entry> NextCommittedEntries(LogIndex from, uint64_t max_bytes) const;
  bool HasNextCommittedEntries(LogIndex from) const;

  void CheckInvariants() const;

 private:
  LogIndex MaxAppliableIndex() const;

  const LogStorage* storage_;
  std::optional<Snapshot> unstable_snapshot_;
  std::vector<Entry> unstable_entries_;
  LogIndex unstable_offset_;
  LogIndex committed_;
  LogIndex applied_;
};

}  // namespace rkv::raft

#endif  // RKV_RAFT_RAFT_LOG_H_
