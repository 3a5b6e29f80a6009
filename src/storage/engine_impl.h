// EngineImpl: the Bitcask engine behind storage/engine.h.
//
// Locks, in the order they may be taken:
//   merge_mu_     one merge at a time.
//   write_mu_     serializes writers: encoding into the write buffer, rolling
//                 the active file, flushing the buffer to the file.
//   sync_io_mu_   held around fdatasync of the active file and while a roll
//                 closes it, so a group-commit syncer never syncs a closed file.
//   mu_           (shared) the keydir, the file table and where the write
//                 buffer starts. Readers hold it shared for a lookup and the
//                 copy of one value; writers hold it exclusively only to
//                 publish new keydir entries, never across I/O.
//   sync_mu_      the group-commit error; never held while taking another
//                 lock. Group-commit progress itself is atomics (see below).
//
// The write buffer: writers encode records into buf_ (write_mu_), then
// publish their keydir entries (mu_ exclusive). A reader whose record lies at
// or beyond buf_base_ in the active file copies it from buf_; bytes before
// buf_base_ are in the file and read through its memory mapping. Published
// bytes of buf_ do not change until a flush has moved buf_base_ past them.
#ifndef RKV_STORAGE_ENGINE_IMPL_H_
#define RKV_STORAGE_ENGINE_IMPL_H_

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "env/env.h"
#include "storage/engine.h"
#include "storage/keydir.h"
#include "storage/record_format.h"

namespace rkv {
class Clock;
}

namespace rkv::storage {

struct ScannedRecord;

// One data file the engine knows.
struct DataFile {
  uint64_t id = 0;
  uint32_t handle = 0;  // index in EngineImpl::files_ while the file is live
  std::string path;
  std::string hint_path;
  std::unique_ptr<RandomAccessFile> reader;
  std::atomic<uint64_t> size{0};  // bytes; for the active file, including the write buffer
  uint64_t dead_bytes = 0;        // guarded by EngineImpl::mu_
  bool has_hint = false;          // guarded by EngineImpl::mu_
};

class EngineImpl final : public Engine {
 public:
  EngineImpl(const Options& options, std::string dir);
  ~EngineImpl() override;

  Status Open();

  Status Get(std::string_view key, std::string* value) override;
  using Engine::Get;
  Status Put(std::string_view key, std::string_view value, const PutOptions& options) override;
  Status Delete(std::string_view key) override;
  Status Write(const WriteBatch& batch) override;
  Result<std::vector<KeyValue>> Scan(const ScanOptions& options) override;
  Status Sync() override;
  Result<std::unique_ptr<View>> CreateView() override;
  Status Merge() override;
  Stats GetStats() override;
  void CollectMetrics(metrics::Registry::Collector& out) const override;
  Status Close() override;

  // Used by views.
  Clock* clock() const { return clock_; }
  void ReleaseView();

 private:
  friend class ViewImpl;

  Status CheckKey(std::string_view key) const;
  Status CheckValue(std::string_view value) const;

  // Recovery.
  Status Recover();
  Status LoadFile(const std::shared_ptr<DataFile>& file, uint64_t file_size, bool newest,
                  const std::vector<std::string>& names, uint64_t* valid_size);
  void ApplyRecoveredLocked(DataFile* file, const RecordHeader& header, uint64_t offset,
                            std::string_view key);

  // The write path (write_mu_ held unless said otherwise).
  // Writes `specs` (a batch ends with its commit record) and publishes them.
  Status WriteRecords(std::span<RecordSpec> specs, bool batch);
  Status MakeRoomLocked(size_t bytes);
  Status FlushLocked();
  Status RollLocked();
  Status CreateActiveFileLocked(uint64_t id);
  Status SyncActiveLocked();
  void SetBackgroundErrorLocked(const Status& s);
  // Group commit: returns once a sync covered `seq` (no lock held).
  Status WaitDurable(uint64_t seq);
  // Flushes and fdatasyncs the active file; *covered = the last sequence
  // number it covers (no lock held).
  Status SyncNow(uint64_t* covered);
  void MarkSynced(uint64_t seq);

