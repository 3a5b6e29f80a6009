// Wal: the durable Raft log. A LogStorage the Raft core reads, written by the
// node loop as it handles each Ready.
//
// On disk (docs/formats/wal.md) the WAL is a directory of segment files of
// bounded size, each preallocated, starting with a header and a preamble
// that restates the hard state, the snapshot metadata and the configuration
// in effect when the segment was started, followed by checksummed records:
// entries, hard states, snapshot metadata, truncations of a conflicting
// suffix, compactions, configurations. Records are grouped in batches (one
// per Save, SetConfiguration or Compact) that recovery applies whole or not
// at all.
//
// In memory the Wal holds everything the core reads: the hard state, the
// configuration, the snapshot metadata and every entry after the snapshot
// (so TermAt and Entries never touch the disk). The memory held is the log
// since the last compaction: the caller bounds it by calling Compact after
// each durable checkpoint of the state machine.
//
// Writing a Ready:
//
//   std::optional<raft::SnapshotMetadata> snapshot;
//   if (ready.snapshot) snapshot = ready.snapshot->metadata;
//   wal->Save(snapshot, ready.entries, ready.hard_state);  // queued, visible to reads
//   ... more Saves (other Readies, if the loop batches them) ...
//   if (must_sync) wal->Sync();                    // one fdatasync for all of them
//
// Group commit: Save only encodes records into a buffer; Sync writes the
// buffer to the open segment and fdatasyncs it once, covering every Save
// since the previous Sync. Reads see a Save at once (the core expects its own
// writes back before they are durable, like MemoryLogStorage).
//
// Durability: when Sync (or Compact, or Close) returns OK, everything saved
// before it survives a crash. Saves not yet synced may survive or not, each
// as a whole, and always as a prefix of the order they were saved in.
//
// Errors: any failure to write, sync, create or delete a file is sticky.
// The Wal refuses every later write with the same status (reads go on from
// memory), because after a failed fdatasync nothing written since the last
// good one can be trusted to be on disk (and a retried fdatasync may report
// success for pages the kernel already dropped). The node must treat that
// as fatal (RKV_FATAL(FatalReason::kWalSyncFailed)) and restart from what
// recovery finds.
// Invalid arguments (entries that do not follow the log, an older snapshot)
// are refused with InvalidArgument and change nothing.
//
// Snapshots: the Wal stores only snapshot metadata (index, term,
// configuration); GetSnapshot returns it with empty data. The state machine's
// data lives in the storage engine, which supplies it when a snapshot is
// sent.
//
// Not thread-safe: one thread (the node loop) calls every method, reads
// included. The one exception is CollectMetrics (and stats()), which a
// scraping thread may call at any time: what it reads is atomics and a
// lock-free histogram.
#ifndef RKV_WAL_WAL_H_
#define RKV_WAL_WAL_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/metrics.h"
#include "common/result.h"
#include "common/status.h"
#include "common/types.h"
#include "env/env.h"
#include "raft/log_storage.h"
#include "raft/message.h"
#include "wal/wal_format.h"

namespace rkv::wal {

struct WalOptions {
  // A segment is rolled before a batch that would take it past this size
  // (a batch larger than this gets a segment of its own). Each segment is
  // preallocated to this size.
  uint64_t segment_size = 64ull << 20;
  // Queued records are written to the file (without a sync) once this many
  // bytes wait, so a long run of Saves does not hold them all in memory.
  uint64_t write_buffer_size = 1ull << 20;
  // For a directory that holds no WAL (or does not exist): the initial
  // members of a new cluster, as MemoryLogStorage's constructor takes them.
  // Open then creates the directory and a first segment. Without it, Open of
  // an empty directory is NotFound. Ignored when a WAL exists.
  std::optional<raft::Configuration> bootstrap;
  // Times each fdatasync (the fsync histogram, the slow-sync warning).
  // nullptr means Clock::Real().
  Clock* clock = nullptr;
};

// An fdatasync that takes longer than this is logged (event=wal_slow_fsync):
// every write acknowledged by this node waits on it.
inline constexpr int64_t kSlowSyncMicros = 100'000;

struct WalStats {
  uint64_t syncs = 0;             // fdatasyncs of segment files (group commits, new segments)
  uint64_t bytes_written = 0;     // record bytes appended since Open
  uint64_t segments_created = 0;  // since Open, including the first of a fresh WAL
  uint64_t segments_deleted = 0;  // by compaction, since Open
  uint64_t truncated_bytes = 0;   // torn tail cut by recovery at Open
};

class Wal final : public raft::LogStorage {
 public:
  // Opens the WAL in `dir`, recovering it: segments are read in order, a torn
  // tail of the last one is truncated (logged), and an invalid record before
  // it is Corruption naming the file and offset. Busy if another Wal has the
  // directory open.
  static Result<std::unique_ptr<Wal>> Open(Env* env, std::string dir, WalOptions options);

