// The segment format on its own: records round-trip, impossible or damaged
// bytes stop a scan where they start, zeros read as the end, and a record
// whose checksum matches but whose payload does not fit is corruption.
#include "wal/wal_format.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/coding.h"
#include "common/crc32c.h"
#include "support/test_util.h"
#include "wal_test_util.h"

namespace rkv::wal {
namespace {

using test::MakeConfiguration;
using test::MakeEntry;

std::string Segment(uint64_t seq, uint64_t first_index) {
  return EncodeSegmentHeader({seq, LogIndex{first_index}});
}

// Every batch the scan delivers, flattened, plus the result.
struct Scanned {
  std::vector<ScannedRecord> records;
  std::vector<size_t> batch_sizes;
  ScanResult result;
  Status status;
};

Scanned Scan(std::string_view data) {
  Scanned out;
  out.status = ScanSegment(
      data,
      [&](const ScannedBatch& batch) {
        out.batch_sizes.push_back(batch.size());
        for (const ScannedRecord& r : batch) out.records.push_back(r);
        return Status::OK();
      },
      &out.result);
  return out;
}

TEST(WalFormatTest, EveryRecordTypeRoundTrips) {
  const raft::HardState hs{Term{7}, NodeId{3}, LogIndex{41}};
  const raft::SnapshotMetadata snap{LogIndex{40}, Term{6}, MakeConfiguration({1, 2, 3}, {9})};
  const raft::Configuration conf = MakeConfiguration({1, 2}, {4, 5});
  raft::Entry conf_entry = MakeEntry(42, 7, std::string("\0\x01\xff", 3));
  conf_entry.type = raft::EntryType::kConfChange;

  std::string data = Segment(5, 41);
  AppendStateRecord(hs, snap, conf, kRecordFlagBatchEnd, &data);
  AppendEntryRecord(MakeEntry(41, 7, "hello"), 0, &data);
  AppendEntryRecord(conf_entry, 0, &data);
  AppendEntryRecord(MakeEntry(43, 7), 0, &data);  // empty data: the leader's no-op
  AppendHardStateRecord(hs, kRecordFlagBatchEnd, &data);
  AppendSnapshotRecord(RecordType::kSnapshot, snap, kRecordFlagBatchEnd, &data);
  AppendSnapshotRecord(RecordType::kCompact, snap, 0, &data);
  AppendTruncateRecord(LogIndex{12}, 0, &data);
  AppendConfigurationRecord(conf, kRecordFlagBatchEnd, &data);

  const Scanned s = Scan(data);
  ASSERT_OK(s.status);
  EXPECT_TRUE(s.result.stop_reason.empty());
  EXPECT_EQ(s.result.valid_end, data.size());
  EXPECT_EQ(s.batch_sizes, (std::vector<size_t>{1, 4, 1, 3}));
  ASSERT_EQ(s.records.size(), 9u);

  EXPECT_EQ(s.records[0].offset, kSegmentHeaderSize);
  EXPECT_EQ(s.records[0].record.type, RecordType::kState);
  EXPECT_EQ(s.records[0].record.hard_state, hs);
  EXPECT_EQ(s.records[0].record.snapshot, snap);
  EXPECT_EQ(s.records[0].record.configuration, conf);
  EXPECT_EQ(s.records[1].record.entry, MakeEntry(41, 7, "hello"));
  EXPECT_EQ(s.records[2].record.entry, conf_entry);
  EXPECT_EQ(s.records[3].record.entry, MakeEntry(43, 7));
  EXPECT_EQ(s.records[4].record.hard_state, hs);
  EXPECT_TRUE(s.records[4].record.batch_end());
  EXPECT_EQ(s.records[5].record.type, RecordType::kSnapshot);
  EXPECT_EQ(s.records[5].record.snapshot, snap);
  EXPECT_EQ(s.records[6].record.type, RecordType::kCompact);
  EXPECT_EQ(s.records[7].record.type, RecordType::kTruncate);
  EXPECT_EQ(s.records[7].record.index, LogIndex{12});
  EXPECT_EQ(s.records[8].record.configuration, conf);
  for (size_t i = 1; i < s.records.size(); ++i) {
    EXPECT_EQ(s.records[i].offset, s.records[i - 1].offset + s.records[i - 1].size);
  }
  EXPECT_EQ(s.records[1].size, EntryRecordSize(MakeEntry(41, 7, "hello")));
}

TEST(WalFormatTest, SegmentHeaderRoundTripsAndIsChecked) {
  const std::string header = Segment(12, 3456);
  ASSERT_EQ(header.size(), kSegmentHeaderSize);
  SegmentHeader h;
  ASSERT_OK(DecodeSegmentHeader(header, &h));
  EXPECT_EQ(h.seq, 12u);
  EXPECT_EQ(h.first_index, LogIndex{3456});

  EXPECT_TRUE(DecodeSegmentHeader(header.substr(0, 39), &h).IsCorruption());
  std::string bad = header;
  bad[0] = 'x';
  EXPECT_TRUE(DecodeSegmentHeader(bad, &h).IsCorruption());
  bad = header;
  bad[20] ^= 1;  // inside seq: the checksum catches it
  EXPECT_TRUE(DecodeSegmentHeader(bad, &h).IsCorruption());
  EXPECT_TRUE(DecodeSegmentHeader(std::string(kSegmentHeaderSize, '\0'), &h).IsCorruption());
}

TEST(WalFormatTest, FileNamesSortBySeq) {
  EXPECT_EQ(SegmentFileName(1), "00000000000000000001.wal");
  uint64_t seq = 0;
  EXPECT_TRUE(ParseSegmentFileName("00000000000000000042.wal", &seq));
  EXPECT_EQ(seq, 42u);
  EXPECT_FALSE(ParseSegmentFileName("0000000000000000042.wal", &seq));
  EXPECT_FALSE(ParseSegmentFileName("00000000000000000042.log", &seq));
  EXPECT_FALSE(ParseSegmentFileName("0000000000000000004x.wal", &seq));
  EXPECT_FALSE(ParseSegmentFileName("LOCK", &seq));
  EXPECT_LT(SegmentFileName(9), SegmentFileName(10));
}

TEST(WalFormatTest, ZerosAfterTheLastBatchReadAsTheEnd) {
  std::string data = Segment(1, 1);
  AppendEntryRecord(MakeEntry(1, 1, "a"), kRecordFlagBatchEnd, &data);
  const size_t end = data.size();
  data.append(4096, '\0');
  const Scanned s = Scan(data);
  ASSERT_OK(s.status);
  EXPECT_TRUE(s.result.stop_reason.empty());
  EXPECT_EQ(s.result.valid_end, end);
  EXPECT_EQ(s.result.zero_padding, 4096u);
  EXPECT_EQ(s.records.size(), 1u);

  RecordHeader h;
  EXPECT_EQ(DecodeRecordHeader(std::string(kRecordHeaderSize, '\0'), &h), DecodeOutcome::kCorrupt);
}

TEST(WalFormatTest, ABatchCutOffIsNotDelivered) {
  std::string data = Segment(1, 1);
  AppendEntryRecord(MakeEntry(1, 1, "a"), kRecordFlagBatchEnd, &data);
  const size_t batch_start = data.size();
  AppendEntryRecord(MakeEntry(2, 1, "b"), 0, &data);
  AppendEntryRecord(MakeEntry(3, 1, "c"), 0, &data);
  const size_t complete = data.size();
  AppendHardStateRecord({Term{1}, NodeId{1}, LogIndex{3}}, kRecordFlagBatchEnd, &data);

  // Without its last record, and at every cut inside that record.
  for (size_t cut = complete; cut < data.size(); ++cut) {
    SCOPED_TRACE(cut);
    const Scanned s = Scan(std::string_view(data).substr(0, cut));
    ASSERT_OK(s.status);
    EXPECT_EQ(s.records.size(), 1u);
    EXPECT_EQ(s.result.valid_end, batch_start);
    EXPECT_FALSE(s.result.stop_reason.empty());
  }
  // Followed by zeros.
  std::string padded = data.substr(0, complete) + std::string(100, '\0');
  const Scanned s = Scan(padded);
  EXPECT_EQ(s.result.valid_end, batch_start);
  EXPECT_EQ(s.result.stop_reason, "unfinished batch");
  EXPECT_EQ(s.result.stop_offset, batch_start);
}

TEST(WalFormatTest, ADamagedRecordStopsTheScanAtItsOffset) {
  std::string data = Segment(1, 1);
  AppendEntryRecord(MakeEntry(1, 1, "a"), kRecordFlagBatchEnd, &data);
  const size_t bad = data.size();
  AppendEntryRecord(MakeEntry(2, 1, "bbbb"), kRecordFlagBatchEnd, &data);
  AppendEntryRecord(MakeEntry(3, 1, "c"), kRecordFlagBatchEnd, &data);
  for (size_t byte = bad; byte < bad + EntryRecordSize(MakeEntry(2, 1, "bbbb")); ++byte) {
    SCOPED_TRACE(byte);
    std::string damaged = data;
    damaged[byte] = static_cast<char>(damaged[byte] ^ 0x10);
    const Scanned s = Scan(damaged);
    ASSERT_OK(s.status);
    EXPECT_EQ(s.records.size(), 1u);
    EXPECT_EQ(s.result.valid_end, bad);
    EXPECT_EQ(s.result.stop_offset, bad);
    EXPECT_FALSE(s.result.stop_reason.empty());
  }
}

TEST(WalFormatTest, AChecksummedRecordThatDoesNotDecodeIsCorruption) {
  // A hard state record with one byte too many, properly checksummed: it
  // was written that way, so it is refused rather than treated as a tail.
  std::string payload(25, '\0');
  std::string record(kRecordHeaderSize, '\0');
  record += payload;
  EncodeFixed32(record.data() + 4, static_cast<uint32_t>(payload.size()));
  record[8] = static_cast<char>(RecordType::kHardState);
  record[9] = static_cast<char>(kRecordFlagBatchEnd);
  EncodeFixed32(record.data(), crc32c::Value(record.data() + 4, record.size() - 4));
  std::string data = Segment(1, 1) + record;
  const Scanned s = Scan(data);
  EXPECT_TRUE(s.status.IsCorruption()) << s.status.ToString();
  EXPECT_NE(s.status.message().find("offset 40"), std::string::npos) << s.status.ToString();

  // An unsorted configuration, likewise.
  std::string conf_data = Segment(1, 1);
  AppendConfigurationRecord(MakeConfiguration({3, 1}), kRecordFlagBatchEnd, &conf_data);
  EXPECT_TRUE(Scan(conf_data).status.IsCorruption());
}

}  // namespace
}  // namespace rkv::wal
