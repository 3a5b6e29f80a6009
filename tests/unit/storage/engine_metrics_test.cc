// The engine's metrics: what CollectMetrics exports, checked through a
// Registry scrape and the strict text parser against GetStats and against
// what the test did; the merge start and finish log lines.
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "storage/engine.h"
#include "support/prometheus_text.h"
#include "support/test_util.h"

namespace rkv::storage {
namespace {

using test::PrometheusFamily;
using test::SampleValue;

// Moves `step` microseconds on every read of the monotonic time, so a merge
// (timed by two reads, with no rate limit) takes exactly `step`.
class SteppingClock final : public Clock {
 public:
  explicit SteppingClock(int64_t step) : step_(step) {}
  int64_t NowMicros() const override { return now_.fetch_add(step_) + step_; }
  int64_t WallMillis() const override { return 1'700'000'000'000; }

 private:
  const int64_t step_;
  mutable std::atomic<int64_t> now_{0};
};

std::vector<PrometheusFamily> Scrape(const Engine& engine) {
  metrics::Registry registry;
  registry.AddCollector([&engine](metrics::Registry::Collector& out) { engine.CollectMetrics(out); });
  const std::string text = registry.Render();
  auto parsed = test::ParsePrometheusText(text);
  EXPECT_TRUE(parsed.ok()) << parsed.status().ToString() << "\n" << text;
  return parsed.ok() ? std::move(*parsed) : std::vector<PrometheusFamily>{};
}

class EngineMetricsTest : public ::testing::Test {
 protected:
  EngineMetricsTest() {
    options_.background_merge = false;
    options_.sync_mode = SyncMode::kNone;
    options_.data_file_size_max = 4096;
    options_.merge_dead_bytes_min = 0;
    options_.clock = &clock_;
  }
  void SetUp() override { log::SetLevel(log::Level::kWarn); }
  void TearDown() override {
    log::SetSink({});
    log::SetLevel(log::Level::kInfo);
  }

  void Open() {
    auto e = Engine::Open(options_, dir_.path());
    ASSERT_TRUE(e.ok()) << e.status().ToString();
    engine_ = std::move(*e);
  }

  // Ten rounds over 50 keys, then every fifth key deleted: most of the
  // older files is dead.
  void Churn() {
    for (int round = 0; round < 10; ++round) {
      for (int i = 0; i < 50; ++i) {
        ASSERT_OK(engine_->Put("key" + std::to_string(i), "round" + std::to_string(round) +
                                                              std::string(static_cast<size_t>(i % 7 * 10), 'x')));
      }
    }
    for (int i = 0; i < 50; i += 5) ASSERT_OK(engine_->Delete("key" + std::to_string(i)));
  }

  // The gauges agree with GetStats.
  void ExpectMatchesStats(const std::vector<PrometheusFamily>& m) {
    const Stats s = engine_->GetStats();
    EXPECT_EQ(SampleValue(m, "raft_kv_engine_keys"), s.keys);
    EXPECT_EQ(SampleValue(m, "raft_kv_engine_data_files"), s.data_files);
    EXPECT_EQ(SampleValue(m, "raft_kv_engine_dead_bytes"), s.dead_bytes);
    EXPECT_EQ(SampleValue(m, "raft_kv_engine_live_bytes"), s.data_bytes - s.dead_bytes);
    EXPECT_EQ(SampleValue(m, "raft_kv_engine_keydir_memory_bytes"), s.keydir_bytes);
    EXPECT_EQ(SampleValue(m, "raft_kv_engine_merges_total"), s.merges);
    EXPECT_EQ(SampleValue(m, "raft_kv_engine_merge_reclaimed_bytes_total"), s.merge_bytes_reclaimed);
    EXPECT_EQ(SampleValue(m, "raft_kv_engine_pinned_files"), s.pinned_files);
    EXPECT_EQ(SampleValue(m, "raft_kv_engine_records_written_total"), s.writes);
    EXPECT_EQ(SampleValue(m, "raft_kv_engine_fsyncs_total"), s.syncs);
  }

