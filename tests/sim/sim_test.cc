// Tests of the simulator itself: it is deterministic, it passes on the
// correct core, and its checks fail when the simulated server is broken.
#include <gtest/gtest.h>

#include "common/logging.h"
#include "sim/kv_machine.h"
#include "sim/simulation.h"

namespace rkv::sim {
namespace {

// The WAL logs every recovery of every simulated crash, and nodes log every
// injected I/O error.
const bool quiet = [] {
  log::SetLevel(log::Level::kOff);
  return true;
}();

TEST(KvMachineTest, CommandsRoundTrip) {
  KvCommand put{CommandType::kPut, "k", "v", std::nullopt, 3, 9};
  KvCommand cas{CommandType::kCas, "k", "new", std::string("old"), 1, 2};
  KvCommand cas_absent{CommandType::kCas, "k", "new", std::nullopt, 1, 3};
  for (const KvCommand& c : {put, cas, cas_absent}) {
    std::optional<KvCommand> decoded = DecodeCommand(EncodeCommand(c));
    ASSERT_TRUE(decoded.has_value());
    EXPECT_EQ(*decoded, c);
  }
  EXPECT_FALSE(DecodeCommand("").has_value());
  std::string truncated = EncodeCommand(cas);
  truncated.pop_back();
  EXPECT_FALSE(DecodeCommand(truncated).has_value());
}

TEST(KvMachineTest, CasAndSnapshot) {
  KvMachine kv;
  EXPECT_TRUE(kv.Apply({CommandType::kCas, "k", "v1", std::nullopt, 1, 1}));
  EXPECT_FALSE(kv.Apply({CommandType::kCas, "k", "v2", std::string("other"), 1, 2}));
  EXPECT_TRUE(kv.Apply({CommandType::kCas, "k", "v2", std::string("v1"), 1, 3}));
  EXPECT_EQ(kv.Get("k"), "v2");
  KvMachine copy;
  ASSERT_TRUE(copy.Decode(kv.Encode()));
  EXPECT_EQ(copy, kv);
  EXPECT_TRUE(kv.Apply({CommandType::kDelete, "k", "", std::nullopt, 1, 4}));
  EXPECT_EQ(kv.Get("k"), std::nullopt);
}

TEST(SimulationTest, SameSeedSameRun) {
  for (bool swarm : {false, true}) {
    SimOptions options;
    options.seed = 17;
    options.swarm = swarm;
    const SimReport a = RunSimulation(options);
    const SimReport b = RunSimulation(options);
    EXPECT_EQ(a.trace_hash, b.trace_hash);
    EXPECT_EQ(a.events, b.events);
    EXPECT_EQ(a.ops_ok, b.ops_ok);
    options.seed = 18;
    EXPECT_NE(RunSimulation(options).trace_hash, a.trace_hash);
  }
}

TEST(SimulationTest, ModelDiskAndRealWalBothPass) {
  for (bool real_wal : {false, true}) {
    for (uint64_t seed = 1; seed <= 20; ++seed) {
      SimOptions options;
      options.seed = seed;
      options.real_wal = real_wal;
      const SimReport r = RunSimulation(options);
      EXPECT_TRUE(r.passed) << "seed " << seed << (real_wal ? " (wal)" : " (memory)") << ": " << r.failure;
    }
  }
}

TEST(SimulationTest, RunsDoSomething) {
  // A run that checks nothing because nothing happened would pass too; make
  // sure the default rates produce elections, faults and client traffic.
  SimOptions options;
  uint64_t ok = 0, crashes = 0, terms = 0, snapshots = 0;
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    options.seed = seed;
    const SimReport r = RunSimulation(options);
    EXPECT_TRUE(r.passed) << "seed " << seed << ": " << r.failure;
    ok += r.ops_ok;
    crashes += r.crashes;
    terms += r.terms;
    snapshots += r.snapshots_installed;
  }
  EXPECT_GT(ok, 500u);
  EXPECT_GT(crashes, 10u);
  EXPECT_GT(terms, 20u);
  EXPECT_GT(snapshots, 0u);
}

// The planted harness bugs must be caught within a few seeds.
uint64_t FirstFailingSeed(const SimOptions& base, uint64_t max_seed) {
  for (uint64_t seed = 1; seed <= max_seed; ++seed) {
    SimOptions options = base;
    options.seed = seed;
    if (!RunSimulation(options).passed) return seed;
  }
  return 0;
}

TEST(SimulationTest, CatchesReadsWithoutReadIndex) {
  SimOptions options;
  options.unsafe_local_reads = true;
  const uint64_t seed = FirstFailingSeed(options, 30);
  EXPECT_NE(seed, 0u) << "stale local reads went unnoticed for 30 seeds";
}

TEST(SimulationTest, CatchesAcknowledgementsBeforePersisting) {
  SimOptions options;
  options.unsafe_ack_before_persist = true;
  // The crash must fall between an acknowledgement and the write: rarer.
  const uint64_t seed = FirstFailingSeed(options, 2000);
  EXPECT_NE(seed, 0u) << "acknowledging unsynced writes went unnoticed for 2000 seeds";
}

TEST(SimulationTest, CatchesLostCommitIndexes) {
  SimOptions options;
  options.unsafe_torn_commit = true;
  options.real_wal = false;  // planted in the model disk
  options.swarm = true;  // crash-heavy seeds find it sooner
  const uint64_t seed = FirstFailingSeed(options, 2000);
  EXPECT_NE(seed, 0u) << "a log losing commit indexes went unnoticed for 2000 swarm seeds";
}

// ---------------------------------------------------------------------------
// --server node: real rkv::Node servers.

SimOptions NodeOptions(uint64_t seed) {
  SimOptions options;
  options.server = ServerKind::kNode;
  options.seed = seed;
  return options;
}

TEST(NodeSimulationTest, SameSeedSameRun) {
  for (bool swarm : {false, true}) {
    SimOptions options = NodeOptions(17);
    options.swarm = swarm;
    const SimReport a = RunSimulation(options);
    const SimReport b = RunSimulation(options);
    EXPECT_TRUE(a.passed) << a.failure;
    EXPECT_EQ(a.trace_hash, b.trace_hash);
    EXPECT_EQ(a.events, b.events);
    EXPECT_EQ(a.ops_ok, b.ops_ok);
    options.seed = 18;
    EXPECT_NE(RunSimulation(options).trace_hash, a.trace_hash);
  }
}

TEST(NodeSimulationTest, RunsPassAndDoSomething) {
  // Crashes in the middle of the node's work, snapshots, retried writes and
  // the exactly-once model must all actually happen.
  uint64_t ok = 0, crashes = 0, mid_work = 0, snapshots = 0, compactions = 0, retries = 0, models = 0;
  for (uint64_t seed = 1; seed <= 40; ++seed) {
    const SimReport r = RunSimulation(NodeOptions(seed));
    EXPECT_TRUE(r.passed) << "seed " << seed << ": " << r.failure;
    ok += r.ops_ok;
    crashes += r.crashes;
    mid_work += r.crash_points_hit + r.io_errors_hit;
    snapshots += r.snapshots_installed;
    compactions += r.compactions;
    retries += r.write_retries;
    models += r.model_checks > 0 ? 1 : 0;
  }
  EXPECT_GT(ok, 2000u);
  EXPECT_GT(crashes, 100u);
  EXPECT_GT(mid_work, 20u);
  EXPECT_GT(snapshots, 5u);
  EXPECT_GT(compactions, 50u);
  EXPECT_GT(retries, 100u);
  EXPECT_GT(models, 30u);
}

TEST(NodeSimulationTest, CatchesStaleLinearizableReads) {
  SimOptions options = NodeOptions(0);
  options.unsafe_node_stale_reads = true;
  EXPECT_NE(FirstFailingSeed(options, 30), 0u) << "stale reads went unnoticed for 30 seeds";
}

TEST(NodeSimulationTest, CatchesRetriesWithANewIdempotencyKey) {
  // A write whose answer was lost, retried under a new key, takes effect
  // twice: a cas that succeeded the first time then reports failure, a put
  // reappears after a later write.
  SimOptions options = NodeOptions(0);
  options.unsafe_node_fresh_key_on_retry = true;
  EXPECT_NE(FirstFailingSeed(options, 100), 0u) << "double-applied retries went unnoticed for 100 seeds";
}

}  // namespace
}  // namespace rkv::sim
