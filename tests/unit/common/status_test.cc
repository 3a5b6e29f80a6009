#include "common/result.h"
#include "common/status.h"

#include <gtest/gtest.h>

#include <cerrno>

namespace rkv {
namespace {

TEST(StatusTest, OkAndErrors) {
  EXPECT_TRUE(Status().ok());
  EXPECT_EQ(Status::OK().ToString(), "OK");
  Status s = Status::NotFound("key");
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(s.IsNotFound());
  EXPECT_EQ(s.ToString(), "NotFound: key");
}

TEST(StatusTest, FromErrnoMapsDiskFullToNoSpace) {
  EXPECT_TRUE(Status::FromErrno(ENOSPC, "f").IsNoSpace());
  Status eio = Status::FromErrno(EIO, "/d/f");
  EXPECT_TRUE(eio.IsIOError());
  EXPECT_NE(eio.message().find("/d/f"), std::string::npos);
}

Result<int> Half(int x) {
  if (x % 2 != 0) return Status::InvalidArgument("odd");
  return x / 2;
}

Result<int> Quarter(int x) {
  RKV_ASSIGN_OR_RETURN(int h, Half(x));
  return Half(h);
}

TEST(ResultTest, ValueOrStatusPropagates) {
  Result<int> r = Quarter(8);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, 2);
  Result<int> bad = Quarter(6);
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(bad.status().IsInvalidArgument());
}

TEST(ResultDeathTest, ErrorResultFromOkStatusAsserts) {
  EXPECT_DEATH({ Result<int> r{Status::OK()}; (void)r; }, "assertion failed");
}

}  // namespace
}  // namespace rkv
