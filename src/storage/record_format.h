// The bytes of data files and hint files, as docs/formats/data-file.md and
// docs/formats/hint-file.md define them, and the pure functions that encode
// and decode them. No I/O here.
#ifndef RKV_STORAGE_RECORD_FORMAT_H_
#define RKV_STORAGE_RECORD_FORMAT_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace rkv::storage {

inline constexpr uint32_t kFormatVersion = 1;
inline constexpr std::string_view kDataMagic = "rkv-data";
inline constexpr std::string_view kHintMagic = "rkv-hint";
inline constexpr std::string_view kHintFooterMagic = "rkv-hend";

// magic(8) version(4) flags(4) file_id(8) crc(4) reserved(4)
inline constexpr size_t kFileHeaderSize = 32;
// crc(4) type(1) flags(1) key_size(2) value_size(4) seq(8)
inline constexpr size_t kRecordHeaderSize = 20;
inline constexpr size_t kExpirySize = 8;
inline constexpr size_t kRecordHeaderSizeMax = kRecordHeaderSize + kExpirySize;
// type(1) flags(1) key_size(2) record_size(4) offset(8) seq(8)
inline constexpr size_t kHintEntrySize = 24;
// entry_count(4) data_size(8) crc(4) magic(8)
inline constexpr size_t kHintFooterSize = 24;

static_assert(kFileHeaderSize == 8 + 4 + 4 + 8 + 4 + 4);
static_assert(kRecordHeaderSize == 4 + 1 + 1 + 2 + 4 + 8);
static_assert(kHintEntrySize == 1 + 1 + 2 + 4 + 8 + 8);
static_assert(kHintFooterSize == 4 + 8 + 4 + 8);

// Hard limits of the format, whatever the options say.
inline constexpr uint32_t kKeySizeLimit = 65535;
inline constexpr uint32_t kValueSizeLimit = 256u << 20;

enum class RecordType : uint8_t { kPut = 1, kDelete = 2, kBatchCommit = 3 };

inline constexpr uint8_t kRecordFlagExpiry = 1u << 0;
inline constexpr uint8_t kRecordFlagBatch = 1u << 1;
inline constexpr uint8_t kRecordFlagsKnown = kRecordFlagExpiry | kRecordFlagBatch;

struct RecordHeader {
  uint32_t crc = 0;
  RecordType type = RecordType::kPut;
  uint8_t flags = 0;
  uint16_t key_size = 0;
  uint32_t value_size = 0;
  uint64_t seq = 0;
  uint64_t expiry_ms = 0;  // 0 unless flags has kRecordFlagExpiry

  bool has_expiry() const { return (flags & kRecordFlagExpiry) != 0; }
  bool in_batch() const { return (flags & kRecordFlagBatch) != 0; }
  size_t header_size() const { return kRecordHeaderSize + (has_expiry() ? kExpirySize : 0); }
  size_t record_size() const { return header_size() + key_size + value_size; }
};

// What one record says, for encoding.
struct RecordSpec {
  RecordType type;
  uint8_t flags;  // kRecordFlagBatch may be set; kRecordFlagExpiry is derived from expiry_ms
  uint64_t seq;
  uint64_t expiry_ms;
  std::string_view key;
  std::string_view value;
};

inline size_t RecordSize(size_t key_size, size_t value_size, bool has_expiry) {
  return kRecordHeaderSize + (has_expiry ? kExpirySize : 0) + key_size + value_size;
}
inline size_t RecordSize(const RecordSpec& spec) {
  return RecordSize(spec.key.size(), spec.value.size(), spec.expiry_ms != 0);
}

// Writes the record to dst, which must have RecordSize(spec) bytes.
void EncodeRecord(const RecordSpec& spec, char* dst);
// Appends the record to *dst.
void AppendRecord(const RecordSpec& spec, std::string* dst);

enum class DecodeOutcome {
  kOk,
  kTruncated,  // fewer bytes than the header or record needs
  kCorrupt,    // impossible header fields or a checksum mismatch
};

// Parses the header at the start of `data` (which may hold just the header or
// more). Checks that the type, flags and sizes are possible; does not check
// the CRC (that needs the whole record: VerifyRecord).
DecodeOutcome DecodeRecordHeader(std::string_view data, RecordHeader* header);

// Given `record`, which starts with a header decoded into `header` and holds
// at least header.record_size() bytes, checks the CRC and sets the key and
// value views (pointing into `record`).
DecodeOutcome VerifyRecord(std::string_view record, const RecordHeader& header,
                           std::string_view* key, std::string_view* value);

// The 32-byte header of a data or hint file.
std::string EncodeFileHeader(std::string_view magic, uint64_t file_id);
// Corruption if the magic, version or CRC is wrong.
Status DecodeFileHeader(std::string_view data, std::string_view magic, uint64_t* file_id);

// The file names of the data directory.
std::string DataFileName(uint64_t file_id);
std::string HintFileName(uint64_t file_id);
// Parses "<20 digits>.data" / ".hint"; false for any other name.
bool ParseDataFileName(std::string_view name, uint64_t* file_id);
bool ParseHintFileName(std::string_view name, uint64_t* file_id);

}  // namespace rkv::storage

#endif  // RKV_STORAGE_RECORD_FORMAT_H_
