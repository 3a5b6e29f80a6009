// The plain data of the key-value API that the front ends, the node and the
// state machine share: operations of an atomic batch, the conditions of a
// transaction, and what reads and writes answer. No behaviour here.
//
// Revisions. Every user write is applied at one Raft log index; a key's
// revision is the index of the entry that last wrote it (put, or the put of
// a transaction). An absent key has revision 0. Revisions only grow, are the
// same on every member, and survive snapshots, so a client can compare them
// across nodes and restarts.
#ifndef RKV_NODE_KV_TYPES_H_
#define RKV_NODE_KV_TYPES_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace rkv {

// One operation of a batch or transaction.
struct BatchOp {
  enum class Type : uint8_t { kPut = 1, kDelete = 2 };
  Type type = Type::kPut;
  std::string key;
  std::string value;       // kPut only
  uint64_t expiry_ms = 0;  // kPut only; absolute, 0 = never
  // kPut only, from a client: a time to live in milliseconds that the node
  // taking the request turns into expiry_ms (from the time it stamps on
  // the command). Never encoded; 0 once converted.
  uint64_t ttl_ms = 0;

  friend bool operator==(const BatchOp&, const BatchOp&) = default;
};

// A condition of a transaction on one key, judged when the transaction is
// applied (on every member alike, at the entry's time).
//   revision: the key's revision compared with `revision` (0: absent), so
//             {kRevision, kEqual, 0} is "the key does not exist" and
//             {kRevision, kGreater, 0} "the key exists".
//   value:    the key's value compared with `value`, bytewise; an absent key
//             satisfies only kNotEqual.
struct Compare {
  enum class Target : uint8_t { kRevision = 1, kValue = 2 };
  enum class Op : uint8_t { kEqual = 1, kNotEqual = 2, kLess = 3, kGreater = 4 };
  std::string key;
  Target target = Target::kRevision;
  Op op = Op::kEqual;
  uint64_t revision = 0;  // kRevision
  std::string value;      // kValue

  friend bool operator==(const Compare&, const Compare&) = default;
};

// A write of the v1 API: when every compare holds, every op is applied, in
// one log entry; otherwise nothing is.
struct TxnRequest {
  std::vector<Compare> compares;
  std::vector<BatchOp> ops;
};

// What a write answers.
struct TxnResult {
  bool succeeded = true;
  // Succeeded: the revision of the write (its log index). A retried write
  // answered from its session gets the revision of its first application.
  uint64_t revision = 0;
  // Not succeeded: the first compare that failed (0-based), and the
  // revision each compared key had when the transaction was judged.
  size_t failed_compare = 0;
  std::vector<uint64_t> compare_revisions;
};

// A key as read: its value and revision.
struct KvEntry {
  std::string key;
  std::string value;  // empty when read keys-only
  uint64_t revision = 0;
};

// A range read of user keys in byte order: start <= key < end (empty end: no
// bound), only keys beginning with prefix when it is set.
struct ScanRequest {
  std::string start;
  std::string end;
  std::string prefix;
  size_t limit = 100;
  bool keys_only = false;
  // Stop before the values read exceed this many bytes (at least one key is
  // always returned when there is one), so a page of large values stays
  // bounded in memory.
  size_t max_bytes = 4u << 20;
};

struct ScanResult {
  std::vector<KvEntry> entries;
  // More keys follow in the range: read on from next_key (inclusive).
  bool more = false;
  std::string next_key;
  // The index this node had applied when it read the page.
  uint64_t applied_index = 0;
};

}  // namespace rkv

#endif  // RKV_NODE_KV_TYPES_H_
