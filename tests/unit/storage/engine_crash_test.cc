// Crash tests on FaultEnv: power loss at every step of a workload and of a
// merge, torn final writes at every byte, and I/O errors. After each crash the
// engine must reopen with every acknowledged write present, nothing deleted
// back, and nothing else but (at most) the one write that was in flight.
#include <gtest/gtest.h>

#include <map>
#include <mutex>
#include <thread>
#include <optional>

#include "common/logging.h"
#include "common/random.h"
#include "env/fault_env.h"
#include "storage/engine.h"
#include "storage/record_format.h"
#include "support/test_util.h"

namespace rkv::storage {
namespace {

using Model = std::map<std::string, std::string>;

class EngineCrashTest : public ::testing::Test {
 protected:
  // The engine logs every injected failure; keep test output readable.
  void SetUp() override { log::SetLevel(log::Level::kOff); }
  void TearDown() override { log::SetLevel(log::Level::kInfo); }

  static Options SmallOptions(Env* env, SyncMode mode) {
    Options o;
    o.env = env;
    o.sync_mode = mode;
    o.data_file_size_max = 600;  // a few records per file: many rolls
    o.write_buffer_size = 4096;
    o.background_merge = false;
    o.merge_dead_bytes_min = 0;
    return o;
  }

  static void PrepareDir(FaultEnv* env) {
    ASSERT_OK(env->CreateDir("/db"));
    ASSERT_OK(env->SyncDir("/"));
  }

