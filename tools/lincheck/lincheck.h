// Linearizability checker for key-value histories.
//
// A history is what clients saw: each operation with its client, the time it
// was invoked, the time it completed and what it returned. Check() decides
// whether some sequential order of the operations, consistent with real time
// (an operation that completed before another was invoked comes first), is a
// valid execution of a key-value map. The model:
//
//   put(key, value)             -> ok
//   get(key)                    -> value, or absent
//   delete(key)                 -> ok
//   cas(key, expected, new)     -> ok (swapped) or fail (the value was not
//                                  `expected`; expected may be absent)
//
// The search is Wing & Gong's with Lowe's memoisation (as in Porcupine), run
// separately for each key: every operation touches exactly one key, and keys
// are independent in this model. Work is bounded (CheckOptions); past the
// budget the verdict is kUnknown rather than a hang.
//
// Outcomes that are not a plain answer:
//  - kUnknown (timed out, connection lost): the operation may or may not have
//    taken effect, at any time after its invocation. Its completion time is
//    taken as +infinity and its result as unconstrained.
//  - kPending: invoked, never completed before the history ended; checked as
//    kUnknown.
//  - kRejected: known NOT to have taken effect (e.g. "not leader"); dropped.
//  - kFail: for cas, the comparison failed (the value was not `expected`), an
//    observation the checker uses. For put, get and delete, the operation did
//    not take effect; dropped.
//
// The text format of histories is in docs/formats/history.md.
#ifndef RKV_TOOLS_LINCHECK_LINCHECK_H_
#define RKV_TOOLS_LINCHECK_LINCHECK_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/result.h"
#include "common/status.h"

namespace rkv::lincheck {

enum class OpType : uint8_t { kPut, kGet, kDelete, kCas };

enum class Outcome : uint8_t { kOk, kFail, kRejected, kUnknown, kPending };

// Time stamps are integers that only order events. kNoTime marks a
// completion time that is not known (kUnknown without a recorded time, and
// kPending).
inline constexpr int64_t kNoTime = std::numeric_limits<int64_t>::max();

struct Operation {
  uint64_t client = 0;
  OpType type = OpType::kGet;
  std::string key;
  // put: the value written. cas: the expected value (nullopt = absent).
  // get, delete: unused (nullopt).
  std::optional<std::string> value;
  // cas: the new value. Others: unused (empty).
  std::string new_value;

  int64_t invoke_time = 0;
  // For kUnknown this is when the client gave up (informative only; the
  // checker uses +infinity); kNoTime if not recorded.
  int64_t complete_time = kNoTime;
  Outcome outcome = Outcome::kPending;
  // get with kOk: the value read (nullopt = absent). Others: nullopt.
  std::optional<std::string> result;

  // 1-based line of the invoke event when read from a file; 0 otherwise.
  // Not part of the history's meaning (ignored by ==).
  int line = 0;

  // Factories for the invocation part; times and outcome are filled in by the
  // Recorder (or by hand).
  static Operation Put(uint64_t client, std::string key, std::string value);
  static Operation Get(uint64_t client, std::string key);
  static Operation Delete(uint64_t client, std::string key);
  static Operation Cas(uint64_t client, std::string key, std::optional<std::string> expected,
                       std::string new_value);

