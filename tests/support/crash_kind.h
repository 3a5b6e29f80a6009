// The three ways a crash test can treat unsynced bytes, as a test parameter:
// all dropped, a random prefix of each file kept (a torn write), or all
// kept (the page cache reached the disk just in time).
#ifndef RKV_TESTS_SUPPORT_CRASH_KIND_H_
#define RKV_TESTS_SUPPORT_CRASH_KIND_H_

#include <cstdint>
#include <string>

#include "env/fault_env.h"

namespace rkv::test {

enum class CrashKind { kDropUnsynced, kTornRandom, kKeepAll };

inline std::string CrashKindName(CrashKind kind) {
  switch (kind) {
    case CrashKind::kDropUnsynced: return "DropUnsynced";
    case CrashKind::kTornRandom: return "TornRandom";
    case CrashKind::kKeepAll: return "KeepAll";
  }
  return "?";
}

// The FaultEnv crash options for `kind`; `seed` draws the torn prefixes.
inline CrashOptions MakeCrashOptions(CrashKind kind, uint64_t seed) {
  CrashOptions o;
  if (kind == CrashKind::kTornRandom) o.seed = seed;
  if (kind == CrashKind::kKeepAll) o.keep_all_unsynced = true;
  return o;
}

}  // namespace rkv::test

#endif  // RKV_TESTS_SUPPORT_CRASH_KIND_H_
