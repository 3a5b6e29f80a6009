#include "node/node.h"

#include <fmt/format.h>

#include <algorithm>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>

#include "common/assert.h"
#include "common/coding.h"
#include "common/logging.h"
#include "env/env.h"
#include "node/kv_dir.h"
#include "node/snapshot.h"
#include "storage/engine.h"
#include "transport/transport.h"
#include "wal/wal.h"

namespace rkv {

// The LogStorage the core reads: the WAL, except that a snapshot carries the
// state machine's data. The core asks for it when a follower needs entries
// the WAL no longer holds; the node then serializes the state machine as it
// is (at the applied index, which is at or past any compaction point) and
// keeps the bytes while followers download them in chunks.
class Node::SnapshotSource final : public raft::LogStorage {
 public:
  explicit SnapshotSource(Node* node) : node_(node) {}

  raft::InitialState GetInitialState() const override { return node_->wal_->GetInitialState(); }
  LogIndex FirstIndex() const override { return node_->wal_->FirstIndex(); }
  LogIndex LastIndex() const override { return node_->wal_->LastIndex(); }
  Result<Term> TermAt(LogIndex index) const override { return node_->wal_->TermAt(index); }
  Result<std::vector<raft::Entry>> Entries(LogIndex lo, LogIndex hi,
                                           uint64_t max_bytes) const override {
    return node_->wal_->Entries(lo, hi, max_bytes);
  }
  Result<raft::Snapshot> GetSnapshot() const override {
    RKV_RETURN_IF_ERROR(node_->PrepareSnapshot());
    return *node_->snapshot_cache_;
  }
  // One chunk at a time out of the cached bytes, never a copy of them all.
  Result<raft::SnapshotChunk> GetSnapshotChunk(uint64_t offset, uint64_t max_bytes) const override {
    RKV_RETURN_IF_ERROR(node_->PrepareSnapshot());
    const raft::Snapshot& snapshot = *node_->snapshot_cache_;
    raft::SnapshotChunk chunk;
    chunk.metadata = snapshot.metadata;
    chunk.total_bytes = snapshot.data.size();
    if (offset < snapshot.data.size()) chunk.data = snapshot.data.substr(offset, max_bytes);
    return chunk;
  }

