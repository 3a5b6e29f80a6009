// Histogram: a latency histogram in the manner of HdrHistogram, with
// microsecond resolution and fixed memory.
//
// Values (microseconds) below 256 get a bucket each; above that, every power
// of two is split into 128 equal buckets, so a value is known to within
// 1/128 (0.8%) of itself. Values up to kMaxValue (about 19 hours) are
// tracked; larger ones are counted in the last bucket. The exact minimum
// and maximum are kept besides the buckets.
//
//   Histogram h;
//   h.Record(412);                      // one request took 412 us
//   uint64_t p99 = h.ValueAtPercentile(99.0);
#ifndef RKV_APPS_RAFT_KV_BENCH_HISTOGRAM_H_
#define RKV_APPS_RAFT_KV_BENCH_HISTOGRAM_H_

#include <array>
#include <cstddef>
#include <cstdint>

namespace rkv::bench {

class Histogram {
 public:
  // 2^kSubBucketBits buckets per power of two above 2 * 2^kSubBucketBits.
  static constexpr int kSubBucketBits = 7;
  static constexpr uint64_t kSubBuckets = uint64_t{1} << kSubBucketBits;  // 128
  static constexpr uint64_t kMaxValue = (uint64_t{1} << 36) - 1;
  // Buckets 0..255 hold 0..255 exactly; then 128 per power of two up to 2^36.
  static constexpr size_t kBuckets = (36 - kSubBucketBits - 1) * kSubBuckets + 2 * kSubBuckets;

  void Record(uint64_t value, uint64_t count = 1);
  // Adds every value of `other`.
  void Merge(const Histogram& other);
  void Clear();

  uint64_t count() const { return count_; }
  // 0 when empty.
  uint64_t min() const { return count_ == 0 ? 0 : min_; }
  uint64_t max() const { return max_; }
  double mean() const;

  // The value below or at which `percentile` percent (0..100) of the
  // recorded values lie: the highest value of the bucket holding the
  // ceil(count * percentile / 100)-th smallest value, but never above max()
  // nor below min(). 0 when empty. 0 gives min(), 100 gives max().
  uint64_t ValueAtPercentile(double percentile) const;

  // The bucket of `value` and the range of values a bucket stands for
  // (exposed for tests).
  static size_t BucketIndex(uint64_t value);
  static uint64_t BucketLowest(size_t index);
  static uint64_t BucketHighest(size_t index);

 private:
  std::array<uint64_t, kBuckets> counts_{};
  uint64_t count_ = 0;
  uint64_t min_ = UINT64_MAX;
  uint64_t max_ = 0;
  // The sum of the recorded values, for the mean (a double: no overflow).
  double sum_ = 0;
};

}  // namespace rkv::bench

#endif  // RKV_APPS_RAFT_KV_BENCH_HISTOGRAM_H_
