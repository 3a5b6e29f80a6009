// Readers, writers and merge at the same time. Each writer owns its keys and
// writes increasing versions; readers check that every value they see is well
// formed and that, per key, versions never go backwards. Run under TSan by
// `make test-tsan`.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "storage/engine.h"
#include "support/test_util.h"

namespace rkv::storage {
namespace {

std::string ValueFor(int writer, int key, int version) {
  return std::to_string(writer) + ":" + std::to_string(key) + ":" + std::to_string(version) + ":" +
         std::string(static_cast<size_t>(version % 50), 'p');
}

TEST(EngineConcurrencyTest, ReadersWritersAndMergeTogether) {
  test::TempDir dir;
  Options options;
  options.sync_mode = SyncMode::kNone;  // group commit has its own test below
  options.data_file_size_max = 16 * 1024;
  options.merge_dead_bytes_min = 0;
  options.background_merge = false;
  auto opened = Engine::Open(options, dir.path());
  ASSERT_OK(opened);
  std::unique_ptr<Engine> engine = std::move(*opened);

  constexpr int kWriters = 3, kReaders = 3, kKeys = 40, kVersions = 120;
  std::atomic<bool> done{false};
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      for (int v = 1; v <= kVersions; ++v) {
        for (int k = 0; k < kKeys; ++k) {
          const std::string key = "w" + std::to_string(w) + "k" + std::to_string(k);
          Status s = (v % 10 == 5) ? engine->Delete(key) : engine->Put(key, ValueFor(w, k, v));
          if (!s.ok()) failures++;
        }
      }
    });
  }
  for (int r = 0; r < kReaders; ++r) {
    threads.emplace_back([&] {
      std::vector<int> last(kWriters * kKeys, 0);
      std::string value;
      while (!done.load()) {
        for (int w = 0; w < kWriters; ++w) {
          for (int k = 0; k < kKeys; ++k) {
            const std::string key = "w" + std::to_string(w) + "k" + std::to_string(k);
            Status s = engine->Get(key, &value);
            if (s.IsNotFound()) continue;
            if (!s.ok()) {
              failures++;
              continue;
            }
            int ww, kk, vv;
            if (std::sscanf(value.c_str(), "%d:%d:%d:", &ww, &kk, &vv) != 3 || ww != w || kk != k ||
                value != ValueFor(w, k, vv) || vv < last[static_cast<size_t>(w * kKeys + k)]) {
              failures++;
            }
            last[static_cast<size_t>(w * kKeys + k)] = vv;
          }
        }
      }
    });
  }
  threads.emplace_back([&] {
    while (!done.load()) {
      if (!engine->Merge().ok()) failures++;
      auto scan = engine->Scan(ScanOptions{});
      if (!scan.ok()) failures++;
    }
  });
  for (int w = 0; w < kWriters; ++w) threads[static_cast<size_t>(w)].join();
  done = true;
  for (size_t i = kWriters; i < threads.size(); ++i) threads[i].join();
  EXPECT_EQ(failures.load(), 0);

  ASSERT_OK(engine->Close());
  engine.reset();
  opened = Engine::Open(options, dir.path());
  ASSERT_OK(opened);
  engine = std::move(*opened);
  for (int w = 0; w < kWriters; ++w) {
    for (int k = 0; k < kKeys; ++k) {
      auto v = engine->Get("w" + std::to_string(w) + "k" + std::to_string(k));
      ASSERT_OK(v);
      EXPECT_EQ(*v, ValueFor(w, k, kVersions));
    }
  }
  EXPECT_GT(engine->GetStats().data_files, 0u);
}

TEST(EngineConcurrencyTest, GroupCommitSharesSyncsBetweenWriters) {
  test::TempDir dir;
  Options options;
  options.sync_mode = SyncMode::kGroup;
  options.background_merge = false;
  auto opened = Engine::Open(options, dir.path());
  ASSERT_OK(opened);
  std::unique_ptr<Engine> engine = std::move(*opened);
  const uint64_t before = engine->GetStats().syncs;
  constexpr int kThreads = 16, kWrites = 50;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kWrites; ++i) {
        if (!engine->Put("t" + std::to_string(t) + "-" + std::to_string(i), "v").ok()) failures++;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  const uint64_t syncs = engine->GetStats().syncs - before;
  EXPECT_GE(syncs, 1u);
  // Every write is durable on return, yet writers shared syncs.
  EXPECT_LT(syncs, static_cast<uint64_t>(kThreads * kWrites));
}

}  // namespace
}  // namespace rkv::storage
