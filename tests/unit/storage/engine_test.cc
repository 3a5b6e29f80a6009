// Behaviour of the Bitcask engine on the real file system: the contract of
// storage/engine.h, recovery rules of docs/formats/data-file.md, merge, views.
#include "storage/engine.h"

#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <mutex>
#include <vector>

#include "common/clock.h"
#include "common/logging.h"
#include "env/env.h"
#include "storage/record_format.h"
#include "support/test_util.h"

namespace rkv::storage {
namespace {

namespace fs = std::filesystem;

class EngineTest : public ::testing::Test {
 protected:
  EngineTest() {
    options_.background_merge = false;
    options_.sync_mode = SyncMode::kNone;
  }

  void Open() {
    engine_.reset();
    auto e = Engine::Open(options_, dir_.path());
    ASSERT_TRUE(e.ok()) << e.status().ToString();
    engine_ = std::move(*e);
  }
  void Reopen() {
    ASSERT_OK(engine_->Close());
    Open();
  }
  std::string Get(std::string_view key) {
    std::string v;
    Status s = engine_->Get(key, &v);
    if (s.IsNotFound()) return "NOT_FOUND";
    if (!s.ok()) return "ERROR: " + s.ToString();
    return v;
  }
  std::vector<std::string> Files(std::string_view suffix) {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir_.path())) {
      const std::string name = e.path().filename();
      if (name.size() > suffix.size() && name.substr(name.size() - suffix.size()) == suffix) out.push_back(e.path());
    }
    std::sort(out.begin(), out.end());
    return out;
  }
  // Overwrites one byte of a file in place.
  void CorruptByte(const std::string& path, uint64_t offset) {
    int fd = ::open(path.c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    char c;
    ASSERT_EQ(::pread(fd, &c, 1, static_cast<off_t>(offset)), 1);
    c = static_cast<char>(c ^ 0x5a);
    ASSERT_EQ(::pwrite(fd, &c, 1, static_cast<off_t>(offset)), 1);
    ::close(fd);
  }

  test::TempDir dir_;
  Options options_;
  std::unique_ptr<Engine> engine_;
};

TEST_F(EngineTest, PutGetDeleteOverwrite) {
  Open();
  EXPECT_EQ(Get("a"), "NOT_FOUND");
  ASSERT_OK(engine_->Put("a", "1"));
  ASSERT_OK(engine_->Put("b", "2"));
  EXPECT_EQ(Get("a"), "1");
  ASSERT_OK(engine_->Put("a", "one"));
  EXPECT_EQ(Get("a"), "one");
  ASSERT_OK(engine_->Delete("a"));
  EXPECT_EQ(Get("a"), "NOT_FOUND");
  ASSERT_OK(engine_->Delete("never-existed"));
  EXPECT_EQ(Get("b"), "2");
  ASSERT_OK(engine_->Put("empty", ""));
  EXPECT_EQ(Get("empty"), "");
  Stats st = engine_->GetStats();
  EXPECT_EQ(st.keys, 2u);
  EXPECT_EQ(st.writes, 5u) << "deleting an absent key writes nothing";
}

TEST_F(EngineTest, RejectsBadInputWithoutWriting) {
  options_.key_size_max = 8;
  options_.value_size_max = 16;
  Open();
  EXPECT_TRUE(engine_->Put("", "v").IsInvalidArgument());
  EXPECT_TRUE(engine_->Put("123456789", "v").IsInvalidArgument());
  EXPECT_TRUE(engine_->Put("k", std::string(17, 'x')).IsInvalidArgument());
  EXPECT_TRUE(engine_->Delete("").IsInvalidArgument());
  WriteBatch batch;
  batch.Put("ok", "v");
  batch.Put("k", std::string(17, 'x'));
  EXPECT_TRUE(engine_->Write(batch).IsInvalidArgument());
  EXPECT_EQ(Get("ok"), "NOT_FOUND") << "a batch with one bad op applies nothing";
  EXPECT_EQ(engine_->GetStats().writes, 0u);
  ASSERT_OK(engine_->Put("12345678", std::string(16, 'x')));
}

TEST_F(EngineTest, BinaryKeysAndValues) {
  Open();
  const std::string key("k\0\xff\n", 4), value("\0\0\r\n", 4);
  ASSERT_OK(engine_->Put(key, value));
  Reopen();
  EXPECT_EQ(Get(key), value);
}

class EngineSyncModeTest : public EngineTest, public ::testing::WithParamInterface<SyncMode> {};

TEST_P(EngineSyncModeTest, DataSurvivesReopen) {
  options_.sync_mode = GetParam();
  options_.data_file_size_max = 4096;
  Open();
  for (int i = 0; i < 300; ++i) ASSERT_OK(engine_->Put("key" + std::to_string(i), "value" + std::to_string(i)));
  for (int i = 0; i < 300; i += 3) ASSERT_OK(engine_->Delete("key" + std::to_string(i)));
  Reopen();
  for (int i = 0; i < 300; ++i) {
    EXPECT_EQ(Get("key" + std::to_string(i)), i % 3 == 0 ? "NOT_FOUND" : "value" + std::to_string(i)) << i;
  }
  EXPECT_GT(engine_->GetStats().data_files, 3u);
}

INSTANTIATE_TEST_SUITE_P(AllModes, EngineSyncModeTest,
                         ::testing::Values(SyncMode::kAlways, SyncMode::kGroup, SyncMode::kInterval,
                                           SyncMode::kNone),
                         [](const ::testing::TestParamInfo<SyncMode>& param_info) {
                           return std::string(SyncModeName(param_info.param));
                         });

TEST_F(EngineTest, AlwaysModeSyncsEveryWrite) {
  options_.sync_mode = SyncMode::kAlways;
  Open();
  const uint64_t before = engine_->GetStats().syncs;
  for (int i = 0; i < 10; ++i) ASSERT_OK(engine_->Put("k", "v"));
  EXPECT_EQ(engine_->GetStats().syncs - before, 10u);
}

TEST_F(EngineTest, WriteBatchAppliesEverything) {
  Open();
  ASSERT_OK(engine_->Put("gone", "x"));
  WriteBatch batch;
  batch.Put("a", "1");
  batch.Put("b", "2");
  batch.Delete("gone");
  batch.Put("a", "3");
  ASSERT_OK(engine_->Write(batch));
  EXPECT_EQ(Get("a"), "3");
  EXPECT_EQ(Get("b"), "2");
  EXPECT_EQ(Get("gone"), "NOT_FOUND");
  Reopen();
  EXPECT_EQ(Get("a"), "3");
  EXPECT_EQ(Get("gone"), "NOT_FOUND");
}

TEST_F(EngineTest, BatchCutOffByACrashIsDiscardedWhole) {
  Open();
  ASSERT_OK(engine_->Put("before", "ok"));
  WriteBatch batch;
  for (int i = 0; i < 5; ++i) batch.Put("batch" + std::to_string(i), std::string(50, 'v'));
  ASSERT_OK(engine_->Write(batch));
  ASSERT_OK(engine_->Close());
  engine_.reset();
  // Cut the file inside the batch: its records are there but not its commit.
  const std::string file = Files(".data").back();
  for (const auto& h : Files(".hint")) fs::remove(h);
  fs::resize_file(file, fs::file_size(file) - kRecordHeaderSize - 4 - 10);
  Open();
  EXPECT_EQ(Get("before"), "ok");
  for (int i = 0; i < 5; ++i) EXPECT_EQ(Get("batch" + std::to_string(i)), "NOT_FOUND");
  EXPECT_GT(engine_->GetStats().truncated_tail_bytes, 5u * 50);
}

TEST_F(EngineTest, ScanByRangePrefixAndLimit) {
  Open();
  for (const char* k : {"apple", "apricot", "banana", "blueberry", "cherry", "ap"}) {
    ASSERT_OK(engine_->Put(k, std::string("v-") + k));
  }
  ASSERT_OK(engine_->Delete("banana"));
  ScanOptions all;
  auto r = engine_->Scan(all);
  ASSERT_OK(r);
  std::vector<std::string> keys;
  for (const auto& kv : *r) keys.push_back(kv.key);
  EXPECT_EQ(keys, (std::vector<std::string>{"ap", "apple", "apricot", "blueberry", "cherry"}));
  EXPECT_EQ((*r)[1].value, "v-apple");

  ScanOptions prefix;
  prefix.prefix = "ap";
  prefix.keys_only = true;
  r = engine_->Scan(prefix);
  ASSERT_OK(r);
  ASSERT_EQ(r->size(), 3u);
  EXPECT_EQ((*r)[2].key, "apricot");
  EXPECT_EQ((*r)[2].value, "");

  ScanOptions range;
  range.start = "apple";
  range.end = "c";
  range.limit = 2;
  r = engine_->Scan(range);
  ASSERT_OK(r);
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].key, "apple");
  EXPECT_EQ((*r)[1].key, "apricot");

  // Keys added after a scan show up in the next one.
  ASSERT_OK(engine_->Put("aardvark", "1"));
  r = engine_->Scan(all);
  ASSERT_OK(r);
  EXPECT_EQ(r->front().key, "aardvark");
}