 private:
  Node* node_;
};

namespace {

constexpr uint64_t kIdempotencyBit = uint64_t{1} << 63;

// FNV-1a, then a finalizer: the client id of an Idempotency-Key. The top bit
// is set so it never equals a slot id (which have it clear).
uint64_t IdempotencyClientId(std::string_view key) {
  uint64_t h = Fnv1a64(key);
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  return h | kIdempotencyBit;
}

std::string_view ChangeName(MembershipChange::Kind kind) {
  switch (kind) {
    case MembershipChange::Kind::kAddLearner: return "add_learner";
    case MembershipChange::Kind::kAddVoter: return "add_voter";
    case MembershipChange::Kind::kPromote: return "promote";
    case MembershipChange::Kind::kRemove: return "remove";
  }
  return "unknown";
}

std::string IdList(const std::vector<NodeId>& ids) {
  std::string out;
  for (NodeId id : ids) {
    if (!out.empty()) out += ',';
    out += std::to_string(id.value());
  }
  return out.empty() ? "none" : out;
}

}  // namespace

Node::Node(NodeOptions options, transport::Transport* transport)
    : options_(std::move(options)),
      env_(options_.env != nullptr ? options_.env : Env::Posix()),
      transport_(transport),
      random_(options_.random_seed) {}

// A backup's build: the thread serializing a pinned view of the engine,
// and its result once done.
struct Node::BackupJob {
  BackupDone done;
  std::thread thread;
  std::mutex mu;
  std::optional<Result<Backup>> result;  // set by the thread, under mu
};

Node::~Node() { FinishBackup(/*wait=*/true); }

void Node::FinishBackup(bool wait) {
  if (backup_job_ == nullptr) return;
  if (!wait) {
    std::lock_guard lock(backup_job_->mu);
    if (!backup_job_->result.has_value()) return;
  }
  backup_job_->thread.join();
  std::unique_ptr<BackupJob> job = std::move(backup_job_);
  Result<Backup> result = std::move(*job->result);
  if (result.ok()) {
    metrics_.backups_taken.Inc();
    RKV_LOG_INFO("event=backup_taken applied_index={} bytes={}", result->applied_index, result->data.size());
  }
  job->done(std::move(result));
}

Result<std::unique_ptr<Node>> Node::Open(NodeOptions options, transport::Transport* transport) {
  if (options.id == kNoNode) return Status::InvalidArgument("node id must not be 0");
  if (options.data_dir.empty()) return Status::InvalidArgument("data directory must be set");
  std::unique_ptr<Node> node(new Node(std::move(options), transport));
  RKV_RETURN_IF_ERROR(node->OpenStorage());
  RKV_RETURN_IF_ERROR(node->CreateRaft());
  return node;
}

Status Node::OpenStorage() {
  if (!env_->FileExists(options_.data_dir)) {
    // A data directory lost to a power cut right after the first start
    // would take the node's vote with it: make its creation durable.
    RKV_RETURN_IF_ERROR(env_->CreateDir(options_.data_dir));
    RKV_RETURN_IF_ERROR(env_->SyncDir(ParentDir(options_.data_dir)));
  } else {
    // Before the cluster, raft-kv kept its engine files at the top of the
    // data directory. Starting over them would look like lost data.
    RKV_ASSIGN_OR_RETURN(std::vector<std::string> children, env_->GetChildren(options_.data_dir));
    for (const std::string& name : children) {
      if (name.size() > 5 && name.ends_with(".data")) {
        return Status::InvalidArgument(
            options_.data_dir + " holds engine files of the single-node layout (" + name +
            "); this version keeps a node's data in kv/ and wal/ below it. Start with an empty "
            "--data directory");
      }
    }
  }

  // The engine first: it locks its directory, so a second process on the
  // same data directory stops here, before touching the WAL.
  RKV_RETURN_IF_ERROR(OpenKvDir());

  // A new node records its cluster id and member table before its Raft
  // log exists: from the first run that leaves a log on disk, the node can
  // reach the others after a restart without being told their addresses
  // again (and a restart, told less, does not overwrite them).
  const bool new_node = !env_->FileExists(options_.data_dir + "/wal");
  if (new_node && !options_.initial_addresses.empty() &&
      state_machine_->applied_index() == LogIndex{0} &&
      (state_machine_->members() != options_.initial_addresses ||
       state_machine_->cluster_id() != options_.cluster_id)) {
    RKV_RETURN_IF_ERROR(state_machine_->Seed(options_.cluster_id, options_.initial_addresses));
  }

  wal::WalOptions wal_options;
  wal_options.bootstrap = options_.initial_members;
  RKV_ASSIGN_OR_RETURN(wal_, wal::Wal::Open(env_, options_.data_dir + "/wal", wal_options));

  // The engine may hold less than the log (its unsynced tail was lost:
  // the core hands out the entries after its applied index again) but never
  // less than the log dropped.
  const LogIndex applied = state_machine_->applied_index();
  if (applied < wal_->FirstIndex() - 1) {
    return Status::Corruption(fmt::format(
        "the engine in {} has applied index {} but the Raft log in {}/wal starts after {}",
        engine_path_, applied.value(), options_.data_dir, (wal_->FirstIndex() - 1).value()));
  }
  compacted_index_ = wal_->FirstIndex() - 1;
  return Status::OK();
}

storage::Options Node::EngineOptions() const {
  storage::Options engine_options = options_.engine;
  engine_options.env = env_;
  engine_options.sync_mode = storage::SyncMode::kNone;
  StateMachine::FitEngineOptions(options_.state_machine, &engine_options);
  return engine_options;
}

Status Node::OpenEngine(const std::string& path) {
  RKV_ASSIGN_OR_RETURN(std::unique_ptr<storage::Engine> engine,
                       storage::Engine::Open(EngineOptions(), path));
  RKV_ASSIGN_OR_RETURN(std::unique_ptr<StateMachine> state_machine,
                       StateMachine::Open(engine.get(), options_.state_machine));
  // Swap under the lock stale reads hold, so a reader sees the old pair or
  // the new one, never neither. The old pair (if any) is closed by the
  // caller, outside the lock.
  std::unique_lock lock(engine_mu_);
  std::swap(state_machine_, state_machine);
  std::swap(engine_, engine);
  engine_path_ = path;
  peers_stale_ = true;  // a new member table
  retired_engine_ = std::move(engine);
  retired_state_machine_ = std::move(state_machine);
  return Status::OK();
}

Status Node::CreateRaft() {
  raft::RaftConfig config = options_.raft;
  config.id = options_.id;
  config.election_timeout_ticks = options_.election_timeout_ticks;
  config.heartbeat_interval_ticks = options_.heartbeat_interval_ticks;
  // The core re-delivers the committed entries after applied_index. The
  // engine may be ahead of the durable commit index (a commit-only change
  // is not synced) or of the whole log (a snapshot installed just before a
  // crash): start the core at what both know, and the state machine skips
  // what it already holds (kAlreadyApplied).
  const raft::InitialState initial = wal_->GetInitialState();
  config.applied_index = std::max(
      wal_->FirstIndex() - 1,
      std::min(state_machine_->applied_index(),
               std::min(initial.hard_state.commit_index, wal_->LastIndex())));
  log_storage_ = std::make_unique<SnapshotSource>(this);

  // Replay: the core hands out the committed entries after applied_index
  // in Readies, and Process applies them as it would new ones.
  RKV_ASSIGN_OR_RETURN(raft_, raft::RaftNode::Create(config, log_storage_.get(),
                                                     Random(random_.Next())));
  configuration_ = raft_->configuration();
  SyncPeers();
  // A lone voter need not wait an election timeout to lead itself.
  if (configuration_.voters.size() == 1 && configuration_.voters[0] == options_.id) {
    raft_->Campaign();
  }
  RKV_LOG_INFO("event=node_open id={} applied={} first_index={} last_index={} term={}",
               options_.id.value(), config.applied_index.value(), wal_->FirstIndex().value(),
               wal_->LastIndex().value(), raft_->current_term().value());
  return Status::OK();
}

// ---------------------------------------------------------------------------
// Inputs.

void Node::Tick(uint64_t now_ms) {
  now_ms_ = std::max(now_ms_, now_ms);
  ++ticks_;
  FinishBackup(/*wait=*/false);
  if (!failure_.ok()) return;
  raft_->Tick();
  CheckTimeouts();
}

void Node::Receive(const raft::Message& message) {
  if (!failure_.ok()) return;
  if (const auto* r = std::get_if<raft::InstallSnapshotResponse>(&message.body); r != nullptr && r->done) {
    if (auto it = snapshot_sends_.find(message.from); it != snapshot_sends_.end()) {
      metrics_.snapshot_sends_completed.Inc();
      if (it->second != 0) {
        metrics_.snapshot_send_seconds.Observe(static_cast<double>(options_.metrics_clock_ns() - it->second) * 1e-9);
      }
      RKV_LOG_INFO("event=snapshot_sent to={} index={}", message.from.value(), r->snapshot_index.value());
      snapshot_sends_.erase(it);
    }
  }
  Status s = raft_->Step(message);
  if (!s.ok()) {
    RKV_LOG_WARN("event=message_refused from={} type={} error=\"{}\"", message.from.value(),
                 raft::MessageTypeName(message), s.ToString());
  }
}

void Node::Write(Command command, std::string_view idempotency_key, WriteDone done) {
  if (!failure_.ok()) {
    done(failure_);
    return;
  }
  if (write_count_ >= options_.max_pending_writes) {
    done(Status::Busy("too many writes in flight"));
    return;
  }
  if (raft_->leader_id() == kNoNode) {
    done(Status::NotLeader("no leader; try again shortly"));
    return;
  }
  PendingWrite write;
  if (!idempotency_key.empty()) {
    write.client_id = IdempotencyClientId(idempotency_key);
    write.sequence = 1;
  } else {
    if (free_slots_.empty()) free_slots_.emplace_back(random_.Next() & ~kIdempotencyBit, 1);
    std::tie(write.client_id, write.sequence) = free_slots_.back();
    free_slots_.pop_back();
    write.slot = true;
  }
  command.WithSession(write.client_id, write.sequence, now_ms_);
  write.data = EncodeCommand(command);
  write.done = std::move(done);
  write.deadline_tick = ticks_ + options_.request_timeout_ticks;
  write.retry_tick = ticks_ + options_.retry_ticks;
  Propose(write);
  ++write_count_;
  writes_[write.client_id].push_back(std::move(write));
}

void Node::Propose(PendingWrite& write) {
  if (raft_->role() == raft::Role::kLeader) {
    Result<LogIndex> index = raft_->Propose(write.data);
    if (!index.ok()) {
      RKV_LOG_DEBUG("event=propose_deferred client={} error=\"{}\"", write.client_id,
                    index.status().ToString());
    }
  } else if (raft_->leader_id() != kNoNode) {
    forward_batch_.push_back(write.data);
  }
}

void Node::FlushForwards() {
  if (forward_batch_.empty()) return;
  std::vector<std::string> batch = std::move(forward_batch_);
  forward_batch_.clear();
  if (raft_->role() == raft::Role::kLeader) {
    for (std::string& data : batch) (void)raft_->Propose(std::move(data));
  } else {
    (void)raft_->Forward(std::move(batch));  // lost without a leader: retried later
  }
}

void Node::Read(std::string key, ReadConsistency consistency, ReadDone done) {
  if (consistency == ReadConsistency::kStale) {
    if (!failure_.ok()) {
      done(failure_);
      return;
    }
    done(StaleGet(key, now_ms_));
    return;
  }
  ReadBarrier(consistency, [this, key = std::move(key), done = std::move(done)](const Status& s) {
    if (!s.ok()) {
      done(s);
      return;
    }
    done(state_machine_->Get(key, now_ms_));
  });
}

void Node::ReadEntry(std::string key, ReadConsistency consistency, EntryDone done) {
  if (consistency == ReadConsistency::kStale) {
    if (!failure_.ok()) {
      done(failure_);
      return;
    }
    done(StaleGetEntry(key, now_ms_));
    return;
  }
  ReadBarrier(consistency, [this, key = std::move(key), done = std::move(done)](const Status& s) {
    if (!s.ok()) {
      done(s);
      return;
    }
    done(state_machine_->GetEntry(key, now_ms_));
  });
}

void Node::Scan(ScanRequest request, ReadConsistency consistency, ScanDone done) {
  if (consistency == ReadConsistency::kStale) {
    if (!failure_.ok()) {
      done(failure_);
      return;
    }
    done(StaleScan(request, now_ms_));
    return;
  }
  ReadBarrier(consistency, [this, request = std::move(request), done = std::move(done)](const Status& s) {
    if (!s.ok()) {
      done(s);
      return;
    }
    done(state_machine_->Scan(request, now_ms_));
  });
}

void Node::ReadBarrier(ReadConsistency consistency, ReadyFn ready) {
  if (!failure_.ok()) {
    ready(failure_);
    return;
  }
  if (consistency == ReadConsistency::kStale) {
    ready(Status::OK());
    return;
  }
  if (reads_by_id_.size() + reads_by_index_.size() >= options_.max_pending_reads) {
    ready(Status::Busy("too many reads in flight"));
    return;
  }
  PendingRead read;
  read.lease = consistency == ReadConsistency::kLease;
  read.ready = std::move(ready);
  read.deadline_tick = ticks_ + options_.request_timeout_ticks;
  IssueRead(std::move(read));
}

void Node::IssueRead(PendingRead read) {
  const uint64_t id = next_read_id_++;
  Status s = raft_->ReadIndex(id, read.lease);
  if (!s.ok()) {
    if (s.IsNotLeader()) s = Status::NotLeader("no leader; try again shortly");
    read.ready(s);
    return;
  }
  read.retry_tick = ticks_ + options_.retry_ticks;
  reads_by_id_.emplace(id, std::move(read));
}

Result<std::string> Node::StaleGet(std::string_view key, uint64_t now_ms) const {
  std::shared_lock lock(engine_mu_);
  if (!stale_refusal_.ok()) return stale_refusal_;
  return state_machine_->Get(key, now_ms);
}

Result<KvEntry> Node::StaleGetEntry(std::string_view key, uint64_t now_ms) const {
  std::shared_lock lock(engine_mu_);
  if (!stale_refusal_.ok()) return stale_refusal_;
  return state_machine_->GetEntry(key, now_ms);
}

Result<ScanResult> Node::StaleScan(const ScanRequest& request, uint64_t now_ms) const {
  std::shared_lock lock(engine_mu_);
  if (!stale_refusal_.ok()) return stale_refusal_;
  return state_machine_->Scan(request, now_ms);
}

void Node::ServeRead(PendingRead& read) {
  metrics_.reads_served.Inc();
  read.ready(Status::OK());
}

void Node::ServeAppliedReads() {
  const LogIndex applied = state_machine_->applied_index();
  while (!reads_by_index_.empty() && reads_by_index_.begin()->first <= applied) {
    ServeRead(reads_by_index_.begin()->second);
    reads_by_index_.erase(reads_by_index_.begin());
  }
}

void Node::CheckTimeouts() {
  bool retried = false;
  for (auto it = writes_.begin(); it != writes_.end();) {
    std::vector<PendingWrite>& list = it->second;
    for (size_t i = 0; i < list.size();) {
      PendingWrite& w = list[i];
      if (ticks_ >= w.deadline_tick) {
        // The write may still be applied later; its slot moves on to the
        // next sequence, so a late copy is refused as stale.
        if (w.slot) ReleaseSlot(w.client_id, w.sequence);
        metrics_.proposals_failed.Inc();
        w.done(Status::Timeout("write not committed in time; it may still take effect"));
        list.erase(list.begin() + static_cast<std::ptrdiff_t>(i));
        --write_count_;
        continue;
      }
      if (ticks_ >= w.retry_tick) {
        w.retry_tick = ticks_ + options_.retry_ticks;
        Propose(w);
        retried = true;
      }
      ++i;
    }
    it = list.empty() ? writes_.erase(it) : std::next(it);
  }
  if (retried) RKV_LOG_DEBUG("event=writes_retried");

  std::vector<PendingRead> reissue;
  for (auto it = reads_by_id_.begin(); it != reads_by_id_.end();) {
    PendingRead& r = it->second;
    if (ticks_ >= r.deadline_tick) {
      metrics_.reads_failed.Inc();
      r.ready(Status::Timeout("read not confirmed in time"));
      it = reads_by_id_.erase(it);
    } else if (ticks_ >= r.retry_tick) {
      // Its round was lost (a leader change or a dropped message): ask again
      // under a new id.
      reissue.push_back(std::move(r));
      it = reads_by_id_.erase(it);
    } else {
      ++it;
    }
  }
  for (PendingRead& r : reissue) IssueRead(std::move(r));
  for (auto it = changes_.begin(); it != changes_.end();) {
    if (ticks_ < it->deadline_tick) {
      ++it;
      continue;
    }
    Status timeout = Status::Timeout(
        "membership change not applied in time; it may still take effect (retrying is safe)");
    if (it->change.kind == MembershipChange::Kind::kPromote && it->index == LogIndex{0} &&
        raft_->role() == raft::Role::kLeader && configuration_.IsLearner(it->change.id)) {
      timeout = Status::Timeout(fmt::format(
          "learner {} has not caught up: it has the log up to {}, promotion needs {}; try again",
          it->change.id.value(), raft_->progress(it->change.id).match_index.value(),
          it->catch_up_to.value()));
    }
    MembershipDone done = std::move(it->done);
    it = changes_.erase(it);
    done(timeout);
  }
  for (auto it = reads_by_index_.begin(); it != reads_by_index_.end();) {
    if (ticks_ >= it->second.deadline_tick) {
      metrics_.reads_failed.Inc();
      it->second.ready(Status::Timeout("this node did not catch up in time"));
      it = reads_by_index_.erase(it);
    } else {
      ++it;
    }
  }
}

void Node::RetryAll() {
  for (auto& [client, list] : writes_) {
    for (PendingWrite& w : list) w.retry_tick = ticks_;
  }
  for (auto& [id, r] : reads_by_id_) r.retry_tick = ticks_;
  CheckTimeouts();
}

void Node::ReleaseSlot(uint64_t client_id, uint64_t sequence) {
  free_slots_.emplace_back(client_id, sequence + 1);
}

// ---------------------------------------------------------------------------
// The loop.

void Node::Process() {
  if (!failure_.ok()) return;
  MaybeAnnounce();
  FlushForwards();
  AdvanceMembership();
  while (failure_.ok() && raft_->HasReady()) {
    HandleReady(raft_->GetReady());
    // An applied change lets the next one be proposed.
    if (failure_.ok()) AdvanceMembership();
  }
  if (failure_.ok()) AdvanceTransfers();
}

void Node::TransferLeader(NodeId target, LeaderDone done) {
  if (!failure_.ok()) {
    done(failure_);
    return;
  }
  if (raft_->role() != raft::Role::kLeader) {
    done(Status::NotLeader("leadership is transferred by the leader"));
    return;
  }
  const raft::Configuration& config = raft_->configuration();
  if (target == kNoNode) {
    // The most caught-up other voter takes over soonest.
    LogIndex best;
    for (NodeId id : config.voters) {
      if (id == options_.id) continue;
      const LogIndex match = raft_->progress(id).match_index;
      if (target == kNoNode || match > best) {
        target = id;
        best = match;
      }
    }
    if (target == kNoNode) {
      done(Status::InvalidArgument("this node is the only voter: there is no one to hand leadership to"));
      return;
    }
  }
  if (target == options_.id) {
    done(LeaderInfo{options_.id.value(), raft_->current_term().value()});
    return;
  }
  if (!config.IsVoter(target)) {
    done(Status::NotFound(fmt::format("member {} is not a voter of the cluster", target.value())));
    return;
  }
  RKV_LOG_INFO("event=leader_transfer_start from={} to={} term={}", options_.id.value(), target.value(),
               raft_->current_term().value());
  Status s = raft_->TransferLeadership(target);
  if (!s.ok()) {
    done(s);
    return;
  }
  metrics_.leader_transfers.Inc();
  transfers_.push_back(PendingTransfer{target, std::move(done), ticks_ + options_.request_timeout_ticks,
                                       ticks_ + options_.election_timeout_ticks});
}

void Node::AdvanceTransfers() {
  for (auto it = transfers_.begin(); it != transfers_.end();) {
    const NodeId leader = raft_->leader_id();
    std::optional<Result<LeaderInfo>> answer;
    if (leader == it->target && raft_->role() != raft::Role::kLeader) {
      answer = LeaderInfo{leader.value(), raft_->current_term().value()};
      RKV_LOG_INFO("event=leader_transfer_done to={} term={}", leader.value(), raft_->current_term().value());
    } else if (leader != kNoNode && leader != options_.id) {
      answer = Status::Aborted(fmt::format("member {} was elected instead of {}", leader.value(),
                                           it->target.value()));
    } else if (ticks_ >= it->deadline_tick) {
      answer = Status::Timeout(fmt::format("member {} did not take over in time (is it reachable and caught up?)",
                                           it->target.value()));
    } else if (raft_->role() == raft::Role::kLeader && ticks_ >= it->retry_tick) {
      // The core gives a transfer one election timeout; while this node
      // still leads, ask again until the deadline.
      it->retry_tick = ticks_ + options_.election_timeout_ticks;
      if (raft_->configuration().IsVoter(it->target)) (void)raft_->TransferLeadership(it->target);
    }
    if (!answer) {
      ++it;
      continue;
    }
    if (!answer->ok()) {
      RKV_LOG_WARN("event=leader_transfer_failed to={} error=\"{}\"", it->target.value(),
                   answer->status().ToString());
    }
    LeaderDone done = std::move(it->done);
    it = transfers_.erase(it);
    done(std::move(*answer));
  }
}

void Node::TakeBackup(BackupDone done) {
  ReadBarrier(ReadConsistency::kLinearizable, [this, done = std::move(done)](const Status& s) {
    if (!s.ok()) {
      done(s);
      return;
    }
    if (backup_job_ != nullptr) {
      done(Status::Busy("a backup is being taken; try again once it is done"));
      return;
    }
    // The view is the state at exactly the applied index; writes and merges
    // go on while the thread reads it.
    const LogIndex index = state_machine_->applied_index();
    const Term term = state_machine_->applied_term();
    Result<std::unique_ptr<storage::View>> view = engine_->CreateView();
    if (!view.ok()) {
      done(view.status());
      return;
    }
    backup_job_ = std::make_unique<BackupJob>();
    backup_job_->done = std::move(done);
    BackupJob* job = backup_job_.get();
    job->thread = std::thread([job, view = std::move(*view), index, term]() mutable {
      Result<std::string> blob = BuildSnapshot(view.get(), SnapshotMeta{index, term});
      view.reset();  // unpins the files before the node thread sees the result
      std::lock_guard lock(job->mu);
      if (blob.ok()) {
        job->result = Backup{std::move(*blob), index.value(), term.value()};
      } else {
        job->result = blob.status();
      }
    });
  });
}

void Node::Send(std::vector<raft::Message>& messages) {
  for (raft::Message& m : messages) {
    if (const auto* r = std::get_if<raft::InstallSnapshotRequest>(&m.body); r != nullptr && r->offset == 0) {
      // A transfer starts (or starts over) at its first chunk; counted once
      // until the follower reports it installed.
      const uint64_t now = options_.metrics_clock_ns ? options_.metrics_clock_ns() : 0;
      if (snapshot_sends_.emplace(m.to, now).second) {
        metrics_.snapshot_sends_started.Inc();
        RKV_LOG_INFO("event=snapshot_send_start to={} index={}", m.to.value(), r->metadata.last_index.value());
      }
    }
    transport_->Send(std::move(m));
  }
}

void Node::HandleReady(raft::Ready ready) {
  bool leader_changed = false;
  if (ready.soft_state) {
    if (ready.soft_state->leader_id != last_leader_) {
      RKV_LOG_INFO("event=leader_changed leader={} term={} role={}",
                   ready.soft_state->leader_id.value(), raft_->current_term().value(),
                   raft::RoleName(ready.soft_state->role));
      last_leader_ = ready.soft_state->leader_id;
      leader_changed = true;
      metrics_.leader_changes.Inc();
      // Transfers a former leader began are not finished by this one.
      snapshot_sends_.clear();
    }
  }
  // 1. A leader's appends leave while its own write is in progress.
  Send(ready.messages_before_persist);

  // 2. Persist. A snapshot goes into the engine first: it is committed
  // state, and a crash between the two steps is repaired at open (the
  // engine remembers the snapshot's metadata).
  if (ready.snapshot) {
    InstallSnapshot(*ready.snapshot);
    if (!failure_.ok()) return;
  }
  if (ready.snapshot || ready.hard_state || !ready.entries.empty()) {
    std::optional<raft::SnapshotMetadata> snapshot_meta;
    if (ready.snapshot) snapshot_meta = ready.snapshot->metadata;
    Status s = wal_->Save(snapshot_meta, ready.entries, ready.hard_state);
    if (s.ok() && ready.must_sync) s = options_.sync_wal ? wal_->Sync() : wal_->Flush();
    if (!s.ok()) {
      Fail(s);
      return;
    }
  }

  // 3. Messages that promise the write above is durable.
  Send(ready.messages);

  // 4. Apply, answer.
  const uint64_t apply_start = ready.committed_entries.empty() || !options_.metrics_clock_ns
                                   ? 0
                                   : options_.metrics_clock_ns();
  for (const raft::Entry& entry : ready.committed_entries) {
    ApplyEntry(entry);
    if (!failure_.ok()) return;
  }
  if (apply_start != 0) {
    metrics_.apply_seconds.Observe(static_cast<double>(options_.metrics_clock_ns() - apply_start) * 1e-9);
  }
  metrics_.entries_applied.Inc(ready.committed_entries.size());
  const LogIndex applied = state_machine_->applied_index();
  for (const raft::ReadState& rs : ready.read_states) {
    auto it = reads_by_id_.find(rs.request_id);
    if (it == reads_by_id_.end()) continue;  // answered already (timed out)
    if (rs.index <= applied) {
      ServeRead(it->second);
    } else {
      reads_by_index_.emplace(rs.index, std::move(it->second));
    }
    reads_by_id_.erase(it);
  }

  // 5.
  raft_->Advance();
  if (!(configuration_ == raft_->configuration())) {
    // The configuration in effect at the applied index, which the WAL hands
    // the core after a restart.
    configuration_ = raft_->configuration();
    Status s = wal_->SetConfiguration(configuration_);
    if (!s.ok()) {
      Fail(s);
      return;
    }
    RKV_LOG_INFO("event=membership_changed voters={} learners={}", IdList(configuration_.voters),
                 IdList(configuration_.learners));
  }
  if (change_applied_) {
    change_applied_ = false;
    FinishChange(membership());
  }
  SyncPeers();
  if (!configuration_.IsMember(options_.id)) {
    // Removed: nothing will reach this node any more. It refuses requests
    // rather than serve a state that no longer moves.
    removed_ = true;
    Refuse(Status::ShuttingDown("this node was removed from the cluster"));
    RKV_LOG_WARN("event=removed_from_cluster id={} action=\"stop this process; its data directory "
                 "is no longer part of the cluster\"",
                 options_.id.value());
    AbortAll(failure_);
    return;
  }
  ServeAppliedReads();
  if (leader_changed && last_leader_ != kNoNode) RetryAll();
  MaybeCompact();
}

void Node::ApplyEntry(const raft::Entry& entry) {
  if (entry.type == raft::EntryType::kConfChange) {
    ApplyConfChange(entry);
    return;
  }
  Result<CommandResult> result = state_machine_->Apply(entry.index, entry.term, entry.data);
  if (!result.ok()) {
    Fail(result.status());
    return;
  }
  // Whose write was it? Only writes this node took are waiting here.
  if (result->client_id == 0) return;
  auto it = writes_.find(result->client_id);
  if (it == writes_.end()) return;
  std::vector<PendingWrite>& list = it->second;
  for (size_t i = 0; i < list.size();) {
    if (list[i].sequence != result->sequence) {
      ++i;
      continue;
    }
    PendingWrite w = std::move(list[i]);
    list.erase(list.begin() + static_cast<std::ptrdiff_t>(i));
    --write_count_;
    if (w.slot) ReleaseSlot(w.client_id, w.sequence);
    metrics_.proposals_committed.Inc();
    w.done(*result);
  }
  if (list.empty()) writes_.erase(it);
}

void Node::ApplyConfChange(const raft::Entry& entry) {
  // The core changes the configuration; the state machine keeps the member
  // table, as a command every server derives alike from the entry.
  Result<raft::ConfChange> change = raft::DecodeConfChange(entry.data);
  if (!change.ok()) {
    Fail(change.status());  // the core decoded it already: cannot happen
    return;
  }
  std::string data;
  const uint64_t id = change->node_id.value();
  if (change->type == raft::ConfChangeType::kRemoveNode) {
    data = EncodeCommand(Command::RemoveMember(id));
  } else if (!change->context.empty()) {
    Result<MemberAddress> address = DecodeMemberAddress(change->context);
    if (address.ok()) {
      data = EncodeCommand(Command::SetMember(id, std::move(*address)));
    } else {
      RKV_LOG_WARN("event=conf_change_bad_context index={} member={} error=\"{}\"",
                   entry.index.value(), id, address.status().ToString());
    }
  }
  Result<CommandResult> r = state_machine_->Apply(entry.index, entry.term, data);
  if (!r.ok()) {
    Fail(r.status());
    return;
  }
  if (!changes_.empty() && changes_.front().index == entry.index) {
    if (changes_.front().term == entry.term) {
      change_applied_ = true;  // answered after Advance, with the new configuration
    } else {
      FinishChange(Status::NotLeader("leadership changed before the change was committed; retry"));
    }
  }
}

// ---------------------------------------------------------------------------
// Membership.

void Node::ChangeMembership(MembershipChange change, MembershipDone done) {
  if (!failure_.ok()) {
    done(failure_);
    return;
  }
  if (raft_->role() != raft::Role::kLeader) {
    done(Status::NotLeader(fmt::format("membership changes go to the leader (node {})",
                                       raft_->leader_id().value())));
    return;
  }
  if (change.id == kNoNode) {
    done(Status::InvalidArgument("member id must not be 0"));
    return;
  }
  const bool add = change.kind == MembershipChange::Kind::kAddLearner ||
                   change.kind == MembershipChange::Kind::kAddVoter;
  if (add && change.address.peer.empty()) {
    done(Status::InvalidArgument("a new member needs a peer address"));
    return;
  }
  constexpr size_t kMaxPendingChanges = 64;
  if (changes_.size() >= kMaxPendingChanges) {
    done(Status::Busy("too many membership changes pending"));
    return;
  }
  PendingChange pending;
  pending.change = std::move(change);
  pending.done = std::move(done);
  pending.deadline_tick = ticks_ + options_.request_timeout_ticks;
  changes_.push_back(std::move(pending));
}

void Node::FinishChange(Result<MembershipInfo> result) {
  PendingChange c = std::move(changes_.front());
  changes_.pop_front();
  if (result.ok()) {
    RKV_LOG_INFO("event=membership_change_done kind={} member={}", ChangeName(c.change.kind),
                 c.change.id.value());
  }
  c.done(std::move(result));
}

// Proposes the front change once the core can take it; answers at once the
// changes already in effect and those that conflict with the membership.
// Judged against the membership as of the applied index, when the change
// reaches the front, so a retry queued behind its first attempt finds it
// done.
void Node::AdvanceMembership() {
  while (!changes_.empty() && changes_.front().index == LogIndex{0}) {
    PendingChange& c = changes_.front();
    const NodeId id = c.change.id;
    if (raft_->role() != raft::Role::kLeader) {
      FinishChange(Status::NotLeader(fmt::format("this node stopped leading (leader now: node {})",
                                                 raft_->leader_id().value())));
      continue;
    }
    const std::map<uint64_t, MemberAddress>& table = state_machine_->members();
    const auto known = table.find(id.value());
    raft::ConfChange proposal;
    proposal.node_id = id;
    switch (c.change.kind) {
      case MembershipChange::Kind::kAddLearner:
      case MembershipChange::Kind::kAddVoter: {
        if (configuration_.IsMember(id)) {
          if (known == table.end() || known->second.peer != c.change.address.peer) {
            FinishChange(Status::InvalidArgument(fmt::format(
                "member {} already exists with peer address {}; remove it first to change it",
                id.value(), known == table.end() ? "(unknown)" : known->second.peer)));
          } else if (c.change.kind == MembershipChange::Kind::kAddVoter &&
                     configuration_.IsLearner(id)) {
            c.change.kind = MembershipChange::Kind::kPromote;  // next turn of the loop
          } else {
            FinishChange(membership());  // a retry of a change already made
          }
          continue;
        }
        bool taken = false;
        for (const auto& [other, address] : table) {
          if (address.peer == c.change.address.peer && configuration_.IsMember(NodeId{other})) {
            FinishChange(Status::InvalidArgument(fmt::format(
                "peer address {} belongs to member {}", address.peer, other)));
            taken = true;
            break;
          }
        }
        if (taken) continue;
        proposal.type = c.change.kind == MembershipChange::Kind::kAddLearner
                            ? raft::ConfChangeType::kAddLearner
                            : raft::ConfChangeType::kAddVoter;
        proposal.context = EncodeMemberAddress(c.change.address);
        break;
      }
      case MembershipChange::Kind::kPromote:
        if (configuration_.IsVoter(id)) {
          FinishChange(membership());
          continue;
        }
        if (!configuration_.IsLearner(id)) {
          FinishChange(Status::NotFound(fmt::format("no learner {} in the cluster", id.value())));
          continue;
        }
        // A voter that lacks most of the log would hold up commits (and, in
        // a small cluster, availability) until it caught up.
        if (c.catch_up_to == LogIndex{0}) c.catch_up_to = std::max(raft_->commit_index(), LogIndex{1});
        if (raft_->progress(id).match_index < c.catch_up_to) return;  // asked again next Process
        proposal.type = raft::ConfChangeType::kPromoteLearner;
        break;
      case MembershipChange::Kind::kRemove:
        if (!configuration_.IsMember(id)) {
          FinishChange(Status::NotFound(fmt::format("no member {} in the cluster", id.value())));
          continue;
        }
        proposal.type = raft::ConfChangeType::kRemoveNode;
        break;
    }
    Result<LogIndex> index = raft_->ProposeConfChange(proposal);
    if (!index.ok()) {
      // Busy: the previous change is not applied yet, or this leader has
      // not committed an entry of its term; the next Process tries again.
      if (index.status().IsBusy()) return;
      FinishChange(index.status());
      continue;
    }
    RKV_LOG_INFO("event=membership_change_proposed kind={} member={} index={}",
                 ChangeName(c.change.kind), id.value(), index->value());
    c.index = *index;
    c.term = raft_->current_term();
    return;
  }
}

MembershipInfo Node::membership() const {
  MembershipInfo info;
  info.cluster_id = cluster_id();
  const std::map<uint64_t, MemberAddress>& table = state_machine_->members();
  std::vector<NodeId> ids = configuration_.voters;
  ids.insert(ids.end(), configuration_.learners.begin(), configuration_.learners.end());
  std::sort(ids.begin(), ids.end());
  for (NodeId id : ids) {
    MemberInfo member;
    member.id = id.value();
    member.voter = configuration_.IsVoter(id);
    if (auto it = table.find(id.value()); it != table.end()) {
      member.peer_address = it->second.peer;
      member.http_address = it->second.http;
    }
    info.members.push_back(std::move(member));
  }
  return info;
}

uint64_t Node::cluster_id() const {
  const uint64_t stored = state_machine_->cluster_id();
  return stored != 0 ? stored : options_.cluster_id;
}

// Hands the transport the member table's peer addresses (after a change or
// a snapshot install).
void Node::SyncPeers() {
  if (!peers_stale_ && peers_version_ == state_machine_->members_version()) return;
  peers_stale_ = false;
  peers_version_ = state_machine_->members_version();
  std::map<uint64_t, std::string> want;
  for (const auto& [id, address] : state_machine_->members()) {
    if (id != options_.id.value() && !address.peer.empty()) want[id] = address.peer;
  }
  if (want == peers_) return;
  for (const auto& [id, address] : peers_) {
    if (want.count(id) == 0) transport_->RemovePeer(NodeId{id});
  }
  for (const auto& [id, address] : want) {
    auto it = peers_.find(id);
    if (it == peers_.end() || it->second != address) transport_->AddPeer(NodeId{id}, address);
  }
  peers_ = std::move(want);
}

// Writes this node's own entry of the member table when it differs from
// the addresses the node was started with (only the fields it knows).
void Node::MaybeAnnounce() {
  const MemberAddress& self = options_.self_address;
  if (self.peer.empty() || announcing_ || ticks_ < next_announce_tick_) return;
  if (!configuration_.IsMember(options_.id) || raft_->leader_id() == kNoNode) return;
  // While catching up, the table may be older than the log.
  if (state_machine_->applied_index() < raft_->commit_index()) return;
  const std::map<uint64_t, MemberAddress>& table = state_machine_->members();
  MemberAddress want;
  if (auto it = table.find(options_.id.value()); it != table.end()) want = it->second;
  const MemberAddress before = want;
  want.peer = self.peer;
  if (!self.http.empty()) want.http = self.http;
  if (want == before) return;
  announcing_ = true;
  RKV_LOG_INFO("event=announce_address id={} peer={} http={}", options_.id.value(), want.peer,
               want.http);
  Write(Command::SetMember(options_.id.value(), std::move(want)), "",
        [this](Result<CommandResult> r) {
          announcing_ = false;
          if (!r.ok()) next_announce_tick_ = ticks_ + options_.retry_ticks;
        });
}

void Node::Refuse(const Status& status) {
  if (failure_.ok()) failure_ = status;
  std::unique_lock lock(engine_mu_);
  if (stale_refusal_.ok()) stale_refusal_ = failure_;
}

void Node::Fail(const Status& status) {
  if (!failure_.ok()) return;
  Refuse(status);
  RKV_LOG_ERROR("event=node_failed error=\"{}\" action=\"refusing requests; restart the node\"",
                status.ToString());
  AbortAll(status);
}

void Node::AbortAll(const Status& status) {
  for (auto& [client, list] : writes_) {
    for (PendingWrite& w : list) w.done(status);
    metrics_.proposals_failed.Inc(list.size());
  }
  writes_.clear();
  write_count_ = 0;
  for (auto& [id, r] : reads_by_id_) r.ready(status);
  reads_by_id_.clear();
  for (auto& [index, r] : reads_by_index_) r.ready(status);
  reads_by_index_.clear();
  while (!changes_.empty()) FinishChange(status);
  change_applied_ = false;
  std::vector<PendingTransfer> transfers = std::move(transfers_);
  transfers_.clear();
  for (PendingTransfer& t : transfers) t.done(status);
}

// ---------------------------------------------------------------------------
// Status and shutdown.

NodeStatus Node::status() const {
  NodeStatus s;
  s.id = options_.id;
  s.role = raft_->role();
  s.leader = raft_->leader_id();
  s.term = raft_->current_term();
  s.commit_index = raft_->commit_index();
  s.applied_index = state_machine_->applied_index();
  s.last_index = raft_->last_index();
  s.first_index = wal_->FirstIndex();
  s.configuration = raft_->configuration();
  if (s.role == raft::Role::kLeader) {
    for (NodeId id : s.configuration.voters) s.match_index[id] = raft_->progress(id).match_index;
    for (NodeId id : s.configuration.learners) s.match_index[id] = raft_->progress(id).match_index;
  }
  s.pending_writes = write_count_;
  s.pending_reads = reads_by_id_.size() + reads_by_index_.size();
  return s;
}

Status Node::Close() {
  FinishBackup(/*wait=*/true);
  const bool healthy = failure_.ok();
  if (healthy) Refuse(Status::ShuttingDown("node is stopping"));
  AbortAll(failure_);
  Status result;
  if (state_machine_ != nullptr && healthy) {
    Status s = state_machine_->Checkpoint();
    if (!s.ok()) result = s;
  }
  if (wal_ != nullptr) {
    Status s = wal_->Close();
    if (!s.ok() && result.ok()) result = s;
  }
  std::unique_lock lock(engine_mu_);
  if (engine_ != nullptr) {
    Status s = engine_->Close();
    if (!s.ok() && result.ok()) result = s;
  }
  return result;
}

}  // namespace rkv

