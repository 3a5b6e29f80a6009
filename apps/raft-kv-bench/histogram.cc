#include "histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace rkv::bench {

// Bucket e * 128 + (value >> e), where e = 0 below 256 and otherwise the
// number of low bits dropped so that 128 <= value >> e < 256. Buckets of
// consecutive e follow each other without a gap: e = 0 fills 0..255, and
// each further e adds 128.
size_t Histogram::BucketIndex(uint64_t value) {
  value = std::min(value, kMaxValue);
  const int msb = 63 - std::countl_zero(value | 1);
  const int shift = std::max(0, msb - kSubBucketBits);
  return static_cast<size_t>(shift) * kSubBuckets + static_cast<size_t>(value >> shift);
}

uint64_t Histogram::BucketLowest(size_t index) {
  if (index < 2 * kSubBuckets) return index;
  const uint64_t shift = index / kSubBuckets - 1;
  const uint64_t sub = index - shift * kSubBuckets;  // 128..255
  return sub << shift;
}

uint64_t Histogram::BucketHighest(size_t index) {
  if (index < 2 * kSubBuckets) return index;
  const uint64_t shift = index / kSubBuckets - 1;
  const uint64_t sub = index - shift * kSubBuckets;
  return ((sub + 1) << shift) - 1;
}

void Histogram::Record(uint64_t value, uint64_t count) {
  if (count == 0) return;
  counts_[BucketIndex(value)] += count;
  count_ += count;
  min_ = std::min(min_, value);
  max_ = std::max(max_, value);
  sum_ += static_cast<double>(value) * static_cast<double>(count);
}

void Histogram::Merge(const Histogram& other) {
  if (other.count_ == 0) return;
  for (size_t i = 0; i < kBuckets; ++i) counts_[i] += other.counts_[i];
  count_ += other.count_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
  sum_ += other.sum_;
}

void Histogram::Clear() { *this = Histogram(); }

double Histogram::mean() const {
  return count_ == 0 ? 0.0 : sum_ / static_cast<double>(count_);
}

uint64_t Histogram::ValueAtPercentile(double percentile) const {
  if (count_ == 0) return 0;
  percentile = std::clamp(percentile, 0.0, 100.0);
  // The rank (1-based) of the value asked for; at least the first.
  const double exact = std::ceil(static_cast<double>(count_) * percentile / 100.0);
  const uint64_t rank = std::clamp<uint64_t>(static_cast<uint64_t>(exact), 1, count_);
  if (rank == count_) return max_;
  uint64_t seen = 0;
  for (size_t i = 0; i < kBuckets; ++i) {
    seen += counts_[i];
    if (seen >= rank) return std::clamp(BucketHighest(i), min_, max_);
  }
  return max_;
}

}  // namespace rkv::bench
