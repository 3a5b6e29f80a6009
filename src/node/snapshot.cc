#include "node/snapshot.h"

#include <fmt/format.h>

#include <algorithm>
#include <limits>
#include <memory>

#include "common/assert.h"
#include "common/coding.h"
#include "common/crc32c.h"
#include "storage/engine.h"

namespace rkv {

namespace {

// docs/formats/snapshot.md.
constexpr std::string_view kHeaderMagic = "rkv-snap";
constexpr std::string_view kTrailerMagic = "snap-end";
// magic[8] version u32 flags u32 applied_index u64 applied_term u64
// record_count u64 crc u32
constexpr size_t kHeaderSize = 8 + 4 + 4 + 8 + 8 + 8 + 4;
constexpr size_t kHeaderCountOffset = 8 + 4 + 4 + 8 + 8;
constexpr size_t kHeaderCrcOffset = kHeaderSize - 4;
// tag u8 count u32 length u32 crc u32
constexpr size_t kBlockHeaderSize = 1 + 4 + 4 + 4;
constexpr size_t kBlockCrcOffset = 1 + 4 + 4;
// tag u8 record_count u64 magic[8] crc u32
constexpr size_t kTrailerSize = 1 + 8 + 8 + 4;

constexpr uint8_t kBlockTag = 1;
constexpr uint8_t kTrailerTag = 2;

static_assert(kHeaderSize == 44);
static_assert(kTrailerSize == 21);

// Appends records to a blob, cutting them into checksummed blocks.
class SnapshotBuilder {
 public:
  explicit SnapshotBuilder(const SnapshotMeta& meta) {
    out_.append(kHeaderMagic);
    PutFixed32(&out_, kSnapshotFormatVersion);
    PutFixed32(&out_, 0);  // flags
    PutFixed64(&out_, meta.applied_index.value());
    PutFixed64(&out_, meta.applied_term.value());
    PutFixed64(&out_, 0);  // record count, set by Finish
    PutFixed32(&out_, 0);  // header crc, set by Finish
    RKV_ASSERT(out_.size() == kHeaderSize);
  }

  void Add(std::string_view key, std::string_view value) {
    // The engine hands keys over in order; the reader insists on it.
    RKV_ASSERT(!key.empty());
    RKV_ASSERT(records_ == 0 || key > last_key_);
    last_key_.assign(key);
    if (block_start_ == kNoBlock) {
      block_start_ = out_.size();
      out_.append(kBlockHeaderSize, '\0');
    }
    PutLengthPrefixed(&out_, key);
    PutLengthPrefixed(&out_, value);
    ++block_records_;
    ++records_;
    if (out_.size() - block_start_ - kBlockHeaderSize >= kSnapshotBlockBytes) FinishBlock();
  }

  std::string Finish() && {
    FinishBlock();
    EncodeFixed64(out_.data() + kHeaderCountOffset, records_);
    EncodeFixed32(out_.data() + kHeaderCrcOffset, crc32c::Value(out_.data(), kHeaderCrcOffset));
    out_.push_back(static_cast<char>(kTrailerTag));
    PutFixed64(&out_, records_);
    out_.append(kTrailerMagic);
    // The whole-blob checksum covers the header, every block (and so their
    // order and number) and the trailer.
    PutFixed32(&out_, crc32c::Value(out_.data(), out_.size()));
    return std::move(out_);
  }

 private:
  static constexpr size_t kNoBlock = std::numeric_limits<size_t>::max();

