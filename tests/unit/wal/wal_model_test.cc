// The Wal against MemoryLogStorage (the model): random Saves (appends,
// conflicting suffixes, snapshots from a leader, hard states), Syncs,
// compactions, configuration changes, clean restarts, crashes of every kind
// and failed syncs, with the whole log compared after every step. After a
// crash the Wal must come back as the model stood at some point since the
// last successful Sync, and the model continues from there.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/logging.h"
#include "common/random.h"
#include "env/fault_env.h"
#include "support/test_util.h"
#include "wal/wal.h"
#include "wal/wal_format.h"
#include "wal_test_util.h"
#include "wal_workload.h"

namespace rkv::wal {
namespace {

using test::Fingerprint;
using test::MakeConfiguration;

constexpr char kDir[] = "/node/wal";

class WalModelTest : public ::testing::TestWithParam<uint64_t> {
 protected:
  void SetUp() override { log::SetLevel(log::Level::kOff); }
  void TearDown() override { log::SetLevel(log::Level::kInfo); }
};

// Reopens the WAL and finds which of `candidates` it recovered as.
void Reopen(FaultEnv* env, const WalOptions& options, std::vector<raft::MemoryLogStorage>* candidates,
            raft::MemoryLogStorage* model, std::unique_ptr<Wal>* wal) {
  auto opened = Wal::Open(env, kDir, options);
  ASSERT_OK(opened);
  *wal = std::move(*opened);
  const std::string got = Fingerprint(**wal);
  for (const raft::MemoryLogStorage& c : *candidates) {
    if (Fingerprint(c) == got) {
      *model = c;
      *candidates = {c};
      return;
    }
  }
  FAIL() << "recovered a log that is no state since the last sync:\n"
         << got << "\nlast synced:\n" << Fingerprint(candidates->front());
}

TEST_P(WalModelTest, MatchesMemoryLogStorageThroughRestartsAndCrashes) {
  const uint64_t seed = ::rkv::test::TestSeed(GetParam());
  SCOPED_TRACE("seed " + std::to_string(seed) + " (replay with RKV_TEST_SEED=" + std::to_string(seed) + ")");
  Random rnd(seed);
  FaultEnv env;
  ASSERT_OK(env.CreateDir("/node"));
  ASSERT_OK(env.SyncDir("/"));
  WalOptions options;
  options.segment_size = rnd.Range(200, 3000);
  options.write_buffer_size = rnd.Range(64, 4096);
  options.bootstrap = MakeConfiguration({1, 2, 3});

  raft::MemoryLogStorage model(*options.bootstrap);
  // The model after each write since the last successful sync: what a
  // crash may bring back.
  std::vector<raft::MemoryLogStorage> since_sync{model};
  auto opened = Wal::Open(&env, kDir, options);
  ASSERT_OK(opened);
  std::unique_ptr<Wal> wal = std::move(*opened);
  uint64_t term = 1;
  uint64_t restarts = 0, crashes = 0, failures = 0;

  for (uint64_t step = 0; step < 1500; ++step) {
    SCOPED_TRACE("step " + std::to_string(step));
    const uint64_t r = rnd.Uniform(100);
    if (r < 3) {
      ASSERT_OK(wal->Close());
      wal.reset();
      since_sync = {model};
      ASSERT_NO_FATAL_FAILURE(Reopen(&env, options, &since_sync, &model, &wal));
      ++restarts;
    } else if (r < 8) {
      wal.reset();
      CrashOptions crash;
      switch (rnd.Uniform(3)) {
        case 0: break;
        case 1: crash.seed = rnd.Next() | 1; break;
        default: crash.keep_all_unsynced = true; break;
      }
      env.Crash(crash);
      ASSERT_NO_FATAL_FAILURE(Reopen(&env, options, &since_sync, &model, &wal));
      ++crashes;
    } else if (r < 10) {
      // An fdatasync fails: the WAL refuses writes from then on, and the
      // node dies and restarts (here after a power loss).
      env.FailAfter(0, FaultOp::kSync, Status::IOError("injected EIO"), FaultMode::kOneShot);
      test::WalOp op = test::RandomOp(&rnd, model, &term, step);
      while (op.kind != test::WalOp::Kind::kSave) op = test::RandomOp(&rnd, model, &term, step);
      const Status saved = test::RunOp(wal.get(), op);
      if (saved.ok()) {
        test::ApplyToModel(op, &model);
        since_sync.push_back(model);
      }
      const Status synced = wal->Sync();
      ASSERT_FALSE(synced.ok());
      EXPECT_FALSE(wal->error().ok());
      EXPECT_FALSE(wal->Append({test::MakeEntry(wal->LastIndex().value() + 1, term)}).ok());
      env.ClearFaults();
      wal.reset();
      env.Crash(CrashOptions{0, false, rnd.Next() | 1});
      ASSERT_NO_FATAL_FAILURE(Reopen(&env, options, &since_sync, &model, &wal));
      ++failures;
    } else {
      const test::WalOp op = test::RandomOp(&rnd, model, &term, step);
      SCOPED_TRACE(op.Describe());
      ASSERT_OK(test::RunOp(wal.get(), op));
      test::ApplyToModel(op, &model);
      if (op.syncs()) {
        since_sync = {model};
      } else {
        since_sync.push_back(model);
      }
    }
    ASSERT_EQ(Fingerprint(*wal), Fingerprint(model));
  }
  EXPECT_GT(restarts + crashes + failures, 10u);
  // The run crossed many segments (sequence numbers only grow).
  const std::string newest = wal->SegmentPaths().back();
  uint64_t seq = 0;
  ASSERT_TRUE(ParseSegmentFileName(newest.substr(newest.rfind('/') + 1), &seq));
  EXPECT_GT(seq, 5u);
}

INSTANTIATE_TEST_SUITE_P(Seeds, WalModelTest, ::testing::Range<uint64_t>(1, 13));

}  // namespace
}  // namespace rkv::wal