TEST_F(EngineTest, ExpiredKeysReadAsAbsent) {
  ManualClock clock(0, 1'000'000);
  options_.clock = &clock;
  Open();
  ASSERT_OK(engine_->Put("ttl", "v", PutOptions{1'000'500}));
  ASSERT_OK(engine_->Put("forever", "v"));
  EXPECT_EQ(Get("ttl"), "v");
  clock.AdvanceMicros(600'000);
  EXPECT_EQ(Get("ttl"), "NOT_FOUND");
  auto r = engine_->Scan(ScanOptions{});
  ASSERT_OK(r);
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0].key, "forever");
  Reopen();
  EXPECT_EQ(Get("ttl"), "NOT_FOUND");
}

TEST_F(EngineTest, SecondOpenOfADirectoryIsBusy) {
  Open();
  auto second = Engine::Open(options_, dir_.path());
  ASSERT_FALSE(second.ok());
  EXPECT_TRUE(second.status().IsBusy()) << second.status().ToString();
}

TEST_F(EngineTest, OpenUsesHintFilesAndFallsBackWhenTheyAreBad) {
  options_.data_file_size_max = 2048;
  Open();
  for (int i = 0; i < 200; ++i) ASSERT_OK(engine_->Put("key" + std::to_string(i), std::string(20, 'a')));
  ASSERT_OK(engine_->Close());
  engine_.reset();
  const size_t data_files = Files(".data").size();
  ASSERT_GT(data_files, 2u);
  ASSERT_EQ(Files(".hint").size(), data_files) << "every file has a hint after a clean close";

  Open();
  Stats st = engine_->GetStats();
  EXPECT_EQ(st.recovered_hint_files, data_files);
  EXPECT_EQ(st.recovered_scanned_files, 0u);
  EXPECT_EQ(st.keys, 200u);
  ASSERT_OK(engine_->Close());
  engine_.reset();

  // A damaged hint is ignored and its data file scanned; nothing is lost.
  CorruptByte(Files(".hint").front(), 40);
  Open();
  st = engine_->GetStats();
  EXPECT_EQ(st.recovered_scanned_files, 1u);
  EXPECT_EQ(st.keys, 200u);
  for (int i = 0; i < 200; ++i) EXPECT_EQ(Get("key" + std::to_string(i)), std::string(20, 'a'));
}

