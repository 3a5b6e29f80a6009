#include "common/metrics.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <iterator>

#include "common/assert.h"

namespace rkv::metrics {
namespace {

enum Type : int { kCounter = 0, kGauge = 1, kHistogram = 2 };

const char* TypeName(int type) {
  switch (type) {
    case kCounter: return "counter";
    case kGauge: return "gauge";
    default: return "histogram";
  }
}

bool IsAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

bool ValidMetricName(std::string_view name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool ok = IsAlpha(c) || c == ':' || (i > 0 && IsDigit(c));
    if (!ok) return false;
  }
  return true;
}

bool ValidLabelName(std::string_view name) {
  if (name.empty() || name.starts_with("__")) return false;  // "__" is Prometheus' own
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    if (!(IsAlpha(c) || (i > 0 && IsDigit(c)))) return false;
  }
  return true;
}

// Asserts the rules every metric and collected sample follows.
void CheckNames(std::string_view name, int type, const Labels& labels) {
  RKV_ASSERT_MSG(ValidMetricName(name), fmt::format("bad metric name '{}'", name));
  if (type == kCounter) {
    RKV_ASSERT_MSG(name.ends_with("_total"), fmt::format("counter '{}' must end in _total", name));
  }
  for (size_t i = 0; i < labels.size(); ++i) {
    const std::string& label = labels[i].first;
    RKV_ASSERT_MSG(ValidLabelName(label), fmt::format("bad label name '{}' on {}", label, name));
    RKV_ASSERT_MSG(type != kHistogram || label != "le",
                   fmt::format("label 'le' is reserved on histogram {}", name));
    for (size_t j = 0; j < i; ++j) {
      RKV_ASSERT_MSG(labels[j].first != label, fmt::format("label '{}' twice on {}", label, name));
    }
  }
}

void CheckBounds(const std::vector<double>& bounds) {
  for (size_t i = 0; i < bounds.size(); ++i) {
    RKV_ASSERT_MSG(std::isfinite(bounds[i]), "histogram bounds must be finite (+Inf is implied)");
    RKV_ASSERT_MSG(i == 0 || bounds[i - 1] < bounds[i], "histogram bounds must increase strictly");
  }
}

// What Render writes for one series: taken from a live metric under the
// registry's lock, or handed over by a collector.
struct Sample {
  // Counters from the registry are exact integers; everything else a double.
  bool is_integer = false;
  uint64_t integer = 0;
  double value = 0;
  // Histograms only.
  std::vector<double> bounds;
  std::vector<uint64_t> cumulative;  // bounds.size() + 1; the last is +Inf
  double sum = 0;
};

std::string FormatDouble(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  return fmt::format("{}", v);
}

void AppendEscaped(std::string* out, std::string_view s, bool quotes) {
  for (char c : s) {
    if (c == '\\') {
      out->append("\\\\");
    } else if (c == '\n') {
      out->append("\\n");
    } else if (c == '"' && quotes) {
      out->append("\\\"");
    } else {
      out->push_back(c);
    }
  }
}

// `{a="x",b="y"}`, with `le` last when given; nothing for no labels.
void AppendLabels(std::string* out, const Labels& labels, const std::string* le = nullptr) {
  if (labels.empty() && le == nullptr) return;
  out->push_back('{');
  bool first = true;
  for (const auto& [name, value] : labels) {
    if (!first) out->push_back(',');
    first = false;
    out->append(name);
    out->append("=\"");
    AppendEscaped(out, value, /*quotes=*/true);
    out->push_back('"');
  }
  if (le != nullptr) {
    if (!first) out->push_back(',');
    out->append("le=\"");
    out->append(*le);
    out->push_back('"');
  }
  out->push_back('}');
}

}  // namespace

void Gauge::Add(double d) { value_.fetch_add(d, std::memory_order_relaxed); }

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)),
      buckets_(std::make_unique<std::atomic<uint64_t>[]>(bounds_.size() + 1)) {
  CheckBounds(bounds_);
}

void Histogram::Observe(double v) {
  // The first bound >= v: Prometheus' buckets are `le` (inclusive). NaN
  // compares false with everything, so it is sent to +Inf explicitly.
  size_t i = std::isnan(v) ? bounds_.size()
                           : static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), v) -
                                                 bounds_.begin());
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
}

