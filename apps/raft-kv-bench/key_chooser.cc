#include "key_chooser.h"

#include <cmath>
#include <numeric>

#include "common/assert.h"

namespace rkv::bench {

double ZipfianGenerator::Zeta(uint64_t n, double theta) {
  double sum = 0;
  for (uint64_t i = 1; i <= n; ++i) sum += 1.0 / std::pow(static_cast<double>(i), theta);
  return sum;
}

ZipfianGenerator::ZipfianGenerator(uint64_t n, double theta)
    : n_(n), theta_(theta), zeta_n_(Zeta(n, theta)) {
  RKV_ASSERT(n >= 1);
  RKV_ASSERT(theta > 0 && theta < 1);
  const double zeta2 = Zeta(2, theta);
  alpha_ = 1.0 / (1.0 - theta);
  eta_ = (1.0 - std::pow(2.0 / static_cast<double>(n), 1.0 - theta)) / (1.0 - zeta2 / zeta_n_);
  half_pow_theta_ = std::pow(0.5, theta);
}

// YCSB's ZipfianGenerator.nextLong: ranks 0 and 1 exactly, the rest by the
// closed-form approximation of the inverse distribution.
uint64_t ZipfianGenerator::Next(Random& random) const {
  const double u = random.NextDouble();
  const double uz = u * zeta_n_;
  if (uz < 1.0) return 0;
  if (uz < 1.0 + half_pow_theta_) return n_ > 1 ? 1 : 0;
  const double rank =
      static_cast<double>(n_) * std::pow(eta_ * u - eta_ + 1.0, alpha_);
  const auto r = static_cast<uint64_t>(rank);
  return r < n_ ? r : n_ - 1;
}

namespace {

// A stride coprime to `keys` near keys / golden ratio, so that consecutive
// ranks land far apart.
uint64_t CoprimeStride(uint64_t keys) {
  if (keys <= 2) return 1;
  uint64_t stride = static_cast<uint64_t>(static_cast<double>(keys) * 0.6180339887498949);
  if (stride == 0) stride = 1;
  while (std::gcd(stride, keys) != 1) ++stride;
  return stride;
}

}  // namespace

KeyChooser::KeyChooser(KeyDistribution distribution, uint64_t keys, double theta)
    : distribution_(distribution),
      keys_(keys),
      stride_(CoprimeStride(keys)),
      // A one-item generator when it is not used: building it is O(n).
      zipfian_(distribution == KeyDistribution::kZipfian ? keys : 1,
               distribution == KeyDistribution::kZipfian ? theta : 0.5) {
  RKV_ASSERT(keys >= 1);
}

uint64_t KeyChooser::KeyOfRank(uint64_t rank) const {
  __extension__ using Wide = unsigned __int128;
  return static_cast<uint64_t>(static_cast<Wide>(rank) * stride_ % keys_);
}

uint64_t KeyChooser::Next(Random& random) const {
  if (distribution_ == KeyDistribution::kUniform) return random.Uniform(keys_);
  return KeyOfRank(zipfian_.Next(random));
}

}  // namespace rkv::bench
