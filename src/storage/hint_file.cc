// entry  := type u8 | flags u8 | key_size u16 | record_size u32 | offset u64 | seq u64
//           [expiry_ms u64] | key
// footer := entry_count u32 | data_size u64 | crc u32 | "rkv-hend"
#include "storage/hint_file.h"

#include <fmt/format.h>

#include <cstdint>

#include "common/assert.h"
#include "common/coding.h"
#include "common/crc32c.h"
#include "env/env.h"

namespace rkv::storage {

HintWriter::HintWriter(uint64_t file_id) : buf_(EncodeFileHeader(kHintMagic, file_id)) {}

void HintWriter::Add(const RecordHeader& header, uint64_t offset, std::string_view key) {
  RKV_ASSERT(header.type == RecordType::kPut || header.type == RecordType::kDelete);
  RKV_ASSERT(key.size() == header.key_size);
  buf_.push_back(static_cast<char>(header.type));
  buf_.push_back(static_cast<char>(header.has_expiry() ? kRecordFlagExpiry : 0));
  PutFixed16(&buf_, header.key_size);
  PutFixed32(&buf_, static_cast<uint32_t>(header.record_size()));
  PutFixed64(&buf_, offset);
  PutFixed64(&buf_, header.seq);
  if (header.has_expiry()) PutFixed64(&buf_, header.expiry_ms);
  buf_.append(key);
  ++count_;
}

std::string HintWriter::Finish(uint64_t data_size) {
  PutFixed32(&buf_, count_);
  PutFixed64(&buf_, data_size);
  PutFixed32(&buf_, crc32c::Value(buf_));
  buf_.append(kHintFooterMagic);
  return std::move(buf_);
}

namespace {

// Parses the entries of a hint file whose header and checksum were checked,
// calling fn (when given) for each. Returns the entry count.
Result<uint32_t> ParseEntries(std::string_view in, uint64_t data_size,
                              const std::function<void(const HintEntryView&)>* fn) {
  uint32_t count = 0;
  while (!in.empty()) {
    if (in.size() < kHintEntrySize) return Status::Corruption("hint entry truncated");
    HintEntryView e;
    const auto type = static_cast<uint8_t>(in[0]);
    const auto flags = static_cast<uint8_t>(in[1]);
    const uint16_t key_size = DecodeFixed16(in.data() + 2);
    e.record_size = DecodeFixed32(in.data() + 4);
    e.offset = DecodeFixed64(in.data() + 8);
    e.seq = DecodeFixed64(in.data() + 16);
    in.remove_prefix(kHintEntrySize);
    if (type != static_cast<uint8_t>(RecordType::kPut) &&
        type != static_cast<uint8_t>(RecordType::kDelete)) {
      return Status::Corruption("hint entry has a bad type");
    }
    e.type = static_cast<RecordType>(type);
    if ((flags & ~kRecordFlagExpiry) != 0 || key_size == 0) {
      return Status::Corruption("hint entry has bad flags or key size");
    }
    if ((flags & kRecordFlagExpiry) != 0) {
      if (!GetFixed64(&in, &e.expiry_ms)) return Status::Corruption("hint entry truncated");
    }
    if (in.size() < key_size) return Status::Corruption("hint entry key truncated");
    e.key = in.substr(0, key_size);
    in.remove_prefix(key_size);
    if (e.record_size < RecordSize(key_size, 0, e.expiry_ms != 0) ||
        e.offset + e.record_size > data_size) {
      return Status::Corruption("hint entry points outside the data file");
    }
    if (fn != nullptr) (*fn)(e);
    ++count;
  }
  return count;
}

}  // namespace

Status VisitHintFile(std::string_view data, uint64_t file_id, uint64_t data_size_max,
                     uint64_t* data_size, const std::function<void(const HintEntryView&)>& fn) {
  if (data.size() < kFileHeaderSize + kHintFooterSize) return Status::Corruption("hint file too short");
  uint64_t id = 0;
  RKV_RETURN_IF_ERROR(DecodeFileHeader(data, kHintMagic, &id));
  if (id != file_id) return Status::Corruption(fmt::format("hint file names file {}", id));
  const char* footer = data.data() + data.size() - kHintFooterSize;
  if (std::string_view(footer + 16, 8) != kHintFooterMagic) {
    return Status::Corruption("hint file footer missing");
  }
  const uint32_t count = DecodeFixed32(footer);
  const uint64_t covered = DecodeFixed64(footer + 4);
  const uint32_t crc = DecodeFixed32(footer + 12);
  if (crc32c::Value(data.data(), data.size() - kHintFooterSize + 12) != crc) {
    return Status::Corruption("hint file checksum mismatch");
  }
  if (covered > data_size_max) {
    return Status::Corruption(
        fmt::format("hint covers {} bytes, more than the data file's {}", covered, data_size_max));
  }
  const std::string_view entries =
      data.substr(kFileHeaderSize, data.size() - kFileHeaderSize - kHintFooterSize);
  // Check every entry before handing out any, so a bad file applies nothing.
  RKV_ASSIGN_OR_RETURN(uint32_t parsed, ParseEntries(entries, covered, nullptr));
  if (parsed != count) return Status::Corruption("hint entry count mismatch");
  *data_size = covered;
  RKV_ASSIGN_OR_RETURN(parsed, ParseEntries(entries, covered, &fn));
  RKV_ASSERT(parsed == count);
  return Status::OK();
}

Result<HintContents> DecodeHintFile(std::string_view data, uint64_t file_id) {
  HintContents out;
  RKV_RETURN_IF_ERROR(VisitHintFile(data, file_id, UINT64_MAX, &out.data_size,
                                    [&](const HintEntryView& e) {
    out.entries.push_back(
        HintEntry{e.type, e.record_size, e.offset, e.seq, e.expiry_ms, std::string(e.key)});
  }));
  return out;
}

Status WriteHintFile(Env* env, const std::string& path, const std::string& contents) {
  return WriteFileAtomically(env, path, contents, /*sync=*/true);
}

}  // namespace rkv::storage
