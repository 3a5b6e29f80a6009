// The Wal's behaviour, one feature at a time: bootstrap, round trip,
// restarts, truncation, compaction, segment rolls, group commit, recovery of
// torn tails and zero padding, refusal of corruption, sticky errors.
#include "wal/wal.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/logging.h"
#include "env/fault_env.h"
#include "support/test_util.h"
#include "wal/wal_format.h"
#include "wal_test_util.h"

namespace rkv::wal {
namespace {

using test::Fingerprint;
using test::MakeConfiguration;
using test::MakeEntries;
using test::MakeEntry;

constexpr char kDir[] = "/node/wal";

// The term at `index`, or an impossible term (and a failure) if there is none.
Term TermOf(const Wal& wal, uint64_t index) {
  auto term = wal.TermAt(LogIndex{index});
  EXPECT_OK(term);
  return term.ok() ? *term : Term{UINT64_MAX};
}

class WalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    log::SetLevel(log::Level::kOff);
    ASSERT_OK(env_.CreateDir("/node"));
    ASSERT_OK(env_.SyncDir("/"));
  }
  void TearDown() override { log::SetLevel(log::Level::kInfo); }

  WalOptions Options(uint64_t segment_size = 64 << 20) const {
    WalOptions o;
    o.segment_size = segment_size;
    o.bootstrap = initial_;
    return o;
  }

  std::unique_ptr<Wal> OpenWal(uint64_t segment_size = 64 << 20) {
    auto wal = Wal::Open(&env_, kDir, Options(segment_size));
    EXPECT_TRUE(wal.ok()) << wal.status().ToString();
    return wal.ok() ? std::move(*wal) : nullptr;
  }

  // Appends entries lo..hi of `term`, one Save each, and syncs.
  static void AppendSynced(Wal* wal, uint64_t lo, uint64_t hi, uint64_t term) {
    for (uint64_t i = lo; i <= hi; ++i) {
      ASSERT_OK(wal->Append({MakeEntry(i, term, fmt::format("entry {} of term {}", i, term))}));
    }
    ASSERT_OK(wal->Sync());
  }

  uint64_t FileSize(const std::string& path) {
    auto size = env_.GetFileSize(path);
    EXPECT_OK(size);
    return size.ok() ? *size : 0;
  }

  FaultEnv env_;
  raft::Configuration initial_ = MakeConfiguration({1, 2, 3});
};

TEST_F(WalTest, AFreshDirectoryIsBootstrappedWithTheInitialConfiguration) {
  auto wal = OpenWal();
  ASSERT_NE(wal, nullptr);
  raft::MemoryLogStorage model(initial_);
  EXPECT_EQ(Fingerprint(*wal), Fingerprint(model));
  EXPECT_EQ(wal->FirstIndex(), LogIndex{1});
  EXPECT_EQ(wal->LastIndex(), LogIndex{0});
  EXPECT_EQ(TermOf(*wal, 0), Term{0});
  EXPECT_EQ(wal->GetInitialState().configuration, initial_);
  EXPECT_EQ(wal->SegmentPaths().size(), 1u);
  // The bootstrap itself is durable: a crash right after keeps the WAL.
  wal.reset();
  env_.Crash();
  auto reopened = Wal::Open(&env_, kDir, WalOptions{});
  ASSERT_OK(reopened);
  EXPECT_EQ(Fingerprint(**reopened), Fingerprint(model));
}

TEST_F(WalTest, OpenWithoutBootstrapNeedsAnExistingWal) {
  EXPECT_TRUE(Wal::Open(&env_, kDir, WalOptions{}).status().IsNotFound());
  ASSERT_OK(env_.CreateDir(kDir));
  EXPECT_TRUE(Wal::Open(&env_, kDir, WalOptions{}).status().IsNotFound());
}

TEST_F(WalTest, ASecondOpenOfTheSameDirectoryIsBusy) {
  auto wal = OpenWal();
  ASSERT_NE(wal, nullptr);
  EXPECT_TRUE(Wal::Open(&env_, kDir, Options()).status().IsBusy());
}