  // Closes the files without syncing: what was not synced may be lost.
  ~Wal() override;

  Wal(const Wal&) = delete;
  Wal& operator=(const Wal&) = delete;

  // ---- LogStorage (served from memory). ----
  raft::InitialState GetInitialState() const override;
  LogIndex FirstIndex() const override;
  LogIndex LastIndex() const override;
  Result<Term> TermAt(LogIndex index) const override;
  Result<std::vector<raft::Entry>> Entries(LogIndex lo, LogIndex hi,
                                           uint64_t max_bytes) const override;
  // The snapshot metadata with empty data (see the top of this file).
  Result<raft::Snapshot> GetSnapshot() const override;

  // ---- Writes. Each is queued (visible to reads at once) and durable once
  // Sync returns OK. ----

  // Persists one Ready, in its order (ready.h): `snapshot` (if set) replaces
  // the whole log, as MemoryLogStorage::ApplySnapshot; `hard_state` (if set)
  // is recorded; `entries` (consecutive indexes) are appended, first
  // dropping every entry at or after entries.front().index. All of it is
  // one batch: after a crash it is there whole or not at all, so entries
  // never survive without the hard state saved with them.
  // InvalidArgument (nothing changes) if the snapshot is not newer than the
  // current one, or entries.front().index is not in
  // (snapshot index, LastIndex() + 1].
  Status Save(const std::optional<raft::SnapshotMetadata>& snapshot,
              const std::vector<raft::Entry>& entries,
              const std::optional<raft::HardState>& hard_state);

  // Shorthands for a Save of one part.
  Status Append(const std::vector<raft::Entry>& entries) { return Save({}, entries, {}); }
  Status SetHardState(const raft::HardState& hard_state) { return Save({}, {}, hard_state); }
  Status ApplySnapshot(const raft::SnapshotMetadata& snapshot) { return Save(snapshot, {}, {}); }

  // Records the configuration in effect at the caller's applied index, which
  // GetInitialState returns after a restart.
  Status SetConfiguration(const raft::Configuration& configuration);

  // Makes every write queued so far durable with one fdatasync (none if
  // nothing was written since the last), then deletes the segments a durable
  // snapshot or compaction made obsolete.
  Status Sync();

  // Writes queued records to the open segment without syncing (tests and
  // tools; Sync does this itself).
  Status Flush();

  // Records that the state machine holds a durable checkpoint at `index`
  // (<= LastIndex(), newer than the current snapshot) with `configuration`
  // in effect there, drops the entries up to it, syncs, and deletes every
  // whole segment that only held entries up to it, oldest first. Like
  // MemoryLogStorage::CreateSnapshot without the data.
  Status Compact(LogIndex index, const raft::Configuration& configuration);

  // Syncs and closes. Later writes fail.
  Status Close();

  // The sticky error (OK while writes are accepted).
  const Status& error() const { return error_; }

  // A snapshot of the counters; each is read atomically, not all at one
  // instant. Thread-safe.
  WalStats stats() const;

  // Exports the WAL's metrics (raft_kv_wal_*: the fdatasync latency
  // histogram, syncs, bytes written, segments) for a scrape. Thread-safe:
  // may run on the scraping thread while the node loop writes.
  void CollectMetrics(metrics::Registry::Collector& out) const;
  // Segment files, oldest first (paths).
  std::vector<std::string> SegmentPaths() const;
  const std::string& dir() const { return dir_; }

