// raft-kv-check and raft-kv-dump on real data directories: intact, with a
// torn tail, and with corruption before the tail.
#include <sys/wait.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "storage/engine.h"
#include "storage/record_format.h"
#include "support/test_util.h"
#include "wal/wal.h"

namespace rkv {
namespace {

namespace fs = std::filesystem;

struct ToolRun {
  int exit_code;
  std::string output;
};

ToolRun RunTool(const std::string& tool, const std::string& args) {
  const std::string cmd = std::string(RKV_BIN_DIR) + "/" + tool + " " + args + " 2>&1";
  ToolRun run{-1, {}};
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return run;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) run.output.append(buf, n);
  const int status = pclose(p);
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return run;
}

class ToolsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    storage::Options options;
    options.data_file_size_max = 1024;
    options.background_merge = false;
    auto engine = storage::Engine::Open(options, dir_.path());
    ASSERT_OK(engine);
    for (int i = 0; i < 60; ++i) ASSERT_OK((*engine)->Put("key" + std::to_string(i), std::string(30, 'v')));
    ASSERT_OK((*engine)->Delete("key7"));
    ASSERT_OK((*engine)->Close());
    for (const auto& e : fs::directory_iterator(dir_.path())) {
      if (e.path().extension() == ".data") data_files_.push_back(e.path());
    }
    std::sort(data_files_.begin(), data_files_.end());
    ASSERT_GT(data_files_.size(), 2u);
  }

  test::TempDir dir_;
  std::vector<std::string> data_files_;
};

TEST_F(ToolsTest, CheckReportsAnIntactDirectory) {
  ToolRun r = RunTool("raft-kv-check", dir_.path());
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("61 records: intact"), std::string::npos) << r.output;
}

TEST_F(ToolsTest, CheckTellsATornTailFromCorruption) {
  { std::ofstream(data_files_.back(), std::ios::app) << "torn"; }
  ToolRun torn = RunTool("raft-kv-check", dir_.path());
  EXPECT_EQ(torn.exit_code, 1) << torn.output;
  EXPECT_NE(torn.output.find("TORN"), std::string::npos) << torn.output;

  {
    std::fstream f(data_files_.front(), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(storage::kFileHeaderSize + 10));
    f.put('\x7f');
  }
  ToolRun bad = RunTool("raft-kv-check", dir_.path());
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
  EXPECT_NE(bad.output.find("CORRUPT " + data_files_.front()), std::string::npos) << bad.output;
  EXPECT_NE(bad.output.find("offset 32"), std::string::npos) << bad.output;
}

TEST_F(ToolsTest, DumpPrintsRecordsAndHints) {
  ToolRun data = RunTool("raft-kv-dump", data_files_.front() + " --values --max-bytes 8");
  EXPECT_EQ(data.exit_code, 0) << data.output;
  EXPECT_NE(data.output.find("offset=32 type=put seq=1 key=\"key0\" value_bytes=30 value=\"vvvvvvvv...\""),
            std::string::npos)
      << data.output;
  std::string hint = data_files_.front();
  hint.replace(hint.size() - 5, 5, ".hint");
  ToolRun h = RunTool("raft-kv-dump", hint);
  EXPECT_EQ(h.exit_code, 0) << h.output;
  EXPECT_NE(h.output.find("offset=32 type=put seq=1"), std::string::npos) << h.output;
  ToolRun missing = RunTool("raft-kv-dump", dir_.Join("nope.data"));
  EXPECT_EQ(missing.exit_code, 2) << missing.output;
}

