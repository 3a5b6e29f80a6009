// KvDir: the layout it creates, CURRENT and what Open refuses, removal of
// leftover engine directories, installs with the old engine open or closed,
// refused blobs that change nothing, and an I/O error at every operation of
// an install (the live engine is then exactly the old or the new state).
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
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
#include "support/test_util.h"

namespace rkv {
namespace {

using test::LogEntry;
using test::Replica;
using Dump = std::map<std::string, std::string>;

constexpr char kRoot[] = "/data/kv";

// Every entry under `dir`: files with their size, directories as "dir".
std::map<std::string, std::string> Listing(Env* env, const std::string& dir) {
  std::map<std::string, std::string> out;
  auto names = env->GetChildren(dir);
  if (!names.ok()) return out;
  for (const std::string& name : *names) {
    const std::string path = JoinPath(dir, name);
    auto inside = env->GetChildren(path);
    if (inside.ok()) {
      out[path] = "dir";
      auto sub = Listing(env, path);
      out.insert(sub.begin(), sub.end());
    } else {
      auto size = env->GetFileSize(path);
      out[path] = size.ok() ? std::to_string(*size) : size.status().ToString();
    }
  }
  return out;
}

std::vector<std::string> EngineDirs(Env* env) {
  std::vector<std::string> out;
  auto names = env->GetChildren(kRoot);
  EXPECT_OK(names);
  if (!names.ok()) return out;
  for (const std::string& name : *names) {
    if (ParseEngineDirName(name) != 0) out.push_back(name);
  }
  return out;
}

class KvDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    log::SetLevel(log::Level::kOff);
    ASSERT_OK(env_.CreateDir("/data"));
    ASSERT_OK(env_.CreateDir("/src"));
    options_ = test::SmallSessionOptions();
    // The snapshot every install here uses: a replica further along.
    Replica source;
    ASSERT_OK(source.Open(&env_, "/src", options_));
    ASSERT_OK(source.Apply(test::RandomLog(test::TestSeed(77), 150)));
    auto blob = BuildSnapshot(source.engine.get(), source.meta());
    ASSERT_OK(blob);
    blob_ = *blob;
    new_dump_ = test::DumpEngine(source.engine.get());
  }
  void TearDown() override {
    log::SetSink({});
    log::SetLevel(log::Level::kInfo);
  }

  // Writes the old state (40 entries) into the current engine and closes it.
  void WriteOldState(Env* env, const KvDir& dir) {
    Replica old;
    ASSERT_OK(old.Open(env, dir.current_path(), options_));
    ASSERT_OK(old.Apply(test::RandomLog(test::TestSeed(77), 40)));
    old_dump_ = test::DumpEngine(old.engine.get());
    ASSERT_OK(old.Close());
  }

  Dump DumpAt(Env* env, const std::string& path) {
    auto engine = storage::Engine::Open(test::NodeEngineOptions(env), path);
    EXPECT_OK(engine);
    if (!engine.ok()) return {};
    return test::DumpEngine(engine->get());
  }

  MemEnv env_;
  StateMachineOptions options_;
  std::string blob_;
  Dump new_dump_;
  Dump old_dump_;
};

TEST_F(KvDirTest, OpenCreatesLayout) {
  {
    auto dir = KvDir::Open(&env_, "/data/kv/");
    ASSERT_OK(dir);
    EXPECT_EQ(dir->root(), kRoot);
    EXPECT_EQ(dir->current_name(), "engine-000001");
    EXPECT_EQ(dir->current_path(), "/data/kv/engine-000001");
    auto current = ReadFileToString(&env_, "/data/kv/CURRENT");
    ASSERT_OK(current);
    EXPECT_EQ(*current, "engine-000001\n");
    EXPECT_TRUE(env_.FileExists("/data/kv/engine-000001"));
    EXPECT_OK(dir->error());
  }
  auto again = KvDir::Open(&env_, kRoot);
  ASSERT_OK(again);
  EXPECT_EQ(again->current_name(), "engine-000001");
}

