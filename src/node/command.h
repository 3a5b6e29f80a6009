// Commands of the replicated state machine and their results, and the binary
// encoding that carries them in Raft entries (docs/formats/state-machine.md).
//
// A command is what a client asked for (put, delete, compare-and-swap, an
// atomic batch) plus what makes applying it deterministic and exactly-once:
// the client id and sequence number of the write, and the time the leader
// stamped on it. Every server applies the same bytes, so nothing in a command
// may depend on the applying server (its clock, its configuration).
//
// Pure: no I/O. The decoders take bytes from the log or a peer and never
// trust them: anything malformed is Corruption, never a crash.
#ifndef RKV_NODE_COMMAND_H_
#define RKV_NODE_COMMAND_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "node/kv_types.h"

namespace rkv {

// The version byte every encoded command starts with. A server refuses a
// command of a version it does not know instead of guessing at its meaning.
inline constexpr uint8_t kCommandVersion = 1;

// Where a member of the cluster is reached: its peer address (Raft
// messages) and its HTTP address (clients, GET /v1/cluster; may be empty).
struct MemberAddress {
  std::string peer;
  std::string http;

  friend bool operator==(const MemberAddress&, const MemberAddress&) = default;
};

// The bytes of a MemberAddress in a membership entry's context and in the
// state machine's member records: version u8 (= 1) | peer bytes | http bytes.
std::string EncodeMemberAddress(const MemberAddress& address);
Result<MemberAddress> DecodeMemberAddress(std::string_view data);

struct Command {
  // kSetMember and kRemoveMember change the member address table, not user
  // data: a member announces its own address with kSetMember, and a node
  // applies a membership change of the Raft log as one of them.
  enum class Kind : uint8_t {
    kNoop = 0,
    kPut = 1,
    kDelete = 2,
    kCas = 3,
    kBatch = 4,
    kSetMember = 5,
    kRemoveMember = 6,
    kTxn = 7,
  };
  Kind kind = Kind::kNoop;

  // Exactly-once: the writing client and its sequence number for this write.
  // client_id 0 is "no session": the write is applied every time it is
  // committed (a client that sent no idempotency key).
  uint64_t client_id = 0;
  uint64_t sequence = 0;
  // Milliseconds since the Unix epoch on the leader when it proposed the
  // command. The state machine's only notion of time (session expiry, TTLs).
  uint64_t timestamp_ms = 0;

  std::string key;    // kPut, kDelete, kCas
  std::string value;  // kPut; kCas: the value set when the comparison holds
  // kCas: the value the key must have for the swap; nullopt: the key must be
  // absent.
  std::optional<std::string> expected;
  // kPut, kCas: absolute expiry of the written value in milliseconds since
  // the Unix epoch (the leader computes it from its timestamp); 0 = never.
  uint64_t expiry_ms = 0;

  std::vector<BatchOp> ops;  // kBatch, kTxn
  // kTxn: every compare must hold for the ops to be applied.
  std::vector<Compare> compares;

  uint64_t member_id = 0;  // kSetMember, kRemoveMember
  MemberAddress member;    // kSetMember

  static Command Noop() { return Command{}; }
  static Command Put(std::string key, std::string value, uint64_t expiry_ms = 0);
  static Command Delete(std::string key);
  static Command Cas(std::string key, std::optional<std::string> expected, std::string value,
                     uint64_t expiry_ms = 0);
  static Command Batch(std::vector<BatchOp> ops);
  static Command Txn(std::vector<Compare> compares, std::vector<BatchOp> ops);
  static Command SetMember(uint64_t id, MemberAddress address);
  static Command RemoveMember(uint64_t id);

  // Sets the session fields; returns *this for chaining:
  //   Command::Put("k", "v").WithSession(7, 12, now_ms)
  Command& WithSession(uint64_t client, uint64_t seq, uint64_t timestamp) & {
    client_id = client;
    sequence = seq;
    timestamp_ms = timestamp;
    return *this;
  }
  Command&& WithSession(uint64_t client, uint64_t seq, uint64_t timestamp) && {
    return std::move(WithSession(client, seq, timestamp));
  }

  friend bool operator==(const Command&, const Command&) = default;
};

std::string_view CommandKindName(Command::Kind kind);

// The entry data for `command`: a version byte, then the fields.
std::string EncodeCommand(const Command& command);
// Corruption on an unknown version or kind, truncated input, trailing bytes,
// unknown flag bits or malformed integers.
Result<Command> DecodeCommand(std::string_view data);

// What applying a command produced. Sessions keep the result of each
// client's last write, so a retry gets the answer of the first attempt.
struct CommandResult {
  enum class Code : uint8_t {
    kOk = 0,
    // A compare-and-swap whose comparison failed; nothing was written.
    kCasFailed = 1,
    // The write's sequence number is below the client's last applied one: a
    // late duplicate of a write already answered. Nothing was written.
    kStaleSequence = 2,
    // The command breaks a limit (empty or too long key, too large value);
    // nothing was written. Deterministic: every server refuses it alike.
    kRejected = 3,
    // Apply() was given an index at or below the applied index (a replay
    // after restart); nothing was done. Never stored in a session.
    kAlreadyApplied = 4,
    // A transaction one of whose compares did not hold; nothing was written.
    kCompareFailed = 5,
  };
  Code code = Code::kOk;
  std::string message;  // why, for kRejected
  // kOk of a user write (put, delete, batch, txn): the index it was applied
  // at, which is the revision of every key it put. 0 otherwise.
  uint64_t revision = 0;
  // kCompareFailed: the first compare that failed (0-based), and each
  // compared key's revision when the transaction was judged.
  uint64_t failed_compare = 0;
  std::vector<uint64_t> compare_revisions;

  // Not encoded: set when the answer came from the client's session (a
  // retried write) instead of from applying the command.
  bool duplicate = false;
  // Not encoded: the session the command carried (0, 0 for none), so the
  // caller of StateMachine::Apply need not decode the entry again.
  uint64_t client_id = 0;
  uint64_t sequence = 0;

  bool ok() const { return code == Code::kOk; }

  friend bool operator==(const CommandResult& a, const CommandResult& b) {
    return a.code == b.code && a.message == b.message && a.revision == b.revision &&
           a.failed_compare == b.failed_compare && a.compare_revisions == b.compare_revisions;
  }
};

std::string_view CommandResultCodeName(CommandResult::Code code);

// The encodings of a result (docs/formats/state-machine.md, "Results"):
//   version 1: code u8 | message bytes
//   version 2: version 1 | revision varint | failed_compare varint
//              | count varint | compare revision varint * count
// `duplicate` and the session fields are not encoded. Encoding writes
// version 2; decoding reads either (the version comes from the record that
// holds the result).
inline constexpr uint8_t kCommandResultVersion = 2;
std::string EncodeCommandResult(const CommandResult& result);
void AppendCommandResult(const CommandResult& result, std::string* dst);
Result<CommandResult> DecodeCommandResult(std::string_view data,
                                          uint8_t version = kCommandResultVersion);
// Decodes a result from the front of *input and advances it.
Result<CommandResult> GetCommandResult(std::string_view* input,
                                       uint8_t version = kCommandResultVersion);

}  // namespace rkv

#endif  // RKV_NODE_COMMAND_H_