  // Reads the record at `location` (mu_ held shared), checks it, and sets
  // *header, *value. Corruption if it fails its checks or is not `key`.
  Status ReadRecordLocked(const Location& location, std::string_view key, RecordHeader* header,
                          std::string_view* value) const;
  bool ExpiredLocked(const Location& location, const RecordHeader& header) const;

  // File table (mu_ exclusive).
  void RegisterFileLocked(const std::shared_ptr<DataFile>& file);
  void RetireFileLocked(const std::shared_ptr<DataFile>& file);
  void AddDeadLocked(const Location& location);
  std::shared_ptr<DataFile> OpenDataFile(uint64_t id, uint64_t map_bytes, Status* status);
  uint64_t NextActiveId() const;
  // Deletes retired files that no view pins, oldest first.
  void CollectObsolete();

  // Background work.
  void BackgroundLoop();
  Status BuildHint(const std::shared_ptr<DataFile>& file, uint64_t size);
  Status DoMerge();
  bool stopping() const { return stopping_.load(std::memory_order_relaxed); }

  const Options options_;
  Env* const env_;
  Clock* const clock_;
  const std::string dir_;
  uint64_t map_bytes_ = 0;  // mapping length of an active file
  std::unique_ptr<FileLock> lock_;

  std::mutex merge_mu_;

  std::mutex write_mu_;
  std::unique_ptr<WritableFile> writer_;  // the active file; write_mu_
  std::unique_ptr<char[]> buf_;
  size_t buf_capacity_ = 0;
  size_t buf_len_ = 0;          // write_mu_
  uint64_t active_size_ = 0;    // file bytes + buffered bytes; write_mu_
  uint64_t last_seq_ = 0;       // write_mu_
  uint64_t max_file_id_ = 0;    // write_mu_
  uint64_t active_generation_ = 0;  // write_mu_ and sync_io_mu_ to change
  Status background_error_;     // write_mu_; sticky: every later write fails
  bool closed_ = false;         // write_mu_

  std::mutex sync_io_mu_;

  mutable std::shared_mutex mu_;
  Keydir keydir_;
  std::vector<std::shared_ptr<DataFile>> files_;  // by handle; nullptr = free
  std::vector<uint32_t> free_handles_;
  std::map<uint64_t, std::shared_ptr<DataFile>> by_id_;  // live files, oldest first
  std::shared_ptr<DataFile> active_;
  uint64_t buf_base_ = 0;  // file offset of buf_[0]
  std::vector<std::shared_ptr<DataFile>> obsolete_;  // retired, oldest first

  // Group commit. Waiters block on sync_epoch_ (a futex through
  // std::atomic::wait), which changes whenever synced_seq_ or the error
  // changes, so a finished sync wakes every waiter without a mutex convoy.
  std::atomic<uint64_t> synced_seq_{0};
  std::atomic<bool> syncing_{false};       // one writer runs the shared sync
  std::atomic<bool> sync_failed_{false};   // sync_error_ is set
  std::atomic<uint32_t> sync_epoch_{0};
  std::mutex sync_mu_;                     // guards sync_error_
  Status sync_error_;
  void WakeSyncWaiters();
  void SetSyncError(const Status& s);

  std::thread background_;
  std::mutex bg_mu_;
  std::condition_variable bg_cv_;
  std::vector<uint64_t> hint_queue_;  // bg_mu_
  std::atomic<bool> stopping_{false};
  std::atomic<int> views_{0};

  std::atomic<uint64_t> stat_merges_{0};
  std::atomic<uint64_t> stat_merge_reclaimed_{0};
  std::atomic<uint64_t> stat_syncs_{0};
  std::atomic<uint64_t> stat_writes_{0};
  metrics::Histogram merge_seconds_{metrics::LatencyBuckets()};  // completed merges
  uint64_t stat_hint_files_ = 0;
  uint64_t stat_scanned_files_ = 0;
  uint64_t stat_truncated_ = 0;
  uint64_t stat_salvaged_ = 0;
};

}  // namespace rkv::storage

#endif  // RKV_STORAGE_ENGINE_IMPL_H_
