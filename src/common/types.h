// Strong types for the three integers Raft passes around everywhere.
//
// Term, LogIndex and NodeId are distinct types, so swapping two of them in a
// call (the classic `Append(term, index)` vs `Append(index, term)` mistake)
// fails to compile instead of corrupting a log. Each wraps a uint64_t; the
// raw value is reachable through value() for encoding and printing.
//
//   Term t{3};
//   LogIndex i{7};
//   LogIndex next = i + 1;          // index arithmetic with plain counts
//   uint64_t n = next - LogIndex{1};  // distance between two indexes
//   // Term u = i;                  // does not compile
#ifndef RKV_COMMON_TYPES_H_
#define RKV_COMMON_TYPES_H_

#include <compare>
#include <cstdint>
#include <functional>
#include <ostream>

#include "common/assert.h"

namespace rkv {

template <typename Tag>
class StrongId {
 public:
  constexpr StrongId() = default;
  constexpr explicit StrongId(uint64_t value) : value_(value) {}

  constexpr uint64_t value() const { return value_; }

  friend constexpr auto operator<=>(StrongId, StrongId) = default;
  friend constexpr bool operator==(StrongId, StrongId) = default;

  friend std::ostream& operator<<(std::ostream& os, StrongId id) { return os << id.value_; }

 private:
  uint64_t value_ = 0;
};

struct TermTag {};
struct LogIndexTag {};
struct NodeIdTag {};

// A Raft term. Term{0} is "before any election" (the term of the empty log).
using Term = StrongId<TermTag>;
// A position in the Raft log. LogIndex{0} is "before the first entry".
using LogIndex = StrongId<LogIndexTag>;
// A member's identity. NodeId{0} (kNoNode) means "nobody" (no vote, no leader).
// Ids are never reused for a different member.
using NodeId = StrongId<NodeIdTag>;

inline constexpr NodeId kNoNode{0};

// The next term (a candidate's term).
constexpr Term NextTerm(Term t) { return Term{t.value() + 1}; }

// Index arithmetic: an index plus or minus a count is an index; the distance
// between two indexes is a count. Underflow is a bug.
constexpr LogIndex operator+(LogIndex i, uint64_t n) { return LogIndex{i.value() + n}; }
inline LogIndex operator-(LogIndex i, uint64_t n) {
  RKV_ASSERT(i.value() >= n);
  return LogIndex{i.value() - n};
}
inline uint64_t operator-(LogIndex a, LogIndex b) {
  RKV_ASSERT(a >= b);
  return a.value() - b.value();
}

}  // namespace rkv

template <typename Tag>
struct std::hash<rkv::StrongId<Tag>> {
  size_t operator()(rkv::StrongId<Tag> id) const noexcept { return std::hash<uint64_t>{}(id.value()); }
};

#endif  // RKV_COMMON_TYPES_H_