uint64_t Histogram::count() const {
  uint64_t n = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) n += buckets_[i].load(std::memory_order_relaxed);
  return n;
}

std::vector<uint64_t> Histogram::CumulativeCounts() const {
  std::vector<uint64_t> out(bounds_.size() + 1);
  uint64_t running = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    running += buckets_[i].load(std::memory_order_relaxed);
    out[i] = running;
  }
  return out;
}

std::vector<double> LatencyBuckets() {
  return {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
          0.05,    0.1,    0.25,    0.5,    1,     2.5,    5,     10};
}

// A family as the registry holds it: live metrics keyed by labels.
struct Registry::Family {
  int type = kCounter;
  std::string help;
  std::vector<double> bounds;  // histograms
  std::map<Labels, std::unique_ptr<Counter>> counters;
  std::map<Labels, std::unique_ptr<Gauge>> gauges;
  std::map<Labels, std::unique_ptr<Histogram>> histograms;
};

// A family as Render writes it.
struct RenderFamily {
  int type = kCounter;
  std::string help;
  std::map<Labels, Sample> series;
};

struct Registry::Collector::Families {
  std::map<std::string, RenderFamily, std::less<>> by_name;

  // The family `name`, created on first use; asserts that type and help
  // agree with what is there.
  RenderFamily& Get(std::string_view name, std::string_view help, int type) {
    auto it = by_name.find(name);
    if (it == by_name.end()) {
      it = by_name.emplace(std::string(name), RenderFamily{type, std::string(help), {}}).first;
    }
    RKV_ASSERT_MSG(it->second.type == type,
                   fmt::format("metric {} is a {}, not a {}", name, TypeName(it->second.type), TypeName(type)));
    RKV_ASSERT_MSG(it->second.help == help, fmt::format("metric {} has two help texts", name));
    return it->second;
  }

  void Add(std::string_view name, std::string_view help, int type, const Labels& labels, Sample sample) {
    RenderFamily& family = Get(name, help, type);
    bool inserted = family.series.emplace(labels, std::move(sample)).second;
    RKV_ASSERT_MSG(inserted, fmt::format("series of {} rendered twice", name));
  }
};

void Registry::Collector::Counter(std::string_view name, std::string_view help, double value,
                                  const Labels& labels) {
  CheckNames(name, kCounter, labels);
  Sample s;
  s.value = value;
  out_->Add(name, help, kCounter, labels, std::move(s));
}

void Registry::Collector::Gauge(std::string_view name, std::string_view help, double value,
                                const Labels& labels) {
  CheckNames(name, kGauge, labels);
  Sample s;
  s.value = value;
  out_->Add(name, help, kGauge, labels, std::move(s));
}

void Registry::Collector::Histogram(std::string_view name, std::string_view help,
                                    const metrics::Histogram& histogram, const Labels& labels) {
  CheckNames(name, kHistogram, labels);
  Sample s;
  s.bounds = histogram.bounds();
  s.cumulative = histogram.CumulativeCounts();
  s.sum = histogram.sum();
  out_->Add(name, help, kHistogram, labels, std::move(s));
}

Registry::Registry() = default;
Registry::~Registry() = default;

Registry::Family* Registry::FamilyFor(std::string_view name, std::string_view help, int type,
                                      const std::vector<double>* bounds) {
  auto it = families_.find(name);
  if (it == families_.end()) {
    auto family = std::make_unique<Family>();
    family->type = type;
    family->help = std::string(help);
    if (bounds != nullptr) family->bounds = *bounds;
    it = families_.emplace(std::string(name), std::move(family)).first;
  }
  Family* family = it->second.get();
  RKV_ASSERT_MSG(family->type == type,
                 fmt::format("metric {} is a {}, not a {}", name, TypeName(family->type), TypeName(type)));
  RKV_ASSERT_MSG(family->help == help, fmt::format("metric {} has two help texts", name));
  RKV_ASSERT_MSG(bounds == nullptr || family->bounds == *bounds,
                 fmt::format("histogram {} has two sets of bounds", name));
  return family;
}