TEST_F(KvDirTest, OpenIsExclusive) {
  auto dir = KvDir::Open(&env_, kRoot);
  ASSERT_OK(dir);
  EXPECT_TRUE(KvDir::Open(&env_, kRoot).status().IsBusy());
}

TEST_F(KvDirTest, EngineDirNames) {
  EXPECT_EQ(EngineDirName(1), "engine-000001");
  EXPECT_EQ(EngineDirName(1234567), "engine-1234567");
  EXPECT_EQ(ParseEngineDirName("engine-000042"), 42u);
  EXPECT_EQ(ParseEngineDirName("engine-1234567"), 1234567u);
  for (const char* bad : {"engine-", "engine-1", "engine-000000", "engine-0000001", "engine-00001x",
                          "engine-+00001", "Engine-000001", "engine-99999999999999999999999", "CURRENT"}) {
    EXPECT_EQ(ParseEngineDirName(bad), 0u) << bad;
  }
}

TEST_F(KvDirTest, OpenRemovesLeftovers) {
  {
    auto dir = KvDir::Open(&env_, kRoot);
    ASSERT_OK(dir);
    WriteOldState(&env_, *dir);
  }
  // An install that crashed before its switch: a full engine directory, a
  // temporary CURRENT, and an empty directory.
  {
    auto engine = storage::Engine::Open(test::NodeEngineOptions(&env_), "/data/kv/engine-000007");
    ASSERT_OK(engine);
    ASSERT_OK((*engine)->Put("k", "v"));
  }
  ASSERT_OK(env_.CreateDir("/data/kv/engine-000003"));
  ASSERT_OK(WriteFileAtomically(&env_, "/data/kv/CURRENT.tmp", "engine-000007\n", true));
  ASSERT_OK(env_.CreateDir("/data/kv/unrelated"));

  std::vector<std::string> lines;
  log::SetLevel(log::Level::kInfo);
  log::SetSink([&](log::Level, std::string_view line) { lines.emplace_back(line); });
  auto dir = KvDir::Open(&env_, kRoot);
  log::SetSink({});
  log::SetLevel(log::Level::kOff);
  ASSERT_OK(dir);
  EXPECT_EQ(dir->current_name(), "engine-000001");
  EXPECT_EQ(EngineDirs(&env_), std::vector<std::string>{"engine-000001"});
  EXPECT_FALSE(env_.FileExists("/data/kv/CURRENT.tmp"));
  EXPECT_TRUE(env_.FileExists("/data/kv/unrelated"));  // not ours: left alone
  int removed = 0;
  for (const std::string& line : lines) {
    if (line.find("event=kv_remove_stale") != std::string::npos) ++removed;
  }
  EXPECT_EQ(removed, 2);
  EXPECT_EQ(DumpAt(&env_, dir->current_path()), old_dump_);
}

TEST_F(KvDirTest, OpenAfterAFirstOpenCrashed) {
  // CreateDir of kv/ and of the first engine directory made it, CURRENT not.
  ASSERT_OK(env_.CreateDir(kRoot));
  ASSERT_OK(env_.CreateDir("/data/kv/engine-000001"));
  ASSERT_OK(env_.CreateDir("/data/kv/engine-000002"));
  ASSERT_OK(WriteFileAtomically(&env_, "/data/kv/CURRENT.tmp", "engine-0", false));
  auto dir = KvDir::Open(&env_, kRoot);
  ASSERT_OK(dir);
  EXPECT_EQ(dir->current_name(), "engine-000001");
  EXPECT_EQ(EngineDirs(&env_), std::vector<std::string>{"engine-000001"});
}

TEST_F(KvDirTest, OpenRefusesDamage) {
  {
    auto dir = KvDir::Open(&env_, kRoot);
    ASSERT_OK(dir);
    WriteOldState(&env_, *dir);
  }
  for (const char* bad : {"", "engine-000001", "engine-1\n", "engine-000001\n\n", "engine-000009\n", "junk\n"}) {
    ASSERT_OK(WriteFileAtomically(&env_, "/data/kv/CURRENT", bad, false));
    auto dir = KvDir::Open(&env_, kRoot);
    EXPECT_TRUE(dir.status().IsCorruption()) << "'" << bad << "': " << dir.status().ToString();
  }
  // CURRENT gone while the engine holds data: which engine is live is
  // unknown, so nothing is removed.
  ASSERT_OK(env_.DeleteFile("/data/kv/CURRENT"));
  auto dir = KvDir::Open(&env_, kRoot);
  EXPECT_TRUE(dir.status().IsCorruption()) << dir.status().ToString();
  EXPECT_EQ(DumpAt(&env_, "/data/kv/engine-000001"), old_dump_);
}