TEST_F(WalTest, ReadsSeeSavesAtOnce) {
  auto wal = OpenWal();
  ASSERT_NE(wal, nullptr);
  const raft::HardState hs{Term{2}, NodeId{1}, LogIndex{1}};
  ASSERT_OK(wal->Save({}, MakeEntries(1, 5, 2), hs));
  EXPECT_EQ(wal->LastIndex(), LogIndex{5});
  EXPECT_EQ(TermOf(*wal, 3), Term{2});
  EXPECT_TRUE(wal->TermAt(LogIndex{6}).status().IsNotFound());
  EXPECT_EQ(wal->GetInitialState().hard_state, hs);
  auto entries = wal->Entries(LogIndex{2}, LogIndex{5}, UINT64_MAX);
  ASSERT_OK(entries);
  EXPECT_EQ(*entries, MakeEntries(2, 4, 2));
  // max_bytes stops early but always returns one entry.
  auto one = wal->Entries(LogIndex{2}, LogIndex{5}, 1);
  ASSERT_OK(one);
  EXPECT_EQ(one->size(), 1u);
  const uint64_t two_bytes = raft::EntryBytes((*entries)[0]) + raft::EntryBytes((*entries)[1]);
  auto two = wal->Entries(LogIndex{2}, LogIndex{5}, two_bytes);
  ASSERT_OK(two);
  EXPECT_EQ(two->size(), 2u);
}

TEST_F(WalTest, RestartRecoversEntriesHardStateSnapshotAndConfiguration) {
  raft::MemoryLogStorage model(initial_);
  {
    auto wal = OpenWal();
    ASSERT_NE(wal, nullptr);
    const auto entries = MakeEntries(1, 20, 3);
    const raft::HardState hs{Term{3}, NodeId{2}, LogIndex{15}};
    ASSERT_OK(wal->Save({}, entries, hs));
    model.Append(entries);
    model.SetHardState(hs);
    const auto conf = MakeConfiguration({1, 2, 3, 4});
    ASSERT_OK(wal->SetConfiguration(conf));
    model.SetConfiguration(conf);
    ASSERT_OK(wal->Compact(LogIndex{10}, MakeConfiguration({1, 2, 3})));
    ASSERT_OK(model.CreateSnapshot(LogIndex{10}, MakeConfiguration({1, 2, 3}), ""));
    ASSERT_OK(wal->Sync());
    EXPECT_EQ(Fingerprint(*wal), Fingerprint(model));
  }
  env_.Crash();
  auto wal = OpenWal();
  ASSERT_NE(wal, nullptr);
  EXPECT_EQ(Fingerprint(*wal), Fingerprint(model));
  EXPECT_EQ(wal->FirstIndex(), LogIndex{11});
  EXPECT_EQ(TermOf(*wal, 10), Term{3});
  EXPECT_TRUE(wal->TermAt(LogIndex{9}).status().IsNotFound());
  auto snapshot = wal->GetSnapshot();
  ASSERT_OK(snapshot);
  EXPECT_EQ(snapshot->metadata.last_index, LogIndex{10});
  EXPECT_TRUE(snapshot->data.empty());
  EXPECT_EQ(wal->GetInitialState().configuration, MakeConfiguration({1, 2, 3, 4}));
}

TEST_F(WalTest, UnsyncedSavesAreLostWholeOnACrash) {
  {
    auto wal = OpenWal();
    ASSERT_NE(wal, nullptr);
    AppendSynced(wal.get(), 1, 3, 1);
    ASSERT_OK(wal->Save({}, MakeEntries(4, 6, 1), raft::HardState{Term{1}, NodeId{1}, LogIndex{6}}));
    ASSERT_OK(wal->Flush());  // in the file, not durable
  }
  env_.Crash();
  auto wal = OpenWal();
  ASSERT_NE(wal, nullptr);
  EXPECT_EQ(wal->LastIndex(), LogIndex{3});
  EXPECT_EQ(wal->GetInitialState().hard_state, raft::HardState{});
}

TEST_F(WalTest, GroupCommitSyncsEverythingQueuedOnce) {
  auto wal = OpenWal();
  ASSERT_NE(wal, nullptr);
  const std::string segment = wal->SegmentPaths().back();
  const uint64_t syncs = wal->stats().syncs;
  const uint64_t synced_size = env_.SyncedSize(segment);
  for (uint64_t i = 1; i <= 5; ++i) {
    ASSERT_OK(wal->Save({}, {MakeEntry(i, 1, "x")}, raft::HardState{Term{1}, NodeId{1}, LogIndex{i}}));
  }
  // Nothing reached the disk yet.
  EXPECT_EQ(env_.SyncedSize(segment), synced_size);
  EXPECT_EQ(wal->stats().syncs, syncs);
  ASSERT_OK(wal->Sync());
  EXPECT_EQ(wal->stats().syncs, syncs + 1);
  EXPECT_EQ(env_.SyncedSize(segment), FileSize(segment));
  // A Sync with nothing new does not sync again.
  ASSERT_OK(wal->Sync());
  EXPECT_EQ(wal->stats().syncs, syncs + 1);

  wal.reset();
  env_.Crash();
  auto reopened = OpenWal();
  ASSERT_NE(reopened, nullptr);
  EXPECT_EQ(reopened->LastIndex(), LogIndex{5});
  EXPECT_EQ(reopened->GetInitialState().hard_state.commit_index, LogIndex{5});
}

