// The Raft core's data types: log entries, hard state, configurations,
// snapshots, and the messages servers exchange.
//
// Message names follow the Raft paper's RPCs, spelled out
// (AppendEntriesRequest, not MsgApp). Every message travels in a Message
// envelope carrying from, to and the sender's term, so the term rules of
// Figure 2 ("if RPC request or response contains term T > currentTerm ...")
// are applied in one place for every message type.
//
// These are plain values; encoding them for the wire or the WAL belongs to
// the transport and WAL modules.
#ifndef RKV_RAFT_MESSAGE_H_
#define RKV_RAFT_MESSAGE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/result.h"
#include "common/types.h"

namespace rkv::raft {

enum class EntryType : uint8_t {
  kNormal = 0,      // opaque state-machine command (empty data: the leader's no-op)
  kConfChange = 1,  // data is an encoded ConfChange
};

struct Entry {
  Term term;
  LogIndex index;
  EntryType type = EntryType::kNormal;
  std::string data;

  friend bool operator==(const Entry&, const Entry&) = default;
};

// Bytes an entry counts for in message-size and uncommitted-size limits.
inline uint64_t EntryBytes(const Entry& e) { return e.data.size() + 24; }
uint64_t EntriesBytes(const std::vector<Entry>& entries);

// The state Figure 2 calls "persistent state on all servers" (the log itself
// travels separately). commit_index is included so a restart need not
// re-learn it, but it is not required to be durable for safety.
struct HardState {
  Term current_term;
  NodeId voted_for = kNoNode;
  LogIndex commit_index;

  friend bool operator==(const HardState&, const HardState&) = default;
};

// The members of the cluster. voters elect leaders and count toward commit;
// learners receive the log but do neither. Both lists are sorted and
// disjoint (CheckConfiguration verifies this).
struct Configuration {
  std::vector<NodeId> voters;
  std::vector<NodeId> learners;

  bool IsVoter(NodeId id) const;
  bool IsLearner(NodeId id) const;
  bool IsMember(NodeId id) const { return IsVoter(id) || IsLearner(id); }

  friend bool operator==(const Configuration&, const Configuration&) = default;
};

// OK if voters and learners are sorted, free of duplicates and of kNoNode,
// and disjoint.
Status CheckConfiguration(const Configuration& configuration);

// A single-server membership change (dissertation §4.1). One change is in
// flight at a time; it takes effect on every server when the entry carrying
// it is applied (committed and handed out in a Ready).
enum class ConfChangeType : uint8_t {
  kAddVoter = 1,        // a new server joins as a voter (or a learner is promoted)
  kRemoveNode = 2,      // a voter or learner leaves
  kAddLearner = 3,      // a new server joins as a non-voting learner
  kPromoteLearner = 4,  // an existing learner becomes a voter
};

struct ConfChange {
  ConfChangeType type = ConfChangeType::kAddVoter;
  NodeId node_id;
  // Opaque to the core: carried in the entry for the application (raft-kv
  // puts the new member's addresses here, so every server learns them when
  // it applies the change).
  std::string context;

  friend bool operator==(const ConfChange&, const ConfChange&) = default;
};

// Encoding of a ConfChange inside an entry: type (1 byte) + node id
// (fixed64) + context (the remaining bytes, possibly none).
std::string EncodeConfChange(const ConfChange& change);
Result<ConfChange> DecodeConfChange(std::string_view data);

// What a snapshot stands for: the log up to and including last_index, and
// the configuration in effect at that index (dissertation §5.1).
struct SnapshotMetadata {
  LogIndex last_index;
  Term last_term;
  Configuration configuration;

  friend bool operator==(const SnapshotMetadata&, const SnapshotMetadata&) = default;
};

struct Snapshot {
  SnapshotMetadata metadata;
  std::string data;  // opaque state-machine bytes (key-value data, session table, ...)

