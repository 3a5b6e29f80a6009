#include "common/text.h"

#include <gtest/gtest.h>

#include <string>

namespace rkv {
namespace {

TEST(Base64Test, EncodesTheRfc4648Vectors) {
  EXPECT_EQ(Base64Encode(""), "");
  EXPECT_EQ(Base64Encode("f"), "Zg==");
  EXPECT_EQ(Base64Encode("fo"), "Zm8=");
  EXPECT_EQ(Base64Encode("foo"), "Zm9v");
  EXPECT_EQ(Base64Encode("foob"), "Zm9vYg==");
  EXPECT_EQ(Base64Encode("fooba"), "Zm9vYmE=");
  EXPECT_EQ(Base64Encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(Base64Encode(std::string("\xff\x00\xfe", 3)), "/wD+");
}

TEST(Base64Test, EveryByteStringOfUpToThreeBytesRoundTrips) {
  std::string bytes;
  for (int a = 0; a < 256; a += 5) {
    for (int b = 0; b < 256; b += 7) {
      for (size_t n = 0; n <= 3; ++n) {
        bytes.assign({static_cast<char>(a), static_cast<char>(b), static_cast<char>(a ^ b)});
        bytes.resize(n);
        const auto back = Base64Decode(Base64Encode(bytes));
        ASSERT_TRUE(back.has_value()) << a << " " << b << " " << n;
        EXPECT_EQ(*back, bytes);
      }
    }
  }
}

TEST(Base64Test, RefusesWhatIsNotPaddedStandardBase64) {
  for (const char* bad : {"Zg", "Zg=", "Zm9", "Z===", "Zg=a", "Zm9v-_==", "Zm 9v", "Zg==Zg=="}) {
    EXPECT_FALSE(Base64Decode(bad).has_value()) << bad;
  }
}

TEST(Utf8Test, AcceptsWellFormedTextAndRefusesTheRest) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("plain ascii"));
  EXPECT_TRUE(IsValidUtf8("\xc3\xa9t\xc3\xa9"));         // été
  EXPECT_TRUE(IsValidUtf8("\xe2\x82\xac"));              // U+20AC
  EXPECT_TRUE(IsValidUtf8("\xf0\x9f\x98\x80"));          // U+1F600
  EXPECT_TRUE(IsValidUtf8("\xf4\x8f\xbf\xbf"));          // U+10FFFF
  EXPECT_FALSE(IsValidUtf8("\xff"));
  EXPECT_FALSE(IsValidUtf8("\xc3"));                     // truncated
  EXPECT_FALSE(IsValidUtf8("\xc0\xaf"));                 // overlong '/'
  EXPECT_FALSE(IsValidUtf8("\xe0\x80\xaf"));             // overlong
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\x80"));             // surrogate U+D800
  EXPECT_FALSE(IsValidUtf8("\xf4\x90\x80\x80"));         // past U+10FFFF
  EXPECT_FALSE(IsValidUtf8("\xe2\x82"));                 // truncated
  EXPECT_FALSE(IsValidUtf8("a\x80"));                    // stray continuation
}

}  // namespace
}  // namespace rkv