 private:
  struct Segment {
    uint64_t seq;
    LogIndex first_index;
    std::string path;
  };
  Wal(Env* env, std::string dir, WalOptions options);

  // What replaying one segment found.
  struct Replayed {
    uint64_t file_size = 0;
    uint64_t valid_end = 0;     // just past the last complete batch
    uint64_t preamble_end = 0;  // just past the preamble; 0 if it is incomplete
    bool preamble_torn = false;  // incomplete, as a segment being started when the process died
    std::string_view stop_reason;  // why the scan stopped before valid_end, if it did
  };

  Status Recover();
  Status ReplaySegment(Segment* segment, bool first, bool last, Replayed* replayed);
  Status ApplyReplayed(const Record& record);
  Status Bootstrap();
  // The segment file to append to after recovery, cut to `valid_end`.
  Status OpenForAppend(const Replayed& replayed);

  // The state changes, shared by replay and live writes so that both build
  // the same log from the same records.
  void DoTruncate(LogIndex index);
  void DoAppend(raft::Entry entry);
  void DoApplySnapshot(const raft::SnapshotMetadata& snapshot);
  void DoCompact(const raft::SnapshotMetadata& snapshot);

  // Rolls to a new segment if the open one holds records and the batch just
  // encoded at buffer_[batch_start..] would take it past segment_size.
  Status MaybeRoll(size_t batch_start);
  // Syncs and closes the open segment and starts the next one.
  Status Roll();
  // Flush once write_buffer_size bytes wait.
  Status MaybeFlush();
  Status FlushBuffer();
  // FlushBuffer, then one fdatasync of the open segment if it has unsynced bytes.
  Status FlushAndSyncFile();
  // file->Sync(), timed into the histogram and counted; logs a slow one.
  // `bytes`: what the sync makes durable (for the log line).
  Status TimedSync(WritableFile* file, const std::string& path, uint64_t bytes);
  // Starts segment `seq`: header and preamble, preallocated, synced, its
  // directory entry synced. Becomes the open segment.
  Status CreateSegment(uint64_t seq);
  Status DeleteObsoleteSegments();
  Status CheckWritable() const;
  // Records a write failure as the sticky error and returns it.
  Status Fail(Status status);

  Env* const env_;
  Clock* const clock_;
  const std::string dir_;
  const WalOptions options_;
  std::unique_ptr<FileLock> lock_;

  // ---- The log, as LogStorage presents it. ----
  raft::HardState hard_state_;
  raft::Configuration configuration_;
  raft::SnapshotMetadata snapshot_;
  // entries_[i] has index base_ + i. base_ == snapshot_.last_index + 1 except
  // during recovery, when the oldest segment left may start later (the gap
  // is covered by a compaction record further on, or Open fails).
  LogIndex base_{1};
  std::deque<raft::Entry> entries_;

  // ---- Files. ----
  std::deque<Segment> segments_;  // oldest first; back() is the open one
  std::unique_ptr<WritableFile> file_;
  uint64_t file_size_ = 0;     // bytes of the open segment in the file
  uint64_t preamble_end_ = 0;  // where the open segment's own records start
  std::string buffer_;         // encoded records not yet written
  bool unsynced_ = false;      // bytes written since the last fdatasync
  uint64_t unsynced_bytes_ = 0;  // how many
  Status error_;
  bool closed_ = false;

  // Written by the node loop, read by stats() and CollectMetrics from any
  // thread.
  struct Counters {
    std::atomic<uint64_t> syncs{0};
    std::atomic<uint64_t> bytes_written{0};
    std::atomic<uint64_t> segments_created{0};
    std::atomic<uint64_t> segments_deleted{0};
    std::atomic<uint64_t> truncated_bytes{0};
    std::atomic<uint64_t> segments{0};  // segments_.size()
  };
  Counters counters_;
  metrics::Histogram sync_seconds_{metrics::LatencyBuckets()};
};

}  // namespace rkv::wal

#endif  // RKV_WAL_WAL_H_