TEST_F(WalTest, TruncationOfASuffixSurvivesRestartAndNothingAfterItComesBack) {
  // Small segments, so the truncated entries stay behind in older segments.
  constexpr uint64_t kSegment = 400;
  raft::MemoryLogStorage model(initial_);
  {
    auto wal = OpenWal(kSegment);
    ASSERT_NE(wal, nullptr);
    AppendSynced(wal.get(), 1, 12, 1);
    for (uint64_t i = 1; i <= 12; ++i) model.Append({MakeEntry(i, 1, fmt::format("entry {} of term 1", i))});
    ASSERT_GT(wal->SegmentPaths().size(), 2u);
    // A new leader overwrites from index 4.
    const auto conflicting = MakeEntries(4, 5, 2, "-new");
    ASSERT_OK(wal->Save({}, conflicting, raft::HardState{Term{2}, NodeId{0}, LogIndex{3}}));
    model.Append(conflicting);
    model.SetHardState({Term{2}, NodeId{0}, LogIndex{3}});
    ASSERT_OK(wal->Sync());
    EXPECT_EQ(Fingerprint(*wal), Fingerprint(model));
  }
  env_.Crash();
  auto wal = OpenWal(kSegment);
  ASSERT_NE(wal, nullptr);
  EXPECT_EQ(Fingerprint(*wal), Fingerprint(model));
  EXPECT_EQ(wal->LastIndex(), LogIndex{5});
  EXPECT_EQ(TermOf(*wal, 4), Term{2});
  // And the log goes on from there across more restarts.
  AppendSynced(wal.get(), 6, 8, 2);
  wal.reset();
  env_.Crash();
  wal = OpenWal(kSegment);
  ASSERT_NE(wal, nullptr);
  EXPECT_EQ(wal->LastIndex(), LogIndex{8});
  EXPECT_EQ(TermOf(*wal, 5), Term{2});
  auto rewritten = wal->Entries(LogIndex{4}, LogIndex{5}, UINT64_MAX);
  ASSERT_OK(rewritten);
  EXPECT_EQ(rewritten->front().data, "i4-t2-new");
}

TEST_F(WalTest, SegmentsRollAtTheirSizeAndRestateTheState) {
  constexpr uint64_t kSegment = 300;
  auto wal = OpenWal(kSegment);
  ASSERT_NE(wal, nullptr);
  ASSERT_OK(wal->SetHardState({Term{4}, NodeId{1}, LogIndex{0}}));
  AppendSynced(wal.get(), 1, 30, 4);
  const std::vector<std::string> paths = wal->SegmentPaths();
  ASSERT_GE(paths.size(), 5u);
  EXPECT_EQ(wal->stats().segments_created, paths.size());
  for (size_t i = 0; i < paths.size(); ++i) {
    SCOPED_TRACE(paths[i]);
    auto data = ReadFileToString(&env_, paths[i]);
    ASSERT_OK(data);
    // Every segment is within the size (no single batch here is larger).
    EXPECT_LE(data->size(), kSegment);
    SegmentHeader header;
    ASSERT_OK(DecodeSegmentHeader(*data, &header));
    EXPECT_EQ(header.seq, i + 1);
    // Its first record restates the hard state.
    std::vector<Record> records;
    ScanResult result;
    ASSERT_OK(ScanSegment(
        *data,
        [&](const ScannedBatch& batch) {
          for (const ScannedRecord& r : batch) records.push_back(r.record);
          return Status::OK();
        },
        &result));
    ASSERT_FALSE(records.empty());
    EXPECT_EQ(records.front().type, RecordType::kState);
    if (i > 0) {
      EXPECT_EQ(records.front().hard_state.current_term, Term{4});
      ASSERT_GE(records.size(), 2u);
      EXPECT_EQ(records[1].entry.index, header.first_index);
    }
    // Rolled segments are fully durable.
    if (i + 1 < paths.size()) {
      EXPECT_EQ(env_.SyncedSize(paths[i]), data->size());
    }
  }
  const std::string before = Fingerprint(*wal);
  wal.reset();
  env_.Crash();
  wal = OpenWal(kSegment);
  ASSERT_NE(wal, nullptr);
  EXPECT_EQ(Fingerprint(*wal), before);
}

