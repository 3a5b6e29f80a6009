// Result<T>: a value or the Status that explains why there is none.
//
//   Result<std::string> r = engine.Get(key);
//   if (!r.ok()) return r.status();
//   Use(*r);
#ifndef RKV_COMMON_RESULT_H_
#define RKV_COMMON_RESULT_H_

#include <utility>
#include <variant>

#include "common/assert.h"
#include "common/status.h"

namespace rkv {

template <typename T>
class [[nodiscard]] Result {
 public:
  // Implicit on purpose: `return value;` and `return status;` both work.
  Result(T value) : rep_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(Status status) : rep_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    RKV_ASSERT(!std::get<Status>(rep_).ok());
  }

  bool ok() const { return std::holds_alternative<T>(rep_); }

  // The error; an ok Status when there is a value.
  Status status() const { return ok() ? Status::OK() : std::get<Status>(rep_); }

  // REQUIRES: ok().
  T& value() & { RKV_ASSERT(ok()); return std::get<T>(rep_); }
  const T& value() const& { RKV_ASSERT(ok()); return std::get<T>(rep_); }
  T&& value() && { RKV_ASSERT(ok()); return std::get<T>(std::move(rep_)); }

  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Status> rep_;
};

}  // namespace rkv

// Evaluates `expr` (a Result<T>); on error returns its status from the
// enclosing function, else moves the value into `lhs`.
#define RKV_ASSIGN_OR_RETURN(lhs, expr) \
  RKV_ASSIGN_OR_RETURN_IMPL_(RKV_CONCAT_(rkv_result_, __LINE__), lhs, expr)
#define RKV_CONCAT_INNER_(a, b) a##b
#define RKV_CONCAT_(a, b) RKV_CONCAT_INNER_(a, b)
#define RKV_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  if (!tmp.ok()) return tmp.status();              \
  lhs = std::move(tmp).value()

#endif  // RKV_COMMON_RESULT_H_