TEST_F(EngineTest, TornTailOfNewestFileIsTruncatedAndLogged) {
  Open();
  ASSERT_OK(engine_->Put("a", "1"));
  ASSERT_OK(engine_->Put("b", "2"));
  ASSERT_OK(engine_->Close());
  engine_.reset();
  for (const auto& h : Files(".hint")) fs::remove(h);
  const std::string file = Files(".data").back();
  const auto size = fs::file_size(file);
  {
    std::FILE* f = std::fopen(file.c_str(), "ab");
    std::fputs("garbage-from-a-torn-write", f);
    std::fclose(f);
  }
  std::vector<std::string> lines;
  std::mutex mu;
  log::SetSink([&](log::Level, std::string_view line) {
    std::lock_guard l(mu);
    lines.emplace_back(line);
  });
  Open();
  log::SetSink({});
  EXPECT_EQ(Get("a"), "1");
  EXPECT_EQ(Get("b"), "2");
  EXPECT_EQ(fs::file_size(file), size);
  EXPECT_EQ(engine_->GetStats().truncated_tail_bytes, 25u);
  bool logged = false;
  for (const auto& l : lines) logged |= l.find("event=truncate_tail") != std::string::npos && l.find("bytes=25") != std::string::npos;
  EXPECT_TRUE(logged);
  ASSERT_OK(engine_->Put("c", "3"));
  Reopen();
  EXPECT_EQ(Get("c"), "3");
}

