// A small, fast, seeded pseudo-random generator (xoshiro256**).
//
// Everything random in raft-kv (election jitter, simulator choices, test
// data) draws from a Random the caller seeded, never from a global source, so
// a run can be replayed from its seed.
#ifndef RKV_COMMON_RANDOM_H_
#define RKV_COMMON_RANDOM_H_

#include <cstdint>
#include <limits>

namespace rkv {

class Random {
 public:
  using result_type = uint64_t;  // usable with <random> distributions

  explicit Random(uint64_t seed) {
    // Expand the seed with splitmix64 so that nearby seeds give unrelated streams.
    for (auto& word : state_) word = SplitMix64(&seed);
  }

  uint64_t Next() {
    const uint64_t result = Rotl(state_[1] * 5, 7) * 9;
    const uint64_t t = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = Rotl(state_[3], 45);
    return result;
  }
  uint64_t operator()() { return Next(); }
  static constexpr uint64_t min() { return 0; }
  static constexpr uint64_t max() { return std::numeric_limits<uint64_t>::max(); }

  // Uniform in [0, n). REQUIRES: n > 0.
  uint64_t Uniform(uint64_t n) {
    // Lemire's multiply-shift; the bias is below 2^-64 * n, negligible here.
    __extension__ using Wide = unsigned __int128;
    return static_cast<uint64_t>((static_cast<Wide>(Next()) * n) >> 64);
  }
  // Uniform in [lo, hi]. REQUIRES: lo <= hi.
  uint64_t Range(uint64_t lo, uint64_t hi) { return lo + Uniform(hi - lo + 1); }
  // True with probability 1/n.
  bool OneIn(uint64_t n) { return Uniform(n) == 0; }
  // True with probability p (0..1).
  bool Chance(double p) { return NextDouble() < p; }
  // Uniform in [0, 1).
  double NextDouble() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }

 private:
  static uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  static uint64_t SplitMix64(uint64_t* x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

  uint64_t state_[4];
};

}  // namespace rkv

#endif  // RKV_COMMON_RANDOM_H_