  // Reopens after a crash and returns the whole contents.
  static Model Contents(Env* env, SyncMode mode) {
    auto engine = Engine::Open(SmallOptions(env, mode), "/db");
    EXPECT_TRUE(engine.ok()) << engine.status().ToString();
    if (!engine.ok()) return {};
    ScanOptions scan;
    scan.limit = 100000;
    auto all = (*engine)->Scan(scan);
    EXPECT_TRUE(all.ok()) << all.status().ToString();
    Model out;
    if (all.ok()) {
      for (auto& kv : *all) out[kv.key] = kv.value;
    }
    return out;
  }
};

struct Op {
  bool put;
  std::string key;
  std::string value;
};

std::vector<Op> Workload() {
  std::vector<Op> ops;
  Random rnd(99);
  for (int i = 0; i < 40; ++i) {
    std::string key = "k" + std::to_string(rnd.Uniform(12));
    if (rnd.OneIn(4)) {
      ops.push_back({false, key, {}});
    } else {
      ops.push_back({true, key, "v" + std::to_string(i) + std::string(rnd.Uniform(60), 'x')});
    }
  }
  return ops;
}

std::string Describe(const Model& m) {
  std::string out;
  for (const auto& [k, v] : m) out += k + "=" + v.substr(0, 4) + " ";
  return out;
}

void Apply(const Op& op, Model* model) {
  if (op.put) {
    (*model)[op.key] = op.value;
  } else {
    model->erase(op.key);
  }
}

class CrashEveryStepTest : public EngineCrashTest, public ::testing::WithParamInterface<SyncMode> {};

TEST_P(CrashEveryStepTest, EveryAcknowledgedWriteSurvives) {
  const std::vector<Op> ops = Workload();
  uint64_t crash_points = 0;
  for (uint64_t k = 0;; ++k) {
    SCOPED_TRACE("crash point " + std::to_string(k));
    FaultEnv env;
    PrepareDir(&env);
    env.SetCrashPoint(k);
    Model acked;
    std::optional<Op> in_flight;
    {
      auto engine = Engine::Open(SmallOptions(&env, GetParam()), "/db");
      if (engine.ok()) {
        for (const Op& op : ops) {
          Status s = op.put ? (*engine)->Put(op.key, op.value) : (*engine)->Delete(op.key);
          if (!s.ok()) {
            in_flight = op;
            break;
          }
          Apply(op, &acked);
        }
      }
    }
    const bool cut = env.CrashPointReached();
    env.Crash();
    const Model got = Contents(&env, GetParam());
    Model with_in_flight = acked;
    if (in_flight) Apply(*in_flight, &with_in_flight);
    EXPECT_TRUE(got == acked || got == with_in_flight)
        << "recovered " << Describe(got) << "\nacknowledged " << Describe(acked)
        << "\nin flight " << (in_flight ? in_flight->key : std::string("none"));
    if (::testing::Test::HasFailure()) return;
    ++crash_points;
    if (!cut) break;
  }
  EXPECT_GT(crash_points, 50u) << "the workload should cross many operations";
}

INSTANTIATE_TEST_SUITE_P(DurableModes, CrashEveryStepTest,
                         ::testing::Values(SyncMode::kAlways, SyncMode::kGroup),
                         [](const ::testing::TestParamInfo<SyncMode>& param_info) {
                           return std::string(SyncModeName(param_info.param));
                         });

// Many writers sharing group-commit syncs while files roll, cut by a crash at
// many points: a write acknowledged to any thread must survive.
TEST_F(EngineCrashTest, ConcurrentGroupCommitWritersLoseNothingAcknowledged) {
  for (uint64_t k = 20; k < 400; k += 23) {
    SCOPED_TRACE("crash point " + std::to_string(k));
    FaultEnv env;
    PrepareDir(&env);
    std::mutex mu;
    Model acked;
    {
      auto engine = Engine::Open(SmallOptions(&env, SyncMode::kGroup), "/db");
      ASSERT_OK(engine);
      env.SetCrashPoint(k);
      std::vector<std::thread> threads;
      for (int t = 0; t < 6; ++t) {
        threads.emplace_back([&, t] {
          for (int i = 0; i < 40; ++i) {
            const std::string key = "t" + std::to_string(t) + "-" + std::to_string(i);
            if (!(*engine)->Put(key, std::string(30, static_cast<char>('a' + t))).ok()) return;
            std::lock_guard l(mu);
            acked[key] = std::string(30, static_cast<char>('a' + t));
          }
        });
      }
      for (auto& th : threads) th.join();
    }
    env.Crash();
    const Model got = Contents(&env, SyncMode::kGroup);
    for (const auto& [key, value] : acked) {
      auto it = got.find(key);
      ASSERT_TRUE(it != got.end() && it->second == value) << "acknowledged " << key << " was lost";
    }
  }
}

TEST_F(EngineCrashTest, TornLastWriteAtEveryByte) {
  const std::string last_value(150, 'L');
  const size_t last_record = RecordSize(4, last_value.size(), false);
  for (uint64_t keep = 0; keep <= last_record; ++keep) {
    SCOPED_TRACE("kept bytes " + std::to_string(keep));
    FaultEnv env;
    PrepareDir(&env);
    {
      auto engine = Engine::Open(SmallOptions(&env, SyncMode::kNone), "/db");
      ASSERT_OK(engine);
      ASSERT_OK((*engine)->Put("aaaa", "1"));
      ASSERT_OK((*engine)->Put("bbbb", "2"));
      ASSERT_OK((*engine)->Sync());
      ASSERT_OK((*engine)->Put("last", last_value));
      // A view flushes the write buffer to the file without syncing it.
      auto view = (*engine)->CreateView();
      ASSERT_OK(view);
      env.Crash(CrashOptions{keep, false, 0});
    }
    auto engine = Engine::Open(SmallOptions(&env, SyncMode::kNone), "/db");
    ASSERT_OK(engine);
    EXPECT_EQ((*engine)->Get("aaaa").value(), "1");
    EXPECT_EQ((*engine)->Get("bbbb").value(), "2");
    auto last = (*engine)->Get("last");
    if (keep == last_record) {
      ASSERT_OK(last);
      EXPECT_EQ(*last, last_value);
      EXPECT_EQ((*engine)->GetStats().truncated_tail_bytes, 0u);
    } else {
      EXPECT_TRUE(last.status().IsNotFound()) << last.status().ToString();
      EXPECT_EQ((*engine)->GetStats().truncated_tail_bytes, keep);
    }
  }
}

TEST_F(EngineCrashTest, RandomTornTailsNeverCorruptTheSyncedPrefix) {
  for (uint64_t seed = 1; seed <= 40; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    FaultEnv env;
    PrepareDir(&env);
    Model synced;
    {
      auto engine = Engine::Open(SmallOptions(&env, SyncMode::kNone), "/db");
      ASSERT_OK(engine);
      Random rnd(seed);
      for (int i = 0; i < 30; ++i) {
        std::string k = "k" + std::to_string(rnd.Uniform(8)), v = std::string(rnd.Uniform(100), 'z');
        ASSERT_OK((*engine)->Put(k, v));
        synced[k] = v;
      }
      ASSERT_OK((*engine)->Sync());
      for (int i = 0; i < 20; ++i) ASSERT_OK((*engine)->Put("u" + std::to_string(i), "unsynced"));
      auto view = (*engine)->CreateView();  // flush without sync
      ASSERT_OK(view);
      env.Crash(CrashOptions{0, false, seed});
    }
    Model got = Contents(&env, SyncMode::kNone);
    for (const auto& [k, v] : synced) EXPECT_EQ(got[k], v) << k;
    for (const auto& [k, v] : got) {
      if (k[0] == 'u') {
        EXPECT_EQ(v, "unsynced");
      }
    }
  }
}

TEST_F(EngineCrashTest, CrashAtEveryStepOfAMergeLosesAndResurrectsNothing) {
  // Files of old values, then tombstones and overwrites; everything synced.
  auto setup = [](FaultEnv* env, Model* model) {
    PrepareDir(env);
    auto engine = Engine::Open(SmallOptions(env, SyncMode::kAlways), "/db");
    ASSERT_OK(engine);
    for (int i = 0; i < 12; ++i) {
      ASSERT_OK((*engine)->Put("key" + std::to_string(i), std::string(40, 'a')));
      (*model)["key" + std::to_string(i)] = std::string(40, 'a');
    }
    for (int i = 0; i < 12; i += 2) {
      ASSERT_OK((*engine)->Delete("key" + std::to_string(i)));
      model->erase("key" + std::to_string(i));
    }
    for (int round = 0; round < 4; ++round) {
      for (int i = 1; i < 12; i += 4) {
        std::string v = "r" + std::to_string(round) + std::string(30, 'b');
        ASSERT_OK((*engine)->Put("key" + std::to_string(i), v));
        (*model)["key" + std::to_string(i)] = v;
      }
    }
    ASSERT_OK((*engine)->Close());
  };

  uint64_t steps = 0;
  for (uint64_t k = 0;; ++k) {
    SCOPED_TRACE("crash point " + std::to_string(k));
    FaultEnv env;
    Model model;
    setup(&env, &model);
    if (::testing::Test::HasFatalFailure()) return;
    bool merged = false;
    {
      auto engine = Engine::Open(SmallOptions(&env, SyncMode::kAlways), "/db");
      ASSERT_OK(engine);
      ASSERT_GT((*engine)->GetStats().dead_bytes, 0u);
      env.SetCrashPoint(k);
      merged = (*engine)->Merge().ok() && (*engine)->GetStats().merges == 1;
    }
    const bool cut = env.CrashPointReached();
    env.Crash();
    EXPECT_EQ(Contents(&env, SyncMode::kAlways), model);
    if (::testing::Test::HasFailure()) return;
    ++steps;
    if (!cut) {
      EXPECT_TRUE(merged) << "the merge must have had work to do";
      break;
    }
  }
  EXPECT_GT(steps, 10u);
}

class WriteErrorTest : public EngineCrashTest, public ::testing::WithParamInterface<bool> {};

TEST_P(WriteErrorTest, FailedWriteIsReportedAndLaterWritesRefusedWhileReadsGoOn) {
  const bool disk_full = GetParam();
  const Status injected = disk_full ? Status::NoSpace("injected ENOSPC") : Status::IOError("injected EIO");
  FaultEnv env;
  PrepareDir(&env);
  Model acked;
  {
    auto engine = Engine::Open(SmallOptions(&env, SyncMode::kAlways), "/db");
    ASSERT_OK(engine);
    env.FailAfter(25, FaultOp::kAppend | FaultOp::kSync, injected);
    Status failed;
    for (int i = 0; i < 100 && failed.ok(); ++i) {
      std::string k = "k" + std::to_string(i);
      failed = (*engine)->Put(k, "value" + std::to_string(i));
      if (failed.ok()) acked[k] = "value" + std::to_string(i);
    }
    ASSERT_FALSE(failed.ok());
    EXPECT_EQ(failed.code(), injected.code()) << failed.ToString();
    env.ClearFaults();
    // Sticky: the disk is fine again, but the engine no longer trusts its file.
    EXPECT_EQ((*engine)->Put("after", "x").code(), injected.code());
    EXPECT_EQ((*engine)->Delete("k0").code(), injected.code());
    for (const auto& [k, v] : acked) EXPECT_EQ((*engine)->Get(k).value(), v);
  }
  env.Crash();
  Model got = Contents(&env, SyncMode::kAlways);
  for (const auto& [k, v] : acked) EXPECT_EQ(got[k], v) << k;
  EXPECT_EQ(got.count("after"), 0u);
}

INSTANTIATE_TEST_SUITE_P(EioAndEnospc, WriteErrorTest, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& param_info) {
                           return param_info.param ? std::string("NoSpace") : std::string("IOError");
                         });

TEST_F(EngineCrashTest, BitFlipOnReadIsReportedAsCorruption) {
  FaultEnv env;
  PrepareDir(&env);
  auto engine = Engine::Open(SmallOptions(&env, SyncMode::kAlways), "/db");
  ASSERT_OK(engine);
  ASSERT_OK((*engine)->Put("key", std::string(100, 'v')));
  ASSERT_OK((*engine)->Close());
  engine = Engine::Open(SmallOptions(&env, SyncMode::kAlways), "/db");
  ASSERT_OK(engine);
  auto names = env.GetChildren("/db");
  ASSERT_OK(names);
  std::string data_file;
  for (const auto& n : *names) {
    if (n.size() > 5 && n.substr(n.size() - 5) == ".data") data_file = "/db/" + n;
  }
  ASSERT_FALSE(data_file.empty());
  env.FlipBitOnRead(data_file, kFileHeaderSize + kRecordHeaderSize + 3 + 42, 3);
  auto got = (*engine)->Get("key");
  EXPECT_TRUE(got.status().IsCorruption()) << got.status().ToString();
}

}  // namespace
}  // namespace rkv::storage
