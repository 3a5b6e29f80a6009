// Crash tests of installing a snapshot on FaultEnv. A power loss at every
// mutating operation of InstallSnapshot (with unsynced bytes dropped, torn at
// random, or all kept; with the old engine closed before the install or still
// open during it), and a second one at every operation of the recovery that
// follows, must leave a kv/ directory that KvDir::Open, the engine and
// StateMachine::Open take, holding exactly the old state or exactly the new
// one (every engine record equal), the new one whenever the install had
// returned OK, and no engine directory but the live one.
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "common/logging.h"
#include "env/fault_env.h"
#include "env/mem_env.h"
#include "node/kv_dir.h"
#include "node/snapshot.h"
#include "node/state_machine.h"
#include "snapshot_test_util.h"
#include "state_machine_model.h"
#include "storage/engine.h"
#include "support/crash_kind.h"
#include "support/test_util.h"

namespace rkv {
namespace {

using test::CrashKind;
using test::CrashKindName;
using test::LogEntry;
using test::MakeCrashOptions;
using test::Replica;
using Dump = std::map<std::string, std::string>;

constexpr char kRoot[] = "/data/kv";

enum class Outcome { kOld, kNew };

class SnapshotCrashTest : public ::testing::TestWithParam<std::tuple<CrashKind, bool>> {
 protected:
  void SetUp() override {
    log::SetLevel(log::Level::kOff);
    options_ = test::SmallSessionOptions();
    old_log_ = test::RandomLog(test::TestSeed(500), 60);
    // The new state: a replica further along, with many keys, so that the
    // install fills several data files.
    MemEnv env;
    ASSERT_OK(env.CreateDir("/src"));
    Replica source;
    ASSERT_OK(source.Open(&env, "/src", options_));
    std::vector<LogEntry> log = test::RandomLog(test::TestSeed(501), 200);
    const std::vector<LogEntry> bulk = test::BulkLog(log.size() + 1, 150, 502);
    log.insert(log.end(), bulk.begin(), bulk.end());
    ASSERT_OK(source.Apply(log));
    auto blob = BuildSnapshot(source.engine.get(), source.meta());
    ASSERT_OK(blob);
    blob_ = *blob;
    new_dump_ = test::DumpEngine(source.engine.get());
    new_applied_ = source.sm->applied_index();
    // The old state, as a replica that applied old_log_ holds it.
    Replica old;
    ASSERT_OK(env.CreateDir("/old"));
    ASSERT_OK(old.Open(&env, "/old", options_));
    ASSERT_OK(old.Apply(old_log_));
    old_dump_ = test::DumpEngine(old.engine.get());
    ASSERT_NE(old_dump_, new_dump_);
  }
  void TearDown() override { log::SetLevel(log::Level::kInfo); }

  CrashKind kind() const { return std::get<0>(GetParam()); }
  bool old_open() const { return std::get<1>(GetParam()); }

  // A node directory whose live engine holds the old state, durable. With
  // old_open() the engine stays open in *old (synced, as after a checkpoint).
  void Prepare(FaultEnv* env, std::optional<KvDir>* dir, Replica* old) {
    ASSERT_OK(env->CreateDir("/data"));
    ASSERT_OK(env->SyncDir("/"));
    auto opened = KvDir::Open(env, kRoot);
    ASSERT_OK(opened);
    dir->emplace(std::move(*opened));
    ASSERT_OK(old->Open(env, (*dir)->current_path(), options_));
    ASSERT_OK(old->Apply(old_log_));
    if (old_open()) {
      ASSERT_OK(old->sm->Checkpoint());
    } else {
      ASSERT_OK(old->Close());
    }
  }

  // What a restarted node does: open kv/, the engine, the state machine.
  // Fails the test unless that works; returns which state it found.
  std::optional<Outcome> Recover(FaultEnv* env) {
    auto dir = KvDir::Open(env, kRoot);
    EXPECT_OK(dir);
    if (!dir.ok()) return std::nullopt;
    std::vector<std::string> engines;
    auto names = env->GetChildren(kRoot);
    EXPECT_OK(names);
    if (!names.ok()) return std::nullopt;
    for (const std::string& name : *names) {
      if (ParseEngineDirName(name) != 0) engines.push_back(name);
    }
    EXPECT_EQ(engines, std::vector<std::string>{dir->current_name()}) << "a leftover engine directory";
    Replica r;
    Status s = r.Open(env, dir->current_path(), options_);
    EXPECT_OK(s);
    if (!s.ok()) return std::nullopt;
    const Dump dump = test::DumpEngine(r.engine.get());
    if (dump == new_dump_) {
      EXPECT_EQ(r.sm->applied_index(), new_applied_);
      return Outcome::kNew;
    }
    EXPECT_EQ(dump, old_dump_) << "neither the old nor the new state in " << dir->current_path();
    EXPECT_EQ(r.sm->applied_index(), LogIndex{old_log_.size()});
    return Outcome::kOld;
  }

