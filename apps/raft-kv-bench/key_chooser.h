// Which key each request touches: uniform over the key space, or zipfian
// (a few keys get most requests) with the generator of YCSB (Gray et al.,
// "Quickly generating billion-record synthetic databases", SIGMOD 1994).
//
//   KeyChooser keys(KeyDistribution::kZipfian, 100000, 0.99);
//   Random random(seed);
//   uint64_t key = keys.Next(random);   // in [0, 100000)
#ifndef RKV_APPS_RAFT_KV_BENCH_KEY_CHOOSER_H_
#define RKV_APPS_RAFT_KV_BENCH_KEY_CHOOSER_H_

#include <cstdint>

#include "common/random.h"

namespace rkv::bench {

// Ranks 0..n-1, rank r drawn with probability proportional to 1/(r+1)^theta,
// so rank 0 is the most popular. Immutable once built: threads may share
// one, each with its own Random.
class ZipfianGenerator {
 public:
  // REQUIRES: n >= 1, 0 < theta < 1. Computes zeta(n, theta): O(n) once.
  ZipfianGenerator(uint64_t n, double theta);

  uint64_t Next(Random& random) const;

  uint64_t items() const { return n_; }
  double theta() const { return theta_; }
  // sum_{i=1..n} 1 / i^theta: the probability of rank r is 1 / ((r+1)^theta * zeta).
  double zeta() const { return zeta_n_; }
  static double Zeta(uint64_t n, double theta);

 private:
  uint64_t n_;
  double theta_;
  double zeta_n_;
  double alpha_;
  double eta_;
  double half_pow_theta_;  // 0.5^theta: rank 1's share of the mass after rank 0's
};

enum class KeyDistribution { kUniform, kZipfian };

// Draws key indexes in [0, keys). Zipfian ranks are spread over the key
// space by a fixed permutation (rank r is key (r * stride) mod keys, with
// stride coprime to keys), so the popular keys are not all neighbours, as
// in YCSB's scrambled zipfian; the popularity of each key is still exactly
// that of its rank.
class KeyChooser {
 public:
  // REQUIRES: keys >= 1; for kZipfian 0 < theta < 1.
  KeyChooser(KeyDistribution distribution, uint64_t keys, double theta = 0.99);

  uint64_t Next(Random& random) const;

  // The key that zipfian rank `rank` stands for (a bijection on [0, keys)).
  uint64_t KeyOfRank(uint64_t rank) const;

 private:
  KeyDistribution distribution_;
  uint64_t keys_;
  uint64_t stride_ = 1;
  ZipfianGenerator zipfian_;
};

}  // namespace rkv::bench

#endif  // RKV_APPS_RAFT_KV_BENCH_KEY_CHOOSER_H_
