// The Wal's metrics: what CollectMetrics exports, checked through a Registry
// scrape and the strict text parser against what the test did, and the
// slow-fsync warning.
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "env/fault_env.h"
#include "support/prometheus_text.h"
#include "support/test_util.h"
#include "wal/wal.h"
#include "wal_test_util.h"

namespace rkv::wal {
namespace {

using test::MakeConfiguration;
using test::MakeEntry;
using ::rkv::test::PrometheusFamily;
using ::rkv::test::SampleValue;

constexpr char kDir[] = "/node/wal";

// A clock that moves `step` microseconds each time it is read: every
// fdatasync, timed by two reads, then takes exactly `step`.
class SteppingClock final : public Clock {
 public:
  explicit SteppingClock(int64_t step) : step_(step) {}
  int64_t NowMicros() const override { return now_.fetch_add(step_) + step_; }
  int64_t WallMillis() const override { return 0; }

 private:
  const int64_t step_;
  mutable std::atomic<int64_t> now_{0};
};

// Renders `wal`'s metrics the way the node's /metrics will: through a
// collector of a Registry.
std::vector<PrometheusFamily> Scrape(const Wal& wal) {
  metrics::Registry registry;
  registry.AddCollector([&wal](metrics::Registry::Collector& out) { wal.CollectMetrics(out); });
  const std::string text = registry.Render();
  auto parsed = ::rkv::test::ParsePrometheusText(text);
  EXPECT_TRUE(parsed.ok()) << parsed.status().ToString() << "\n" << text;
  return parsed.ok() ? std::move(*parsed) : std::vector<PrometheusFamily>{};
}

class WalMetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    log::SetLevel(log::Level::kOff);
    ASSERT_OK(env_.CreateDir("/node"));
    ASSERT_OK(env_.SyncDir("/"));
  }
  void TearDown() override {
    log::SetSink({});
    log::SetLevel(log::Level::kInfo);
  }

  std::unique_ptr<Wal> OpenWal(uint64_t segment_size, Clock* clock = nullptr) {
    WalOptions o;
    o.segment_size = segment_size;
    o.bootstrap = MakeConfiguration({1, 2, 3});
    o.clock = clock;
    auto wal = Wal::Open(&env_, kDir, o);
    EXPECT_TRUE(wal.ok()) << wal.status().ToString();
    return wal.ok() ? std::move(*wal) : nullptr;
  }

  uint64_t SegmentBytes(const Wal& wal) {
    uint64_t total = 0;
    for (const std::string& path : wal.SegmentPaths()) {
      auto size = env_.GetFileSize(path);
      EXPECT_OK(size);
      if (size.ok()) total += *size;
    }
    return total;
  }

  FaultEnv env_;
};

TEST_F(WalMetricsTest, CountsSyncsBytesAndSegmentsAsTheyHappen) {
  auto wal = OpenWal(64 << 20);
  ASSERT_NE(wal, nullptr);
  // A fresh WAL: one segment, whose header and preamble were synced once.
  auto m = Scrape(*wal);
  EXPECT_EQ(SampleValue(m, "raft_kv_wal_fsyncs_total"), 1);
  EXPECT_EQ(SampleValue(m, "raft_kv_wal_fsync_duration_seconds_count"), 1);
  EXPECT_EQ(SampleValue(m, "raft_kv_wal_segments"), 1);
  EXPECT_EQ(SampleValue(m, "raft_kv_wal_segments_created_total"), 1);
  EXPECT_EQ(SampleValue(m, "raft_kv_wal_bytes_written_total"), SegmentBytes(*wal));

  // Three group commits of two Saves each: three more fdatasyncs, and a
  // Sync with nothing new adds none.
  for (uint64_t i = 1; i <= 6; ++i) {
    ASSERT_OK(wal->Append({MakeEntry(i, 1, "payload")}));
    if (i % 2 == 0) ASSERT_OK(wal->Sync());
  }
  ASSERT_OK(wal->Sync());
  m = Scrape(*wal);
  EXPECT_EQ(SampleValue(m, "raft_kv_wal_fsyncs_total"), 4);
  EXPECT_EQ(SampleValue(m, "raft_kv_wal_fsyncs_total"), wal->stats().syncs);
  EXPECT_EQ(SampleValue(m, "raft_kv_wal_fsync_duration_seconds_count"), 4);
  EXPECT_EQ(SampleValue(m, "raft_kv_wal_fsync_duration_seconds_bucket", {{"le", "+Inf"}}), 4);
  EXPECT_EQ(SampleValue(m, "raft_kv_wal_bytes_written_total"), SegmentBytes(*wal));
  EXPECT_EQ(SampleValue(m, "raft_kv_wal_bytes_written_total"), wal->stats().bytes_written);
  EXPECT_EQ(SampleValue(m, "raft_kv_wal_recovery_truncated_bytes"), 0);
  const PrometheusFamily* fsync = ::rkv::test::FindFamily(m, "raft_kv_wal_fsync_duration_seconds");
  ASSERT_NE(fsync, nullptr);
  EXPECT_EQ(fsync->type, "histogram");
  EXPECT_FALSE(fsync->help.empty());
}