  // Runs the install with the crash point at k; returns whether the install
  // answered OK and whether the crash point cut it.
  void InstallAndCrash(FaultEnv* env, uint64_t k, bool* installed, bool* cut) {
    std::optional<KvDir> dir;
    Replica old;
    Prepare(env, &dir, &old);
    if (HasFatalFailure()) return;
    env->SetCrashPoint(k);
    auto path = dir->InstallSnapshot(blob_, test::NodeEngineOptions(env));
    *installed = path.ok();
    *cut = env->CrashPointReached();
    env->Crash(MakeCrashOptions(kind(), k + 1));
    // The process is gone; what it held goes with it (the engine's close
    // fails on stale handles, which changes nothing).
  }

  StateMachineOptions options_;
  std::vector<LogEntry> old_log_;
  std::string blob_;
  Dump old_dump_;
  Dump new_dump_;
  LogIndex new_applied_;
};

TEST_P(SnapshotCrashTest, CrashAtEveryOperation) {
  std::map<Outcome, int> seen;
  uint64_t points = 0;
  for (uint64_t k = 0;; ++k) {
    SCOPED_TRACE("crash point " + std::to_string(k));
    FaultEnv env;
    bool installed = false, cut = false;
    InstallAndCrash(&env, k, &installed, &cut);
    if (HasFatalFailure()) return;
    const std::optional<Outcome> outcome = Recover(&env);
    if (HasFailure()) return;
    ASSERT_TRUE(outcome.has_value());
    if (installed) {
      EXPECT_EQ(*outcome, Outcome::kNew) << "an install that returned OK was lost";
    }
    ++seen[*outcome];
    ++points;
    if (!cut) {
      EXPECT_TRUE(installed);
      break;
    }
  }
  // The engines build hint files on their own threads, so the number of
  // operations varies a little from run to run.
  RecordProperty("crash_points", std::to_string(points));
  EXPECT_GT(points, 20u) << "the install should cross many operations";
  EXPECT_GT(seen[Outcome::kOld], 0);
  EXPECT_GT(seen[Outcome::kNew], 0);
}

// A crash at each operation of the install, then another at each operation of
// the recovery after it (removing leftovers, opening the engine), then a
// clean recovery.
TEST_P(SnapshotCrashTest, CrashDuringRecovery) {
  uint64_t rounds = 0;
  for (uint64_t k = 0;; k += 3) {
    bool cut = false;
    for (uint64_t k2 = 0;; ++k2) {
      SCOPED_TRACE("crash points " + std::to_string(k) + ", then " + std::to_string(k2));
      FaultEnv env;
      bool installed = false;
      InstallAndCrash(&env, k, &installed, &cut);
      if (HasFatalFailure()) return;
      env.SetCrashPoint(k2);
      bool recovery_cut = false;
      std::optional<Outcome> first;
      {
        auto dir = KvDir::Open(&env, kRoot);
        if (dir.ok()) {
          Replica r;
          if (r.Open(&env, dir->current_path(), options_).ok()) {
            first = test::DumpEngine(r.engine.get()) == new_dump_ ? Outcome::kNew : Outcome::kOld;
          }
        }
        recovery_cut = env.CrashPointReached();
        env.Crash(MakeCrashOptions(kind(), k2 + 7));
      }
      const std::optional<Outcome> outcome = Recover(&env);
      if (HasFailure()) return;
      ASSERT_TRUE(outcome.has_value());
      if (installed) {
        EXPECT_EQ(*outcome, Outcome::kNew);
      }
      // What a recovery saw stays: a second crash cannot go back.
      if (first) {
        EXPECT_EQ(*outcome, *first);
      }
      ++rounds;
      if (!recovery_cut) break;
    }
    if (!cut) break;
  }
  EXPECT_GT(rounds, 40u);
}

INSTANTIATE_TEST_SUITE_P(
    Kinds, SnapshotCrashTest,
    ::testing::Combine(::testing::Values(CrashKind::kDropUnsynced, CrashKind::kTornRandom, CrashKind::kKeepAll),
                       ::testing::Bool()),
    [](const ::testing::TestParamInfo<std::tuple<CrashKind, bool>>& param_info) {
      return CrashKindName(std::get<0>(param_info.param)) +
             (std::get<1>(param_info.param) ? "_OldEngineOpen" : "_OldEngineClosed");
    });

}  // namespace
}  // namespace rkv
