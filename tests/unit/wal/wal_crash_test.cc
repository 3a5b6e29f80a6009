// Crash tests on FaultEnv: a power loss at every mutating operation of a
// workload (Open included) and of a recovery, with unsynced bytes dropped,
// torn at random, or all kept. After each crash the WAL must reopen as the
// model stood at some point no earlier than the last Sync that returned OK:
// everything reported synced is there, no Save is half there, and nothing
// cut by a truncation, compaction or snapshot comes back. Then it must go on
// working: one more synced write survives the next crash.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/logging.h"
#include "env/fault_env.h"
#include "support/crash_kind.h"
#include "support/test_util.h"
#include "wal/wal.h"
#include "wal/wal_format.h"
#include "wal_test_util.h"
#include "wal_workload.h"

namespace rkv::wal {
namespace {

using test::Fingerprint;
using test::MakeConfiguration;
using test::MakeEntry;
using test::WalOp;

constexpr char kDir[] = "/node/wal";

using ::rkv::test::CrashKind;
using ::rkv::test::CrashKindName;
using ::rkv::test::MakeCrashOptions;

void PrepareEnv(FaultEnv* env) {
  ASSERT_OK(env->CreateDir("/node"));
  ASSERT_OK(env->SyncDir("/"));
}

class WalCrashTest : public ::testing::TestWithParam<CrashKind> {
 protected:
  void SetUp() override { log::SetLevel(log::Level::kOff); }
  void TearDown() override { log::SetLevel(log::Level::kInfo); }

  WalOptions Options() const {
    WalOptions o;
    o.segment_size = 512;  // a few batches per segment: many rolls
    o.write_buffer_size = 256;
    o.bootstrap = initial_;
    return o;
  }

  // Reopens after a crash; the recovered log must be one of
  // candidates[from..]. Returns its position, or -1 (with a failure).
  int Recovered(FaultEnv* env, const std::vector<raft::MemoryLogStorage>& candidates, size_t from,
                std::unique_ptr<Wal>* out) {
    auto wal = Wal::Open(env, kDir, Options());
    EXPECT_TRUE(wal.ok()) << wal.status().ToString();
    if (!wal.ok()) return -1;
    const std::string got = Fingerprint(**wal);
    for (size_t j = candidates.size(); j-- > from;) {
      if (Fingerprint(candidates[j]) == got) {
        *out = std::move(*wal);
        return static_cast<int>(j);
      }
    }
    ADD_FAILURE() << "recovered a log that is none of states " << from << ".." << candidates.size() - 1
                  << ":\n" << got << "\nlast synced state:\n" << Fingerprint(candidates[from])
                  << "\nlatest state:\n" << Fingerprint(candidates.back());
    return -1;
  }

  // One more synced write after recovery must survive the next crash.
  void CheckGoesOn(FaultEnv* env, std::unique_ptr<Wal> wal, raft::MemoryLogStorage model) {
    const raft::Entry e = MakeEntry(model.LastIndex().value() + 1, 99, "after recovery");
    const raft::HardState hs{Term{99}, NodeId{1}, model.LastIndex()};
    ASSERT_OK(wal->Save({}, {e}, hs));
    ASSERT_OK(wal->Sync());
    model.Append({e});
    model.SetHardState(hs);
    wal.reset();
    env->Crash();
    auto again = Wal::Open(env, kDir, Options());
    ASSERT_OK(again);
    EXPECT_EQ(Fingerprint(**again), Fingerprint(model));
  }

