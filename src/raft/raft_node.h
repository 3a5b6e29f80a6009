// RaftNode: one server's Raft consensus state machine, pure and deterministic.
//
// The core does no I/O, starts no threads and reads no clock. Its inputs are
// Tick() (the caller's timer, counted in ticks), Step() (a message from a
// peer), and the client operations Propose, ProposeConfChange, ReadIndex
// and TransferLeadership. Its output is a Ready (ready.h) telling the caller
// what to persist, send and apply, in order; the caller then calls
// Advance(). Election-timeout jitter comes from the Random the caller
// injects, so the same seed and inputs give the same outputs, bit for bit.
//
// Behaviour by role is switched with member function pointers (step_, tick_)
// set by the Become* functions, as etcd raft's stepLeader / stepCandidate /
// stepFollower.
//
// Membership changes are single-server changes (dissertation §4.1) that
// take effect on each server when it applies the entry (as in etcd raft):
// at most one is uncommitted/unapplied at a time, and a leader accepts one
// only after it has committed an entry of its own term (the fix to the
// single-server bug, dissertation errata).
//
// Not thread-safe: one thread owns a RaftNode.
#ifndef RKV_RAFT_RAFT_NODE_H_
#define RKV_RAFT_RAFT_NODE_H_

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/random.h"
#include "common/result.h"
#include "common/status.h"
#include "common/types.h"
#include "raft/log_storage.h"
#include "raft/message.h"
#include "raft/progress.h"
#include "raft/raft_log.h"
#include "raft/ready.h"

namespace rkv::raft {

enum class ReadMode : uint8_t {
  // ReadIndex (dissertation §6.4): each read waits for a heartbeat round that
  // confirms leadership (one round is shared by all reads pending).
  kReadIndex,
  // Lease reads (§6.4.1): every heartbeat is a numbered round; while less
  // than a minimum election timeout less one tick has passed since a round
  // that a majority acknowledged was sent, the leader answers reads at once
  // (no voter that acknowledged it will vote for anyone else before then;
  // the tick covers the phase between the voters' timers and ours).
  // Outside the lease, reads fall back to kReadIndex. Assumes the servers'
  // tick rates differ by less than the margin the caller builds into
  // election_timeout_ticks, and that every server of the cluster uses this
  // mode (a restarted server then withholds its vote for one timeout). A
  // leader that sent TimeoutNow stops using its lease for the rest of the
  // term. Requires check_quorum.
  kLease,
};

struct RaftConfig {
  NodeId id;
  // A follower starts an election after a random timeout in
  // [election_timeout_ticks, 2 * election_timeout_ticks).
  uint64_t election_timeout_ticks = 10;
  uint64_t heartbeat_interval_ticks = 1;
  bool pre_vote = true;
  bool check_quorum = true;
  ReadMode read_mode = ReadMode::kReadIndex;
  // Cap on the entry bytes in one AppendEntries (at least one entry is sent).
  uint64_t max_bytes_per_message = 1 << 20;
  // Unanswered AppendEntries per follower in the replicate state.
  size_t max_inflight_messages = 256;
  // Proposals beyond this many uncommitted entry bytes are refused (Busy).
  uint64_t max_uncommitted_bytes = 64 << 20;
  // Cap on committed entry bytes handed out in one Ready.
  uint64_t max_committed_bytes_per_ready = 4 << 20;
  // Size of an InstallSnapshot chunk.
  uint64_t snapshot_chunk_bytes = 1 << 20;
  // Reads waiting for confirmation; more are refused (Busy).
  size_t max_pending_reads = 4096;
  // The last index the caller's state machine has applied (restart).
  LogIndex applied_index;
};

class RaftNode {
 public:
  // Validates `config` and the storage's initial state. `storage` must
  // outlive the node; the node only reads it.
  static Result<std::unique_ptr<RaftNode>> Create(const RaftConfig& config,
                                                  const LogStorage* storage, Random random);

  RaftNode(const RaftNode&) = delete;
  RaftNode& operator=(const RaftNode&) = delete;

  // ---- Inputs. ----

  // Advances the logical clock by one tick.
  void Tick();
  // Processes a message from a peer. InvalidArgument if it is malformed or
  // not addressed to this node; the message then had no effect.
  Status Step(const Message& message);
  // Starts an election now (as if the election timer fired). No effect on
  // a leader or a server that may not vote.
  void Campaign();

