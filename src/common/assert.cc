#include "common/assert.h"

#include <cstdio>
#include <cstdlib>

#include "common/logging.h"

namespace rkv {

namespace internal {
void AssertFailed(const char* expr, const char* file, int line, std::string_view msg) {
  // Write straight to stderr as well: the logger may be what is broken.
  std::fprintf(stderr, "assertion failed: %s at %s:%d %.*s\n", expr, file, line,
               static_cast<int>(msg.size()), msg.data());
  std::fflush(stderr);
  std::abort();
}
}  // namespace internal

void Fatal(FatalReason reason, std::string_view message) {
  RKV_LOG_ERROR("event=fatal reason={} message=\"{}\"", static_cast<int>(reason), message);
  log::Flush();
  std::fprintf(stderr, "fatal (exit %d): %.*s\n", static_cast<int>(reason),
               static_cast<int>(message.size()), message.data());
  std::fflush(stderr);
  std::_Exit(static_cast<int>(reason));
}

}  // namespace rkv