TEST_F(WalTest, ABatchLargerThanASegmentGetsASegmentOfItsOwn) {
  constexpr uint64_t kSegment = 256;
  auto wal = OpenWal(kSegment);
  ASSERT_NE(wal, nullptr);
  AppendSynced(wal.get(), 1, 2, 1);
  ASSERT_OK(wal->Append({MakeEntry(3, 1, std::string(1000, 'b'))}));
  AppendSynced(wal.get(), 4, 5, 1);
  const std::string before = Fingerprint(*wal);
  wal.reset();
  env_.Crash();
  wal = OpenWal(kSegment);
  ASSERT_NE(wal, nullptr);
  EXPECT_EQ(Fingerprint(*wal), before);
}

TEST_F(WalTest, CompactionDeletesWholeSegmentsOldestFirstAndSurvivesRestart) {
  constexpr uint64_t kSegment = 400;
  raft::MemoryLogStorage model(initial_);
  auto wal = OpenWal(kSegment);
  ASSERT_NE(wal, nullptr);
  // State written early lives on only through the preambles of later
  // segments once the segment holding it is deleted.
  const raft::HardState hs{Term{5}, NodeId{3}, LogIndex{2}};
  const auto conf = MakeConfiguration({1, 2, 3}, {7});
  ASSERT_OK(wal->SetHardState(hs));
  ASSERT_OK(wal->SetConfiguration(conf));
  model.SetHardState(hs);
  model.SetConfiguration(conf);
  for (uint64_t i = 1; i <= 40; ++i) {
    ASSERT_OK(wal->Append({MakeEntry(i, 5, fmt::format("e{}", i))}));
    model.Append({MakeEntry(i, 5, fmt::format("e{}", i))});
  }
  ASSERT_OK(wal->Sync());
  const std::vector<std::string> before = wal->SegmentPaths();
  ASSERT_GE(before.size(), 5u);

  ASSERT_OK(wal->Compact(LogIndex{30}, conf));
  ASSERT_OK(model.CreateSnapshot(LogIndex{30}, conf, ""));
  EXPECT_EQ(Fingerprint(*wal), Fingerprint(model));
  const std::vector<std::string> after = wal->SegmentPaths();
  // The deleted ones are the oldest, and gone from the directory for good.
  // (The compaction record itself may have started a new segment.)
  const size_t deleted = wal->stats().segments_deleted;
  ASSERT_GE(deleted, 3u);
  ASSERT_LT(deleted, before.size());
  for (size_t i = 0; i < before.size(); ++i) {
    const bool gone = i < deleted;
    EXPECT_EQ(env_.FileExists(before[i]), !gone) << before[i];
    EXPECT_EQ(env_.IsDurable(before[i]), !gone) << before[i];
  }
  EXPECT_EQ(after.front(), before[deleted]);
  wal.reset();
  env_.Crash();
  wal = OpenWal(kSegment);
  ASSERT_NE(wal, nullptr);
  EXPECT_EQ(Fingerprint(*wal), Fingerprint(model));
  EXPECT_EQ(wal->GetInitialState().hard_state, hs);
  EXPECT_EQ(wal->GetInitialState().configuration, conf);

  // Compacting everything leaves only the open segment.
  AppendSynced(wal.get(), 41, 45, 5);
  ASSERT_OK(wal->Compact(LogIndex{45}, conf));
  ASSERT_OK(wal->Append({MakeEntry(46, 5, "x")}));
  ASSERT_OK(wal->Sync());
  wal.reset();
  env_.Crash();
  wal = OpenWal(kSegment);
  ASSERT_NE(wal, nullptr);
  EXPECT_EQ(wal->FirstIndex(), LogIndex{46});
  EXPECT_EQ(wal->LastIndex(), LogIndex{46});
  EXPECT_EQ(wal->GetInitialState().hard_state, hs);
}

TEST_F(WalTest, ASnapshotFromTheLeaderReplacesTheLogAndSurvivesRestart) {
  constexpr uint64_t kSegment = 400;
  raft::MemoryLogStorage model(initial_);
  auto wal = OpenWal(kSegment);
  ASSERT_NE(wal, nullptr);
  AppendSynced(wal.get(), 1, 20, 1);
  for (uint64_t i = 1; i <= 20; ++i) model.Append({MakeEntry(i, 1, fmt::format("entry {} of term 1", i))});
  const size_t segments = wal->SegmentPaths().size();
  ASSERT_GE(segments, 3u);

  const raft::SnapshotMetadata snap{LogIndex{50}, Term{4}, MakeConfiguration({2, 3, 4})};
  const auto after = MakeEntries(51, 52, 4);
  const raft::HardState hs{Term{4}, NodeId{0}, LogIndex{50}};
  ASSERT_OK(wal->Save(snap, after, hs));
  model.ApplySnapshot(raft::Snapshot{snap, ""});
  model.Append(after);
  model.SetHardState(hs);
  ASSERT_OK(wal->Sync());
  EXPECT_EQ(Fingerprint(*wal), Fingerprint(model));
  // Every segment but the open one is obsolete now.
  EXPECT_EQ(wal->SegmentPaths().size(), 1u);

  wal.reset();
  env_.Crash();
  wal = OpenWal(kSegment);
  ASSERT_NE(wal, nullptr);
  EXPECT_EQ(Fingerprint(*wal), Fingerprint(model));
  EXPECT_EQ(wal->GetInitialState().configuration, MakeConfiguration({2, 3, 4}));
}