  // Appends a command to the log; returns its index. NotLeader on a
  // non-leader, Busy while a leadership transfer runs or when the
  // uncommitted bytes would exceed max_uncommitted_bytes. The command is
  // committed only if this server stays leader long enough; the caller
  // learns it from committed_entries (matching index and term).
  Result<LogIndex> Propose(std::string data);
  // On a follower: sends `commands` to the leader, which appends them as if
  // they were proposed there (a ProposeRequest). Nothing reports whether
  // they were appended: the caller watches committed_entries for them and
  // retries after a timeout, so they must be safe to apply twice (carry a
  // client id and sequence). NotLeader when no leader is known or this node
  // leads (call Propose).
  Status Forward(std::vector<std::string> commands);
  // Proposes a membership change. Busy while another change is pending or
  // before the leader committed an entry of its term; InvalidArgument if it
  // makes no sense against the current configuration.
  Result<LogIndex> ProposeConfChange(const ConfChange& change);
  // Asks for a linearizable read. A ReadState with this id appears in a
  // later Ready once the leader has confirmed its leadership. On a follower
  // the request is forwarded to the leader (ReadIndexRequest) and the
  // ReadState arrives with its answer. NotLeader when no leader is known;
  // Busy when too many reads wait. Reads pending when leadership changes
  // are dropped (the caller times out and retries with a new id).
  // In ReadMode::kLease a leader answers from its lease when use_lease is
  // set and the lease holds; otherwise every read takes a heartbeat round.
  Status ReadIndex(uint64_t request_id, bool use_lease = true);
  // Hands leadership to `target` (a voter): once its log is caught up, it is
  // told to campaign (TimeoutNow). Proposals are refused meanwhile; the
  // transfer is abandoned after an election timeout.
  Status TransferLeadership(NodeId target);

  // ---- Output. ----

  bool HasReady() const;
  // REQUIRES: the previous Ready was Advanced.
  Ready GetReady();
  // The caller handled the last Ready completely.
  void Advance();

  // ---- Observers (tests, status pages). ----

  NodeId id() const { return id_; }
  Role role() const { return role_; }
  Term current_term() const { return current_term_; }
  NodeId voted_for() const { return voted_for_; }
  NodeId leader_id() const { return leader_id_; }
  LogIndex commit_index() const { return log_.committed(); }
  LogIndex applied_index() const { return log_.applied(); }
  LogIndex last_index() const { return log_.LastIndex(); }
  const RaftLog& log() const { return log_; }
  const Configuration& configuration() const { return configuration_; }
  NodeId lead_transferee() const { return lead_transferee_; }
  uint64_t uncommitted_bytes() const { return uncommitted_bytes_; }
  uint64_t randomized_election_timeout() const { return randomized_election_timeout_; }
  // REQUIRES: leader and `peer` is a member.
  const Progress& progress(NodeId peer) const;

  // Asserts the core's invariants (RKV_ASSERT); for tests and the simulator.
  void CheckInvariants() const;

 private:
  using StepFunction = Status (RaftNode::*)(const Message&);
  using TickFunction = void (RaftNode::*)();

  RaftNode(const RaftConfig& config, const LogStorage* storage, Random random,
           const InitialState& state);

  // Role transitions.
  void BecomeFollower(Term term, NodeId leader);
  void BecomePreCandidate();
  void BecomeCandidate();
  void BecomeLeader();
  void Reset(Term term);
  void ResetRandomizedElectionTimeout();
  void StartElection(bool leadership_transfer);
  void CampaignRound(bool leadership_transfer);
  bool RestoreSnapshot(const Snapshot& snapshot);
  void ReduceUncommittedBytes(LogIndex old_commit, LogIndex new_commit);

  // Role behaviour.
  Status StepFollower(const Message& m);
  Status StepCandidate(const Message& m);
  Status StepLeader(const Message& m);
  void TickElection();
  void TickHeartbeat();

  // Handlers.
  void HandleRequestVote(const Message& m, const RequestVoteRequest& request);
  Status HandleAppendEntries(const Message& m, const AppendEntriesRequest& request);
  void HandleHeartbeat(const Message& m, const HeartbeatRequest& request);
  Status HandleInstallSnapshot(const Message& m, const InstallSnapshotRequest& request);
  Status HandleAppendEntriesResponse(const Message& m, const AppendEntriesResponse& response);
  void HandleHeartbeatResponse(const Message& m, const HeartbeatResponse& response);
  Status HandleInstallSnapshotResponse(const Message& m, const InstallSnapshotResponse& response);
  void HandleVoteResponse(const Message& m, const RequestVoteResponse& response);

