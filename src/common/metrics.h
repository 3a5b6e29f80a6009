// Metrics: counters, gauges and histograms, rendered in the Prometheus text
// exposition format (version 0.0.4) for GET /metrics.
//
//   metrics::Registry registry;
//   metrics::Counter* writes = registry.GetCounter("raft_kv_writes_total", "Writes applied.");
//   writes->Inc();
//   metrics::Histogram* fsync = registry.GetHistogram(
//       "raft_kv_wal_fsync_duration_seconds", "WAL fdatasync latency.", metrics::LatencyBuckets());
//   fsync->Observe(0.0021);
//   std::string body = registry.Render();
//
// Updating a metric is lock-free (relaxed atomics): hot paths hold a pointer
// obtained once and never touch the registry again. The registry's mutex is
// taken only to create a metric and to render. Values that already live in a
// component's own counters (a stats() snapshot) are better exported by a
// collector, a callback that runs at scrape time, than copied into metrics on
// every change.
//
// Misuse is our own bug, so it is an RKV_ASSERT: a name or label name that
// breaks Prometheus' rules, a counter whose name does not end in _total, one
// name used for two types or with two help texts, a series rendered twice.
#ifndef RKV_COMMON_METRICS_H_
#define RKV_COMMON_METRICS_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace rkv::metrics {

// Label names and values, rendered in the given order. Two label sets with
// the same pairs in another order are two different series.
using Labels = std::vector<std::pair<std::string, std::string>>;

// Monotonic. Lock-free.
class Counter {
 public:
  Counter() = default;
  Counter(const Counter&) = delete;
  Counter& operator=(const Counter&) = delete;

  void Inc(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

// A value that goes up and down. Lock-free.
class Gauge {
 public:
  Gauge() = default;
  Gauge(const Gauge&) = delete;
  Gauge& operator=(const Gauge&) = delete;

  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  void Add(double d);
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

// Counts observations into buckets with fixed upper bounds (inclusive, as
// Prometheus' `le`), plus their sum. Rendered cumulative as _bucket{le=".."}
// with a final le="+Inf", _sum and _count. Lock-free: Observe is one atomic
// increment of one bucket and a CAS loop on the sum.
//
// Usually obtained from a Registry; a component may also own one and render
// it through a Collector (e.g. per peer, so it goes away with the peer).
class Histogram {
 public:
  // REQUIRES: `bounds` finite, strictly increasing (may be empty: then only
  // the +Inf bucket).
  explicit Histogram(std::vector<double> bounds);
  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;

  void Observe(double v);

  // Observations so far (equals the +Inf bucket).
  uint64_t count() const;
  double sum() const { return sum_.load(std::memory_order_relaxed); }
  const std::vector<double>& bounds() const { return bounds_; }
  // Cumulative counts, one per bound and a last one for +Inf (== count()).
  // Each bucket is read once, so the result is non-decreasing even while
  // other threads observe.
  std::vector<uint64_t> CumulativeCounts() const;

 private:
  std::vector<double> bounds_;
  // Per bucket, not cumulative: bounds_.size() + 1 entries, the last for
  // values above every bound.
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;
  std::atomic<double> sum_{0.0};
};

// Default buckets for latencies in seconds (requests, fsync, apply): 50us to
// 10s in 1-2.5-5 steps.
std::vector<double> LatencyBuckets();

class Registry {
 public:
  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Return the same object for the same (name, labels). Every metric of one
  // name has the same type and help (and, for histograms, bounds). Names
  // match [a-zA-Z_:][a-zA-Z0-9_:]*, label names [a-zA-Z_][a-zA-Z0-9_]* (not
  // starting with "__"; "le" is reserved for histograms); counters' names end
  // in _total. Pointers stay valid for the registry's lifetime. Thread-safe.
  Counter* GetCounter(std::string_view name, std::string_view help, const Labels& labels = {});
  Gauge* GetGauge(std::string_view name, std::string_view help, const Labels& labels = {});
  Histogram* GetHistogram(std::string_view name, std::string_view help, std::vector<double> bounds,
                          const Labels& labels = {});

  // Receives the samples a collector computes when scraped. The same rules
  // as above apply; a collector may add to a family the registry also holds
  // (same type and help), but not a series it holds.
  class Collector {
   public:
    void Counter(std::string_view name, std::string_view help, double value, const Labels& labels = {});
    void Gauge(std::string_view name, std::string_view help, double value, const Labels& labels = {});
    // Renders a snapshot of `histogram` (one the component owns).
    void Histogram(std::string_view name, std::string_view help, const metrics::Histogram& histogram,
                   const Labels& labels = {});

   private:
    friend class Registry;
    struct Families;
    explicit Collector(Families* out) : out_(out) {}
    Families* out_;
  };

  // `collect` runs during Render(), on the scraping thread, with no registry
  // lock held except the one that keeps collectors from being removed while
  // they run: it may call Get*, but not AddCollector or RemoveCollector.
  // Returns an id for RemoveCollector.
  uint64_t AddCollector(std::function<void(Collector&)> collect);
  // After it returns the callback is not running and never runs again, so a
  // component can unregister in its destructor. Unknown ids are ignored.
  void RemoveCollector(uint64_t id);

  // The text exposition format: one # HELP and # TYPE per family, families
  // sorted by name, the series of one family together, sorted by labels.
  std::string Render() const;

 private:
  struct Family;

  Family* FamilyFor(std::string_view name, std::string_view help, int type,
                    const std::vector<double>* bounds);

  mutable std::mutex mu_;  // guards families_
  std::map<std::string, std::unique_ptr<Family>, std::less<>> families_;

  // Held while collectors run, so RemoveCollector waits for a scrape in
  // progress. Never taken while holding mu_.
  mutable std::mutex collectors_mu_;
  uint64_t next_collector_id_ = 1;
  std::map<uint64_t, std::function<void(Collector&)>> collectors_;
};

}  // namespace rkv::metrics

#endif  // RKV_COMMON_METRICS_H_
