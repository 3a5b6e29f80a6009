// A strict parser of the Prometheus text exposition format (version 0.0.4),
// for tests that check what a /metrics scrape or metrics::Registry::Render
// produces.
//
//   auto families = test::ParsePrometheusText(registry.Render());
//   ASSERT_TRUE(families.ok()) << families.status().ToString();
//   EXPECT_EQ(test::SampleValue(*families, "raft_kv_wal_fsyncs_total"), 3);
//
// Besides the grammar (# HELP, # TYPE, samples with optional labels, a value
// and an optional timestamp; escapes in help texts and label values; +Inf,
// -Inf and NaN), it checks what a scraper relies on and our metrics rules
// add:
//  - every sample belongs to a family declared by a # TYPE line before it,
//    with a sample name that fits the type (a histogram has only _bucket,
//    _sum and _count samples; a counter's sample is its own name);
//  - the lines of a family are together; HELP and TYPE appear at most once
//    per family, before its samples;
//  - counter names end in _total, and counter values are not negative;
//  - each histogram series has buckets with distinct numeric `le` values,
//    cumulative counts that do not decrease as `le` grows, a le="+Inf"
//    bucket equal to its _count, and a _sum;
//  - no series (name and label set, in any order) appears twice, and no
//    label appears twice in one sample.
// An error is InvalidArgument("line N: what is wrong: `the line`").
#ifndef RKV_TESTS_SUPPORT_PROMETHEUS_TEXT_H_
#define RKV_TESTS_SUPPORT_PROMETHEUS_TEXT_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/metrics.h"
#include "common/result.h"

namespace rkv::test {

struct PrometheusSample {
  std::string name;        // as written, e.g. "x_bucket" in family "x"
  metrics::Labels labels;  // in the order written, values unescaped
  double value = 0;
  std::optional<int64_t> timestamp_ms;
  int line = 0;            // 1-based
};

struct PrometheusFamily {
  std::string name;
  std::string type;  // "counter", "gauge", "histogram", "summary" or "untyped"
  std::string help;  // unescaped; empty without a HELP line
  std::vector<PrometheusSample> samples;  // in the order written
};

// Families in the order they appear.
Result<std::vector<PrometheusFamily>> ParsePrometheusText(std::string_view text);

// The family `name`, or nullptr.
const PrometheusFamily* FindFamily(const std::vector<PrometheusFamily>& families,
                                   std::string_view name);

// The value of the sample `sample_name` (e.g. "x_count" for histogram x)
// whose label set equals `labels` (in any order), or nullopt.
std::optional<double> SampleValue(const std::vector<PrometheusFamily>& families,
                                  std::string_view sample_name, const metrics::Labels& labels = {});

}  // namespace rkv::test

#endif  // RKV_TESTS_SUPPORT_PROMETHEUS_TEXT_H_