  // Leader replication.
  bool SendAppend(NodeId to, bool send_if_empty);
  void SendSnapshotChunk(NodeId to);
  void BroadcastAppend();
  void BroadcastHeartbeat();
  void SendTimeoutNow(NodeId to);
  void AppendEntry(EntryType type, std::string data);
  bool MaybeCommit();
  bool CommittedEntryInCurrentTerm() const;
  bool QuorumActive();
  void AbortLeaderTransfer() { lead_transferee_ = kNoNode; }

  // Reads.
  Status HandleReadIndexRequest(uint64_t request_id, NodeId requester, bool use_lease);
  void StartReadIndex(uint64_t request_id, NodeId requester, bool use_lease);
  void CompleteRead(uint64_t request_id, NodeId requester, LogIndex index);
  void StartReadRound();
  bool LeaseValid() const;
  void MaybeConfirmReads();

  // Membership.
  bool Promotable() const { return configuration_.IsVoter(id_); }
  bool HasUnappliedConfChanges() const;
  void ApplyConfChange(const ConfChange& change);
  void SetConfiguration(const Configuration& configuration);
  Progress NewProgress(bool is_learner) const;
  bool IsSingleVoter() const;

  void Send(Message m);
  template <typename Body>
  void SendTo(NodeId to, Term term, Body body) {
    Send(Message{id_, to, term, std::move(body)});
  }

  SoftState CurrentSoftState() const { return {role_, leader_id_}; }
  HardState CurrentHardState() const { return {current_term_, voted_for_, log_.committed()}; }

  const RaftConfig config_;
  const NodeId id_;
  const LogStorage* storage_;
  Random random_;
  RaftLog log_;

  // Persistent state (Figure 2).
  Term current_term_;
  NodeId voted_for_ = kNoNode;

  Role role_ = Role::kFollower;
  NodeId leader_id_ = kNoNode;
  StepFunction step_ = &RaftNode::StepFollower;
  TickFunction tick_ = &RaftNode::TickElection;

  // Membership as of the last applied configuration change.
  Configuration configuration_;
  // Leader: progress of every member, this server included. Ordered, so
  // iteration (and thus message order) is deterministic.
  std::map<NodeId, Progress> progress_;
  // Candidate: the votes received in this election.
  std::map<NodeId, bool> votes_;

  uint64_t election_elapsed_ = 0;
  uint64_t heartbeat_elapsed_ = 0;
  uint64_t randomized_election_timeout_ = 0;

  NodeId lead_transferee_ = kNoNode;
  // Index of the last configuration change appended by this leader; no new
  // one until it is applied.
  LogIndex pending_conf_index_;
  uint64_t uncommitted_bytes_ = 0;

  // ReadIndex. Reads waiting for the first commit of this term:
  struct WaitingRead {
    uint64_t request_id;
    NodeId requester;  // this node, or the follower that forwarded the read
    bool use_lease;
  };
  std::vector<WaitingRead> reads_waiting_for_commit_;
  struct PendingRead {
    uint64_t request_id;
    NodeId requester;
    LogIndex index;
    uint64_t round;
  };
  std::deque<PendingRead> pending_reads_;
  uint64_t read_round_ = 0;            // the last round started
  uint64_t read_round_confirmed_ = 0;  // the last round a quorum acknowledged
  bool read_round_unsent_ = false;     // its heartbeats are still in messages_
  std::map<uint64_t, uint64_t> read_round_sent_tick_;  // unconfirmed round -> tick sent
  // Lease reads: the tick at which the last round a quorum acknowledged was
  // sent, and whether a leadership transfer has voided the lease this term.
  std::optional<uint64_t> lease_start_tick_;
  bool lease_revoked_ = false;
  // Ticks since this node was created (logical time; never a clock).
  uint64_t tick_count_ = 0;
  // Lease mode: ticks left during which a freshly started server withholds
  // its vote.
  uint64_t startup_lease_ticks_ = 0;
  std::vector<ReadState> read_states_;

  // A snapshot being received in chunks.
  std::optional<Snapshot> incoming_snapshot_;

  // Output not yet handed out.
  std::vector<Message> messages_;

  // What the last Ready contained, for Advance.
  struct InProgress {
    HardState hard_state;
    std::optional<LogIndex> snapshot_index;
    std::optional<Entry> last_entry;  // index and term only
    LogIndex applied_to;
    std::vector<ConfChange> conf_changes;
  };
  std::optional<InProgress> in_progress_;
  SoftState prev_soft_state_;
  HardState persisted_hard_state_;
};

}  // namespace rkv::raft

#endif  // RKV_RAFT_RAFT_NODE_H_
