// Options of the Bitcask engine.
#ifndef RKV_STORAGE_OPTIONS_H_
#define RKV_STORAGE_OPTIONS_H_

#include <cstdint>
#include <string_view>

namespace rkv {
class Clock;
class Env;
}  // namespace rkv

namespace rkv::storage {

// When a write is durable (the vocabulary of Redis' appendfsync).
enum class SyncMode {
  // fdatasync before each write returns. One sync per write.
  kAlways,
  // Concurrent writers wait for one shared fdatasync that covers all of
  // them (group commit). Durable on return, like kAlways, at a fraction of
  // the syncs. The default when the engine is used alone.
  kGroup,
  // A background thread syncs every `sync_interval_ms`. A crash may lose the
  // writes of the last interval.
  kInterval,
  // Never syncs on its own (Close and Sync() still do). Writes are buffered
  // in memory and reach the file in batches. The replicated node uses this:
  // its Raft log is the durable copy.
  kNone,
};

// Parses "always", "group", "interval", "none".
bool ParseSyncMode(std::string_view name, SyncMode* mode);
std::string_view SyncModeName(SyncMode mode);

struct Options {
  // Where files come from. nullptr means Env::Posix().
  Env* env = nullptr;
  // Time for expiry checks and merge rate limiting. nullptr means Clock::Real().
  Clock* clock = nullptr;

  SyncMode sync_mode = SyncMode::kGroup;
  uint32_t sync_interval_ms = 1000;

  // A data file is closed and a new one started once it would grow past this.
  // At most 1 GiB (offsets are 32-bit with room for one oversized record).
  uint64_t data_file_size_max = 64ull << 20;

  uint32_t key_size_max = 4096;          // bytes; at most 65535
  uint32_t value_size_max = 16u << 20;   // bytes; at most 256 MiB

  // Writes are gathered in a buffer of this size before they reach the file.
  uint32_t write_buffer_size = 1u << 20;

  // Merge rewrites an immutable data file once this fraction of its bytes
  // is dead (overwritten or deleted records).
  double merge_dead_fraction_min = 0.5;
  // Ignore files with fewer dead bytes than this (avoids churning tiny files).
  uint64_t merge_dead_bytes_min = 1u << 20;
  // Cap on the bytes per second merge reads and writes; 0 = unlimited.
  uint64_t merge_bytes_per_second_max = 0;
  // Run merges (and build hint files of closed data files) on a background
  // thread. When false, only an explicit Engine::Merge() call merges, a
  // closed file gets no hint file until a merge rewrites it (recovery scans
  // it instead), and unless sync_mode is kInterval the engine starts no
  // thread: deterministic for tests and the simulator.
  bool background_merge = true;

  // On open, skip corrupt records before the tail of a data file instead of
  // failing, and report what was lost (Stats::salvaged_bytes).
  bool salvage = false;

  // Open fails if the directory holds no data and this is false.
  bool create_if_missing = true;
};

}  // namespace rkv::storage

#endif  // RKV_STORAGE_OPTIONS_H_
