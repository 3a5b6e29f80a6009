// Encoding and decoding of records and file headers.
//
//   record := crc u32 | type u8 | flags u8 | key_size u16 | value_size u32 | seq u64
//             [expiry_ms u64 if flags & 1] | key | value
//   The CRC covers every byte after the crc field.
//
// See docs/formats/data-file.md for the full grammar.
#include "storage/record_format.h"

#include <fmt/format.h>

#include <charconv>

#include "common/assert.h"
#include "common/coding.h"
#include "common/crc32c.h"

namespace rkv::storage {

void EncodeRecord(const RecordSpec& spec, char* dst) {
  RKV_ASSERT(spec.key.size() <= kKeySizeLimit);
  RKV_ASSERT(spec.value.size() <= kValueSizeLimit);
  RKV_ASSERT((spec.flags & ~kRecordFlagsKnown) == 0);
  uint8_t flags = static_cast<uint8_t>(spec.flags & ~kRecordFlagExpiry);
  if (spec.expiry_ms != 0) flags |= kRecordFlagExpiry;

  char* p = dst + 4;  // the CRC goes in last
  *p++ = static_cast<char>(spec.type);
  *p++ = static_cast<char>(flags);
  EncodeFixed16(p, static_cast<uint16_t>(spec.key.size()));
  p += 2;
  EncodeFixed32(p, static_cast<uint32_t>(spec.value.size()));
  p += 4;
  EncodeFixed64(p, spec.seq);
  p += 8;
  if (spec.expiry_ms != 0) {
    EncodeFixed64(p, spec.expiry_ms);
    p += 8;
  }
  if (!spec.key.empty()) std::memcpy(p, spec.key.data(), spec.key.size());
  p += spec.key.size();
  if (!spec.value.empty()) std::memcpy(p, spec.value.data(), spec.value.size());
  p += spec.value.size();

  const size_t size = static_cast<size_t>(p - dst);
  RKV_ASSERT(size == RecordSize(spec));
  EncodeFixed32(dst, crc32c::Value(dst + 4, size - 4));
}

void AppendRecord(const RecordSpec& spec, std::string* dst) {
  const size_t old_size = dst->size();
  dst->resize(old_size + RecordSize(spec));
  EncodeRecord(spec, dst->data() + old_size);
}

DecodeOutcome DecodeRecordHeader(std::string_view data, RecordHeader* header) {
  if (data.size() < kRecordHeaderSize) return DecodeOutcome::kTruncated;
  const char* p = data.data();
  RecordHeader h;
  h.crc = DecodeFixed32(p);
  const auto type = static_cast<uint8_t>(p[4]);
  h.flags = static_cast<uint8_t>(p[5]);
  h.key_size = DecodeFixed16(p + 6);
  h.value_size = DecodeFixed32(p + 8);
  h.seq = DecodeFixed64(p + 12);

  if (type < 1 || type > 3) return DecodeOutcome::kCorrupt;
  h.type = static_cast<RecordType>(type);
  if ((h.flags & ~kRecordFlagsKnown) != 0) return DecodeOutcome::kCorrupt;
  if (h.value_size > kValueSizeLimit) return DecodeOutcome::kCorrupt;
  switch (h.type) {
    case RecordType::kPut:
      if (h.key_size == 0) return DecodeOutcome::kCorrupt;
      break;
    case RecordType::kDelete:
      if (h.key_size == 0 || h.value_size != 0 || h.has_expiry()) return DecodeOutcome::kCorrupt;
      break;
    case RecordType::kBatchCommit:
      if (h.key_size != 0 || h.value_size != 4 || h.flags != 0) return DecodeOutcome::kCorrupt;
      break;
  }
  if (h.has_expiry()) {
    if (data.size() < kRecordHeaderSize + kExpirySize) return DecodeOutcome::kTruncated;
    h.expiry_ms = DecodeFixed64(p + kRecordHeaderSize);
    if (h.expiry_ms == 0) return DecodeOutcome::kCorrupt;
  }
  *header = h;
  return DecodeOutcome::kOk;
}

DecodeOutcome VerifyRecord(std::string_view record, const RecordHeader& header,
                           std::string_view* key, std::string_view* value) {
  const size_t size = header.record_size();
  if (record.size() < size) return DecodeOutcome::kTruncated;
  if (crc32c::Value(record.data() + 4, size - 4) != header.crc) return DecodeOutcome::kCorrupt;
  const size_t key_at = header.header_size();
  *key = record.substr(key_at, header.key_size);
  *value = record.substr(key_at + header.key_size, header.value_size);
  return DecodeOutcome::kOk;
}

std::string EncodeFileHeader(std::string_view magic, uint64_t file_id) {
  RKV_ASSERT(magic.size() == 8);
  std::string out(magic);
  PutFixed32(&out, kFormatVersion);
  PutFixed32(&out, 0);  // flags
  PutFixed64(&out, file_id);
  PutFixed32(&out, crc32c::Value(out));
  PutFixed32(&out, 0);  // reserved
  RKV_ASSERT(out.size() == kFileHeaderSize);
  return out;
}

Status DecodeFileHeader(std::string_view data, std::string_view magic, uint64_t* file_id) {
  if (data.size() < kFileHeaderSize) return Status::Corruption("file header is truncated");
  if (data.substr(0, 8) != magic) return Status::Corruption("bad magic number");
  if (crc32c::Value(data.data(), 24) != DecodeFixed32(data.data() + 24)) {
    return Status::Corruption("file header checksum mismatch");
  }
  const uint32_t version = DecodeFixed32(data.data() + 8);
  if (version != kFormatVersion) {
    return Status::NotSupported(fmt::format("format version {} (this build reads {})", version,
                                            kFormatVersion));
  }
  *file_id = DecodeFixed64(data.data() + 16);
  return Status::OK();
}

namespace {
std::string NumberedName(uint64_t id, std::string_view suffix) {
  return fmt::format("{:020}{}", id, suffix);
}
bool ParseNumberedName(std::string_view name, std::string_view suffix, uint64_t* id) {
  if (name.size() != 20 + suffix.size() || name.substr(20) != suffix) return false;
  const char* begin = name.data();
  for (size_t i = 0; i < 20; ++i) {
    if (begin[i] < '0' || begin[i] > '9') return false;
  }
  auto [ptr, ec] = std::from_chars(begin, begin + 20, *id);
  return ec == std::errc() && ptr == begin + 20;
}
}  // namespace

std::string DataFileName(uint64_t file_id) { return NumberedName(file_id, ".data"); }
std::string HintFileName(uint64_t file_id) { return NumberedName(file_id, ".hint"); }
bool ParseDataFileName(std::string_view name, uint64_t* file_id) {
  return ParseNumberedName(name, ".data", file_id);
}
bool ParseHintFileName(std::string_view name, uint64_t* file_id) {
  return ParseNumberedName(name, ".hint", file_id);
}

}  // namespace rkv::storage