  bool empty() const { return metadata.last_index == LogIndex{0}; }
  friend bool operator==(const Snapshot&, const Snapshot&) = default;
};

// ---- RPCs (Figure 2 and §5-7, plus the extensions of the dissertation). ----

// RequestVote (§5.2). With pre_vote set it is the PreVote round of §9.6: the
// envelope term is the term the sender would campaign in, and neither side
// changes its term or vote. leadership_transfer marks a campaign started by
// TimeoutNow, which receivers must not ignore for having a live leader.
struct RequestVoteRequest {
  LogIndex last_log_index;
  Term last_log_term;
  bool pre_vote = false;
  bool leadership_transfer = false;
};

struct RequestVoteResponse {
  bool vote_granted = false;
  bool pre_vote = false;
};

// AppendEntries (§5.3). A request with no entries still checks the log and
// carries the commit index.
struct AppendEntriesRequest {
  LogIndex prev_log_index;
  Term prev_log_term;
  std::vector<Entry> entries;
  LogIndex leader_commit;
};

// On success, match_index is the last index the follower's log now shares
// with the leader (prev_log_index + number of entries). On rejection,
// rejected_index is the request's prev_log_index, and (conflict_index,
// conflict_term) is the fast back-tracking hint (§5.3): the follower's last
// entry at or before rejected_index whose term is <= the request's
// prev_log_term. Every entry after it is known not to match, so the leader
// can skip a whole term per round trip instead of one entry.
struct AppendEntriesResponse {
  bool success = false;
  LogIndex match_index;
  LogIndex rejected_index;
  Term conflict_term;
  LogIndex conflict_index;
};

// Heartbeat: asserts leadership and carries the commit index the follower
// may safely adopt (at most what the leader knows it has). read_round
// numbers the ReadIndex confirmation round the heartbeat belongs to.
struct HeartbeatRequest {
  LogIndex leader_commit;
  uint64_t read_round = 0;
};

struct HeartbeatResponse {
  uint64_t read_round = 0;
};

// InstallSnapshot (§7), one chunk of snapshot data at `offset`. Chunks are
// sent in order; `done` marks the last.
struct InstallSnapshotRequest {
  SnapshotMetadata metadata;
  uint64_t offset = 0;
  std::string data;
  bool done = false;
};

// next_offset: how many bytes of the snapshot the follower holds. done: the
// snapshot was installed (or was not needed); match_index is then the
// follower's last log index matching the leader's.
struct InstallSnapshotResponse {
  LogIndex snapshot_index;
  uint64_t next_offset = 0;
  bool done = false;
  LogIndex match_index;
};

// Leadership transfer (dissertation §3.10): start an election now.
struct TimeoutNowRequest {};

// A follower asks the leader for a read index on behalf of its client
// (dissertation §6.4: followers may serve linearizable reads this way).
struct ReadIndexRequest {
  uint64_t request_id = 0;
};

// The leader's answer once its leadership is confirmed: the follower may
// serve the read when it has applied `index`.
struct ReadIndexResponse {
  uint64_t request_id = 0;
  LogIndex index;
};

// A follower hands its clients' commands to the leader, which appends them
// as if proposed locally (etcd raft's proposal forwarding). Nothing answers
// it: the follower learns the outcome by applying the log, and retries after
// a timeout, so commands must be idempotent (client id and sequence).
struct ProposeRequest {
  std::vector<std::string> commands;
};

using MessageBody =
    std::variant<RequestVoteRequest, RequestVoteResponse, AppendEntriesRequest,
                 AppendEntriesResponse, HeartbeatRequest, HeartbeatResponse,
                 InstallSnapshotRequest, InstallSnapshotResponse, TimeoutNowRequest,
                 ReadIndexRequest, ReadIndexResponse, ProposeRequest>;

struct Message {
  NodeId from;
  NodeId to;
  Term term;  // the sender's current term (for a PreVote request: the proposed term)
  MessageBody body;
};

// "AppendEntriesRequest", "HeartbeatResponse", ...
std::string_view MessageTypeName(const Message& m);
// A one-line description for logs and test failures.
std::string DescribeMessage(const Message& m);

// True for the requests a leader sends its followers: these may leave before
// the leader's own log write completes (dissertation §10.2.1).
bool IsLeaderRequest(const Message& m);

}  // namespace rkv::raft

#endif  // RKV_RAFT_MESSAGE_H_