  void FinishBlock() {
    if (block_start_ == kNoBlock) return;
    const size_t length = out_.size() - block_start_ - kBlockHeaderSize;
    // A record is at most a 64 KiB key and a 256 MiB value (the engine's
    // limits), so a block stays far below 4 GiB.
    RKV_ASSERT(length <= std::numeric_limits<uint32_t>::max());
    char* header = out_.data() + block_start_;
    header[0] = static_cast<char>(kBlockTag);
    EncodeFixed32(header + 1, block_records_);
    EncodeFixed32(header + 5, static_cast<uint32_t>(length));
    uint32_t crc = crc32c::Value(header, kBlockCrcOffset);
    crc = crc32c::Extend(crc, header + kBlockHeaderSize, length);
    EncodeFixed32(header + kBlockCrcOffset, crc);
    block_start_ = kNoBlock;
    block_records_ = 0;
  }

  std::string out_;
  size_t block_start_ = kNoBlock;
  uint32_t block_records_ = 0;
  uint64_t records_ = 0;
  std::string last_key_;
};

}  // namespace

Result<std::string> BuildSnapshot(storage::View* view, const SnapshotMeta& meta) {
  RKV_ASSERT(view != nullptr);
  SnapshotBuilder builder(meta);
  RKV_RETURN_IF_ERROR(view->ForEach([&](std::string_view key, std::string_view value) {
    builder.Add(key, value);
    return true;
  }));
  return std::move(builder).Finish();
}

Result<std::string> BuildSnapshot(storage::Engine* engine, const SnapshotMeta& meta) {
  RKV_ASSERT(engine != nullptr);
  RKV_ASSIGN_OR_RETURN(std::unique_ptr<storage::View> view, engine->CreateView());
  return BuildSnapshot(view.get(), meta);
}

// ---------------------------------------------------------------------------
// Reading

SnapshotReader::SnapshotReader(std::string_view data, uint64_t header_records)
    : data_(data), header_records_(header_records), pos_(kHeaderSize) {}

Status SnapshotReader::Corrupt(std::string_view what) const {
  return Status::Corruption(fmt::format("snapshot: {} (blob of {} bytes)", what, data_.size()));
}

Result<SnapshotReader> SnapshotReader::Open(std::string_view data) {
  if (data.size() < kHeaderSize + kTrailerSize) {
    return Status::Corruption(
        fmt::format("snapshot: {} bytes, shorter than a header and a trailer ({} bytes)", data.size(),
                    kHeaderSize + kTrailerSize));
  }
  if (data.substr(0, kHeaderMagic.size()) != kHeaderMagic) {
    return Status::Corruption("snapshot: bad magic; not a snapshot");
  }
  // The header checksum first: a flipped bit in the version is corruption,
  // not a snapshot from the future.
  if (DecodeFixed32(data.data() + kHeaderCrcOffset) != crc32c::Value(data.data(), kHeaderCrcOffset)) {
    return Status::Corruption("snapshot: header checksum mismatch");
  }
  const uint32_t version = DecodeFixed32(data.data() + 8);
  if (version == 0) return Status::Corruption("snapshot: format version 0");
  if (version > kSnapshotFormatVersion) {
    return Status::NotSupported(fmt::format("snapshot: format version {}, this build reads up to {}",
                                            version, kSnapshotFormatVersion));
  }
  const uint32_t flags = DecodeFixed32(data.data() + 12);
  if (flags != 0) return Status::Corruption(fmt::format("snapshot: unknown header flags {:#x}", flags));
  const size_t crc_at = data.size() - 4;
  if (DecodeFixed32(data.data() + crc_at) != crc32c::Value(data.data(), crc_at)) {
    return Status::Corruption(
        fmt::format("snapshot: whole-blob checksum mismatch ({} bytes; truncated or corrupt)", data.size()));
  }
  SnapshotReader reader(data, DecodeFixed64(data.data() + kHeaderCountOffset));
  reader.summary_.format_version = version;
  reader.summary_.meta.applied_index = LogIndex{DecodeFixed64(data.data() + 16)};
  reader.summary_.meta.applied_term = Term{DecodeFixed64(data.data() + 24)};
  reader.summary_.total_bytes = data.size();
  return reader;
}

Status SnapshotReader::ReadBlockHeader() {
  const size_t left = data_.size() - pos_;
  if (left < kBlockHeaderSize) return Corrupt(fmt::format("truncated block header at offset {}", pos_));
  const char* header = data_.data() + pos_;
  const uint32_t count = DecodeFixed32(header + 1);
  const uint32_t length = DecodeFixed32(header + 5);
  if (length > left - kBlockHeaderSize) {
    return Corrupt(fmt::format("block at offset {} claims {} bytes, {} left", pos_, length,
                               left - kBlockHeaderSize));
  }
  uint32_t crc = crc32c::Value(header, kBlockCrcOffset);
  crc = crc32c::Extend(crc, header + kBlockHeaderSize, length);
  if (crc != DecodeFixed32(header + kBlockCrcOffset)) {
    return Corrupt(fmt::format("checksum mismatch in block at offset {}", pos_));
  }
  if (count == 0) return Corrupt(fmt::format("empty block at offset {}", pos_));
  block_offset_ = pos_;
  block_ = std::string_view(header + kBlockHeaderSize, length);
  block_left_ = count;
  pos_ += kBlockHeaderSize + length;
  ++summary_.blocks;
  return Status::OK();
}

Result<bool> SnapshotReader::Next(std::string_view* key, std::string_view* value) {
  while (block_left_ == 0) {
    if (done_) return false;
    if (!block_.empty()) {
      return Corrupt(fmt::format("{} bytes after the last record of the block at offset {}", block_.size(),
                                 block_offset_));
    }
    if (pos_ >= data_.size()) return Corrupt("no trailer");
    const auto tag = static_cast<uint8_t>(data_[pos_]);
    if (tag == kBlockTag) {
      RKV_RETURN_IF_ERROR(ReadBlockHeader());
      continue;
    }
    if (tag != kTrailerTag) return Corrupt(fmt::format("unknown block tag {} at offset {}", tag, pos_));
    if (data_.size() - pos_ != kTrailerSize) {
      return Corrupt(fmt::format("trailer at offset {} has {} bytes, not {}", pos_, data_.size() - pos_,
                                 kTrailerSize));
    }
    const char* trailer = data_.data() + pos_;
    const uint64_t count = DecodeFixed64(trailer + 1);
    if (std::string_view(trailer + 9, kTrailerMagic.size()) != kTrailerMagic) return Corrupt("bad trailer magic");
    if (count != summary_.records || header_records_ != summary_.records) {
      return Corrupt(fmt::format("{} records read, header says {}, trailer {}", summary_.records,
                                 header_records_, count));
    }
    // The whole-blob checksum was checked by Open.
    done_ = true;
    return false;
  }
  std::string_view k, v;
  if (!GetLengthPrefixed(&block_, &k) || !GetLengthPrefixed(&block_, &v)) {
    return Corrupt(fmt::format("malformed record in the block at offset {}", block_offset_));
  }
  if (k.empty()) return Corrupt(fmt::format("empty key in the block at offset {}", block_offset_));
  if (summary_.records > 0 && k <= last_key_) {
    return Corrupt(fmt::format("keys out of order in the block at offset {}", block_offset_));
  }
  last_key_ = k;
  --block_left_;
  ++summary_.records;
  summary_.key_bytes += k.size();
  summary_.value_bytes += v.size();
  summary_.max_key_size = std::max(summary_.max_key_size, k.size());
  summary_.max_value_size = std::max(summary_.max_value_size, v.size());
  *key = k;
  *value = v;
  return true;
}

Result<SnapshotSummary> VerifySnapshot(std::string_view data) {
  RKV_ASSIGN_OR_RETURN(SnapshotReader reader, SnapshotReader::Open(data));
  std::string_view key, value;
  for (;;) {
    RKV_ASSIGN_OR_RETURN(bool more, reader.Next(&key, &value));
    if (!more) break;
  }
  return reader.summary();
}

}  // namespace rkv