Counter* Registry::GetCounter(std::string_view name, std::string_view help, const Labels& labels) {
  CheckNames(name, kCounter, labels);
  std::lock_guard lock(mu_);
  auto& slot = FamilyFor(name, help, kCounter, nullptr)->counters[labels];
  if (!slot) slot = std::make_unique<Counter>();
  return slot.get();
}

Gauge* Registry::GetGauge(std::string_view name, std::string_view help, const Labels& labels) {
  CheckNames(name, kGauge, labels);
  std::lock_guard lock(mu_);
  auto& slot = FamilyFor(name, help, kGauge, nullptr)->gauges[labels];
  if (!slot) slot = std::make_unique<Gauge>();
  return slot.get();
}

Histogram* Registry::GetHistogram(std::string_view name, std::string_view help, std::vector<double> bounds,
                                  const Labels& labels) {
  CheckNames(name, kHistogram, labels);
  CheckBounds(bounds);
  std::lock_guard lock(mu_);
  auto& slot = FamilyFor(name, help, kHistogram, &bounds)->histograms[labels];
  if (!slot) slot = std::make_unique<Histogram>(std::move(bounds));
  return slot.get();
}

uint64_t Registry::AddCollector(std::function<void(Collector&)> collect) {
  RKV_ASSERT(collect != nullptr);
  std::lock_guard lock(collectors_mu_);
  uint64_t id = next_collector_id_++;
  collectors_.emplace(id, std::move(collect));
  return id;
}

void Registry::RemoveCollector(uint64_t id) {
  std::lock_guard lock(collectors_mu_);
  collectors_.erase(id);
}

std::string Registry::Render() const {
  Collector::Families families;
  {
    // Collectors first, and without mu_, so a collector may create metrics.
    std::lock_guard lock(collectors_mu_);
    Collector collector(&families);
    for (const auto& [id, collect] : collectors_) collect(collector);
  }
  {
    std::lock_guard lock(mu_);
    for (const auto& [name, family] : families_) {
      for (const auto& [labels, counter] : family->counters) {
        Sample s;
        s.is_integer = true;
        s.integer = counter->value();
        families.Add(name, family->help, kCounter, labels, std::move(s));
      }
      for (const auto& [labels, gauge] : family->gauges) {
        Sample s;
        s.value = gauge->value();
        families.Add(name, family->help, kGauge, labels, std::move(s));
      }
      for (const auto& [labels, histogram] : family->histograms) {
        Sample s;
        s.bounds = histogram->bounds();
        s.cumulative = histogram->CumulativeCounts();
        s.sum = histogram->sum();
        families.Add(name, family->help, kHistogram, labels, std::move(s));
      }
      // A family created with no series yet still announces itself, so a
      // scrape shows every metric the server has even before it moves.
      if (family->counters.empty() && family->gauges.empty() && family->histograms.empty()) {
        families.Get(name, family->help, family->type);
      }
    }
  }

  std::string out;
  for (const auto& [name, family] : families.by_name) {
    out.append("# HELP ");
    out.append(name);
    if (!family.help.empty()) {
      out.push_back(' ');
      AppendEscaped(&out, family.help, /*quotes=*/false);
    }
    out.append("\n# TYPE ");
    out.append(name);
    out.push_back(' ');
    out.append(TypeName(family.type));
    out.push_back('\n');
    for (const auto& [labels, s] : family.series) {
      if (family.type != kHistogram) {
        out.append(name);
        AppendLabels(&out, labels);
        out.push_back(' ');
        out.append(s.is_integer ? fmt::format("{}", s.integer) : FormatDouble(s.value));
        out.push_back('\n');
        continue;
      }
      for (size_t i = 0; i < s.cumulative.size(); ++i) {
        std::string le = i < s.bounds.size() ? FormatDouble(s.bounds[i]) : "+Inf";
        out.append(name);
        out.append("_bucket");
        AppendLabels(&out, labels, &le);
        fmt::format_to(std::back_inserter(out), " {}\n", s.cumulative[i]);
      }
      out.append(name);
      out.append("_sum");
      AppendLabels(&out, labels);
      out.push_back(' ');
      out.append(FormatDouble(s.sum));
      out.push_back('\n');
      out.append(name);
      out.append("_count");
      AppendLabels(&out, labels);
      fmt::format_to(std::back_inserter(out), " {}\n", s.cumulative.back());
    }
  }
  return out;
}

}  // namespace rkv::metrics
