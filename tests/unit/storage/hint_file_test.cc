// Hint files must round-trip, and any damage must make the whole file be
// refused (the engine then scans the data file instead).
#include "storage/hint_file.h"

#include <gtest/gtest.h>

namespace rkv::storage {
namespace {

std::string SampleHint(uint64_t data_size) {
  HintWriter w(7);
  RecordHeader put;
  put.type = RecordType::kPut;
  put.key_size = 3;
  put.value_size = 10;
  put.seq = 1;
  w.Add(put, kFileHeaderSize, "abc");
  RecordHeader del;
  del.type = RecordType::kDelete;
  del.key_size = 3;
  del.seq = 2;
  w.Add(del, kFileHeaderSize + put.record_size(), "abc");
  RecordHeader ttl = put;
  ttl.flags = kRecordFlagExpiry;
  ttl.expiry_ms = 5000;
  ttl.seq = 3;
  w.Add(ttl, kFileHeaderSize + put.record_size() + del.record_size(), "abc");
  return w.Finish(data_size);
}

TEST(HintFileTest, RoundTrip) {
  const std::string bytes = SampleHint(200);
  auto hint = DecodeHintFile(bytes, 7);
  ASSERT_TRUE(hint.ok()) << hint.status().ToString();
  EXPECT_EQ(hint->data_size, 200u);
  ASSERT_EQ(hint->entries.size(), 3u);
  EXPECT_EQ(hint->entries[0].type, RecordType::kPut);
  EXPECT_EQ(hint->entries[0].offset, kFileHeaderSize);
  EXPECT_EQ(hint->entries[0].record_size, kRecordHeaderSize + 13);
  EXPECT_EQ(hint->entries[1].type, RecordType::kDelete);
  EXPECT_EQ(hint->entries[2].expiry_ms, 5000u);
  EXPECT_EQ(hint->entries[2].seq, 3u);
  EXPECT_EQ(hint->entries[2].key, "abc");
}

TEST(HintFileTest, WrongFileIdIsRefused) {
  EXPECT_TRUE(DecodeHintFile(SampleHint(200), 8).status().IsCorruption());
}

TEST(HintFileTest, EntryPointingPastCoveredDataIsRefused) {
  EXPECT_TRUE(DecodeHintFile(SampleHint(40), 7).status().IsCorruption());
}

TEST(HintFileTest, EveryTruncationIsRefused) {
  const std::string bytes = SampleHint(200);
  for (size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_FALSE(DecodeHintFile(std::string_view(bytes.data(), n), 7).ok()) << n;
  }
}

TEST(HintFileTest, EveryFlippedByteIsRefused) {
  const std::string bytes = SampleHint(200);
  for (size_t i = 0; i < bytes.size(); ++i) {
    std::string bad = bytes;
    bad[i] = static_cast<char>(bad[i] ^ 0x10);
    EXPECT_FALSE(DecodeHintFile(bad, 7).ok()) << "byte " << i;
  }
}

}  // namespace
}  // namespace rkv::storage
