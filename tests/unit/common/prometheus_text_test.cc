#include "support/prometheus_text.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

namespace rkv::test {
namespace {

using metrics::Labels;

TEST(PrometheusTextTest, ParsesEveryKindOfLine) {
  const std::string text =
      "# A plain comment is ignored.\n"
      "# HELP app_requests_total Requests served, with \\\\ and a\\nnewline.\n"
      "# TYPE app_requests_total counter\n"
      "app_requests_total{method=\"get\",code=\"200\"} 1027 1395066363000\n"
      "app_requests_total{method=\"post\",code=\"400\",} 3\n"
      "\n"
      "# TYPE app_temperature gauge\n"
      "app_temperature{path=\"a\\\\b\\\"c\\\"\\nd\"} -3.5e-2\n"
      "app_temperature{path=\"up\"} +Inf\n"
      "app_temperature{path=\"down\"} -Inf\n"
      "app_temperature { path = \"nan\" } NaN\n"
      "# HELP app_latency_seconds Latency.\n"
      "# TYPE app_latency_seconds histogram\n"
      "app_latency_seconds_bucket{op=\"get\",le=\"0.1\"} 2\n"
      "app_latency_seconds_bucket{op=\"get\",le=\"1\"} 3\n"
      "app_latency_seconds_bucket{op=\"get\",le=\"+Inf\"} 4\n"
      "app_latency_seconds_sum{op=\"get\"} 7.65\n"
      "app_latency_seconds_count{op=\"get\"} 4\n"
      "app_latency_seconds_bucket{le=\"+Inf\",op=\"put\"} 0\n"
      "app_latency_seconds_sum{op=\"put\"} 0\n"
      "app_latency_seconds_count{op=\"put\"} 0\n"
      "# TYPE app_rpc_seconds summary\n"
      "app_rpc_seconds{quantile=\"0.5\"} 0.01\n"
      "app_rpc_seconds_sum 1.5\n"
      "app_rpc_seconds_count 100\n"
      "# HELP app_empty\n"
      "# TYPE app_empty histogram\n";
  auto parsed = ParsePrometheusText(text);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  const std::vector<PrometheusFamily>& families = *parsed;
  ASSERT_EQ(families.size(), 5u);

  EXPECT_EQ(families[0].name, "app_requests_total");
  EXPECT_EQ(families[0].type, "counter");
  EXPECT_EQ(families[0].help, "Requests served, with \\ and a\nnewline.");
  ASSERT_EQ(families[0].samples.size(), 2u);
  EXPECT_EQ(families[0].samples[0].labels, (Labels{{"method", "get"}, {"code", "200"}}));
  EXPECT_EQ(families[0].samples[0].value, 1027);
  EXPECT_EQ(families[0].samples[0].timestamp_ms, 1395066363000);
  EXPECT_EQ(families[0].samples[0].line, 4);
  EXPECT_FALSE(families[0].samples[1].timestamp_ms.has_value());

  EXPECT_EQ(families[1].type, "gauge");
  EXPECT_EQ(families[1].help, "");
  ASSERT_EQ(families[1].samples.size(), 4u);
  EXPECT_EQ(families[1].samples[0].labels, (Labels{{"path", "a\\b\"c\"\nd"}}));
  EXPECT_DOUBLE_EQ(families[1].samples[0].value, -0.035);
  EXPECT_TRUE(std::isinf(families[1].samples[1].value) && families[1].samples[1].value > 0);
  EXPECT_TRUE(std::isinf(families[1].samples[2].value) && families[1].samples[2].value < 0);
  EXPECT_TRUE(std::isnan(families[1].samples[3].value));

  EXPECT_EQ(families[2].type, "histogram");
  EXPECT_EQ(families[2].samples.size(), 8u);
  EXPECT_EQ(families[3].type, "summary");
  EXPECT_EQ(families[4].name, "app_empty");
  EXPECT_TRUE(families[4].samples.empty());

  // The lookups tests use; label order does not matter.
  EXPECT_EQ(FindFamily(families, "app_temperature"), &families[1]);
  EXPECT_EQ(FindFamily(families, "app_missing"), nullptr);
  EXPECT_EQ(SampleValue(families, "app_requests_total", {{"code", "400"}, {"method", "post"}}), 3);
  EXPECT_EQ(SampleValue(families, "app_latency_seconds_count", {{"op", "get"}}), 4);
  EXPECT_EQ(SampleValue(families, "app_latency_seconds_bucket", {{"le", "1"}, {"op", "get"}}), 3);
  EXPECT_EQ(SampleValue(families, "app_latency_seconds_count"), std::nullopt);
  EXPECT_EQ(SampleValue(families, "app_rpc_seconds_count"), 100);
}

TEST(PrometheusTextTest, EmptyInputIsNoFamilies) {
  auto parsed = ParsePrometheusText("");
  ASSERT_TRUE(parsed.ok());
  EXPECT_TRUE(parsed->empty());
}

struct BadCase {
  const char* what;
  std::string text;
  int line;            // the line the error must name
  const char* reason;  // a part of the message
};

TEST(PrometheusTextTest, ReportsEachMalformationWithItsLine) {
  const std::string g = "# TYPE g gauge\n";
  const std::string h = "# TYPE h histogram\n";
  const std::vector<BadCase> cases = {
      {"no final newline", g + "g 1", 2, "does not end with a newline"},
      {"sample without TYPE", "g 1\n", 1, "no metric declared"},
      {"HELP without TYPE", "# HELP g G.\ng 1\n", 2, "no metric declared"},
      {"TYPE after the sample", "g 1\n# TYPE g gauge\n", 1, "no metric declared"},
      {"bad metric name", g + "1g 1\n", 2, "bad metric name"},
      {"bad name in TYPE", "# TYPE g-x gauge\n", 1, "bad metric name"},
      {"unknown type", "# TYPE g meter\n", 1, "unknown type"},
      {"text after type", "# TYPE g gauge extra\n", 1, "text after the type"},
      {"second TYPE", g + "# TYPE g gauge\n", 2, "a second # TYPE"},
      {"second HELP", "# HELP g a\n# HELP g b\n", 2, "a second # HELP"},
      {"HELP after samples", g + "g 1\n# HELP g late\n", 3, "after its samples"},
      {"bad help escape", "# HELP g a\\tb\n", 1, "bad escape"},
      {"counter without _total", "# TYPE requests counter\n", 1, "does not end in _total"},
      {"negative counter", "# TYPE c_total counter\nc_total -1\n", 2, "negative"},
      {"NaN counter", "# TYPE c_total counter\nc_total NaN\n", 2, "negative or NaN"},
      {"sample of the wrong type", g + "g_bucket{le=\"1\"} 1\n", 2, "is a gauge"},
      {"histogram sample without suffix", h + "h 1\n", 2, "has no sample named h"},
      {"no value", g + "g\n", 2, "no value"},
      {"no value after labels", g + "g{a=\"1\"}\n", 2, "no value"},
      {"bad value", g + "g one\n", 2, "bad value"},
      {"lowercase inf", g + "g inf\n", 2, "bad value"},
      {"hex value", g + "g 0x10\n", 2, "bad value"},
      {"bad timestamp", g + "g 1 soon\n", 2, "bad timestamp"},
      {"text after timestamp", g + "g 1 2 3\n", 2, "text after the timestamp"},
      {"unclosed labels", g + "g{a=\"1\" 1\n", 2, "expected , or }"},
      {"unquoted label value", g + "g{a=1} 1\n", 2, "not quoted"},
      {"unclosed label value", g + "g{a=\"1} 1\n", 2, "not closed"},
      {"bad label escape", g + "g{a=\"\\t\"} 1\n", 2, "bad escape"},
      {"bad label name", g + "g{1a=\"x\"} 1\n", 2, "bad label name"},
      {"reserved label name", g + "g{__name__=\"x\"} 1\n", 2, "reserved label name"},
      {"label twice", g + "g{a=\"1\",a=\"2\"} 1\n", 2, "label a twice"},
      {"duplicate series", g + "g{a=\"1\"} 1\ng{a=\"1\"} 2\n", 3, "appears twice (first at line 2)"},
      {"duplicate series, labels reordered", g + "g{a=\"1\",b=\"2\"} 1\ng{b=\"2\",a=\"1\"} 2\n", 3,
       "appears twice"},
      {"family not together", g + "g 1\n# TYPE f gauge\nf 1\ng{a=\"1\"} 2\n", 5, "not together"},
      {"bucket without le", h + "h_bucket 1\n", 2, "without le"},
      {"bad le", h + "h_bucket{le=\"x\"} 1\n", 2, "bad le"},
      {"le on _sum", h + "h_sum{le=\"1\"} 1\n", 2, "has an le label"},
      {"negative bucket", h + "h_bucket{le=\"+Inf\"} -1\n", 2, "negative"},
      {"buckets not cumulative",
       h + "h_bucket{le=\"1\"} 3\nh_bucket{le=\"2\"} 2\nh_bucket{le=\"+Inf\"} 3\nh_sum 1\nh_count 3\n", 3,
       "fewer than 3 in the bucket below"},
      {"no +Inf bucket", h + "h_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n", 4, "no le=\"+Inf\" bucket"},
      {"count differs from +Inf",
       h + "h_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n", 4, "_count 3 differs from the +Inf bucket's 2"},
      {"no _sum", h + "h_bucket{le=\"+Inf\"} 1\nh_count 1\n", 3, "has no _sum"},
      {"no _count", h + "h_bucket{le=\"+Inf\"} 1\nh_sum 1\n", 3, "has no _count"},
      {"two buckets with one le",
       h + "h_bucket{le=\"1\"} 1\nh_bucket{le=\"1.0\"} 1\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n", 3,
       "two buckets with le 1"},
      {"histogram checked per series",
       h + "h_bucket{a=\"x\",le=\"+Inf\"} 1\nh_sum{a=\"x\"} 1\nh_count{a=\"x\"} 1\n"
           "h_bucket{a=\"y\",le=\"+Inf\"} 1\nh_sum{a=\"y\"} 1\nh_count{a=\"y\"} 2\n",
       7, "histogram h{a=\"y\"}: _count 2"},
      {"summary quantile without label", "# TYPE s summary\ns 1\n", 2, "without a quantile label"},
  };
  for (const BadCase& c : cases) {
    SCOPED_TRACE(c.what);
    auto parsed = ParsePrometheusText(c.text);
    ASSERT_FALSE(parsed.ok()) << c.text;
    const std::string message = parsed.status().message();
    EXPECT_TRUE(parsed.status().IsInvalidArgument());
    EXPECT_TRUE(message.starts_with("line " + std::to_string(c.line) + ":")) << message;
    EXPECT_NE(message.find(c.reason), std::string::npos) << message;
  }
}

TEST(PrometheusTextTest, ErrorQuotesTheLine) {
  auto parsed = ParsePrometheusText("# TYPE g gauge\ng{a=1} 1\n");
  ASSERT_FALSE(parsed.ok());
  EXPECT_NE(parsed.status().message().find("`g{a=1} 1`"), std::string::npos)
      << parsed.status().message();
}

}  // namespace
}  // namespace rkv::test