TEST_F(WalTest, InvalidWritesAreRefusedAndChangeNothing) {
  auto wal = OpenWal();
  ASSERT_NE(wal, nullptr);
  AppendSynced(wal.get(), 1, 10, 1);
  ASSERT_OK(wal->Compact(LogIndex{4}, initial_));
  const std::string before = Fingerprint(*wal);

  EXPECT_TRUE(wal->Append(MakeEntries(12, 13, 1)).IsInvalidArgument());  // a gap
  EXPECT_TRUE(wal->Append(MakeEntries(4, 5, 2)).IsInvalidArgument());    // at the snapshot
  EXPECT_TRUE(wal->Append({MakeEntry(11, 1), MakeEntry(13, 1)}).IsInvalidArgument());
  EXPECT_TRUE(wal->ApplySnapshot({LogIndex{4}, Term{1}, initial_}).IsInvalidArgument());
  EXPECT_TRUE(wal->Compact(LogIndex{4}, initial_).IsInvalidArgument());
  EXPECT_TRUE(wal->Compact(LogIndex{11}, initial_).IsInvalidArgument());
  EXPECT_TRUE(wal->SetConfiguration(MakeConfiguration({3, 2})).IsInvalidArgument());
  EXPECT_EQ(Fingerprint(*wal), before);
  EXPECT_OK(wal->error());
  // A Save with nothing in it is fine and writes nothing.
  const uint64_t written = wal->stats().bytes_written;
  ASSERT_OK(wal->Save({}, {}, {}));
  EXPECT_EQ(wal->stats().bytes_written, written);
  ASSERT_OK(wal->Append(MakeEntries(11, 11, 1)));
}

TEST_F(WalTest, ATornTailAtEveryByteOfTheLastBatchIsTruncated) {
  // The last batch: a hard state and two entries, written but not synced.
  const auto last_entries = MakeEntries(4, 5, 2, std::string(40, 'z'));
  const raft::HardState last_hs{Term{2}, NodeId{1}, LogIndex{5}};
  std::string batch;
  AppendHardStateRecord(last_hs, 0, &batch);
  AppendEntryRecord(last_entries[0], 0, &batch);
  AppendEntryRecord(last_entries[1], kRecordFlagBatchEnd, &batch);

  for (uint64_t keep = 0; keep <= batch.size(); ++keep) {
    SCOPED_TRACE("kept bytes " + std::to_string(keep));
    FaultEnv env;
    ASSERT_OK(env.CreateDir("/node"));
    ASSERT_OK(env.SyncDir("/"));
    WalOptions options = Options();
    std::string synced_fingerprint;
    {
      auto wal = Wal::Open(&env, kDir, options);
      ASSERT_OK(wal);
      ASSERT_OK((*wal)->Save({}, MakeEntries(1, 3, 1), raft::HardState{Term{1}, NodeId{1}, LogIndex{2}}));
      ASSERT_OK((*wal)->Sync());
      synced_fingerprint = Fingerprint(**wal);
      ASSERT_OK((*wal)->Save({}, last_entries, last_hs));
      ASSERT_OK((*wal)->Flush());
    }
    env.Crash(CrashOptions{keep, false, 0});
    auto wal = Wal::Open(&env, kDir, options);
    ASSERT_OK(wal);
    if (keep < batch.size()) {
      // Any part of the batch is dropped whole: no entry 4 without 5 or
      // without the hard state.
      EXPECT_EQ(Fingerprint(**wal), synced_fingerprint);
      EXPECT_EQ((*wal)->stats().truncated_bytes, keep);
    } else {
      EXPECT_EQ((*wal)->LastIndex(), LogIndex{5});
      EXPECT_EQ((*wal)->GetInitialState().hard_state, last_hs);
      EXPECT_EQ((*wal)->stats().truncated_bytes, 0u);
    }
    // The WAL goes on after the cut, and the cut holds across another crash.
    const LogIndex next = (*wal)->LastIndex() + 1;
    ASSERT_OK((*wal)->Append({MakeEntry(next.value(), 3, "after")}));
    ASSERT_OK((*wal)->Sync());
    const std::string expected = Fingerprint(**wal);
    wal->reset();
    env.Crash(CrashOptions{0, true, 0});
    auto again = Wal::Open(&env, kDir, options);
    ASSERT_OK(again);
    EXPECT_EQ(Fingerprint(**again), expected);
    EXPECT_EQ((*again)->stats().truncated_bytes, 0u);
  }
}

