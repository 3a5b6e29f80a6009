// Assertions and fatal exits.
//
// Three tiers of failure (see docs/architecture.md):
//  - expected failures are returned as Status / Result;
//  - RKV_FATAL(reason, msg): the environment failed in a way where going on
//    would be unsafe (e.g. an fsync of the Raft log failed). Logs and exits
//    with an exit code specific to the reason;
//  - RKV_ASSERT(cond): our own bug. Always on, in release builds too.
//    RKV_DASSERT is for checks too costly for release (debug builds only).
#ifndef RKV_COMMON_ASSERT_H_
#define RKV_COMMON_ASSERT_H_

#include <string_view>

namespace rkv {

// Each reason exits with its own status, so supervisors and tests can tell
// them apart. Values are stable.
enum class FatalReason : int {
  kAssertion = 70,
  kStorageSyncFailed = 71,
  kWalSyncFailed = 72,
  kCorruptState = 73,
  kOutOfSpace = 74,
  kConfig = 75,
};

namespace internal {
[[noreturn]] void AssertFailed(const char* expr, const char* file, int line, std::string_view msg);
}  // namespace internal

// Logs `message` with the reason and exits the process with the reason's code.
[[noreturn]] void Fatal(FatalReason reason, std::string_view message);

}  // namespace rkv

#define RKV_ASSERT(cond)                                                   \
  do {                                                                     \
    if (!(cond)) [[unlikely]]                                              \
      ::rkv::internal::AssertFailed(#cond, __FILE__, __LINE__, {});        \
  } while (0)

#define RKV_ASSERT_MSG(cond, msg)                                          \
  do {                                                                     \
    if (!(cond)) [[unlikely]]                                              \
      ::rkv::internal::AssertFailed(#cond, __FILE__, __LINE__, (msg));     \
  } while (0)

#ifdef NDEBUG
#define RKV_DASSERT(cond) \
  do {                    \
  } while (0)
#else
#define RKV_DASSERT(cond) RKV_ASSERT(cond)
#endif

#define RKV_FATAL(reason, msg) ::rkv::Fatal((reason), (msg))

#endif  // RKV_COMMON_ASSERT_H_
