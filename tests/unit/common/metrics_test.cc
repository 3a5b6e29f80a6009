#include "common/metrics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "support/prometheus_text.h"

namespace rkv::metrics {
namespace {

// What a scraper gets must be valid exposition text, whatever it holds.
void ExpectValidText(const Registry& registry) {
  auto parsed = test::ParsePrometheusText(registry.Render());
  EXPECT_TRUE(parsed.ok()) << parsed.status().ToString() << "\n" << registry.Render();
}

TEST(MetricsTest, RendersEachTypeExactly) {
  Registry registry;
  registry.GetCounter("app_requests_total", "Requests served.")->Inc(3);
  registry.GetGauge("app_temperature", "Degrees.", {{"room", "a"}})->Set(21.5);
  registry.GetGauge("app_temperature", "Degrees.", {{"room", "b"}})->Set(-3);
  Histogram* h = registry.GetHistogram("app_latency_seconds", "Latency.", {0.1, 1}, {{"op", "get"}});
  h->Observe(0.05);
  h->Observe(0.1);  // a bound is inclusive (le)
  h->Observe(0.5);
  h->Observe(7);
  EXPECT_EQ(registry.Render(),
            "# HELP app_latency_seconds Latency.\n"
            "# TYPE app_latency_seconds histogram\n"
            "app_latency_seconds_bucket{op=\"get\",le=\"0.1\"} 2\n"
            "app_latency_seconds_bucket{op=\"get\",le=\"1\"} 3\n"
            "app_latency_seconds_bucket{op=\"get\",le=\"+Inf\"} 4\n"
            "app_latency_seconds_sum{op=\"get\"} 7.65\n"
            "app_latency_seconds_count{op=\"get\"} 4\n"
            "# HELP app_requests_total Requests served.\n"
            "# TYPE app_requests_total counter\n"
            "app_requests_total 3\n"
            "# HELP app_temperature Degrees.\n"
            "# TYPE app_temperature gauge\n"
            "app_temperature{room=\"a\"} 21.5\n"
            "app_temperature{room=\"b\"} -3\n");
  ExpectValidText(registry);
}

TEST(MetricsTest, EmptyRegistryRendersNothing) {
  Registry registry;
  EXPECT_EQ(registry.Render(), "");
}

TEST(MetricsTest, FamilyWithoutSeriesStillAnnouncesItself) {
  Registry registry;
  registry.GetCounter("app_zero_total", "Never moved.");
  EXPECT_EQ(registry.Render(),
            "# HELP app_zero_total Never moved.\n"
            "# TYPE app_zero_total counter\n"
            "app_zero_total 0\n");
}

TEST(MetricsTest, EscapesLabelValuesAndHelp) {
  Registry registry;
  registry.GetGauge("app_g", "Help with \\ and\nnewline \"kept\".", {{"path", "a\\b\"c\"\nd"}})->Set(1);
  EXPECT_EQ(registry.Render(),
            "# HELP app_g Help with \\\\ and\\nnewline \"kept\".\n"
            "# TYPE app_g gauge\n"
            "app_g{path=\"a\\\\b\\\"c\\\"\\nd\"} 1\n");
  // And the strict parser reads back the original value.
  auto families = test::ParsePrometheusText(registry.Render());
  ASSERT_TRUE(families.ok()) << families.status().ToString();
  ASSERT_EQ(families->size(), 1u);
  EXPECT_EQ((*families)[0].help, "Help with \\ and\nnewline \"kept\".");
  ASSERT_EQ((*families)[0].samples.size(), 1u);
  EXPECT_EQ((*families)[0].samples[0].labels, (Labels{{"path", "a\\b\"c\"\nd"}}));
}

TEST(MetricsTest, SpecialFloatValues) {
  Registry registry;
  registry.GetGauge("app_a", "")->Set(std::numeric_limits<double>::infinity());
  registry.GetGauge("app_b", "")->Set(-std::numeric_limits<double>::infinity());
  registry.GetGauge("app_c", "")->Set(std::nan(""));
  registry.GetGauge("app_d", "")->Set(0.00005);
  EXPECT_EQ(registry.Render(),
            "# HELP app_a\n# TYPE app_a gauge\napp_a +Inf\n"
            "# HELP app_b\n# TYPE app_b gauge\napp_b -Inf\n"
            "# HELP app_c\n# TYPE app_c gauge\napp_c NaN\n"
            "# HELP app_d\n# TYPE app_d gauge\napp_d 5e-05\n");
  ExpectValidText(registry);
}

TEST(MetricsTest, HistogramBucketsAreCumulativeWithInf) {
  Histogram h(LatencyBuckets());
  const std::vector<double>& bounds = h.bounds();
  ASSERT_EQ(bounds.size(), 17u);
  EXPECT_DOUBLE_EQ(bounds.front(), 0.00005);
  EXPECT_DOUBLE_EQ(bounds.back(), 10);
  for (size_t i = 1; i < bounds.size(); ++i) EXPECT_LT(bounds[i - 1], bounds[i]);

  h.Observe(0.00001);  // first bucket
  h.Observe(0.003);    // le 0.005
  h.Observe(0.003);
  h.Observe(60);       // only +Inf
  h.Observe(std::nan(""));  // NaN counts in +Inf only
  std::vector<uint64_t> cum = h.CumulativeCounts();
  ASSERT_EQ(cum.size(), bounds.size() + 1);
  EXPECT_EQ(cum[0], 1u);
  EXPECT_EQ(cum[5], 1u);  // le 0.0025
  EXPECT_EQ(cum[6], 3u);  // le 0.005
  EXPECT_EQ(cum[16], 3u);  // le 10
  EXPECT_EQ(cum[17], 5u);  // +Inf
  EXPECT_EQ(h.count(), 5u);
  for (size_t i = 1; i < cum.size(); ++i) EXPECT_LE(cum[i - 1], cum[i]);
}

TEST(MetricsTest, HistogramWithNoBoundsHasOnlyInf) {
  Registry registry;
  Histogram* h = registry.GetHistogram("app_h", "H.", {});
  h->Observe(2);
  EXPECT_EQ(registry.Render(),
            "# HELP app_h H.\n# TYPE app_h histogram\n"
            "app_h_bucket{le=\"+Inf\"} 1\napp_h_sum 2\napp_h_count 1\n");
  ExpectValidText(registry);
}

TEST(MetricsTest, SameNameAndLabelsGiveTheSamePointer) {
  Registry registry;
  Counter* a = registry.GetCounter("app_x_total", "X.", {{"k", "1"}});
  EXPECT_EQ(registry.GetCounter("app_x_total", "X.", {{"k", "1"}}), a);
  EXPECT_NE(registry.GetCounter("app_x_total", "X.", {{"k", "2"}}), a);
  EXPECT_NE(registry.GetCounter("app_x_total", "X."), a);
  Gauge* g = registry.GetGauge("app_y", "Y.");
  EXPECT_EQ(registry.GetGauge("app_y", "Y."), g);
  Histogram* h = registry.GetHistogram("app_z", "Z.", {1, 2});
  EXPECT_EQ(registry.GetHistogram("app_z", "Z.", {1, 2}), h);
}

TEST(MetricsTest, CountersAndGaugesMove) {
  Registry registry;
  Counter* c = registry.GetCounter("app_c_total", "");
  c->Inc();
  c->Inc(41);
  EXPECT_EQ(c->value(), 42u);
  Gauge* g = registry.GetGauge("app_g", "");
  g->Set(1.5);
  g->Add(2);
  g->Add(-0.5);
  EXPECT_DOUBLE_EQ(g->value(), 3);
}

TEST(MetricsTest, ConcurrentUpdatesAreExact) {
  Registry registry;
  constexpr int kThreads = 8;
  constexpr int kPerThread = 100000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&registry] {
      // Each thread looks the metrics up itself: creation races too.
      Counter* c = registry.GetCounter("app_ops_total", "Ops.");
      Gauge* g = registry.GetGauge("app_level", "Level.");
      Histogram* h = registry.GetHistogram("app_size", "Size.", {1, 10});
      for (int i = 0; i < kPerThread; ++i) {
        c->Inc();
        g->Add(1);
        h->Observe(i % 2 == 0 ? 0.5 : 5);  // halves are exact in a double sum
      }
    });
  }
  // Scrapes while the writers run see non-decreasing, valid output.
  for (int i = 0; i < 20; ++i) {
    auto parsed = test::ParsePrometheusText(registry.Render());
    ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  }
  for (auto& t : threads) t.join();
  constexpr uint64_t kTotal = uint64_t{kThreads} * kPerThread;
  EXPECT_EQ(registry.GetCounter("app_ops_total", "Ops.")->value(), kTotal);
  EXPECT_DOUBLE_EQ(registry.GetGauge("app_level", "Level.")->value(), static_cast<double>(kTotal));
  Histogram* h = registry.GetHistogram("app_size", "Size.", {1, 10});
  EXPECT_EQ(h->count(), kTotal);
  EXPECT_DOUBLE_EQ(h->sum(), static_cast<double>(kTotal / 2) * 5.5);
  EXPECT_EQ(h->CumulativeCounts()[0], kTotal / 2);
}

