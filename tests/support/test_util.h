// Helpers shared by every test: status assertions and temporary directories.
#ifndef RKV_TESTS_SUPPORT_TEST_UTIL_H_
#define RKV_TESTS_SUPPORT_TEST_UTIL_H_

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/status.h"

#define ASSERT_OK(expr)                                  \
  do {                                                   \
    const ::rkv::Status rkv_s_ = ::rkv::test::ToStatus(expr); \
    ASSERT_TRUE(rkv_s_.ok()) << rkv_s_.ToString();       \
  } while (0)
#define EXPECT_OK(expr)                                  \
  do {                                                   \
    const ::rkv::Status rkv_s_ = ::rkv::test::ToStatus(expr); \
    EXPECT_TRUE(rkv_s_.ok()) << rkv_s_.ToString();       \
  } while (0)

namespace rkv::test {

inline Status ToStatus(const Status& s) { return s; }
template <typename T>
Status ToStatus(const Result<T>& r) { return r.status(); }

// A fresh directory under $TMPDIR (or /tmp), removed with its contents when
// the object is destroyed.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string Join(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// A seed for randomized tests: $RKV_TEST_SEED if set, else `fallback`.
// Tests print it on failure so a run can be repeated.
uint64_t TestSeed(uint64_t fallback);

// `count` distinct TCP ports on 127.0.0.1 that were free a moment ago (bound
// at once, then released), for servers whose peers must know their ports
// before they start. 0 where none could be had.
std::vector<uint16_t> FreePorts(int count);

}  // namespace rkv::test

#endif  // RKV_TESTS_SUPPORT_TEST_UTIL_H_
