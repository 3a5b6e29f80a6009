// State-machine snapshots: every live record of the node's engine in one
// versioned, checksummed blob (docs/formats/snapshot.md).
//
// The Raft core carries a snapshot as opaque bytes (raft::Snapshot::data),
// sends it in chunks and hands the receiver the whole blob. This file makes
// that blob and checks one; kv_dir.h installs one as a new engine directory.
//
// What goes in. Every engine key of a View, with its value: the user keys and
// the state machine's own records alike (sessions, the applied record, the
// expiry index; state_machine.h). A snapshot taken between two Apply calls is
// therefore exactly the state after the applied index, and a StateMachine
// opened on an engine that holds it resumes from there. The engine's own
// record expiry is not carried: the state machine never sets one (its TTLs
// live in the values).
//
// Checks. A header with its own checksum, blocks of records each with a
// CRC32C, and a trailer whose last four bytes are the CRC32C of everything
// before them. Records come in strictly increasing key order. So any
// truncation, any flipped bit, a dropped, repeated or reordered block is
// refused with Corruption; a newer format version with NotSupported.
//
// Memory. A blob holds the whole state (the Raft core wants it as one
// string), and building it indexes the view's keys first (View::ForEach).
#ifndef RKV_NODE_SNAPSHOT_H_
#define RKV_NODE_SNAPSHOT_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"
#include "common/types.h"

namespace rkv {

namespace storage {
class Engine;
class View;
}  // namespace storage

// What the builder records in the header besides the data. The blob itself
// does not need them (the applied record inside says the same to the state
// machine), but they let a receiver check a blob against the Raft snapshot
// metadata it came with before installing it.
struct SnapshotMeta {
  LogIndex applied_index;
  Term applied_term;

  friend bool operator==(const SnapshotMeta&, const SnapshotMeta&) = default;
};

// What VerifySnapshot found in a blob that passed every check.
struct SnapshotSummary {
  uint32_t format_version = 0;
  SnapshotMeta meta;
  uint64_t records = 0;
  uint64_t blocks = 0;
  uint64_t key_bytes = 0;    // sum of the key sizes
  uint64_t value_bytes = 0;  // sum of the value sizes
  uint64_t total_bytes = 0;  // the size of the blob
  size_t max_key_size = 0;   // the largest key and value (an engine must take them)
  size_t max_value_size = 0;
};

// The format version this build writes and the newest it reads.
inline constexpr uint32_t kSnapshotFormatVersion = 1;
// A block is closed once its records reach this many bytes (one record larger
// than that gets a block of its own).
inline constexpr size_t kSnapshotBlockBytes = 64 << 10;

// Serializes every live record of `view`. The view is a fixed point in time,
// so this may run on any thread while the engine takes further writes.
Result<std::string> BuildSnapshot(storage::View* view, const SnapshotMeta& meta = {});

// CreateView() on `engine`, then the above. The node calls it on the apply
// thread between two Apply calls, so the snapshot is the state at exactly the
// applied index (pass applied_index() and applied_term() as `meta`).
Result<std::string> BuildSnapshot(storage::Engine* engine, const SnapshotMeta& meta = {});

// Checks everything (header, every block, key order, trailer, whole-blob
// checksum) without writing anything. Corruption naming the offset if any
// check fails; NotSupported for a newer format version.
Result<SnapshotSummary> VerifySnapshot(std::string_view data);

// Reads the records of a blob in order, checking as it goes. Records point
// into `data`, which must outlive the reader.
//
//   RKV_ASSIGN_OR_RETURN(SnapshotReader reader, SnapshotReader::Open(data));
//   std::string_view key, value;
//   for (;;) {
//     RKV_ASSIGN_OR_RETURN(bool more, reader.Next(&key, &value));
//     if (!more) break;
//     ...
//   }
//
// Open checks the header and the whole-blob checksum; Next checks each block
// as it reaches it, and the trailer at the end. A blob is only known good once
// Next has returned false.
class SnapshotReader {
 public:
  static Result<SnapshotReader> Open(std::string_view data);

  // Sets *key and *value to the next record and returns true; returns false
  // after the last record, once the trailer has been checked.
  Result<bool> Next(std::string_view* key, std::string_view* value);

  // The header's fields; records, blocks and byte counts so far.
  const SnapshotSummary& summary() const { return summary_; }

 private:
  SnapshotReader(std::string_view data, uint64_t header_records);
  Status Corrupt(std::string_view what) const;
  Status ReadBlockHeader();

  std::string_view data_;
  uint64_t header_records_ = 0;
  size_t pos_ = 0;                // offset of the next unread byte
  std::string_view block_;        // the unread records of the current block
  uint64_t block_left_ = 0;       // records left in it
  size_t block_offset_ = 0;       // where it starts, for messages
  std::string_view last_key_;     // keys must increase strictly (empty before the first)
  bool done_ = false;
  SnapshotSummary summary_;
};

}  // namespace rkv

#endif  // RKV_NODE_SNAPSHOT_H_