TEST_F(WalTest, ZerosAfterTheLastRecordReadAsTheEnd) {
  constexpr uint64_t kSegment = 400;
  {
    auto wal = OpenWal(kSegment);
    ASSERT_NE(wal, nullptr);
    AppendSynced(wal.get(), 1, 20, 1);
  }
  // Zero-filled space after the last record of the first segment and of the
  // last one, as a file system may leave after a power loss.
  std::string before;
  std::vector<std::string> paths;
  {
    auto wal = OpenWal(kSegment);
    ASSERT_NE(wal, nullptr);
    before = Fingerprint(*wal);
    paths = wal->SegmentPaths();
  }
  ASSERT_GE(paths.size(), 3u);
  for (const std::string& path : {paths.front(), paths.back()}) {
    auto file = env_.NewAppendableFile(path);
    ASSERT_OK(file);
    ASSERT_OK((*file)->Append(std::string(1000, '\0')));
    ASSERT_OK((*file)->Sync());
  }
  const uint64_t last_size = FileSize(paths.back());
  auto wal = OpenWal(kSegment);
  ASSERT_NE(wal, nullptr);
  EXPECT_EQ(Fingerprint(*wal), before);
  EXPECT_EQ(wal->stats().truncated_bytes, 0u);
  // The open segment is appended to where the records end.
  EXPECT_EQ(FileSize(paths.back()), last_size - 1000);
  ASSERT_OK(wal->Append({MakeEntry(21, 1, "x")}));
  ASSERT_OK(wal->Sync());
  wal.reset();
  env_.Crash();
  wal = OpenWal(kSegment);
  ASSERT_NE(wal, nullptr);
  EXPECT_EQ(wal->LastIndex(), LogIndex{21});
}

TEST_F(WalTest, CorruptionBeforeTheLastSegmentIsRefusedNamingFileAndOffset) {
  constexpr uint64_t kSegment = 400;
  std::vector<std::string> paths;
  {
    auto wal = OpenWal(kSegment);
    ASSERT_NE(wal, nullptr);
    AppendSynced(wal.get(), 1, 20, 1);
    paths = wal->SegmentPaths();
  }
  ASSERT_GE(paths.size(), 3u);
  auto data = ReadFileToString(&env_, paths[1]);
  ASSERT_OK(data);
  std::vector<uint64_t> offsets;
  ScanResult result;
  ASSERT_OK(ScanSegment(
      *data,
      [&](const ScannedBatch& batch) {
        for (const ScannedRecord& r : batch) offsets.push_back(r.offset);
        return Status::OK();
      },
      &result));
  ASSERT_GE(offsets.size(), 3u);

  // A flipped bit in any record of the segment, header or payload.
  for (uint64_t offset : offsets) {
    for (uint64_t delta : {uint64_t{4}, uint64_t{kRecordHeaderSize + 1}}) {
      SCOPED_TRACE(fmt::format("record at {}, byte {}", offset, offset + delta));
      env_.ClearBitFlips();
      env_.FlipBitOnRead(paths[1], offset + delta, 3);
      auto wal = Wal::Open(&env_, kDir, Options(kSegment));
      ASSERT_TRUE(wal.status().IsCorruption()) << wal.status().ToString();
      const std::string message = wal.status().message();
      EXPECT_NE(message.find(paths[1]), std::string::npos) << message;
      EXPECT_NE(message.find(fmt::format("offset {}", offset)), std::string::npos) << message;
    }
  }
  // A damaged segment header.
  env_.ClearBitFlips();
  env_.FlipBitOnRead(paths[0], 17, 0);
  auto wal = Wal::Open(&env_, kDir, Options(kSegment));
  ASSERT_TRUE(wal.status().IsCorruption()) << wal.status().ToString();
  EXPECT_NE(wal.status().message().find(paths[0]), std::string::npos);

  // Nothing was changed by the refused opens.
  env_.ClearBitFlips();
  auto good = OpenWal(kSegment);
  ASSERT_NE(good, nullptr);
  EXPECT_EQ(good->LastIndex(), LogIndex{20});
}

