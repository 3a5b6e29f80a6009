// Node: one member of a raft-kv cluster, single-threaded and driven from
// outside. It owns the Raft core, the WAL, the storage engine and the
// replicated state machine, and turns client requests into log entries and
// reads into ReadIndex rounds.
//
// The caller (NodeHost for a real server, the simulator in tests) feeds it
// inputs and then calls Process(), which runs the node loop of DESIGN.md:
//
//   inputs:  Tick(now), Receive(message), Write(...), Read(...)
//   Process: forward batched proposals -> for each Ready: send the leader's
//            appends, persist (one WAL batch, one fdatasync), send the rest,
//            apply committed entries, answer reads and writes -> Advance
//
// Nothing here starts a thread or reads a clock: time comes in through
// Tick(now_ms), randomness from NodeOptions::random_seed. Callbacks run on
// the thread that calls the Node, from inside these calls; they must not
// call back into the Node.
//
// Writes are exactly-once. Every write travels with a client id and sequence
// number: the client's own when it sent an Idempotency-Key, otherwise one of
// the node's "slots" (a session the node holds on behalf of one request at a
// time). A write not applied after retry_ticks is proposed again with the
// same id and sequence, through whichever node leads by then (a follower
// forwards it to the leader), and the state machine's session table makes
// sure it takes effect once. Every member applies every entry, so the node
// that took the request learns its result by applying the log itself.
//
// Reads. Linearizable: a ReadIndex round (the core batches concurrent reads
// into one heartbeat round; a follower asks the leader for the index), then
// the read waits until this node has applied that index. Lease: the same,
// but a leader whose lease holds answers without the round (safe under
// bounded clock drift). Stale: this node's state as it is, at once, from
// any thread (StaleGet).
#ifndef RKV_NODE_NODE_H_
#define RKV_NODE_NODE_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/metrics.h"
#include "common/result.h"
#include "common/status.h"
#include "common/types.h"
#include "common/random.h"
#include "node/command.h"
#include "node/kv_service.h"
#include "node/state_machine.h"
#include "raft/message.h"
#include "raft/raft_node.h"
#include "storage/options.h"

namespace rkv {

class Env;
class KvDir;

namespace storage {
class Engine;
}  // namespace storage
namespace wal {
class Wal;
}  // namespace wal
namespace transport {
class Transport;
}  // namespace transport

struct NodeOptions {
  NodeId id;
  // The members of a new cluster: used when the data directory holds no
  // Raft log yet, ignored afterwards (the log knows the membership).
  raft::Configuration initial_members;
  // Recorded in a new node's state machine before it applies anything
  // (StateMachine::Seed): the cluster id and the addresses of the members
  // it starts with, by id. Every member of a new cluster is given the same;
  // a joining node, what the cluster told it. Ignored once the node has a
  // Raft log (the log and snapshots carry the table from then on).
  uint64_t cluster_id = 0;
  std::map<uint64_t, MemberAddress> initial_addresses;
  // This node's own addresses. While the member table disagrees (a cluster
  // created without them, a node that moved), the node writes its entry
  // (a kSetMember command). Empty peer: never.
  MemberAddress self_address;

  // Holds wal/ (the Raft log) and kv/ (the storage engine).
  std::string data_dir;
  Env* env = nullptr;  // nullptr: Env::Posix()

  // Raft timing, in ticks of the caller's timer.
  uint64_t election_timeout_ticks = 10;
  uint64_t heartbeat_interval_ticks = 1;
  // A write or read not answered after this many ticks is answered Timeout
  // (a write may still take effect later; a retry with the same
  // Idempotency-Key is applied once).
  uint64_t request_timeout_ticks = 100;
  // A write not applied after this many ticks is proposed again; reads
  // whose round got lost are asked again.
  uint64_t retry_ticks = 20;

  // Writes and reads waiting at once; more are refused with Busy.
  size_t max_pending_writes = 8192;
  size_t max_pending_reads = 8192;

  // After this many entries applied since the last one, the node checkpoints
  // (syncs the engine) and compacts the WAL up to the applied index.
  uint64_t compact_every_entries = 10'000;
  // fdatasync the WAL before acknowledging (off only for experiments: a
  // crash may then lose acknowledged writes).
  bool sync_wal = true;

  StateMachineOptions state_machine;
  // Engine options; the node sets sync mode none (the WAL is the durable
  // copy) and the env.
  storage::Options engine;
  raft::RaftConfig raft;  // id, timing and applied_index are set by the node