TEST_F(EngineTest, CorruptionBeforeTheTailFailsOpenNamingFileAndOffset) {
  options_.data_file_size_max = 1024;
  Open();
  for (int i = 0; i < 100; ++i) ASSERT_OK(engine_->Put("key" + std::to_string(i), std::string(30, 'v')));
  ASSERT_OK(engine_->Close());
  engine_.reset();
  for (const auto& h : Files(".hint")) fs::remove(h);
  const std::string first = Files(".data").front();
  CorruptByte(first, kFileHeaderSize + 100);

  auto bad = Engine::Open(options_, dir_.path());
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(bad.status().IsCorruption());
  EXPECT_NE(bad.status().message().find(first), std::string::npos) << bad.status().ToString();
  EXPECT_NE(bad.status().message().find("offset"), std::string::npos);

  options_.salvage = true;
  Open();
  Stats st = engine_->GetStats();
  EXPECT_GT(st.salvaged_bytes, 0u);
  EXPECT_LT(st.keys, 100u);
  EXPECT_GT(st.keys, 80u);
}

TEST_F(EngineTest, GetOfADamagedRecordIsCorruptionNotAWrongValue) {
  Open();
  ASSERT_OK(engine_->Put("victim", std::string(100, 'v')));
  ASSERT_OK(engine_->Sync());
  CorruptByte(Files(".data").back(), kFileHeaderSize + kRecordHeaderSize + 6 + 50);
  std::string value;
  EXPECT_TRUE(engine_->Get("victim", &value).IsCorruption());
}

TEST_F(EngineTest, MergeReclaimsDeadBytesAndKeepsEveryLiveValue) {
  options_.data_file_size_max = 4096;
  options_.merge_dead_bytes_min = 0;
  Open();
  std::map<std::string, std::string> model;
  for (int round = 0; round < 10; ++round) {
    for (int i = 0; i < 50; ++i) {
      std::string k = "key" + std::to_string(i);
      std::string v = "round" + std::to_string(round) + "-" + std::string(static_cast<size_t>(i % 7 * 10), 'x');
      ASSERT_OK(engine_->Put(k, v));
      model[k] = v;
    }
  }
  for (int i = 0; i < 50; i += 5) {
    ASSERT_OK(engine_->Delete("key" + std::to_string(i)));
    model.erase("key" + std::to_string(i));
  }
  Stats before = engine_->GetStats();
  ASSERT_OK(engine_->Merge());
  Stats after = engine_->GetStats();
  EXPECT_EQ(after.merges, 1u);
  EXPECT_LT(after.data_bytes, before.data_bytes / 2);
  EXPECT_LT(after.data_files, before.data_files);
  EXPECT_EQ(after.pinned_files, 0u);
  auto check = [&] {
    for (int i = 0; i < 50; ++i) {
      std::string k = "key" + std::to_string(i);
      auto it = model.find(k);
      EXPECT_EQ(Get(k), it == model.end() ? "NOT_FOUND" : it->second) << k;
    }
  };
  check();
  Reopen();
  check();
  EXPECT_EQ(engine_->GetStats().keys, model.size());
}