namespace rkv {

void NodeMetrics::Collect(metrics::Registry::Collector& out) const {
  const auto counter = [&](std::string_view name, std::string_view help, const metrics::Counter& c) {
    out.Counter(name, help, static_cast<double>(c.value()));
  };
  counter("raft_kv_leader_changes_total", "Times this node saw the leader change (to none included).",
          leader_changes);
  counter("raft_kv_proposals_committed_total", "Writes this node took that were applied.", proposals_committed);
  counter("raft_kv_proposals_failed_total",
          "Writes this node took that were answered with an error (timeout, shutdown).", proposals_failed);
  counter("raft_kv_entries_applied_total", "Log entries applied to the state machine.", entries_applied);
  counter("raft_kv_reads_served_total", "Linearizable and lease reads that passed their read barrier.",
          reads_served);
  counter("raft_kv_reads_failed_total", "Linearizable and lease reads that timed out.", reads_failed);
  counter("raft_kv_snapshots_built_total", "Snapshots built to send to followers.", snapshots_built);
  counter("raft_kv_snapshots_installed_total", "Snapshots received from a leader and installed.",
          snapshots_installed);
  counter("raft_kv_snapshot_sends_started_total", "Snapshot transfers to a follower begun (first chunk sent).",
          snapshot_sends_started);
  counter("raft_kv_snapshot_sends_completed_total", "Snapshot transfers a follower reported installed.",
          snapshot_sends_completed);
  counter("raft_kv_backups_total", "Backups taken (GET /v1/snapshot).", backups_taken);
  counter("raft_kv_leader_transfers_total", "Leadership transfers this node started.", leader_transfers);
  out.Histogram("raft_kv_apply_duration_seconds", "Time to apply the committed entries of one Raft Ready.",
                apply_seconds);
  out.Histogram("raft_kv_snapshot_build_duration_seconds", "Time to build a snapshot for followers.",
                snapshot_build_seconds);
  out.Histogram("raft_kv_snapshot_install_duration_seconds", "Time to install a snapshot from the leader.",
                snapshot_install_seconds);
  out.Histogram("raft_kv_snapshot_send_duration_seconds",
                "Time from a snapshot's first chunk to the follower reporting it installed.", snapshot_send_seconds);
}

void Node::CollectStorageMetrics(metrics::Registry::Collector& out) const {
  // The WAL lives as long as the node; the engine is replaced when a
  // snapshot is installed, so it is read under the lock of that swap.
  wal_->CollectMetrics(out);
  std::shared_lock lock(engine_mu_);
  if (engine_ != nullptr) engine_->CollectMetrics(out);
}

}  // namespace rkv