TEST_F(KvDirTest, InstallWithTheOldEngineClosed) {
  auto dir = KvDir::Open(&env_, kRoot);
  ASSERT_OK(dir);
  WriteOldState(&env_, *dir);
  auto path = dir->InstallSnapshot(blob_, test::NodeEngineOptions(&env_));
  ASSERT_OK(path);
  EXPECT_EQ(*path, "/data/kv/engine-000002");
  EXPECT_EQ(EngineDirs(&env_), std::vector<std::string>{"engine-000002"});
  auto current = ReadFileToString(&env_, "/data/kv/CURRENT");
  ASSERT_OK(current);
  EXPECT_EQ(*current, "engine-000002\n");
  EXPECT_EQ(DumpAt(&env_, *path), new_dump_);
}

TEST_F(KvDirTest, InstallWithTheOldEngineOpen) {
  auto dir = KvDir::Open(&env_, kRoot);
  ASSERT_OK(dir);
  WriteOldState(&env_, *dir);
  Replica old;
  ASSERT_OK(old.Open(&env_, dir->current_path(), options_));
  const LogIndex old_applied = old.sm->applied_index();

  auto path = dir->InstallSnapshot(blob_, test::NodeEngineOptions(&env_));
  ASSERT_OK(path);
  // The old engine serves on, untouched, until the node closes it.
  EXPECT_EQ(EngineDirs(&env_), (std::vector<std::string>{"engine-000001", "engine-000002"}));
  EXPECT_EQ(test::DumpEngine(old.engine.get()), old_dump_);
  EXPECT_EQ(old.sm->applied_index(), old_applied);
  ASSERT_OK(dir->RemoveStale());  // still open: kept
  EXPECT_EQ(EngineDirs(&env_).size(), 2u);

  ASSERT_OK(old.Close());
  Replica next;
  ASSERT_OK(next.Open(&env_, *path, options_));
  EXPECT_EQ(test::DumpEngine(next.engine.get()), new_dump_);
  ASSERT_OK(dir->RemoveStale());
  EXPECT_EQ(EngineDirs(&env_), std::vector<std::string>{"engine-000002"});
}

TEST_F(KvDirTest, SuccessiveInstallsKeepOneDirectory) {
  auto dir = KvDir::Open(&env_, kRoot);
  ASSERT_OK(dir);
  for (uint64_t i = 2; i <= 5; ++i) {
    auto path = dir->InstallSnapshot(blob_, test::NodeEngineOptions(&env_));
    ASSERT_OK(path);
    EXPECT_EQ(*path, JoinPath(kRoot, EngineDirName(i)));
    EXPECT_EQ(EngineDirs(&env_), std::vector<std::string>{EngineDirName(i)});
  }
  dir = Status::Aborted("close");  // releases the lock
  auto reopened = KvDir::Open(&env_, kRoot);
  ASSERT_OK(reopened);
  EXPECT_EQ(reopened->current_name(), "engine-000005");
  EXPECT_EQ(DumpAt(&env_, reopened->current_path()), new_dump_);
}