  SteppingClock clock_{30'000};  // a merge takes 30 ms
  test::TempDir dir_;
  Options options_;
  std::unique_ptr<Engine> engine_;
};

TEST_F(EngineMetricsTest, AFreshEngineIsEmpty) {
  Open();
  auto m = Scrape(*engine_);
  EXPECT_EQ(SampleValue(m, "raft_kv_engine_keys"), 0);
  EXPECT_EQ(SampleValue(m, "raft_kv_engine_data_files"), 1);  // the active file
  EXPECT_EQ(SampleValue(m, "raft_kv_engine_dead_bytes"), 0);
  EXPECT_EQ(SampleValue(m, "raft_kv_engine_merges_total"), 0);
  EXPECT_EQ(SampleValue(m, "raft_kv_engine_merge_duration_seconds_count"), 0);
  const PrometheusFamily* keys = test::FindFamily(m, "raft_kv_engine_keys");
  ASSERT_NE(keys, nullptr);
  EXPECT_EQ(keys->type, "gauge");
  EXPECT_FALSE(keys->help.empty());
  ExpectMatchesStats(m);
}

TEST_F(EngineMetricsTest, WritesAndAMergeShowInTheMetrics) {
  std::mutex mu;
  std::vector<std::string> lines;
  log::SetLevel(log::Level::kInfo);
  log::SetSink([&](log::Level, std::string_view line) {
    std::lock_guard lock(mu);
    if (line.starts_with("event=merge")) lines.emplace_back(line);
  });
  Open();
  Churn();
  auto before = Scrape(*engine_);
  EXPECT_EQ(SampleValue(before, "raft_kv_engine_keys"), 40);
  EXPECT_EQ(SampleValue(before, "raft_kv_engine_records_written_total"), 510);
  EXPECT_GT(SampleValue(before, "raft_kv_engine_data_files").value_or(0), 2);
  EXPECT_GT(SampleValue(before, "raft_kv_engine_dead_bytes").value_or(0), 0);
  EXPECT_GT(SampleValue(before, "raft_kv_engine_keydir_memory_bytes").value_or(0), 0);
  EXPECT_EQ(SampleValue(before, "raft_kv_engine_merges_total"), 0);
  ExpectMatchesStats(before);

  ASSERT_OK(engine_->Merge());
  auto after = Scrape(*engine_);
  EXPECT_EQ(SampleValue(after, "raft_kv_engine_keys"), 40);
  EXPECT_EQ(SampleValue(after, "raft_kv_engine_merges_total"), 1);
  EXPECT_LT(SampleValue(after, "raft_kv_engine_dead_bytes").value_or(1e18),
            SampleValue(before, "raft_kv_engine_dead_bytes").value_or(0));
  EXPECT_LT(SampleValue(after, "raft_kv_engine_data_files").value_or(1e18),
            SampleValue(before, "raft_kv_engine_data_files").value_or(0));
  EXPECT_GT(SampleValue(after, "raft_kv_engine_merge_reclaimed_bytes_total").value_or(0), 0);
  // One merge of 30 ms on the stepping clock.
  EXPECT_EQ(SampleValue(after, "raft_kv_engine_merge_duration_seconds_count"), 1);
  EXPECT_DOUBLE_EQ(SampleValue(after, "raft_kv_engine_merge_duration_seconds_sum").value_or(0), 0.03);
  EXPECT_EQ(SampleValue(after, "raft_kv_engine_merge_duration_seconds_bucket", {{"le", "0.025"}}), 0);
  EXPECT_EQ(SampleValue(after, "raft_kv_engine_merge_duration_seconds_bucket", {{"le", "0.05"}}), 1);
  ExpectMatchesStats(after);
  {
    std::lock_guard lock(mu);
    ASSERT_EQ(lines.size(), 2u);
    EXPECT_TRUE(lines[0].starts_with("event=merge_start ")) << lines[0];
    EXPECT_NE(lines[0].find("files_in="), std::string::npos) << lines[0];
    EXPECT_TRUE(lines[1].starts_with("event=merge ")) << lines[1];
    EXPECT_NE(lines[1].find("ms=30"), std::string::npos) << lines[1];
  }

  // Nothing left worth merging: no merge, nothing counted or logged.
  ASSERT_OK(engine_->Merge());
  auto idle = Scrape(*engine_);
  EXPECT_EQ(SampleValue(idle, "raft_kv_engine_merges_total"), 1);
  EXPECT_EQ(SampleValue(idle, "raft_kv_engine_merge_duration_seconds_count"), 1);
  std::lock_guard lock(mu);
  EXPECT_EQ(lines.size(), 2u);
}

TEST_F(EngineMetricsTest, ScrapingWhileWritingAndMergingSeesValidText) {
  log::SetLevel(log::Level::kWarn);
  Open();
  metrics::Registry registry;
  registry.AddCollector([this](metrics::Registry::Collector& out) { engine_->CollectMetrics(out); });
  std::atomic<bool> done{false};
  std::atomic<int> scrapes{0};
  std::string failure;
  std::thread scraper;
  // Stops and joins the scraper however the test leaves this scope (a
  // failed ASSERT returns early).
  struct Joiner {
    std::atomic<bool>* done;
    std::thread* thread;
    ~Joiner() {
      *done = true;
      if (thread->joinable()) thread->join();
    }
  } joiner{&done, &scraper};
  scraper = std::thread([&] {
    double last_merges = 0;
    while (!done.load() || scrapes.load() < 5) {
      auto parsed = test::ParsePrometheusText(registry.Render());
      if (!parsed.ok()) {
        failure = parsed.status().ToString();
        return;
      }
      const double merges = SampleValue(*parsed, "raft_kv_engine_merges_total").value_or(-1);
      if (merges < last_merges) {
        failure = fmt::format("merges went from {} to {}", last_merges, merges);
        return;
      }
      last_merges = merges;
      scrapes.fetch_add(1);
    }
  });
  for (int i = 0; i < 3; ++i) {
    Churn();
    ASSERT_OK(engine_->Merge());
  }
  done = true;
  scraper.join();
  EXPECT_EQ(failure, "");
  EXPECT_EQ(SampleValue(Scrape(*engine_), "raft_kv_engine_merges_total"), 3);
}

}  // namespace
}  // namespace rkv::storage