  friend bool operator==(const Operation& a, const Operation& b);
};

struct History {
  std::vector<Operation> ops;
  friend bool operator==(const History&, const History&) = default;
};

// One line describing an operation, e.g.
//   client 3: cas k absent v -> ok [invoked 10, completed 14] (line 7)
// Keys and values are escaped as in the file format.
std::string FormatOperation(const Operation& op);

// ---------------------------------------------------------------------------
// Checking.

enum class Verdict : uint8_t { kLinearizable, kNotLinearizable, kUnknown };
std::string_view VerdictName(Verdict v);  // "linearizable", "not linearizable", "unknown"

struct CheckOptions {
  // Search steps (one step = one attempt to linearize an operation or to
  // backtrack) for the whole Check call; 0 = no limit.
  uint64_t max_steps = 50'000'000;
  // Wall time for the whole Check call; zero = no limit.
  std::chrono::milliseconds time_limit{0};
  // Memory of one partition's memoisation cache (each is freed before the
  // next partition); 0 = no limit.
  size_t max_cache_bytes = size_t{1} << 30;
  // The clock time_limit is measured on; nullptr = Clock::Real().
  const Clock* clock = nullptr;
};

struct PartitionReport {
  std::string key;
  Verdict verdict = Verdict::kUnknown;
  size_t operations = 0;  // operations checked (after dropping)
  uint64_t steps = 0;
  uint64_t cache_entries = 0;
  bool checked = false;  // false: the budget ran out before this key's turn
};

struct CheckStats {
  size_t operations = 0;  // in the history
  size_t dropped = 0;     // rejected, failed put/get/delete, get without a result
  size_t pruned = 0;      // unknown-outcome writes whose value nothing observed (left out)
  size_t partitions = 0;  // distinct keys
  uint64_t steps = 0;     // states explored, all partitions
  uint64_t cache_entries = 0;
};

struct CheckResult {
  Verdict verdict = Verdict::kLinearizable;
  // Human-readable; empty when linearizable.
  std::string explanation;
  // kNotLinearizable: the key of the first partition (in checking order) that
  // is not linearizable. kUnknown: the key whose partition exhausted the
  // budget. Empty when linearizable.
  std::string key;
  // kNotLinearizable only: the longest linearizable order found for `key`'s
  // operations, and the operation that could not be placed after it.
  std::vector<Operation> longest_prefix;
  std::optional<Operation> unplaceable;
  // Every key whose partition is not linearizable.
  std::vector<std::string> bad_keys;

  CheckStats stats;
  std::vector<PartitionReport> partitions;  // in checking order
};

CheckResult Check(const History& history, const CheckOptions& options = {});

// ---------------------------------------------------------------------------
// The text format (docs/formats/history.md).

// Parses a history. Errors are InvalidArgument naming the 1-based line.
Result<History> ReadHistory(std::string_view text);
// Writes a history; ReadHistory(WriteHistory(h)) == h when h.ops are in
// invocation order (as the Recorder and ReadHistory produce them).
std::string WriteHistory(const History& history);

// The token encoding of keys and values: bytes outside printable ASCII, space,
// '%' and '#' as %XX; the empty string as ""; a value that would read as a
// reserved token ("absent", "\"\"") has its first byte escaped.
std::string EscapeToken(std::string_view bytes);
// The inverse; false on a malformed escape.
bool UnescapeToken(std::string_view token, std::string* out);

// ---------------------------------------------------------------------------
// Recording from concurrent code.
//
//   Recorder rec;
//   auto id = rec.Invoke(Operation::Put(client, "k", "v"));
//   Status s = kv.Put("k", "v");
//   rec.Complete(id, s.ok() ? Outcome::kOk : Outcome::kUnknown);
//
// Time stamps come from one counter, taken under the recorder's lock, so they
// are unique and follow the real order of the calls. Thread-safe.
class Recorder {
 public:
  using OpId = size_t;

  // Records the invocation of `op` (its times, outcome and result are
  // overwritten) and returns its id.
  OpId Invoke(Operation op);
  // Records the completion of `id`. `result` is the value a get read with
  // kOk (nullopt = absent); nullopt otherwise. Each id completes once.
  void Complete(OpId id, Outcome outcome, std::optional<std::string> result = std::nullopt);

  // The history so far; operations not yet completed are kPending.
  History Snapshot() const;

 private:
  mutable std::mutex mu_;
  int64_t next_time_ = 1;
  History history_;
};

}  // namespace rkv::lincheck

#endif  // RKV_TOOLS_LINCHECK_LINCHECK_H_
