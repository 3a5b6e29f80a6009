// The bytes of WAL segment files, as docs/formats/wal.md defines them, and the
// pure functions that encode, decode and scan them. No I/O here: the Wal
// (wal.h) and offline tools read a segment into memory and hand it to
// ScanSegment.
#ifndef RKV_WAL_WAL_FORMAT_H_
#define RKV_WAL_WAL_FORMAT_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "common/status.h"
#include "common/types.h"
#include "raft/message.h"

namespace rkv::wal {

inline constexpr uint32_t kFormatVersion = 1;
inline constexpr std::string_view kSegmentMagic = "rkv-wals";

// magic(8) version(4) flags(4) seq(8) first_index(8) crc(4) reserved(4)
inline constexpr size_t kSegmentHeaderSize = 40;
// crc(4) length(4) type(1) flags(1)
inline constexpr size_t kRecordHeaderSize = 10;
static_assert(kSegmentHeaderSize == 8 + 4 + 4 + 8 + 8 + 4 + 4);
static_assert(kRecordHeaderSize == 4 + 4 + 1 + 1);

// Hard limit on one record's payload, whatever the options say. A length
// above it is an impossible header (garbage), not a record.
inline constexpr uint32_t kMaxPayloadSize = 512u << 20;

enum class RecordType : uint8_t {
  kState = 1,          // segment preamble: hard state, snapshot metadata, configuration
  kEntry = 2,          // one log entry, appended at LastIndex() + 1
  kHardState = 3,      // term, vote, commit index
  kSnapshot = 4,       // a snapshot received from the leader: replaces the whole log
  kCompact = 5,        // a local snapshot/checkpoint: drops the prefix it covers
  kTruncate = 6,       // drops every entry at or after an index (a conflicting suffix)
  kConfiguration = 7,  // the configuration in effect at the caller's applied index
};
inline constexpr uint8_t kMaxRecordType = 7;

// Set on the last record of a batch. A batch (one Save, one SetConfiguration,
// one Compact, one preamble) takes effect on recovery only once its last
// record has been read: a torn batch is discarded whole.
inline constexpr uint8_t kRecordFlagBatchEnd = 1u << 0;
inline constexpr uint8_t kRecordFlagsKnown = kRecordFlagBatchEnd;

std::string_view RecordTypeName(RecordType type);

// A decoded record. Only the fields its type uses are set.
struct Record {
  RecordType type = RecordType::kEntry;
  uint8_t flags = 0;
  raft::Entry entry;                  // kEntry
  raft::HardState hard_state;         // kHardState, kState
  raft::SnapshotMetadata snapshot;    // kSnapshot, kCompact, kState
  raft::Configuration configuration;  // kConfiguration, kState
  LogIndex index;                     // kTruncate

  bool batch_end() const { return (flags & kRecordFlagBatchEnd) != 0; }
};

// ---- Encoding. Each appends one whole record to *dst. ----

void AppendStateRecord(const raft::HardState& hard_state, const raft::SnapshotMetadata& snapshot,
                       const raft::Configuration& configuration, uint8_t flags, std::string* dst);
void AppendEntryRecord(const raft::Entry& entry, uint8_t flags, std::string* dst);
void AppendHardStateRecord(const raft::HardState& hard_state, uint8_t flags, std::string* dst);
// type: kSnapshot or kCompact.
void AppendSnapshotRecord(RecordType type, const raft::SnapshotMetadata& snapshot, uint8_t flags,
                          std::string* dst);
void AppendTruncateRecord(LogIndex index, uint8_t flags, std::string* dst);
void AppendConfigurationRecord(const raft::Configuration& configuration, uint8_t flags,
                               std::string* dst);

// Bytes the record of `entry` takes on disk (header included).
inline size_t EntryRecordSize(const raft::Entry& entry) {
  return kRecordHeaderSize + 8 + 8 + 1 + entry.data.size();
}

// ---- Decoding. ----

struct RecordHeader {
  uint32_t crc = 0;
  uint32_t length = 0;  // payload bytes
  RecordType type = RecordType::kEntry;
  uint8_t flags = 0;

  size_t record_size() const { return kRecordHeaderSize + length; }
};

enum class DecodeOutcome {
  kOk,
  kTruncated,  // fewer bytes than the header or record needs
  kCorrupt,    // impossible header fields or a checksum mismatch
};

// Parses the 10-byte header at the start of `data`; checks the type, flags
// and length are possible (not the CRC, which needs the whole record).
DecodeOutcome DecodeRecordHeader(std::string_view data, RecordHeader* header);
// Checks the CRC of `record` (header.record_size() bytes starting with the
// header) and returns its payload.
DecodeOutcome VerifyRecord(std::string_view record, const RecordHeader& header,
                           std::string_view* payload);
// Decodes the payload of a record whose CRC matched. Corruption if it does
// not fit its type (wrong size, unknown entry type, invalid configuration):
// such a record was written that way, so it is never a torn tail.
Status DecodePayload(const RecordHeader& header, std::string_view payload, Record* record);

// ---- Segment files. ----

struct SegmentHeader {
  uint64_t seq = 0;       // the segment's number, as in its file name
  LogIndex first_index;   // LastIndex() + 1 when the segment was started
};

std::string EncodeSegmentHeader(const SegmentHeader& header);
// Corruption if the magic or CRC is wrong, NotSupported for another version.
Status DecodeSegmentHeader(std::string_view data, SegmentHeader* header);

// "<20 digits>.wal"; the number is the segment's seq.
std::string SegmentFileName(uint64_t seq);
bool ParseSegmentFileName(std::string_view name, uint64_t* seq);

// A batch as ScanSegment delivers it: its records in file order, each with
// its file offset.
struct ScannedRecord {
  uint64_t offset;
  uint64_t size;  // bytes on disk, header included
  Record record;
};
using ScannedBatch = std::vector<ScannedRecord>;

struct ScanResult {
  // Offset just past the last complete batch.
  uint64_t valid_end = 0;
  // Empty when the segment ended cleanly: at its end, or where only zero
  // bytes follow (preallocated space). Else why the scan stopped ("checksum
  // mismatch", "unfinished batch", ...), at stop_offset (the first record
  // that is bad; for an unfinished batch, the batch's first record).
  std::string_view stop_reason;
  uint64_t stop_offset = 0;
  // Zero bytes after valid_end, when the segment ended cleanly on them.
  uint64_t zero_padding = 0;
};

// Reads the records of a whole segment file `data` after its header and
// calls fn for every complete batch, in order. Stops at the first record that
// is truncated, impossible or fails its checksum, or at a batch that never
// ends; that is not an error (the caller decides whether it is a torn tail or
// corruption) and is reported in *result. Returns an error if fn does, or
// Corruption("offset N: ...") for a record whose checksum matched but whose
// payload does not fit its type.
Status ScanSegment(std::string_view data, const std::function<Status(const ScannedBatch&)>& fn,
                   ScanResult* result);

}  // namespace rkv::wal

#endif  // RKV_WAL_WAL_FORMAT_H_
