// CRC32C must be the standard Castagnoli CRC (the value other tools compute),
// and Extend must compose.
#include "common/crc32c.h"

#include <gtest/gtest.h>

#include <string>

namespace rkv {
namespace {

TEST(Crc32cTest, StandardCheckValue) {
  EXPECT_EQ(crc32c::Value("123456789"), 0xe3069283u);
  EXPECT_EQ(crc32c::Value(""), 0u);
  // RFC 3720 B.4: 32 bytes of zeros.
  std::string zeros(32, '\0');
  EXPECT_EQ(crc32c::Value(zeros), 0x8a9136aau);
}

TEST(Crc32cTest, ExtendComposes) {
  std::string data = "hello, raft-kv: records are checksummed";
  for (size_t split = 0; split <= data.size(); ++split) {
    uint32_t a = crc32c::Value(data.data(), split);
    EXPECT_EQ(crc32c::Extend(a, data.data() + split, data.size() - split), crc32c::Value(data));
  }
}

TEST(Crc32cTest, DetectsEverySingleBitFlip) {
  std::string data(300, 'x');
  const uint32_t good = crc32c::Value(data);
  for (size_t i = 0; i < data.size() * 8; ++i) {
    std::string flipped = data;
    flipped[i / 8] = static_cast<char>(flipped[i / 8] ^ (1 << (i % 8)));
    ASSERT_NE(crc32c::Value(flipped), good) << i;
  }
}

}  // namespace
}  // namespace rkv
