// The Bitcask storage engine: the public contract.
//
// Design (after Sheehy & Smith, "Bitcask", 2010; formats in docs/formats/):
//  - Data lives in append-only data files of bounded size. Exactly one, the
//    active file, is written; the others are immutable.
//  - The keydir, in memory, maps every live key to the file, offset and size
//    of its newest record, so a Get is one lookup plus one read (of a memory
//    mapping for files on disk).
//  - Merge rewrites immutable files that are mostly dead into compact new
//    files with hint files beside them, and deletes the old files once no
//    View pins them.
//  - On open the keydir is rebuilt from hint files where they are valid and
//    by scanning data files where not. A torn tail of the newest file is
//    truncated; corruption anywhere else is an error.
//
// Thread safety: every method may be called from any thread concurrently.
// Readers never wait for a disk write or for merge.
#ifndef RKV_STORAGE_ENGINE_H_
#define RKV_STORAGE_ENGINE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/metrics.h"
#include "common/result.h"
#include "common/status.h"
#include "storage/options.h"

namespace rkv::storage {

struct PutOptions {
  // Absolute expiry, in milliseconds since the Unix epoch on Options::clock;
  // 0 means never. An expired key reads as absent.
  uint64_t expiry_ms = 0;
};

// A group of puts and deletes applied atomically: after a crash, either all
// of them or none is visible.
class WriteBatch {
 public:
  enum class OpType : uint8_t { kPut, kDelete };
  struct Op {
    OpType type;
    std::string key;
    std::string value;
    uint64_t expiry_ms = 0;
  };

  void Put(std::string_view key, std::string_view value, uint64_t expiry_ms = 0) {
    ops_.push_back({OpType::kPut, std::string(key), std::string(value), expiry_ms});
  }
  void Delete(std::string_view key) { ops_.push_back({OpType::kDelete, std::string(key), {}, 0}); }
  void Clear() { ops_.clear(); }
  size_t count() const { return ops_.size(); }
  const std::vector<Op>& ops() const { return ops_; }

 private:
  std::vector<Op> ops_;
};

struct ScanOptions {
  // Keys k with start <= k < end, in byte order. Empty end means no bound.
  std::string start;
  std::string end;
  // If not empty, only keys beginning with prefix (combined with start/end).
  std::string prefix;
  // At most this many keys (and at most 100,000).
  size_t limit = 1000;
  // Return keys without reading their values.
  bool keys_only = false;
};

struct KeyValue {
  std::string key;
  std::string value;  // empty when ScanOptions::keys_only
};

struct Stats {
  uint64_t keys = 0;
  uint64_t data_files = 0;
  uint64_t data_bytes = 0;      // total size of data files
  uint64_t dead_bytes = 0;      // bytes of overwritten or deleted records
  uint64_t keydir_bytes = 0;    // memory held by the keydir
  uint64_t merges = 0;          // completed merges since open
  uint64_t merge_bytes_reclaimed = 0;
  uint64_t syncs = 0;           // fdatasync calls on data files since open
  uint64_t writes = 0;          // records written since open
  uint64_t recovered_hint_files = 0;   // files loaded from hint files at open
  uint64_t recovered_scanned_files = 0;  // files scanned at open
  uint64_t truncated_tail_bytes = 0;   // torn tail cut at open
  uint64_t salvaged_bytes = 0;  // corrupt bytes skipped at open (Options::salvage)
  uint64_t pinned_files = 0;    // obsolete files kept alive by Views
};

// A consistent point-in-time image of the engine: the data files (and the
// prefix of the active file) as they were when the View was made. While the
// View lives, merge does not delete its files. Writes go on meanwhile.
class View {
 public:
  struct File {
    uint64_t id;
    std::string data_path;
    uint64_t data_size;    // bytes of the data file that belong to the view
    std::string hint_path;  // empty when the file has no hint file
  };

  virtual ~View() = default;

  // Oldest first. Replaying them in order rebuilds the state.
  virtual const std::vector<File>& files() const = 0;

  // Calls fn(key, value) for every live key of the view in key order; stops
  // early when fn returns false. Builds an index of the view first, so it
  // costs memory proportional to the number of keys.
  virtual Status ForEach(const std::function<bool(std::string_view, std::string_view)>& fn) = 0;
};

class Engine {
 public:
  // Opens (or creates) the engine in `dir`. Busy if another process has it
  // open. Corruption (naming file and offset) if a data file is corrupt
  // before its tail, unless options.salvage.
  static Result<std::unique_ptr<Engine>> Open(const Options& options, const std::string& dir);

  // Closes (as Close()) if still open.
  virtual ~Engine() = default;

  // Copies the value of `key` into *value. NotFound if absent or expired;
  // Corruption if the record fails its checksum (never a wrong value).
  virtual Status Get(std::string_view key, std::string* value) = 0;
  Result<std::string> Get(std::string_view key) {
    std::string value;
    Status s = Get(key, &value);
    if (!s.ok()) return s;
    return value;
  }

  // Durable on return in kAlways and kGroup modes. InvalidArgument if the
  // key is empty or too long or the value too large. After a write or sync
  // has failed, every later write fails with that error (reads go on).
  virtual Status Put(std::string_view key, std::string_view value, const PutOptions& options = {}) = 0;
  // Deleting an absent key succeeds (and writes nothing).
  virtual Status Delete(std::string_view key) = 0;
  virtual Status Write(const WriteBatch& batch) = 0;

  virtual Result<std::vector<KeyValue>> Scan(const ScanOptions& options) = 0;

  // Makes every write so far durable.
  virtual Status Sync() = 0;

  // Pins the current files; see View.
  virtual Result<std::unique_ptr<View>> CreateView() = 0;

  // Merges now, on this thread: rewrites every immutable file whose dead
  // fraction reaches the threshold. Returns when done.
  virtual Status Merge() = 0;

  virtual Stats GetStats() = 0;

  // Exports the engine's metrics (raft_kv_engine_*: keys, data files, live
  // and dead bytes, keydir memory, merges and their durations) for a
  // scrape. Thread-safe, like every method; takes the keydir lock shared,
  // as GetStats does.
  virtual void CollectMetrics(metrics::Registry::Collector& out) const = 0;

  // Flushes and syncs, writes a hint file for the active file, stops
  // background work and releases the directory. Further calls fail with
  // ShuttingDown. Idempotent.
  virtual Status Close() = 0;
};

}  // namespace rkv::storage

#endif  // RKV_STORAGE_ENGINE_H_