TEST(WalDumpTest, DumpPrintsLogSegmentsAndStopsAtATornTail) {
  test::TempDir dir;
  wal::WalOptions options;
  options.bootstrap = raft::Configuration{{NodeId{1}, NodeId{2}, NodeId{3}}, {}};
  {
    auto log = wal::Wal::Open(Env::Posix(), dir.path(), options);
    ASSERT_OK(log);
    std::vector<raft::Entry> entries;
    for (uint64_t i = 1; i <= 3; ++i) {
      entries.push_back(raft::Entry{Term{2}, LogIndex{i}, raft::EntryType::kNormal, "cmd" + std::to_string(i)});
    }
    ASSERT_OK((*log)->Save({}, entries, raft::HardState{Term{2}, NodeId{1}, LogIndex{2}}));
    ASSERT_OK((*log)->Sync());
    ASSERT_OK((*log)->Close());
  }
  std::string segment;
  for (const auto& e : fs::directory_iterator(dir.path())) {
    if (e.path().extension() == ".wal") segment = e.path();
  }
  ASSERT_FALSE(segment.empty());
  ToolRun r = RunTool("raft-kv-dump", segment + " --values");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("type=hard_state term=2 vote=1 commit=2"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("index=3 term=2 entry=normal data_bytes=4 data=\"cmd3\""), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("batch_end=1"), std::string::npos) << r.output;

  // Garbage after the last record (where preallocated zeros would be) is a
  // stop, reported with its offset.
  const auto size = fs::file_size(segment);
  {
    std::fstream f(segment, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(size));
    f << "torn-tail-bytes";
  }
  ToolRun torn = RunTool("raft-kv-dump", segment);
  EXPECT_EQ(torn.exit_code, 1) << torn.output;
  EXPECT_NE(torn.output.find("# stopped at offset"), std::string::npos) << torn.output;
}

TEST(NodeCheckTest, ChecksTheEngineNamedByCurrentAndTheRaftLog) {
  // A node's data directory: kv/CURRENT names the engine, wal/ holds the log.
  test::TempDir dir;
  ASSERT_TRUE(fs::create_directories(dir.Join("kv/engine-000002")));
  {
    std::ofstream(dir.Join("kv/CURRENT")) << "engine-000002\n";
    storage::Options options;
    options.background_merge = false;
    auto engine = storage::Engine::Open(options, dir.Join("kv/engine-000002"));
    ASSERT_OK(engine);
    ASSERT_OK((*engine)->Put("k", "v"));
    ASSERT_OK((*engine)->Close());
  }
  wal::WalOptions options;
  options.bootstrap = raft::Configuration{{NodeId{1}}, {}};
  {
    auto log = wal::Wal::Open(Env::Posix(), dir.Join("wal"), options);
    ASSERT_OK(log);
    ASSERT_OK((*log)->Save({}, {raft::Entry{Term{1}, LogIndex{1}, raft::EntryType::kNormal, "x"}},
                           raft::HardState{Term{1}, NodeId{1}, LogIndex{1}}));
    ASSERT_OK((*log)->Close());
  }
  ToolRun ok = RunTool("raft-kv-check", dir.path());
  EXPECT_EQ(ok.exit_code, 0) << ok.output;
  EXPECT_NE(ok.output.find("engine-000002"), std::string::npos) << ok.output;
  EXPECT_NE(ok.output.find("1 data files, 1 records: intact"), std::string::npos) << ok.output;
  EXPECT_NE(ok.output.find("1 log segments"), std::string::npos) << ok.output;

  // Damage at the end of the newest log segment is a torn tail.
  std::string segment;
  for (const auto& e : fs::directory_iterator(dir.Join("wal"))) {
    if (e.path().extension() == ".wal") segment = e.path();
  }
  ASSERT_FALSE(segment.empty());
  {
    std::fstream f(segment, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(fs::file_size(segment)));
    f << "torn-tail-bytes";
  }
  ToolRun torn = RunTool("raft-kv-check", dir.path());
  EXPECT_EQ(torn.exit_code, 1) << torn.output;
  EXPECT_NE(torn.output.find("TORN"), std::string::npos) << torn.output;

  // A CURRENT that names no directory is corruption.
  std::ofstream(dir.Join("kv/CURRENT")) << "../elsewhere\n";
  ToolRun bad = RunTool("raft-kv-check", dir.path());
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
}

}  // namespace
}  // namespace rkv
