// Crash tests on FaultEnv: the engine runs in sync mode none under the state
// machine, which checkpoints now and then. A power loss at every mutating
// operation (opening included), with unsynced bytes dropped, torn at random,
// or all kept, must leave an engine that reopens at some applied index k no
// earlier than the last checkpoint, holding exactly the state after entries
// 1..k: user data, sessions, time and every internal record equal to a
// replica that applied those entries and nothing else. Replaying the log
// after k must then reach the final state.
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/logging.h"
#include "common/random.h"
#include "env/fault_env.h"
#include "env/mem_env.h"
#include "node/state_machine.h"
#include "state_machine_model.h"
#include "storage/engine.h"
#include "support/crash_kind.h"
#include "support/test_util.h"

namespace rkv {
namespace {

using test::LogEntry;
using Dump = std::map<std::string, std::string>;

constexpr char kDir[] = "/db";
constexpr size_t kEntries = 300;
constexpr uint64_t kCheckpointEvery = 13;

using ::rkv::test::CrashKind;
using ::rkv::test::CrashKindName;
using ::rkv::test::MakeCrashOptions;

class StateMachineCrashTest : public ::testing::TestWithParam<CrashKind> {
 protected:
  // The engine logs every injected failure and torn tail; keep output readable.
  void SetUp() override {
    log::SetLevel(log::Level::kOff);
    options_ = test::SmallSessionOptions();
    log_ = test::RandomLog(test::TestSeed(4242), kEntries);
    // The reference: one replica that never crashes, its engine after each index.
    MemEnv env;
    ASSERT_OK(env.CreateDir(kDir));
    auto engine = storage::Engine::Open(test::NodeEngineOptions(&env), kDir);
    ASSERT_OK(engine);
    auto sm = StateMachine::Open(engine->get(), options_);
    ASSERT_OK(sm);
    dumps_.push_back(test::DumpEngine(engine->get()));
    for (const LogEntry& e : log_) {
      ASSERT_OK((*sm)->Apply(e.index, e.term, e.data));
      dumps_.push_back(test::DumpEngine(engine->get()));
    }
  }
  void TearDown() override { log::SetLevel(log::Level::kInfo); }

  static void PrepareDir(FaultEnv* env) {
    ASSERT_OK(env->CreateDir(kDir));
    ASSERT_OK(env->SyncDir("/"));
  }

  // Opens, replays from the applied index and applies the log from `from`,
  // checkpointing every kCheckpointEvery indexes, until the first failure.
  // Returns the applied index the last successful checkpoint (or open) made
  // durable.
  LogIndex RunUntilFailure(FaultEnv* env) {
    LogIndex durable{0};
    auto engine = storage::Engine::Open(test::NodeEngineOptions(env), kDir);
    if (!engine.ok()) return durable;
    auto sm = StateMachine::Open(engine->get(), options_);
    if (!sm.ok()) return durable;
    durable = (*sm)->durable_applied_index();
    for (const LogEntry& e : log_) {
      if (!(*sm)->Apply(e.index, e.term, e.data).ok()) break;
      if (e.index.value() % kCheckpointEvery == 0) {
        if (!(*sm)->Checkpoint().ok()) break;
        durable = (*sm)->durable_applied_index();
      }
    }
    return durable;
  }

  // Reopens after a crash and checks the recovered state is the prefix
  // 1..applied of the log, with applied >= durable; then replays the rest.
  void CheckRecoveryAndReplay(FaultEnv* env, LogIndex durable) {
    auto engine = storage::Engine::Open(test::NodeEngineOptions(env), kDir);
    ASSERT_OK(engine);
    auto sm = StateMachine::Open(engine->get(), options_);
    ASSERT_OK(sm);
    const LogIndex applied = (*sm)->applied_index();
    ASSERT_GE(applied, durable) << "a checkpointed entry was lost";
    ASSERT_LE(applied.value(), kEntries);
    EXPECT_EQ((*sm)->durable_applied_index(), applied);

    test::Model model(options_);
    for (uint64_t i = 0; i < applied.value(); ++i) model.Apply(log_[i]);
    test::ExpectMatchesModel(**sm, model);
    EXPECT_EQ(test::DumpEngine(engine->get()), dumps_[applied.value()])
        << "the engine is not the state after entries 1.." << applied;
    if (HasFailure()) return;

    // The node replays its whole WAL; the state machine skips what it has.
    for (const LogEntry& e : log_) {
      auto r = (*sm)->Apply(e.index, e.term, e.data);
      ASSERT_OK(r);
      if (e.index <= applied) {
        EXPECT_EQ(r->code, CommandResult::Code::kAlreadyApplied);
      }
    }
    for (uint64_t i = applied.value(); i < kEntries; ++i) model.Apply(log_[i]);
    test::ExpectMatchesModel(**sm, model);
    EXPECT_EQ(test::DumpEngine(engine->get()), dumps_.back());
  }

  StateMachineOptions options_;
  std::vector<LogEntry> log_;
  std::vector<Dump> dumps_;  // dumps_[k]: the reference engine after index k
};

TEST_P(StateMachineCrashTest, CrashAtEveryOperation) {
  uint64_t crash_points = 0;
  for (uint64_t k = 0;; ++k) {
    SCOPED_TRACE("crash point " + std::to_string(k));
    FaultEnv env;
    PrepareDir(&env);
    env.SetCrashPoint(k);
    const LogIndex durable = RunUntilFailure(&env);
    const bool cut = env.CrashPointReached();
    env.Crash(MakeCrashOptions(GetParam(), k + 1));
    CheckRecoveryAndReplay(&env, durable);
    if (HasFailure()) return;
    ++crash_points;
    if (!cut) break;
  }
  RecordProperty("crash_points", std::to_string(crash_points));
  EXPECT_GT(crash_points, 100u) << "the workload should cross many operations";
}

// Two crashes: one at a random point of the workload, another at a random
// point of the recovery and replay that follows it.
TEST_P(StateMachineCrashTest, CrashDuringRecovery) {
  const uint64_t seed = test::TestSeed(99);
  SCOPED_TRACE("seed " + std::to_string(seed));
  Random rnd(seed);
  uint64_t total_ops = 0;
  {
    FaultEnv env;
    PrepareDir(&env);
    (void)RunUntilFailure(&env);
    total_ops = env.OperationCount();
  }
  for (int round = 0; round < 60; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    FaultEnv env;
    PrepareDir(&env);
    env.SetCrashPoint(rnd.Uniform(total_ops + 1));
    LogIndex durable = RunUntilFailure(&env);
    env.Crash(MakeCrashOptions(GetParam(), rnd.Next() | 1));
    // The recovery: open, replay everything, cut at a random point.
    env.SetCrashPoint(rnd.Uniform(total_ops / 2 + 1));
    const LogIndex durable2 = RunUntilFailure(&env);
    // What the first run made durable stays durable; the second adds to it.
    durable = std::max(durable, durable2);
    env.Crash(MakeCrashOptions(GetParam(), rnd.Next() | 1));
    CheckRecoveryAndReplay(&env, durable);
    if (HasFailure()) return;
  }
}

INSTANTIATE_TEST_SUITE_P(Kinds, StateMachineCrashTest,
                         ::testing::Values(CrashKind::kDropUnsynced, CrashKind::kTornRandom,
                                           CrashKind::kKeepAll),
                         [](const ::testing::TestParamInfo<CrashKind>& param_info) {
                           return CrashKindName(param_info.param);
                         });

}  // namespace
}  // namespace rkv
