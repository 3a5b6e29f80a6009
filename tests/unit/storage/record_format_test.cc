// The record codec must round-trip every field, and must refuse (never
// misread) a record that is cut short at any byte or has any bit flipped.
#include "storage/record_format.h"

#include <gtest/gtest.h>

#include <string>

namespace rkv::storage {
namespace {

std::string Encode(const RecordSpec& spec) {
  std::string out;
  AppendRecord(spec, &out);
  return out;
}

// Decodes a whole record; kOk only if the header and CRC both check out.
DecodeOutcome Decode(std::string_view bytes, RecordHeader* h, std::string_view* key, std::string_view* value) {
  DecodeOutcome o = DecodeRecordHeader(bytes, h);
  if (o != DecodeOutcome::kOk) return o;
  return VerifyRecord(bytes, *h, key, value);
}

TEST(RecordFormatTest, PutRoundTrip) {
  const std::string bytes = Encode({RecordType::kPut, 0, 42, 0, "key", "value"});
  ASSERT_EQ(bytes.size(), kRecordHeaderSize + 3 + 5);
  RecordHeader h;
  std::string_view k, v;
  ASSERT_EQ(Decode(bytes, &h, &k, &v), DecodeOutcome::kOk);
  EXPECT_EQ(h.type, RecordType::kPut);
  EXPECT_EQ(h.seq, 42u);
  EXPECT_FALSE(h.has_expiry());
  EXPECT_FALSE(h.in_batch());
  EXPECT_EQ(k, "key");
  EXPECT_EQ(v, "value");
  EXPECT_EQ(h.record_size(), bytes.size());
}

TEST(RecordFormatTest, ExpiryAndBatchFlagsRoundTrip) {
  const std::string bytes = Encode({RecordType::kPut, kRecordFlagBatch, 7, 1234567, "k", ""});
  RecordHeader h;
  std::string_view k, v;
  ASSERT_EQ(Decode(bytes, &h, &k, &v), DecodeOutcome::kOk);
  EXPECT_TRUE(h.has_expiry());
  EXPECT_TRUE(h.in_batch());
  EXPECT_EQ(h.expiry_ms, 1234567u);
  EXPECT_EQ(h.header_size(), kRecordHeaderSize + kExpirySize);
  EXPECT_EQ(v, "");
}

TEST(RecordFormatTest, BinaryKeysAndValues) {
  std::string key("\0a\xff", 3), value("\r\n\0\0", 4);
  const std::string bytes = Encode({RecordType::kPut, 0, 1, 0, key, value});
  RecordHeader h;
  std::string_view k, v;
  ASSERT_EQ(Decode(bytes, &h, &k, &v), DecodeOutcome::kOk);
  EXPECT_EQ(k, key);
  EXPECT_EQ(v, value);
}

TEST(RecordFormatTest, EveryTruncationIsDetected) {
  for (uint64_t expiry : {uint64_t{0}, uint64_t{99}}) {
    const std::string bytes = Encode({RecordType::kPut, 0, 5, expiry, "some-key", "some value bytes"});
    for (size_t n = 0; n < bytes.size(); ++n) {
      RecordHeader h;
      std::string_view k, v;
      EXPECT_EQ(Decode(std::string_view(bytes.data(), n), &h, &k, &v), DecodeOutcome::kTruncated)
          << "cut at " << n << " expiry " << expiry;
    }
  }
}

TEST(RecordFormatTest, EveryBitFlipIsDetected) {
  const std::string bytes = Encode({RecordType::kPut, 0, 9, 777, "flip-key", "flip-value"});
  for (size_t bit = 0; bit < bytes.size() * 8; ++bit) {
    std::string bad = bytes;
    bad[bit / 8] = static_cast<char>(bad[bit / 8] ^ (1 << (bit % 8)));
    RecordHeader h;
    std::string_view k, v;
    // A flip in a size field may make the record look longer than the bytes
    // (truncated) or impossible (corrupt); it must never decode.
    EXPECT_NE(Decode(bad, &h, &k, &v), DecodeOutcome::kOk) << "bit " << bit;
  }
}

TEST(RecordFormatTest, ImpossibleHeadersAreCorrupt) {
  RecordHeader h;
  std::string del = Encode({RecordType::kDelete, 0, 1, 0, "k", ""});
  EXPECT_EQ(DecodeRecordHeader(del, &h), DecodeOutcome::kOk);
  std::string bad_type = del;
  bad_type[4] = 9;
  EXPECT_EQ(DecodeRecordHeader(bad_type, &h), DecodeOutcome::kCorrupt);
  std::string bad_flags = del;
  bad_flags[5] = static_cast<char>(0x80);
  EXPECT_EQ(DecodeRecordHeader(bad_flags, &h), DecodeOutcome::kCorrupt);
  std::string zeros(kRecordHeaderSizeMax, '\0');
  EXPECT_EQ(DecodeRecordHeader(zeros, &h), DecodeOutcome::kCorrupt) << "preallocated zeros are not a record";
}

TEST(RecordFormatTest, FileHeaderRoundTripAndChecks) {
  const std::string header = EncodeFileHeader(kDataMagic, 1ull << 20);
  ASSERT_EQ(header.size(), kFileHeaderSize);
  uint64_t id = 0;
  ASSERT_TRUE(DecodeFileHeader(header, kDataMagic, &id).ok());
  EXPECT_EQ(id, 1ull << 20);
  EXPECT_TRUE(DecodeFileHeader(header, kHintMagic, &id).IsCorruption());
  EXPECT_TRUE(DecodeFileHeader(header.substr(0, 31), kDataMagic, &id).IsCorruption());
  std::string flipped = header;
  flipped[17] ^= 1;
  EXPECT_TRUE(DecodeFileHeader(flipped, kDataMagic, &id).IsCorruption());
}

TEST(RecordFormatTest, FileNames) {
  EXPECT_EQ(DataFileName(1048576), "00000000000001048576.data");
  uint64_t id = 0;
  EXPECT_TRUE(ParseDataFileName("00000000000001048576.data", &id));
  EXPECT_EQ(id, 1048576u);
  EXPECT_TRUE(ParseHintFileName(HintFileName(5), &id));
  EXPECT_EQ(id, 5u);
  EXPECT_FALSE(ParseDataFileName("00000000000001048576.hint", &id));
  EXPECT_FALSE(ParseDataFileName("0000000000000104857x.data", &id));
  EXPECT_FALSE(ParseDataFileName("1.data", &id));
  EXPECT_FALSE(ParseDataFileName("LOCK", &id));
}

}  // namespace
}  // namespace rkv::storage