TEST_F(KvDirTest, RefusedBlobsChangeNothing) {
  auto dir = KvDir::Open(&env_, kRoot);
  ASSERT_OK(dir);
  WriteOldState(&env_, *dir);
  const auto before = Listing(&env_, kRoot);
  const auto expect_unchanged = [&](const std::string& blob, StatusCode code, const std::string& what) {
    auto r = dir->InstallSnapshot(blob, test::NodeEngineOptions(&env_));
    ASSERT_EQ(r.status().code(), code) << what << ": " << r.status().ToString();
    ASSERT_EQ(Listing(&env_, kRoot), before) << what;
    ASSERT_EQ(dir->current_name(), "engine-000001") << what;
  };
  for (size_t n = 0; n < blob_.size(); n += 1 + n / 50) {
    expect_unchanged(blob_.substr(0, n), StatusCode::kCorruption, "prefix " + std::to_string(n));
  }
  Random rnd(test::TestSeed(3));
  for (int i = 0; i < 300; ++i) {
    std::string b = blob_;
    const size_t at = rnd.Uniform(b.size());
    b[at] = static_cast<char>(b[at] ^ (1 << rnd.Uniform(8)));
    expect_unchanged(b, StatusCode::kCorruption, "flip at " + std::to_string(at));
  }
  std::string newer = blob_;
  EncodeFixed32(newer.data() + 8, kSnapshotFormatVersion + 1);
  test::FixHeaderCrc(&newer);
  test::FixWholeCrc(&newer);
  expect_unchanged(newer, StatusCode::kNotSupported, "newer version");

  // Records the engine options would refuse.
  storage::Options small = test::NodeEngineOptions(&env_);
  small.value_size_max = 8;
  auto r = dir->InstallSnapshot(blob_, small);
  EXPECT_TRUE(r.status().IsInvalidArgument()) << r.status().ToString();
  EXPECT_EQ(Listing(&env_, kRoot), before);
  EXPECT_EQ(DumpAt(&env_, dir->current_path()), old_dump_);
}

// A transient I/O error at each mutating operation of an install in turn.
// Whatever the install answered, the directory reopens (without a crash) on
// exactly the old or the new state: the old after an error before the
// switch, the new after success or after an error once CURRENT was renamed.
TEST_F(KvDirTest, IOErrorAtEveryOperation) {
  uint64_t points = 0;
  int refused_before_switch = 0, failed_switch = 0, installed_with_error_after = 0;
  for (uint64_t k = 0;; ++k) {
    SCOPED_TRACE("failing operation " + std::to_string(k));
    FaultEnv env;
    ASSERT_OK(env.CreateDir("/data"));
    auto dir = KvDir::Open(&env, kRoot);
    ASSERT_OK(dir);
    WriteOldState(&env, *dir);
    env.FailAfter(k, FaultOp::kMutating, Status::IOError("injected"), FaultMode::kOneShot);
    auto path = dir->InstallSnapshot(blob_, test::NodeEngineOptions(&env));
    const bool injected = env.InjectedFailureCount() > 0;
    env.ClearFaults();

    bool want_new = path.ok();
    if (!path.ok()) {
      EXPECT_EQ(path.status().code(), StatusCode::kIOError) << path.status().ToString();
      // After a failed switch the KvDir refuses to go on; otherwise it may
      // be used again, and the old engine is still the live one.
      want_new = !dir->error().ok();
      ++(want_new ? failed_switch : refused_before_switch);
      if (want_new) {
        EXPECT_EQ(dir->InstallSnapshot(blob_, test::NodeEngineOptions(&env)).status(), dir->error());
        EXPECT_EQ(dir->RemoveStale(), dir->error());
      } else {
        EXPECT_EQ(dir->current_name(), "engine-000001");
      }
    } else if (injected) {
      ++installed_with_error_after;  // removing the old directory failed
    }
    dir = Status::Aborted("closed");
    auto reopened = KvDir::Open(&env, kRoot);
    ASSERT_OK(reopened);
    EXPECT_EQ(reopened->current_name(), want_new ? "engine-000002" : "engine-000001");
    EXPECT_EQ(EngineDirs(&env), std::vector<std::string>{reopened->current_name()});
    EXPECT_EQ(DumpAt(&env, reopened->current_path()), want_new ? new_dump_ : old_dump_);
    if (HasFailure()) return;
    ++points;
    if (!injected) break;
  }
  EXPECT_GT(points, 20u);
  EXPECT_GT(refused_before_switch, 10);
  EXPECT_EQ(failed_switch, 1);  // the sync of kv/ after the rename
  EXPECT_GT(installed_with_error_after, 0);
}

}  // namespace
}  // namespace rkv