TEST_F(WalTest, AMissingSegmentIsRefused) {
  constexpr uint64_t kSegment = 300;
  std::vector<std::string> paths;
  {
    auto wal = OpenWal(kSegment);
    ASSERT_NE(wal, nullptr);
    AppendSynced(wal.get(), 1, 20, 1);
    paths = wal->SegmentPaths();
  }
  ASSERT_GE(paths.size(), 4u);
  // In the middle: the sequence numbers have a hole.
  ASSERT_OK(env_.LinkFile(paths[2], "/node/saved"));
  ASSERT_OK(env_.DeleteFile(paths[2]));
  auto wal = Wal::Open(&env_, kDir, Options(kSegment));
  ASSERT_TRUE(wal.status().IsCorruption()) << wal.status().ToString();
  EXPECT_NE(wal.status().message().find("missing"), std::string::npos) << wal.status().ToString();
  ASSERT_OK(env_.RenameFile("/node/saved", paths[2]));
  // At the start, before any compaction covered it: entries are missing.
  ASSERT_OK(env_.DeleteFile(paths[0]));
  wal = Wal::Open(&env_, kDir, Options(kSegment));
  ASSERT_TRUE(wal.status().IsCorruption()) << wal.status().ToString();
  EXPECT_NE(wal.status().message().find("missing"), std::string::npos) << wal.status().ToString();
}

TEST_F(WalTest, APartlyCreatedNewestSegmentIsRemoved) {
  std::string before;
  std::string next;
  {
    auto wal = OpenWal();
    ASSERT_NE(wal, nullptr);
    AppendSynced(wal.get(), 1, 5, 1);
    before = Fingerprint(*wal);
    next = JoinPath(kDir, SegmentFileName(2));
  }
  // Cut inside its header, inside its preamble, or zeros only.
  std::string full = EncodeSegmentHeader({2, LogIndex{6}});
  AppendStateRecord({}, {LogIndex{0}, Term{0}, initial_}, initial_, kRecordFlagBatchEnd, &full);
  for (const std::string& contents :
       {full.substr(0, 10), full.substr(0, kSegmentHeaderSize + 5), full.substr(0, full.size() - 1),
        std::string(200, '\0')}) {
    SCOPED_TRACE(contents.size());
    {
      auto file = env_.NewWritableFile(next);
      ASSERT_OK(file);
      ASSERT_OK((*file)->Append(contents));
    }
    auto wal = OpenWal();
    ASSERT_NE(wal, nullptr);
    EXPECT_EQ(Fingerprint(*wal), before);
    EXPECT_FALSE(env_.FileExists(next));
    EXPECT_EQ(wal->SegmentPaths().size(), 1u);
  }
  // But a preamble that is garbage with more bytes after it is corruption.
  std::string garbage = full;
  garbage[kSegmentHeaderSize + 12] ^= 1;
  AppendEntryRecord(MakeEntry(6, 1, "x"), kRecordFlagBatchEnd, &garbage);
  {
    auto file = env_.NewWritableFile(next);
    ASSERT_OK(file);
    ASSERT_OK((*file)->Append(garbage));
  }
  auto wal = Wal::Open(&env_, kDir, Options());
  EXPECT_TRUE(wal.status().IsCorruption()) << wal.status().ToString();
}

TEST_F(WalTest, AFailedSyncIsSticky) {
  auto wal = OpenWal();
  ASSERT_NE(wal, nullptr);
  AppendSynced(wal.get(), 1, 3, 1);
  env_.FailAfter(0, FaultOp::kSync, Status::IOError("injected EIO"), FaultMode::kOneShot);
  ASSERT_OK(wal->Append({MakeEntry(4, 1)}));
  const Status failed = wal->Sync();
  EXPECT_TRUE(failed.IsIOError()) << failed.ToString();
  // The disk would accept a retry now, but the WAL refuses every write.
  EXPECT_EQ(wal->error(), failed);
  EXPECT_EQ(wal->Sync(), failed);
  EXPECT_EQ(wal->Append({MakeEntry(5, 1)}), failed);
  EXPECT_EQ(wal->SetHardState({Term{1}, NodeId{1}, LogIndex{1}}), failed);
  EXPECT_EQ(wal->SetConfiguration(initial_), failed);
  EXPECT_EQ(wal->Compact(LogIndex{2}, initial_), failed);
  EXPECT_EQ(wal->Flush(), failed);
  EXPECT_EQ(wal->Close(), failed);
  // Reads go on.
  EXPECT_EQ(wal->LastIndex(), LogIndex{4});
  EXPECT_OK(wal->TermAt(LogIndex{3}));
  wal.reset();
  env_.Crash();
  wal = OpenWal();
  ASSERT_NE(wal, nullptr);
  EXPECT_EQ(wal->LastIndex(), LogIndex{3});
}