TEST_F(WalMetricsTest, SegmentGaugeFollowsRollsAndCompaction) {
  auto wal = OpenWal(400);
  ASSERT_NE(wal, nullptr);
  for (uint64_t i = 1; i <= 40; ++i) ASSERT_OK(wal->Append({MakeEntry(i, 1, fmt::format("e{}", i))}));
  ASSERT_OK(wal->Sync());
  const size_t rolled = wal->SegmentPaths().size();
  ASSERT_GE(rolled, 5u);
  auto m = Scrape(*wal);
  EXPECT_EQ(SampleValue(m, "raft_kv_wal_segments"), rolled);
  EXPECT_EQ(SampleValue(m, "raft_kv_wal_segments_created_total"), rolled);
  EXPECT_EQ(SampleValue(m, "raft_kv_wal_segments_deleted_total"), 0);
  // Nothing deleted yet, so every byte written is in the files.
  EXPECT_EQ(SampleValue(m, "raft_kv_wal_bytes_written_total"), SegmentBytes(*wal));

  ASSERT_OK(wal->Compact(LogIndex{30}, MakeConfiguration({1, 2, 3})));
  m = Scrape(*wal);
  const WalStats stats = wal->stats();
  ASSERT_GT(stats.segments_deleted, 0u);
  EXPECT_EQ(SampleValue(m, "raft_kv_wal_segments"), wal->SegmentPaths().size());
  EXPECT_EQ(SampleValue(m, "raft_kv_wal_segments_deleted_total"), stats.segments_deleted);
  EXPECT_EQ(SampleValue(m, "raft_kv_wal_segments_created_total"), stats.segments_created);
  EXPECT_EQ(stats.segments_created - stats.segments_deleted, wal->SegmentPaths().size());
  EXPECT_EQ(SampleValue(m, "raft_kv_wal_fsyncs_total"), stats.syncs);
  EXPECT_EQ(SampleValue(m, "raft_kv_wal_fsync_duration_seconds_count"), stats.syncs);
}