  raft::Configuration initial_ = MakeConfiguration({1, 2, 3});
};

TEST_P(WalCrashTest, CrashAtEveryOperationKeepsEverythingSyncedAndNothingTruncated) {
  const std::vector<WalOp> ops = test::MakeWorkload(::rkv::test::TestSeed(7), initial_, 120);
  uint64_t crash_points = 0;
  for (uint64_t k = 0;; ++k) {
    SCOPED_TRACE("crash point " + std::to_string(k));
    FaultEnv env;
    PrepareEnv(&env);
    env.SetCrashPoint(k);
    std::vector<raft::MemoryLogStorage> states{raft::MemoryLogStorage(initial_)};
    size_t synced = 0;
    std::string stopped_at = "open";
    {
      auto wal = Wal::Open(&env, kDir, Options());
      if (wal.ok()) {
        stopped_at = "end";
        for (const WalOp& op : ops) {
          raft::MemoryLogStorage next = states.back();
          test::ApplyToModel(op, &next);
          states.push_back(std::move(next));
          if (!test::RunOp(wal->get(), op).ok()) {
            stopped_at = op.Describe();
            break;
          }
          if (op.syncs()) synced = states.size() - 1;
        }
      }
    }
    SCOPED_TRACE("stopped at " + stopped_at);
    const bool cut = env.CrashPointReached();
    env.Crash(MakeCrashOptions(GetParam(), k + 1));
    std::unique_ptr<Wal> wal;
    const int j = Recovered(&env, states, synced, &wal);
    if (j < 0) return;
    CheckGoesOn(&env, std::move(wal), states[static_cast<size_t>(j)]);
    if (::testing::Test::HasFailure()) return;
    ++crash_points;
    if (!cut) break;
  }
  RecordProperty("crash_points", std::to_string(crash_points));
  EXPECT_GT(crash_points, 200u) << "the workload should cross many operations";
}

// Recovery itself crashes: it removes a partly created segment, cuts a torn
// tail, and finishes deleting the segments a durable compaction made
// obsolete, each of which a power loss may interrupt.
TEST_P(WalCrashTest, CrashAtEveryOperationOfRecovery) {
  raft::MemoryLogStorage base(initial_);
  for (uint64_t i = 1; i <= 30; ++i) base.Append({MakeEntry(i, 2, "e" + std::to_string(i))});
  ASSERT_OK(base.CreateSnapshot(LogIndex{25}, initial_, ""));

  auto prepare = [&](FaultEnv* env) {
    PrepareEnv(env);
    std::string last_segment;
    {
      auto wal = Wal::Open(env, kDir, Options());
      ASSERT_OK(wal);
      for (uint64_t i = 1; i <= 30; ++i) ASSERT_OK((*wal)->Append({MakeEntry(i, 2, "e" + std::to_string(i))}));
      ASSERT_OK((*wal)->Sync());
      ASSERT_GE((*wal)->SegmentPaths().size(), 3u);
      last_segment = (*wal)->SegmentPaths().back();
      // The compaction is durable, its deletions fail.
      env->FailAfter(0, FaultOp::kDelete, Status::IOError("injected"));
      ASSERT_TRUE((*wal)->Compact(LogIndex{25}, initial_).IsIOError());
      env->ClearFaults();
    }
    // Half a record at the end of the open segment, and the start of the
    // next segment, both on disk.
    std::string torn;
    AppendEntryRecord(MakeEntry(31, 2, std::string(50, 't')), kRecordFlagBatchEnd, &torn);
    auto file = env->NewAppendableFile(last_segment);
    ASSERT_OK(file);
    ASSERT_OK((*file)->Append(torn.substr(0, torn.size() / 2)));
    ASSERT_OK((*file)->Sync());
    uint64_t seq = 0;
    ASSERT_TRUE(ParseSegmentFileName(last_segment.substr(last_segment.rfind('/') + 1), &seq));
    auto next = env->NewWritableFile(JoinPath(kDir, SegmentFileName(seq + 1)));
    ASSERT_OK(next);
    ASSERT_OK((*next)->Append(EncodeSegmentHeader({seq + 1, LogIndex{31}}).substr(0, 20)));
    ASSERT_OK((*next)->Sync());
    ASSERT_OK(env->SyncDir(kDir));
  };

  raft::MemoryLogStorage with_write = base;
  const raft::Entry write = MakeEntry(31, 3, "acknowledged");
  with_write.Append({write});
  const std::vector<raft::MemoryLogStorage> states{base, with_write};

  uint64_t crash_points = 0;
  for (uint64_t k = 0;; ++k) {
    SCOPED_TRACE("crash point " + std::to_string(k));
    FaultEnv env;
    prepare(&env);
    if (::testing::Test::HasFatalFailure()) return;
    env.SetCrashPoint(k);
    bool acked = false;
    {
      auto wal = Wal::Open(&env, kDir, Options());
      if (wal.ok()) acked = (*wal)->Append({write}).ok() && (*wal)->Sync().ok();
    }
    const bool cut = env.CrashPointReached();
    env.Crash(MakeCrashOptions(GetParam(), k + 1));
    std::unique_ptr<Wal> wal;
    const int j = Recovered(&env, states, acked ? 1 : 0, &wal);
    if (j < 0) return;
    // Once open, the obsolete segments are gone: only the oldest segment
    // left may start at or before the first entry after the compaction.
    const std::vector<std::string> paths = wal->SegmentPaths();
    if (paths.size() >= 2) {
      auto data = ReadFileToString(&env, paths[1]);
      ASSERT_OK(data);
      SegmentHeader header;
      ASSERT_OK(DecodeSegmentHeader(*data, &header));
      EXPECT_GT(header.first_index, LogIndex{26});
    }
    CheckGoesOn(&env, std::move(wal), states[static_cast<size_t>(j)]);
    if (::testing::Test::HasFailure()) return;
    ++crash_points;
    if (!cut) break;
  }
  RecordProperty("crash_points", std::to_string(crash_points));
  EXPECT_GT(crash_points, 5u);
}

INSTANTIATE_TEST_SUITE_P(Kinds, WalCrashTest,
                         ::testing::Values(CrashKind::kDropUnsynced, CrashKind::kTornRandom,
                                           CrashKind::kKeepAll),
                         [](const ::testing::TestParamInfo<CrashKind>& param_info) {
                           return CrashKindName(param_info.param);
                         });

}  // namespace
}  // namespace rkv::wal