TEST(MetricsTest, CollectorsAddSamplesUntilRemoved) {
  Registry registry;
  registry.GetCounter("app_events_total", "Events.", {{"kind", "a"}})->Inc(2);
  int calls = 0;
  Histogram owned({1});
  owned.Observe(0.5);
  uint64_t id = registry.AddCollector([&](Registry::Collector& c) {
    ++calls;
    c.Gauge("app_queue_depth", "Queued.", 7, {{"peer", "2"}});
    c.Counter("app_events_total", "Events.", 5, {{"kind", "b"}});  // joins the registry's family
    c.Histogram("app_rtt_seconds", "RTT.", owned, {{"peer", "2"}});
  });
  std::string want_with =
      "# HELP app_events_total Events.\n"
      "# TYPE app_events_total counter\n"
      "app_events_total{kind=\"a\"} 2\n"
      "app_events_total{kind=\"b\"} 5\n"
      "# HELP app_queue_depth Queued.\n"
      "# TYPE app_queue_depth gauge\n"
      "app_queue_depth{peer=\"2\"} 7\n"
      "# HELP app_rtt_seconds RTT.\n"
      "# TYPE app_rtt_seconds histogram\n"
      "app_rtt_seconds_bucket{peer=\"2\",le=\"1\"} 1\n"
      "app_rtt_seconds_bucket{peer=\"2\",le=\"+Inf\"} 1\n"
      "app_rtt_seconds_sum{peer=\"2\"} 0.5\n"
      "app_rtt_seconds_count{peer=\"2\"} 1\n";
  EXPECT_EQ(registry.Render(), want_with);
  EXPECT_EQ(calls, 1);
  ExpectValidText(registry);
  EXPECT_EQ(calls, 2);

  uint64_t other = registry.AddCollector([](Registry::Collector& c) { c.Gauge("app_other", "", 1); });
  EXPECT_NE(other, id);
  registry.RemoveCollector(id);
  EXPECT_EQ(registry.Render(),
            "# HELP app_events_total Events.\n"
            "# TYPE app_events_total counter\n"
            "app_events_total{kind=\"a\"} 2\n"
            "# HELP app_other\n# TYPE app_other gauge\napp_other 1\n");
  EXPECT_EQ(calls, 2);
  registry.RemoveCollector(id);  // twice: ignored
  registry.RemoveCollector(other);
  EXPECT_EQ(registry.Render(),
            "# HELP app_events_total Events.\n"
            "# TYPE app_events_total counter\n"
            "app_events_total{kind=\"a\"} 2\n");
}

