#include "raft/raft_log.h"

#include <algorithm>
#include <limits>

namespace rkv::raft {

RaftLog::RaftLog(const LogStorage* storage, LogIndex committed, LogIndex applied)
    : storage_(storage),
      unstable_offset_(storage->LastIndex() + 1),
      committed_(committed),
      applied_(applied) {
  RKV_ASSERT(storage_ != nullptr);
  // A restart may know a commit index beyond what its snapshot covers, never
  // below the snapshot (the snapshot only holds committed entries).
  committed_ = std::max(committed_, storage->FirstIndex() - 1);
  applied_ = std::max(applied_, storage->FirstIndex() - 1);
  RKV_ASSERT(applied_ <= committed_);
  RKV_ASSERT(committed_ <= LastIndex());
}

LogIndex RaftLog::FirstIndex() const {
  if (unstable_snapshot_) return unstable_snapshot_->metadata.last_index + 1;
  return storage_->FirstIndex();
}

LogIndex RaftLog::LastIndex() const {
  if (!unstable_entries_.empty()) return unstable_offset_ + (unstable_entries_.size() - 1);
  if (unstable_snapshot_) return unstable_snapshot_->metadata.last_index;
  return storage_->LastIndex();
}

Term RaftLog::LastTerm() const {
  Result<Term> t = TermAt(LastIndex());
  RKV_ASSERT(t.ok());
  return *t;
}

Result<Term> RaftLog::TermAt(LogIndex index) const {
  if (index + 1 < FirstIndex()) return Status::NotFound("compacted");
  if (index > LastIndex()) return Status::NotFound("beyond last index");
  if (unstable_snapshot_ && index == unstable_snapshot_->metadata.last_index) {
    return unstable_snapshot_->metadata.last_term;
  }
  if (index >= unstable_offset_) return unstable_entries_[index - unstable_offset_].term;
  RKV_ASSERT(!unstable_snapshot_);
  return storage_->TermAt(index);
}

bool RaftLog::MatchTerm(LogIndex index, Term term) const {
  Result<Term> t = TermAt(index);
  return t.ok() && *t == term;
}

bool RaftLog::IsUpToDate(LogIndex last_index, Term last_term) const {
  const Term our_last_term = LastTerm();
  return last_term > our_last_term || (last_term == our_last_term && last_index >= LastIndex());
}

Result<std::vector<Entry>> RaftLog::Slice(LogIndex lo, LogIndex hi, uint64_t max_bytes) const {
  RKV_ASSERT(lo <= hi);
  RKV_ASSERT(hi <= LastIndex() + 1);
  if (lo < FirstIndex()) return Status::NotFound("compacted");
  std::vector<Entry> out;
  if (lo == hi) return out;
  uint64_t bytes = 0;
  if (lo < unstable_offset_) {
    const LogIndex stable_hi = std::min(hi, unstable_offset_);
    RKV_ASSIGN_OR_RETURN(out, storage_->Entries(lo, stable_hi, max_bytes));
    RKV_ASSERT(!out.empty());
    bytes = EntriesBytes(out);
    // Stop if the storage stopped early for the byte limit.
    if (out.back().index + 1 < stable_hi) return out;
  }
  for (LogIndex i = std::max(lo, unstable_offset_); i < hi; i = i + 1) {
    const Entry& e = unstable_entries_[i - unstable_offset_];
    bytes += EntryBytes(e);
    if (!out.empty() && bytes > max_bytes) break;
    out.push_back(e);
  }
  return out;
}

void RaftLog::Append(const std::vector<Entry>& entries) {
  if (entries.empty()) return;
  const LogIndex first = entries.front().index;
  RKV_ASSERT_MSG(first > committed_, "overwriting a committed entry");
  RKV_ASSERT(first <= LastIndex() + 1);
  for (size_t i = 1; i < entries.size(); ++i) {
    RKV_ASSERT(entries[i].index == entries[i - 1].index + 1);
    RKV_ASSERT(entries[i].term >= entries[i - 1].term);
  }
  if (first >= unstable_offset_) {
    unstable_entries_.resize(first - unstable_offset_);
  } else {
    // Replacing persisted entries: everything from `first` becomes unstable.
    RKV_ASSERT(!unstable_snapshot_ || first > unstable_snapshot_->metadata.last_index);
    unstable_entries_.clear();
    unstable_offset_ = first;
  }
  unstable_entries_.insert(unstable_entries_.end(), entries.begin(), entries.end());
}

std::optional<LogIndex> RaftLog::FindConflict(const std::vector<Entry>& entries) const {
  for (const Entry& e : entries) {
    if (!MatchTerm(e.index, e.term)) return e.index;
  }
  return std::nullopt;
}

std::optional<LogIndex> RaftLog::MaybeAppend(LogIndex prev_index, Term prev_term,
                                             const std::vector<Entry>& entries) {
  if (!MatchTerm(prev_index, prev_term)) return std::nullopt;
  const LogIndex last_new = prev_index + entries.size();
  std::optional<LogIndex> conflict = FindConflict(entries);
  if (conflict) {
    // Figure 2, receiver rule 3: an existing entry conflicts with a new one;
    // delete it and all that follow. Rule 4: append any new entries. An
    // entry at or below the commit index can never conflict (Log Matching).
    RKV_ASSERT_MSG(*conflict > committed_, "conflict at a committed index");
    const uint64_t skip = *conflict - (prev_index + 1);
    Append(std::vector<Entry>(entries.begin() + static_cast<std::ptrdiff_t>(skip), entries.end()));
  }
  return last_new;
}

LogIndex RaftLog::FindConflictByTerm(LogIndex index, Term term) const {
  index = std::min(index, LastIndex());
  while (true) {
    Result<Term> t = TermAt(index);
    if (!t.ok() || *t <= term) return index;
    if (index == LogIndex{0}) return index;
    index = index - 1;
  }
}

void RaftLog::CommitTo(LogIndex index) {
  if (index <= committed_) return;
  RKV_ASSERT_MSG(index <= LastIndex(), "commit index beyond the log");
  committed_ = index;
}

void RaftLog::AppliedTo(LogIndex index) {
  RKV_ASSERT(index >= applied_);
  RKV_ASSERT(index <= committed_);
  applied_ = index;
}

void RaftLog::Restore(const Snapshot& snapshot) {
  const LogIndex index = snapshot.metadata.last_index;
  RKV_ASSERT(index > committed_);
  unstable_snapshot_ = snapshot;
  unstable_entries_.clear();
  unstable_offset_ = index + 1;
  committed_ = index;
}

void RaftLog::StableTo(LogIndex index, Term term) {
  if (index < unstable_offset_) return;
  if (unstable_entries_.empty() || index > LastIndex()) return;
  if (unstable_entries_[index - unstable_offset_].term != term) return;
  const uint64_t n = index - unstable_offset_ + 1;
  unstable_entries_.erase(unstable_entries_.begin(),
                          unstable_entries_.begin() + static_cast<std::ptrdiff_t>(n));
  unstable_offset_ = index + 1;
}

void RaftLog::StableSnapshotTo(LogIndex index) {
  if (unstable_snapshot_ && unstable_snapshot_->metadata.last_index == index) {
    unstable_snapshot_.reset();
  }
}

LogIndex RaftLog::MaxAppliableIndex() const {
  // Only persisted entries are handed out for applying, so a state machine
  // never runs ahead of its own log after a crash.
  if (unstable_snapshot_) return LogIndex{0};
  return std::min(committed_, StableLastIndex());
}

std::vector<Entry> RaftLog::NextCommittedEntries(LogIndex from, uint64_t max_bytes) const {
  const LogIndex hi = MaxAppliableIndex();
  if (hi <= from) return {};
  Result<std::vector<Entry>> entries = Slice(from + 1, hi + 1, max_bytes);
  RKV_ASSERT_MSG(entries.ok(), "committed entries not yet applied were compacted");
  return std::move(*entries);
}

bool RaftLog::HasNextCommittedEntries(LogIndex from) const { return MaxAppliableIndex() > from; }

void RaftLog::CheckInvariants() const {
  RKV_ASSERT(applied_ <= committed_);
  RKV_ASSERT(committed_ <= LastIndex());
  RKV_ASSERT(FirstIndex() <= LastIndex() + 1);
  if (unstable_snapshot_) RKV_ASSERT(unstable_offset_ == unstable_snapshot_->metadata.last_index + 1);
  for (size_t i = 0; i < unstable_entries_.size(); ++i) {
    RKV_ASSERT(unstable_entries_[i].index == unstable_offset_ + i);
    if (i > 0) RKV_ASSERT(unstable_entries_[i].term >= unstable_entries_[i - 1].term);
  }
  if (!unstable_entries_.empty()) {
    Result<Term> before = TermAt(unstable_offset_ - 1);
    if (before.ok()) RKV_ASSERT(*before <= unstable_entries_.front().term);
  }
}

}  // namespace rkv::raft