  uint64_t random_seed = 0;

  // Monotonic nanoseconds, for the durations the metrics record (apply,
  // snapshot build, send and install). Never used to decide anything; nullptr:
  // durations are not recorded (the simulator).
  std::function<uint64_t()> metrics_clock_ns;
};

// What a node counts as it runs (GET /metrics). Updated on the node thread,
// read from a scraping thread: lock-free metrics only.
struct NodeMetrics {
  metrics::Counter leader_changes;
  metrics::Counter proposals_committed;  // writes this node took, applied
  metrics::Counter proposals_failed;     // ... answered with an error (timeout, refused)
  metrics::Counter entries_applied;
  metrics::Counter reads_served;
  metrics::Counter reads_failed;
  metrics::Counter snapshots_built;
  metrics::Counter snapshots_installed;
  metrics::Counter snapshot_sends_started;    // to a follower, from the first chunk
  metrics::Counter snapshot_sends_completed;  // ... until the follower said it installed it
  metrics::Counter backups_taken;
  metrics::Counter leader_transfers;
  metrics::Histogram apply_seconds{metrics::LatencyBuckets()};  // one Ready's committed entries
  metrics::Histogram snapshot_build_seconds{metrics::LatencyBuckets()};
  metrics::Histogram snapshot_install_seconds{metrics::LatencyBuckets()};
  metrics::Histogram snapshot_send_seconds{metrics::LatencyBuckets()};  // first chunk to installed

  // Every metric above, as raft_kv_* families.
  void Collect(metrics::Registry::Collector& out) const;
};

// What the node knows about itself (GET /v1/status).
struct NodeStatus {
  NodeId id;
  raft::Role role = raft::Role::kFollower;
  NodeId leader;
  Term term;
  LogIndex commit_index;
  LogIndex applied_index;
  LogIndex last_index;
  LogIndex first_index;
  raft::Configuration configuration;
  // Leader only: each member's match index.
  std::map<NodeId, LogIndex> match_index;
  uint64_t pending_writes = 0;
  uint64_t pending_reads = 0;
};

// A membership change (Node::ChangeMembership).
struct MembershipChange {
  enum class Kind { kAddLearner, kAddVoter, kPromote, kRemove };
  Kind kind = Kind::kAddLearner;
  NodeId id;
  MemberAddress address;  // kAddLearner, kAddVoter
};

class Node {
 public:
  using WriteDone = std::function<void(Result<CommandResult>)>;
  using ReadDone = std::function<void(Result<std::string>)>;
  using MembershipDone = std::function<void(Result<MembershipInfo>)>;
  using EntryDone = std::function<void(Result<KvEntry>)>;
  using ScanDone = std::function<void(Result<ScanResult>)>;
  // Runs on the node thread once a read may see the state machine: ok, then
  // state_machine() is at or past the read's index; else why not.
  using ReadyFn = std::function<void(const Status&)>;
  using LeaderDone = std::function<void(Result<LeaderInfo>)>;
  using BackupDone = std::function<void(Result<Backup>)>;

  // Opens (or creates) the node's data: the WAL, the engine, the state
  // machine, and replays the log after the engine's applied index.
  // `transport` (not owned) carries messages to peers and must outlive the
  // node.
  static Result<std::unique_ptr<Node>> Open(NodeOptions options, transport::Transport* transport);
  ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  // ---- Inputs. Call Process() after a batch of them. ----

  // One tick of the Raft timer; now_ms is wall time for command timestamps.
  void Tick(uint64_t now_ms);
  void Receive(const raft::Message& message);
  // A put, delete, cas or batch (the session fields are filled here).
  // idempotency_key non-empty: retries of the same key are applied once.
  void Write(Command command, std::string_view idempotency_key, WriteDone done);
  // A read at `consistency` (kStale: StaleGet's answer, at once).
  void Read(std::string key, ReadConsistency consistency, ReadDone done);
  // The same with the key's revision.
  void ReadEntry(std::string key, ReadConsistency consistency, EntryDone done);
  // A page of keys (kv_types.h), consistent at one applied index.
  void Scan(ScanRequest request, ReadConsistency consistency, ScanDone done);
  // The primitive under the three: `ready` runs (on the node thread) when
  // the state machine may be read at `consistency`, at once for kStale.
  void ReadBarrier(ReadConsistency consistency, ReadyFn ready);
  // On the leader: changes the membership (one Raft single-server change at
  // a time, in the order asked) and answers with the membership once the
  // change is applied here. A change already in effect (the member is there
  // with the same peer address, or already a voter, or already gone)
  // answers at once, so retries are safe. A promotion waits until the
  // learner has the entries the leader had committed when it was asked.
  // Errors: NotLeader elsewhere; InvalidArgument for a change that
  // conflicts with the membership (an id taken by another address, the last
  // voter); NotFound for an id that is not a member; Timeout after
  // request_timeout_ticks (the change may still take effect).
  void ChangeMembership(MembershipChange change, MembershipDone done);