TEST(MetricsTest, CollectorMayCreateMetrics) {
  Registry registry;
  registry.AddCollector([&registry](Registry::Collector&) {
    registry.GetCounter("app_scrapes_total", "Scrapes.")->Inc();
  });
  registry.Render();
  EXPECT_NE(registry.Render().find("app_scrapes_total 2\n"), std::string::npos);
}

TEST(MetricsTest, RemoveCollectorWaitsForARunningScrape) {
  Registry registry;
  std::atomic<bool> in_collect{false};
  std::atomic<bool> release{false};
  std::atomic<bool> ran_after_remove{false};
  std::atomic<bool> removed{false};
  uint64_t id = registry.AddCollector([&](Registry::Collector&) {
    if (removed.load()) ran_after_remove = true;
    in_collect = true;
    while (!release.load()) std::this_thread::yield();
  });
  std::thread scraper([&registry] { (void)registry.Render(); });
  while (!in_collect.load()) std::this_thread::yield();
  std::thread remover([&] {
    registry.RemoveCollector(id);
    removed = true;
  });
  // The remover cannot finish while the collector runs.
  for (int i = 0; i < 1000; ++i) {
    ASSERT_FALSE(removed.load());
    std::this_thread::yield();
  }
  release = true;
  scraper.join();
  remover.join();
  EXPECT_TRUE(removed.load());
  (void)registry.Render();
  EXPECT_FALSE(ran_after_remove.load());
}

using MetricsDeathTest = ::testing::Test;

TEST(MetricsDeathTest, MisuseIsAnAssertion) {
  Registry registry;
  EXPECT_DEATH(registry.GetCounter("app_requests", ""), "must end in _total");
  EXPECT_DEATH(registry.GetGauge("1app", ""), "bad metric name");
  EXPECT_DEATH(registry.GetGauge("app-x", ""), "bad metric name");
  EXPECT_DEATH(registry.GetGauge("app_x", "", {{"bad-label", "v"}}), "bad label name");
  EXPECT_DEATH(registry.GetGauge("app_x", "", {{"__name", "v"}}), "bad label name");
  EXPECT_DEATH(registry.GetGauge("app_x", "", {{"a", "1"}, {"a", "2"}}), "twice");
  EXPECT_DEATH(registry.GetHistogram("app_h", "", {1}, {{"le", "1"}}), "reserved");
  EXPECT_DEATH(registry.GetHistogram("app_h", "", {2, 1}), "increase");
  registry.GetGauge("app_x", "X.");
  EXPECT_DEATH(registry.GetCounter("app_x", "X."), "bad|_total");
  EXPECT_DEATH(registry.GetHistogram("app_x", "X.", {1}), "is a gauge");
  EXPECT_DEATH(registry.GetGauge("app_x", "Other help."), "two help texts");
  registry.GetHistogram("app_h", "", {1});
  EXPECT_DEATH(registry.GetHistogram("app_h", "", {2}), "two sets of bounds");
  registry.AddCollector([](Registry::Collector& c) { c.Gauge("app_x", "X.", 1); });
  EXPECT_DEATH((void)registry.Render(), "rendered twice");
}

}  // namespace
}  // namespace rkv::metrics
