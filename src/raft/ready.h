// Ready: everything the core asks its caller to do, in the order it must be
// done. Handling one Ready (see docs/raft.md):
//
//   1. Send messages_before_persist. They are a leader's requests to its
//      followers, whose term is already durable, so they may leave while the
//      local write below is still in progress (dissertation §10.2.1).
//   2. Persist: snapshot (if any) replaces the log; hard_state (if any) is
//      written; entries are appended (dropping any persisted entry at or
//      after entries.front().index). If must_sync, fsync before step 3.
//      The three are durable together: a crash may lose the whole write but
//      must never keep part of it (a log writes them as one checksummed
//      batch that recovery applies whole or not at all). Entries kept
//      without their hard state can lack the commit index that says the
//      configuration change before them committed (a restarted server then
//      campaigns in a stale configuration); a hard state kept without its
//      entries can carry a commit index over entries they were to replace.
//   3. Send messages. These include votes and AppendEntries acknowledgements,
//      which promise that the state in step 2 is durable.
//   4. Apply: the snapshot (if any) to the state machine, then
//      committed_entries in order. Answer read_states once the state machine
//      has applied at least their index.
//   5. Call Advance().
//
// Steps 3 and 4 may run in parallel once step 2 is durable. Between GetReady
// and Advance the caller must not call GetReady again.
#ifndef RKV_RAFT_READY_H_
#define RKV_RAFT_READY_H_

#include <optional>
#include <vector>

#include "common/types.h"
#include "raft/message.h"

namespace rkv::raft {

enum class Role : uint8_t { kFollower, kPreCandidate, kCandidate, kLeader };
std::string_view RoleName(Role role);

// Volatile state worth reporting (who leads); never persisted.
struct SoftState {
  Role role = Role::kFollower;
  NodeId leader_id = kNoNode;

  friend bool operator==(const SoftState&, const SoftState&) = default;
};

// A linearizable read may be served once the state machine has applied
// `index`.
struct ReadState {
  uint64_t request_id = 0;
  LogIndex index;

  friend bool operator==(const ReadState&, const ReadState&) = default;
};

struct Ready {
  // Set when the role or the leader changed since the last Ready.
  std::optional<SoftState> soft_state;
  // Set when the term, the vote or the commit index changed.
  std::optional<HardState> hard_state;
  // A snapshot received from the leader, to persist and then apply.
  std::optional<Snapshot> snapshot;
  // Entries to append to stable storage.
  std::vector<Entry> entries;
  // Messages that may be sent before step 2 completes.
  std::vector<Message> messages_before_persist;
  // Messages to send only after step 2 is durable.
  std::vector<Message> messages;
  // Committed entries (already persisted) to apply, in index order.
  std::vector<Entry> committed_entries;
  // Reads confirmed since the last Ready.
  std::vector<ReadState> read_states;
  // Step 2 must fsync: the term or vote changed, or entries or a snapshot
  // must be written. (A commit-index-only change need not be durable.)
  bool must_sync = false;
};

}  // namespace rkv::raft

#endif  // RKV_RAFT_READY_H_