  // On the leader: hands leadership to voter `target` (kNoNode: the other
  // voter with the highest match index) and answers once this node sees it
  // lead. Writes that arrive meanwhile wait (the core refuses proposals
  // during a transfer; they are proposed again to the new leader). Errors:
  // NotLeader elsewhere, NotFound for a target that is not a voter,
  // InvalidArgument for a lone voter, Timeout when the target did not take
  // over within request_timeout_ticks (Aborted if another node did).
  void TransferLeader(NodeId target, LeaderDone done);
  // A snapshot of the whole state, after a linearizable read barrier: it
  // holds every write acknowledged before the call. The node pins a view of
  // its engine at the barrier and serializes it on a thread of its own, so
  // Raft goes on meanwhile; `done` runs on the node thread, at the first
  // Tick after the backup is built. One at a time: Busy while one is built.
  void TakeBackup(BackupDone done);
  // Waits for a backup being built and hands it over now (tests; Close and
  // a snapshot install do it too). Nothing when none is being built.
  void WaitForBackup() { FinishBackup(/*wait=*/true); }

  // Handles everything the inputs caused (see the top of the file).
  void Process();

  // This node's state machine as it is now. Thread-safe.
  Result<std::string> StaleGet(std::string_view key, uint64_t now_ms) const;
  Result<KvEntry> StaleGetEntry(std::string_view key, uint64_t now_ms) const;
  Result<ScanResult> StaleScan(const ScanRequest& request, uint64_t now_ms) const;

  NodeStatus status() const;
  // The configuration as of the applied index, with each member's
  // addresses from the member table.
  MembershipInfo membership() const;
  // The stored cluster id, or NodeOptions::cluster_id if none is stored.
  uint64_t cluster_id() const;
  // True once this node has applied its own removal from the cluster; it
  // then refuses every request.
  bool removed() const { return removed_; }
  // For tests and the simulator's invariant checks: the core, the log and
  // the state machine as they are (node thread only).
  const raft::RaftNode& raft() const { return *raft_; }
  const wal::Wal& wal() const { return *wal_; }
  const StateMachine& state_machine() const { return *state_machine_; }
  // Thread-safe (lock-free counters).
  const NodeMetrics& metrics() const { return metrics_; }
  // The WAL's and engine's own metrics, for a scraping thread: the engine
  // is read under the lock that guards its replacement.
  void CollectStorageMetrics(metrics::Registry::Collector& out) const;
  // True once the node has stopped on an error it cannot continue from
  // (a failed WAL or engine write); every request is then refused.
  const Status& failure() const { return failure_; }

  // Answers everything pending with ShuttingDown, checkpoints the engine,
  // syncs and closes the WAL and the engine.
  Status Close();

 private:
  struct PendingWrite {
    uint64_t client_id = 0;
    uint64_t sequence = 0;
    bool slot = false;  // the node's slot (released when answered)
    std::string data;   // the encoded command, proposed again on retry
    WriteDone done;
    uint64_t deadline_tick = 0;
    uint64_t retry_tick = 0;
  };
  struct PendingRead {
    bool lease = false;
    ReadyFn ready;
    uint64_t deadline_tick = 0;
    uint64_t retry_tick = 0;
  };
  class SnapshotSource;

  Node(NodeOptions options, transport::Transport* transport);
  Status OpenStorage();
  Status OpenEngine(const std::string& path);
  storage::Options EngineOptions() const;
  Status OpenKvDir();  // node_snapshot.cc
  Status CreateRaft();

  void HandleReady(raft::Ready ready);
  void Send(std::vector<raft::Message>& messages);
  void ApplyEntry(const raft::Entry& entry);
  void ApplyConfChange(const raft::Entry& entry);
  void Fail(const Status& status);
  // Sets failure_ (if not set yet) and refuses stale reads with it too.
  void Refuse(const Status& status);
  void AbortAll(const Status& status);