TEST_F(WalMetricsTest, SlowFsyncsAreLoggedAndBucketed) {
  std::mutex mu;
  std::vector<std::string> warnings;
  log::SetLevel(log::Level::kWarn);
  log::SetSink([&](log::Level level, std::string_view line) {
    std::lock_guard lock(mu);
    if (level == log::Level::kWarn && line.find("event=wal_slow_fsync") != std::string_view::npos) {
      warnings.emplace_back(line);
    }
  });

  SteppingClock slow(150'000);  // every fdatasync takes 150 ms
  auto wal = OpenWal(64 << 20, &slow);
  ASSERT_NE(wal, nullptr);
  const uint64_t before = wal->stats().bytes_written;
  ASSERT_OK(wal->Append({MakeEntry(1, 1, "x")}));
  ASSERT_OK(wal->Append({MakeEntry(2, 1, "y")}));
  ASSERT_OK(wal->Sync());
  const uint64_t synced = wal->stats().bytes_written - before;

  auto m = Scrape(*wal);
  EXPECT_EQ(SampleValue(m, "raft_kv_wal_fsync_duration_seconds_count"), 2);
  EXPECT_EQ(SampleValue(m, "raft_kv_wal_fsync_duration_seconds_bucket", {{"le", "0.1"}}), 0);
  EXPECT_EQ(SampleValue(m, "raft_kv_wal_fsync_duration_seconds_bucket", {{"le", "0.25"}}), 2);
  EXPECT_DOUBLE_EQ(SampleValue(m, "raft_kv_wal_fsync_duration_seconds_sum").value_or(0), 0.3);
  {
    std::lock_guard lock(mu);
    ASSERT_EQ(warnings.size(), 2u);  // the new segment's and the group commit's
    EXPECT_NE(warnings[1].find("duration_ms=150"), std::string::npos) << warnings[1];
    // The group commit made both entries durable: both Saves' bytes.
    EXPECT_NE(warnings[1].find(fmt::format("bytes={} ", synced)), std::string::npos)
        << warnings[1];
    EXPECT_NE(warnings[1].find(wal->SegmentPaths().back()), std::string::npos) << warnings[1];
  }

  // 2 ms syncs are under the threshold: bucketed, not logged.
  wal.reset();
  SteppingClock fast(2'000);
  auto again = OpenWal(64 << 20, &fast);
  ASSERT_NE(again, nullptr);
  ASSERT_OK(again->Append({MakeEntry(3, 1, "z")}));
  ASSERT_OK(again->Sync());
  m = Scrape(*again);
  EXPECT_EQ(SampleValue(m, "raft_kv_wal_fsync_duration_seconds_count"), 1);
  EXPECT_EQ(SampleValue(m, "raft_kv_wal_fsync_duration_seconds_bucket", {{"le", "0.001"}}), 0);
  EXPECT_EQ(SampleValue(m, "raft_kv_wal_fsync_duration_seconds_bucket", {{"le", "0.0025"}}), 1);
  std::lock_guard lock(mu);
  EXPECT_EQ(warnings.size(), 2u);
}

TEST_F(WalMetricsTest, ScrapingWhileTheWalWritesSeesValidGrowingCounters) {
  auto wal = OpenWal(4096);  // small segments: rolls happen during the scrapes
  ASSERT_NE(wal, nullptr);
  metrics::Registry registry;
  registry.AddCollector([&wal](metrics::Registry::Collector& out) { wal->CollectMetrics(out); });
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
    double last_syncs = 0;
    // At least a few scrapes, however fast the writer is.
    while (!done.load() || scrapes.load() < 5) {
      auto parsed = ::rkv::test::ParsePrometheusText(registry.Render());
      if (!parsed.ok()) {
        failure = parsed.status().ToString();
        return;
      }
      const double syncs = SampleValue(*parsed, "raft_kv_wal_fsyncs_total").value_or(-1);
      if (syncs < last_syncs) {
        failure = fmt::format("fsyncs went from {} to {}", last_syncs, syncs);
        return;
      }
      last_syncs = syncs;
      scrapes.fetch_add(1);
    }
  });
  for (uint64_t i = 1; i <= 2000; ++i) {
    ASSERT_OK(wal->Append({MakeEntry(i, 1, "some bytes of payload")}));
    if (i % 4 == 0) ASSERT_OK(wal->Sync());
  }
  done = true;
  scraper.join();
  EXPECT_EQ(failure, "");
  auto m = Scrape(*wal);
  EXPECT_EQ(SampleValue(m, "raft_kv_wal_fsyncs_total"), wal->stats().syncs);
  EXPECT_EQ(SampleValue(m, "raft_kv_wal_segments"), wal->SegmentPaths().size());
}

}  // namespace
}  // namespace rkv::wal
