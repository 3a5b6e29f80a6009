// LogStorage: how the Raft core reads the persisted log.
//
// The core only reads through this interface; the caller writes to the
// storage when it handles a Ready (see ready.h for the order). The log seen
// here is: a snapshot standing for every entry up to snapshot.last_index
// (possibly the empty snapshot at index 0), followed by the entries
// FirstIndex() .. LastIndex(). TermAt(FirstIndex() - 1) is the snapshot's
// term, so the entry before the first one can always be matched.
//
// MemoryLogStorage is the in-memory implementation used by tests and the
// simulator; the durable WAL implements the same interface.
#ifndef RKV_RAFT_LOG_STORAGE_H_
#define RKV_RAFT_LOG_STORAGE_H_

#include <cstdint>
#include <vector>

#include "common/result.h"
#include "common/types.h"
#include "raft/message.h"

namespace rkv::raft {

// What a server restarts from.
struct InitialState {
  HardState hard_state;
  // The configuration in effect at the caller's applied index (the one it
  // passes as RaftConfig::applied_index).
  Configuration configuration;
};

// A piece of a snapshot (LogStorage::GetSnapshotChunk).
struct SnapshotChunk {
  SnapshotMetadata metadata;
  std::string data;
  uint64_t total_bytes = 0;  // of the whole snapshot's data
};

class LogStorage {
 public:
  virtual ~LogStorage() = default;

  virtual InitialState GetInitialState() const = 0;

  // Index of the first entry held (snapshot.last_index + 1).
  virtual LogIndex FirstIndex() const = 0;
  // Index of the last entry held (snapshot.last_index when there is none).
  virtual LogIndex LastIndex() const = 0;

  // Term of the entry at `index`, for FirstIndex() - 1 <= index <= LastIndex().
  // NotFound outside that range (compacted or not yet written).
  virtual Result<Term> TermAt(LogIndex index) const = 0;

  // Entries [lo, hi), FirstIndex() <= lo <= hi <= LastIndex() + 1, stopping
  // once their EntriesBytes would exceed max_bytes (but always at least one
  // entry when lo < hi). NotFound if lo was compacted.
  virtual Result<std::vector<Entry>> Entries(LogIndex lo, LogIndex hi, uint64_t max_bytes) const = 0;

  // The most recent snapshot. Busy if one is being created and the caller
  // should try later.
  virtual Result<Snapshot> GetSnapshot() const = 0;

  // Up to `max_bytes` of the most recent snapshot's data from `offset` (none
  // past its end), with its metadata and its whole size: what the leader
  // sends one InstallSnapshot chunk from. The default copies GetSnapshot();
  // a storage that keeps the bytes should hand out the piece alone, so a
  // large snapshot is not copied whole for every chunk.
  virtual Result<SnapshotChunk> GetSnapshotChunk(uint64_t offset, uint64_t max_bytes) const;
};

// The whole log in memory. Not thread-safe.
class MemoryLogStorage final : public LogStorage {
 public:
  // A fresh server of a new cluster whose initial members are `configuration`.
  explicit MemoryLogStorage(Configuration configuration);

  InitialState GetInitialState() const override;
  LogIndex FirstIndex() const override;
  LogIndex LastIndex() const override;
  Result<Term> TermAt(LogIndex index) const override;
  Result<std::vector<Entry>> Entries(LogIndex lo, LogIndex hi, uint64_t max_bytes) const override;
  Result<Snapshot> GetSnapshot() const override;

  // ---- Writes, done by whoever handles the Ready. ----

  void SetHardState(const HardState& hard_state) { hard_state_ = hard_state; }
  // Records the configuration in effect at the applied index (for restarts).
  void SetConfiguration(const Configuration& configuration) { configuration_ = configuration; }

  // Appends entries (consecutive indexes), first discarding any held entry at
  // or after entries.front().index. REQUIRES: entries.front().index <=
  // LastIndex() + 1 and > the snapshot index.
  void Append(const std::vector<Entry>& entries);

  // Replaces the whole log by `snapshot` (received from a leader).
  // REQUIRES: snapshot newer than the current one.
  void ApplySnapshot(Snapshot snapshot);

  // Records a snapshot of the state machine at `index` (<= LastIndex, already
  // applied by the caller) and discards the entries up to it (log
  // compaction, §7). InvalidArgument if index is not newer than the current
  // snapshot or beyond the log.
  Status CreateSnapshot(LogIndex index, const Configuration& configuration, std::string data);

 private:
  HardState hard_state_;
  Configuration configuration_;
  Snapshot snapshot_;
  // entries_[i] has index snapshot_.metadata.last_index + 1 + i.
  std::vector<Entry> entries_;
};

}  // namespace rkv::raft

#endif  // RKV_RAFT_LOG_STORAGE_H_