  // Snapshots (node_snapshot.cc).
  // Builds snapshot_cache_ unless it still covers what followers need.
  Status PrepareSnapshot() const;
  void InstallSnapshot(const raft::Snapshot& snapshot);
  void MaybeCompact();

  struct PendingChange {
    MembershipChange change;
    MembershipDone done;
    uint64_t deadline_tick = 0;
    LogIndex index;          // once proposed: the entry and its term
    Term term;
    LogIndex catch_up_to;    // kPromote: what the learner must have first
  };
  struct PendingTransfer {
    NodeId target;
    LeaderDone done;
    uint64_t deadline_tick = 0;
    uint64_t retry_tick = 0;
  };
  void AdvanceTransfers();
  void AdvanceMembership();
  void FinishChange(Result<MembershipInfo> result);
  void SyncPeers();
  void MaybeAnnounce();

  void Propose(PendingWrite& write);
  void FlushForwards();
  void IssueRead(PendingRead read);
  void ServeRead(PendingRead& read);
  void ServeAppliedReads();
  void CheckTimeouts();
  void RetryAll();
  void ReleaseSlot(uint64_t client_id, uint64_t sequence);

  NodeOptions options_;
  Env* env_;
  transport::Transport* transport_;
  Random random_;

  std::unique_ptr<wal::Wal> wal_;
  std::unique_ptr<SnapshotSource> log_storage_;
  std::unique_ptr<raft::RaftNode> raft_;
  // engine_ and state_machine_ are replaced when a snapshot is installed;
  // StaleGet reads them from other threads under engine_mu_.
  mutable std::shared_mutex engine_mu_;
  // Why stale reads are refused (the node failed or was removed); ok while
  // they are served. Guarded by engine_mu_.
  Status stale_refusal_;
  std::unique_ptr<storage::Engine> engine_;
  std::unique_ptr<StateMachine> state_machine_;
  std::string engine_path_;
  // The pair OpenEngine replaced, for the caller to close.
  std::unique_ptr<storage::Engine> retired_engine_;
  std::unique_ptr<StateMachine> retired_state_machine_;
  std::unique_ptr<KvDir> kv_dir_;
  // The snapshot last served to followers (PrepareSnapshot).
  mutable std::optional<raft::Snapshot> snapshot_cache_;

  uint64_t ticks_ = 0;
  uint64_t now_ms_ = 0;
  NodeId last_leader_;
  raft::Configuration configuration_;  // as of the applied index
  LogIndex compacted_index_;
  Status failure_;

  // Writes by client id; one at a time per slot, maybe several per
  // idempotency key.
  std::unordered_map<uint64_t, std::vector<PendingWrite>> writes_;
  size_t write_count_ = 0;
  // Free slots: client id -> next sequence.
  std::vector<std::pair<uint64_t, uint64_t>> free_slots_;
  std::vector<std::string> forward_batch_;

  // Membership changes asked for, in order; the front one is in progress.
  std::deque<PendingChange> changes_;
  // The front change was applied in this Ready: answer it after Advance.
  bool change_applied_ = false;
  // The peer addresses handed to the transport, by id, as of this version
  // of the member table; peers_stale_ once the state machine was replaced.
  std::map<uint64_t, std::string> peers_;
  uint64_t peers_version_ = 0;
  bool peers_stale_ = true;
  bool announcing_ = false;
  uint64_t next_announce_tick_ = 0;
  bool removed_ = false;
  std::vector<PendingTransfer> transfers_;
  mutable NodeMetrics metrics_;
  // The backup being built off the node thread (TakeBackup), if any.
  struct BackupJob;
  std::unique_ptr<BackupJob> backup_job_;
  // Hands a finished backup to its caller; with `wait`, first waits for
  // the build to finish (before the engine is closed or replaced).
  void FinishBackup(bool wait);
  // Snapshot transfers to followers in progress: when the first chunk went
  // out (metrics_clock_ns; 0 without a clock).
  std::map<NodeId, uint64_t> snapshot_sends_;

  uint64_t next_read_id_ = 1;
  std::unordered_map<uint64_t, PendingRead> reads_by_id_;  // waiting for a read index
  std::multimap<LogIndex, PendingRead> reads_by_index_;    // waiting to be applied
};

}  // namespace rkv

#endif  // RKV_NODE_NODE_H_
