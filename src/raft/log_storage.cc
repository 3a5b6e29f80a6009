#include "raft/log_storage.h"

#include <utility>

namespace rkv::raft {

Result<SnapshotChunk> LogStorage::GetSnapshotChunk(uint64_t offset, uint64_t max_bytes) const {
  RKV_ASSIGN_OR_RETURN(Snapshot snapshot, GetSnapshot());
  SnapshotChunk chunk;
  chunk.metadata = std::move(snapshot.metadata);
  chunk.total_bytes = snapshot.data.size();
  if (offset < snapshot.data.size()) chunk.data = snapshot.data.substr(offset, max_bytes);
  return chunk;
}

MemoryLogStorage::MemoryLogStorage(Configuration configuration)
    : configuration_(std::move(configuration)) {
  snapshot_.metadata.configuration = configuration_;
}

InitialState MemoryLogStorage::GetInitialState() const { return {hard_state_, configuration_}; }

LogIndex MemoryLogStorage::FirstIndex() const { return snapshot_.metadata.last_index + 1; }

LogIndex MemoryLogStorage::LastIndex() const {
  return snapshot_.metadata.last_index + entries_.size();
}

Result<Term> MemoryLogStorage::TermAt(LogIndex index) const {
  const LogIndex snapshot_index = snapshot_.metadata.last_index;
  if (index < snapshot_index) return Status::NotFound("compacted");
  if (index > LastIndex()) return Status::NotFound("beyond last index");
  if (index == snapshot_index) return snapshot_.metadata.last_term;
  const Entry& e = entries_[index - snapshot_index - 1];
  RKV_ASSERT(e.index == index);
  return e.term;
}

Result<std::vector<Entry>> MemoryLogStorage::Entries(LogIndex lo, LogIndex hi,
                                                     uint64_t max_bytes) const {
  if (lo < FirstIndex()) return Status::NotFound("compacted");
  RKV_ASSERT(lo <= hi);
  RKV_ASSERT(hi <= LastIndex() + 1);
  std::vector<Entry> out;
  uint64_t bytes = 0;
  for (LogIndex i = lo; i < hi; i = i + 1) {
    const Entry& e = entries_[i - FirstIndex()];
    bytes += EntryBytes(e);
    if (!out.empty() && bytes > max_bytes) break;
    out.push_back(e);
  }
  return out;
}

Result<Snapshot> MemoryLogStorage::GetSnapshot() const { return snapshot_; }

void MemoryLogStorage::Append(const std::vector<Entry>& entries) {
  if (entries.empty()) return;
  const LogIndex first = entries.front().index;
  RKV_ASSERT(first > snapshot_.metadata.last_index);
  RKV_ASSERT(first <= LastIndex() + 1);
  entries_.resize(first - FirstIndex());
  for (const Entry& e : entries) {
    RKV_ASSERT(e.index == LastIndex() + 1);
    entries_.push_back(e);
  }
}

void MemoryLogStorage::ApplySnapshot(Snapshot snapshot) {
  RKV_ASSERT(snapshot.metadata.last_index > snapshot_.metadata.last_index);
  configuration_ = snapshot.metadata.configuration;
  snapshot_ = std::move(snapshot);
  entries_.clear();
}

Status MemoryLogStorage::CreateSnapshot(LogIndex index, const Configuration& configuration,
                                        std::string data) {
  if (index <= snapshot_.metadata.last_index) return Status::InvalidArgument("snapshot not newer");
  if (index > LastIndex()) return Status::InvalidArgument("snapshot beyond the log");
  Result<Term> term = TermAt(index);
  RKV_ASSERT(term.ok());
  const uint64_t drop = index - snapshot_.metadata.last_index;
  entries_.erase(entries_.begin(), entries_.begin() + static_cast<std::ptrdiff_t>(drop));
  snapshot_.metadata = {index, *term, configuration};
  snapshot_.data = std::move(data);
  return Status::OK();
}

}  // namespace rkv::raft
