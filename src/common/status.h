// Status: the outcome of an operation that can fail in an expected way.
//
// Expected failures (a missing key, bad input, an I/O error, corruption found
// on read) are returned as a Status, never thrown. Broken invariants are
// RKV_ASSERT (assert.h); environment failures where going on is unsafe are
// RKV_FATAL.
//
// A Status is cheap to return when ok (no allocation). It is [[nodiscard]]:
// ignoring one is a compile warning, and an error in CI.
#ifndef RKV_COMMON_STATUS_H_
#define RKV_COMMON_STATUS_H_

#include <cstdint>
#include <string>
#include <string_view>

namespace rkv {

enum class StatusCode : uint8_t {
  kOk = 0,
  kNotFound,
  kCorruption,
  kIOError,
  kNoSpace,          // the disk is full (ENOSPC)
  kInvalidArgument,  // bad input from a caller; the operation was not applied
  kNotSupported,
  kBusy,             // the resource is held by someone else (e.g. a locked data directory)
  kTimeout,
  kShuttingDown,
  kNotLeader,
  kAborted,
};

// Returns a short stable name ("NotFound", "IOError", ...).
std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  // An ok status.
  Status() = default;

  static Status OK() { return Status(); }
  static Status NotFound(std::string_view msg = {}) { return {StatusCode::kNotFound, msg}; }
  static Status Corruption(std::string_view msg) { return {StatusCode::kCorruption, msg}; }
  static Status IOError(std::string_view msg) { return {StatusCode::kIOError, msg}; }
  static Status NoSpace(std::string_view msg) { return {StatusCode::kNoSpace, msg}; }
  static Status InvalidArgument(std::string_view msg) { return {StatusCode::kInvalidArgument, msg}; }
  static Status NotSupported(std::string_view msg) { return {StatusCode::kNotSupported, msg}; }
  static Status Busy(std::string_view msg) { return {StatusCode::kBusy, msg}; }
  static Status Timeout(std::string_view msg) { return {StatusCode::kTimeout, msg}; }
  static Status ShuttingDown(std::string_view msg = {}) { return {StatusCode::kShuttingDown, msg}; }
  static Status NotLeader(std::string_view msg = {}) { return {StatusCode::kNotLeader, msg}; }
  static Status Aborted(std::string_view msg) { return {StatusCode::kAborted, msg}; }

  // Maps an errno value from a failed system call on `context` (usually a
  // path) to IOError, or NoSpace for ENOSPC/EDQUOT.
  static Status FromErrno(int err, std::string_view context);

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

  bool IsNotFound() const { return code_ == StatusCode::kNotFound; }
  bool IsCorruption() const { return code_ == StatusCode::kCorruption; }
  bool IsIOError() const { return code_ == StatusCode::kIOError; }
  bool IsNoSpace() const { return code_ == StatusCode::kNoSpace; }
  bool IsInvalidArgument() const { return code_ == StatusCode::kInvalidArgument; }
  bool IsBusy() const { return code_ == StatusCode::kBusy; }
  bool IsTimeout() const { return code_ == StatusCode::kTimeout; }
  bool IsShuttingDown() const { return code_ == StatusCode::kShuttingDown; }
  bool IsNotLeader() const { return code_ == StatusCode::kNotLeader; }

  // "OK", or "<Code>: <message>".
  std::string ToString() const;

  friend bool operator==(const Status& a, const Status& b) {
    return a.code_ == b.code_ && a.message_ == b.message_;
  }

 private:
  Status(StatusCode code, std::string_view msg) : code_(code), message_(msg) {}

  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

}  // namespace rkv

// Returns early from the enclosing function when `expr` is not ok.
#define RKV_RETURN_IF_ERROR(expr)             \
  do {                                        \
    ::rkv::Status rkv_status_ = (expr);       \
    if (!rkv_status_.ok()) return rkv_status_; \
  } while (0)

#endif  // RKV_COMMON_STATUS_H_