TEST_F(EngineTest, MergeNeverResurrectsDeletedKeys) {
  options_.data_file_size_max = 1024;
  options_.merge_dead_bytes_min = 0;
  Open();
  // Old files hold values; a later file holds their tombstones and a lot of
  // garbage, so merge picks the later file but not the old ones.
  for (int i = 0; i < 20; ++i) ASSERT_OK(engine_->Put("old" + std::to_string(i), std::string(40, 'o')));
  for (int i = 0; i < 20; ++i) ASSERT_OK(engine_->Delete("old" + std::to_string(i)));
  for (int i = 0; i < 100; ++i) ASSERT_OK(engine_->Put("churn", std::string(40, 'c')));
  ASSERT_OK(engine_->Merge());
  Reopen();
  for (int i = 0; i < 20; ++i) EXPECT_EQ(Get("old" + std::to_string(i)), "NOT_FOUND") << i;
  ASSERT_OK(engine_->Merge());
  Reopen();
  for (int i = 0; i < 20; ++i) EXPECT_EQ(Get("old" + std::to_string(i)), "NOT_FOUND") << i;
  EXPECT_EQ(Get("churn"), std::string(40, 'c'));
}

TEST_F(EngineTest, MergeRespectsItsByteRateCap) {
  options_.data_file_size_max = 16 * 1024;
  options_.merge_dead_bytes_min = 0;
  options_.merge_bytes_per_second_max = 128 * 1024;
  Open();
  // About 64 KiB of dead records in files merge will pick: at least 0.4 s.
  for (int i = 0; i < 1000; ++i) ASSERT_OK(engine_->Put("k" + std::to_string(i % 500), std::string(100, 'x')));
  ASSERT_OK(engine_->Put("roll", std::string(16 * 1024 - 100, 'r')));
  const auto start = std::chrono::steady_clock::now();
  ASSERT_OK(engine_->Merge());
  const auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_EQ(engine_->GetStats().merges, 1u);
  // Only a lower bound: the cap may slow merge down, never speed it up.
  EXPECT_GE(elapsed, std::chrono::milliseconds(300));
  EXPECT_EQ(Get("k7"), std::string(100, 'x'));
}

TEST_F(EngineTest, ViewSeesItsMomentAndPinsFilesAgainstMerge) {
  options_.data_file_size_max = 2048;
  options_.merge_dead_bytes_min = 0;
  Open();
  for (int i = 0; i < 60; ++i) ASSERT_OK(engine_->Put("k" + std::to_string(i), "old"));
  auto view = engine_->CreateView();
  ASSERT_OK(view);
  for (int i = 0; i < 60; ++i) ASSERT_OK(engine_->Put("k" + std::to_string(i), "new"));
  ASSERT_OK(engine_->Put("later", "x"));
  ASSERT_OK(engine_->Merge());
  Stats st = engine_->GetStats();
  EXPECT_GT(st.pinned_files, 0u);
  for (const auto& f : (*view)->files()) EXPECT_TRUE(fs::exists(f.data_path)) << f.data_path;

  int count = 0;
  ASSERT_OK((*view)->ForEach([&](std::string_view key, std::string_view value) {
    EXPECT_EQ(value, "old") << key;
    EXPECT_NE(key, "later");
    ++count;
    return true;
  }));
  EXPECT_EQ(count, 60);
  const auto files = (*view)->files();
  view->reset();
  EXPECT_EQ(engine_->GetStats().pinned_files, 0u);
  size_t gone = 0;
  for (const auto& f : files) if (!fs::exists(f.data_path)) ++gone;
  EXPECT_GT(gone, 0u) << "released files are deleted";
  EXPECT_EQ(Get("k5"), "new");
}

TEST_F(EngineTest, ClosedEngineRefusesWork) {
  Open();
  ASSERT_OK(engine_->Close());
  EXPECT_EQ(engine_->Put("a", "b").code(), StatusCode::kShuttingDown);
  ASSERT_OK(engine_->Close());
}

}  // namespace
}  // namespace rkv::storage