TEST_F(WalTest, AFailedWriteIsSticky) {
  auto wal = OpenWal();
  ASSERT_NE(wal, nullptr);
  env_.FailAfter(0, FaultOp::kAppend, Status::NoSpace("injected ENOSPC"), FaultMode::kOneShot);
  ASSERT_OK(wal->Append({MakeEntry(1, 1)}));
  EXPECT_TRUE(wal->Sync().IsNoSpace());
  EXPECT_TRUE(wal->Append({MakeEntry(2, 1)}).IsNoSpace());
  EXPECT_TRUE(wal->Sync().IsNoSpace());
}

TEST_F(WalTest, AFailedRollIsSticky) {
  constexpr uint64_t kSegment = 200;
  auto wal = OpenWal(kSegment);
  ASSERT_NE(wal, nullptr);
  env_.FailAfter(0, FaultOp::kCreate, Status::IOError("injected create failure"));
  Status s;
  for (uint64_t i = 1; i <= 20 && s.ok(); ++i) s = wal->Append({MakeEntry(i, 1, "0123456789")});
  EXPECT_TRUE(s.IsIOError()) << s.ToString();
  env_.ClearFaults();
  EXPECT_TRUE(wal->Sync().IsIOError());
}

TEST_F(WalTest, CloseSyncsAndLaterWritesFail) {
  auto wal = OpenWal();
  ASSERT_NE(wal, nullptr);
  ASSERT_OK(wal->Append(MakeEntries(1, 3, 1)));
  ASSERT_OK(wal->Close());
  EXPECT_EQ(wal->Append(MakeEntries(4, 4, 1)).code(), StatusCode::kShuttingDown);
  wal.reset();
  env_.Crash();
  wal = OpenWal();
  ASSERT_NE(wal, nullptr);
  EXPECT_EQ(wal->LastIndex(), LogIndex{3});
}

// The same on the real file system: preallocation, appends, truncation of a
// torn tail and deletion of segments through PosixEnv.
TEST(WalPosixTest, RestartsOnTheRealFileSystem) {
  log::SetLevel(log::Level::kOff);
  ::rkv::test::TempDir tmp;
  const std::string dir = tmp.Join("wal");
  WalOptions options;
  options.segment_size = 4096;
  options.bootstrap = MakeConfiguration({1});
  raft::MemoryLogStorage model(*options.bootstrap);
  std::string last_segment;
  {
    auto wal = Wal::Open(Env::Posix(), dir, options);
    ASSERT_OK(wal);
    for (uint64_t i = 1; i <= 200; ++i) {
      const raft::Entry e = MakeEntry(i, 1 + i / 50, std::string(50, static_cast<char>('a' + i % 26)));
      const raft::HardState hs{Term{1 + i / 50}, NodeId{1}, LogIndex{i}};
      ASSERT_OK((*wal)->Save({}, {e}, hs));
      model.Append({e});
      model.SetHardState(hs);
      if (i % 7 == 0) ASSERT_OK((*wal)->Sync());
    }
    ASSERT_OK((*wal)->Compact(LogIndex{150}, *options.bootstrap));
    ASSERT_OK(model.CreateSnapshot(LogIndex{150}, *options.bootstrap, ""));
    EXPECT_GT((*wal)->stats().segments_deleted, 0u);
    last_segment = (*wal)->SegmentPaths().back();
  }
  // Half a record after the last one, as a crash mid-write leaves it.
  {
    std::string torn;
    AppendEntryRecord(MakeEntry(201, 5, "torn"), kRecordFlagBatchEnd, &torn);
    auto file = Env::Posix()->NewAppendableFile(last_segment);
    ASSERT_OK(file);
    ASSERT_OK((*file)->Append(torn.substr(0, 15)));
  }
  auto wal = Wal::Open(Env::Posix(), dir, options);
  ASSERT_OK(wal);
  EXPECT_EQ(Fingerprint(**wal), Fingerprint(model));
  EXPECT_EQ((*wal)->stats().truncated_bytes, 15u);
  ASSERT_OK((*wal)->Append({MakeEntry(201, 5, "kept")}));
  ASSERT_OK((*wal)->Close());
  wal->reset();  // releases the directory lock
  auto reopened = Wal::Open(Env::Posix(), dir, options);
  ASSERT_OK(reopened);
  EXPECT_EQ((*reopened)->LastIndex(), LogIndex{201});
  log::SetLevel(log::Level::kInfo);
}

}  // namespace
}  // namespace rkv::wal
