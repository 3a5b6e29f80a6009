#include "raft/raft_node.h"

#include <fmt/format.h>

#include <algorithm>
#include <utility>

#include "raft/quorum.h"

namespace rkv::raft {

std::string_view RoleName(Role role) {
  switch (role) {
    case Role::kFollower: return "follower";
    case Role::kPreCandidate: return "pre-candidate";
    case Role::kCandidate: return "candidate";
    case Role::kLeader: return "leader";
  }
  return "?";
}

// ---------------------------------------------------------------------------
// Construction.

Result<std::unique_ptr<RaftNode>> RaftNode::Create(const RaftConfig& config,
                                                   const LogStorage* storage, Random random) {
  if (storage == nullptr) return Status::InvalidArgument("no log storage");
  if (config.id == kNoNode) return Status::InvalidArgument("node id 0 is reserved");
  if (config.heartbeat_interval_ticks == 0) return Status::InvalidArgument("heartbeat interval 0");
  if (config.election_timeout_ticks <= config.heartbeat_interval_ticks) {
    return Status::InvalidArgument("election timeout must exceed the heartbeat interval");
  }
  if (config.read_mode == ReadMode::kLease && !config.check_quorum) {
    // Trap 4 of the design notes: a lease without CheckQuorum lets a deposed
    // leader keep serving reads.
    return Status::InvalidArgument("lease reads require check_quorum");
  }
  if (config.max_inflight_messages == 0 || config.max_bytes_per_message == 0 ||
      config.snapshot_chunk_bytes == 0 || config.max_committed_bytes_per_ready == 0) {
    return Status::InvalidArgument("limits must be positive");
  }
  const InitialState state = storage->GetInitialState();
  RKV_RETURN_IF_ERROR(CheckConfiguration(state.configuration));
  if (state.hard_state.commit_index > storage->LastIndex()) {
    return Status::Corruption("commit index beyond the stored log");
  }
  if (config.applied_index > storage->LastIndex()) {
    return Status::InvalidArgument("applied index beyond the stored log");
  }
  Result<Term> last_term = storage->TermAt(storage->LastIndex());
  if (!last_term.ok()) return Status::Corruption("storage cannot give its last term");
  if (*last_term > state.hard_state.current_term) {
    return Status::Corruption("stored log has a term newer than the hard state");
  }
  return std::unique_ptr<RaftNode>(new RaftNode(config, storage, std::move(random), state));
}

RaftNode::RaftNode(const RaftConfig& config, const LogStorage* storage, Random random,
                   const InitialState& state)
    : config_(config),
      id_(config.id),
      storage_(storage),
      random_(std::move(random)),
      log_(storage, std::max(state.hard_state.commit_index, config.applied_index),
           config.applied_index),
      current_term_(state.hard_state.current_term),
      voted_for_(state.hard_state.voted_for),
      configuration_(state.configuration),
      persisted_hard_state_(state.hard_state) {
  BecomeFollower(current_term_, kNoNode);
  prev_soft_state_ = CurrentSoftState();
  // With lease reads, a (re)started server may have acknowledged a lease
  // round just before it went down: it withholds its vote for one minimum
  // election timeout, as if it had just heard from a leader.
  if (config_.read_mode == ReadMode::kLease) startup_lease_ticks_ = config_.election_timeout_ticks;
}

const Progress& RaftNode::progress(NodeId peer) const {
  RKV_ASSERT(role_ == Role::kLeader);
  auto it = progress_.find(peer);
  RKV_ASSERT(it != progress_.end());
  return it->second;
}

// ---------------------------------------------------------------------------
// Role transitions.

void RaftNode::Reset(Term term) {
  if (term != current_term_) {
    RKV_ASSERT_MSG(term > current_term_, "a term never decreases");
    current_term_ = term;
    voted_for_ = kNoNode;
  }
  leader_id_ = kNoNode;
  election_elapsed_ = 0;
  heartbeat_elapsed_ = 0;
  ResetRandomizedElectionTimeout();
  AbortLeaderTransfer();
  votes_.clear();
  progress_.clear();
  pending_conf_index_ = LogIndex{0};
  uncommitted_bytes_ = 0;
  reads_waiting_for_commit_.clear();
  pending_reads_.clear();
  read_round_ = 0;
  read_round_confirmed_ = 0;
  read_round_unsent_ = false;
  read_round_sent_tick_.clear();
  lease_start_tick_.reset();
  lease_revoked_ = false;
}

void RaftNode::ResetRandomizedElectionTimeout() {
  // §5.2: randomized timeouts make split votes rare. The jitter comes from
  // the injected generator, never a global one.
  randomized_election_timeout_ =
      config_.election_timeout_ticks + random_.Uniform(config_.election_timeout_ticks);
}

void RaftNode::BecomeFollower(Term term, NodeId leader) {
  step_ = &RaftNode::StepFollower;
  tick_ = &RaftNode::TickElection;
  Reset(term);
  leader_id_ = leader;
  role_ = Role::kFollower;
}

void RaftNode::BecomePreCandidate() {
  RKV_ASSERT(role_ != Role::kLeader);
  // §9.6: a pre-candidate keeps its term and vote; it only asks whether it
  // could win.
  step_ = &RaftNode::StepCandidate;
  tick_ = &RaftNode::TickElection;
  votes_.clear();
  leader_id_ = kNoNode;
  election_elapsed_ = 0;
  ResetRandomizedElectionTimeout();
  role_ = Role::kPreCandidate;
}

void RaftNode::BecomeCandidate() {
  RKV_ASSERT(role_ != Role::kLeader);
  // §5.2: increment currentTerm, vote for self.
  step_ = &RaftNode::StepCandidate;
  tick_ = &RaftNode::TickElection;
  Reset(NextTerm(current_term_));
  voted_for_ = id_;
  role_ = Role::kCandidate;
}

void RaftNode::BecomeLeader() {
  RKV_ASSERT(role_ == Role::kCandidate);
  step_ = &RaftNode::StepLeader;
  tick_ = &RaftNode::TickHeartbeat;
  Reset(current_term_);
  leader_id_ = id_;
  role_ = Role::kLeader;
  for (NodeId voter : configuration_.voters) progress_.emplace(voter, NewProgress(false));
  for (NodeId learner : configuration_.learners) progress_.emplace(learner, NewProgress(true));
  Progress& self = progress_.at(id_);
  self.BecomeReplicate();
  // Only what this server has persisted counts toward commitment.
  self.MaybeUpdate(log_.StableLastIndex());
  // No configuration change until everything this leader inherited is
  // applied (one pending change at a time).
  pending_conf_index_ = log_.LastIndex();
  // Trap 2 (dissertation §6.4): a new leader learns the commit index only by
  // committing an entry of its own term, so it appends a no-op at once.
  AppendEntry(EntryType::kNormal, std::string());
  BroadcastAppend();
}

Progress RaftNode::NewProgress(bool is_learner) const {
  Progress p(config_.max_inflight_messages);
  p.next_index = log_.LastIndex() + 1;
  p.is_learner = is_learner;
  // Count as active so CheckQuorum does not depose a fresh leader at once.
  p.recent_active = true;
  return p;
}

bool RaftNode::IsSingleVoter() const {
  return configuration_.voters.size() == 1 && configuration_.voters.front() == id_;
}

// ---------------------------------------------------------------------------
// Elections.

void RaftNode::Campaign() {
  RKV_ASSERT(!in_progress_);
  if (role_ == Role::kLeader) return;
  StartElection(false);
}

bool RaftNode::HasUnappliedConfChanges() const {
  if (log_.committed() <= log_.applied()) return false;
  Result<std::vector<Entry>> entries =
      log_.Slice(log_.applied() + 1, log_.committed() + 1, UINT64_MAX);
  if (!entries.ok()) return true;
  return std::any_of(entries->begin(), entries->end(),
                     [](const Entry& e) { return e.type == EntryType::kConfChange; });
}

void RaftNode::StartElection(bool leadership_transfer) {
  if (!Promotable()) return;
  // A committed but unapplied configuration change could mean this server
  // counts votes in the wrong configuration; wait until it is applied.
  if (HasUnappliedConfChanges()) return;
  if (config_.pre_vote && !leadership_transfer) {
    BecomePreCandidate();
  } else {
    BecomeCandidate();
  }
  CampaignRound(leadership_transfer);
}

void RaftNode::CampaignRound(bool leadership_transfer) {
  const bool pre_vote = role_ == Role::kPreCandidate;
  RKV_ASSERT(pre_vote || role_ == Role::kCandidate);
  const Term term = pre_vote ? NextTerm(current_term_) : current_term_;
  votes_.clear();
  votes_[id_] = true;
  if (quorum::TallyVotes(configuration_.voters, votes_) == quorum::VoteResult::kWon) {
    if (pre_vote) {
      BecomeCandidate();
      CampaignRound(leadership_transfer);
    } else {
      BecomeLeader();
    }
    return;
  }
  const RequestVoteRequest request{log_.LastIndex(), log_.LastTerm(), pre_vote,
                                   leadership_transfer};
  for (NodeId voter : configuration_.voters) {
    if (voter != id_) SendTo(voter, term, request);
  }
}

void RaftNode::HandleRequestVote(const Message& m, const RequestVoteRequest& request) {
  // §5.2, §5.4.1: grant at most one vote per term, and only to a candidate
  // whose log is at least as up-to-date as ours. A pre-vote (§9.6) for a
  // later term is granted on the log check alone and changes nothing here.
  const bool can_vote = voted_for_ == m.from ||
                        (voted_for_ == kNoNode && leader_id_ == kNoNode) ||
                        (request.pre_vote && m.term > current_term_);
  if (can_vote && log_.IsUpToDate(request.last_log_index, request.last_log_term)) {
    SendTo(m.from, m.term, RequestVoteResponse{true, request.pre_vote});
    if (!request.pre_vote) {
      election_elapsed_ = 0;
      voted_for_ = m.from;
    }
  } else {
    SendTo(m.from, current_term_, RequestVoteResponse{false, request.pre_vote});
  }
}

void RaftNode::HandleVoteResponse(const Message& m, const RequestVoteResponse& response) {
  const bool expecting_pre_vote = role_ == Role::kPreCandidate;
  if (response.pre_vote != expecting_pre_vote) return;  // from an earlier round
  votes_.emplace(m.from, response.vote_granted);
  switch (quorum::TallyVotes(configuration_.voters, votes_)) {
    case quorum::VoteResult::kWon:
      if (expecting_pre_vote) {
        BecomeCandidate();
        CampaignRound(false);
      } else {
        BecomeLeader();
      }
      break;
    case quorum::VoteResult::kLost:
      BecomeFollower(current_term_, kNoNode);
      break;
    case quorum::VoteResult::kPending:
      break;
  }
}

// ---------------------------------------------------------------------------
// Ticks.

void RaftNode::Tick() {
  RKV_ASSERT(!in_progress_);
  ++tick_count_;
  if (startup_lease_ticks_ > 0) --startup_lease_ticks_;
  (this->*tick_)();
}

void RaftNode::TickElection() {
  ++election_elapsed_;
  if (Promotable() && election_elapsed_ >= randomized_election_timeout_) {
    election_elapsed_ = 0;
    StartElection(false);
  }
}

void RaftNode::TickHeartbeat() {
  ++heartbeat_elapsed_;
  ++election_elapsed_;
  if (election_elapsed_ >= config_.election_timeout_ticks) {
    election_elapsed_ = 0;
    // CheckQuorum (dissertation §6.2): a leader that has not heard from a
    // majority within an election timeout steps down, so clients stop
    // waiting on it and a lease read can never outlive the lease.
    if (config_.check_quorum && !QuorumActive()) {
      BecomeFollower(current_term_, kNoNode);
      return;
    }
    // A transfer that has not finished within an election timeout failed.
    AbortLeaderTransfer();
  }
  if (heartbeat_elapsed_ >= config_.heartbeat_interval_ticks) {
    heartbeat_elapsed_ = 0;
    if (config_.read_mode == ReadMode::kLease) {
      // Every heartbeat is a numbered round, so that acknowledgements extend
      // the lease from the time the round was sent.
      StartReadRound();
    } else {
      BroadcastHeartbeat();
    }
  }
}

bool RaftNode::QuorumActive() {
  size_t active = 0;
  for (auto& [peer, pr] : progress_) {
    if (peer == id_) {
      if (configuration_.IsVoter(peer)) ++active;
      continue;
    }
    if (pr.recent_active && configuration_.IsVoter(peer)) ++active;
    pr.recent_active = false;
  }
  return active >= quorum::MajoritySize(configuration_.voters.size());
}

// ---------------------------------------------------------------------------
// Step: the term rules shared by every role, then the role's own function.

Status RaftNode::Step(const Message& m) {
  RKV_ASSERT(!in_progress_);
  if (m.to != id_) return Status::InvalidArgument("message not addressed to this node");
  if (m.from == kNoNode || m.from == id_) return Status::InvalidArgument("bad sender");

  const auto* vote_request = std::get_if<RequestVoteRequest>(&m.body);
  const auto* vote_response = std::get_if<RequestVoteResponse>(&m.body);

  if (m.term > current_term_) {
    if (vote_request != nullptr && !vote_request->leadership_transfer) {
      // Trap 7, disruptive servers (dissertation §4.2.3): while we have heard
      // from a live leader within the minimum election timeout, ignore
      // RequestVote entirely (do not even adopt its term). A leader counts
      // its own lease only when CheckQuorum keeps that lease honest.
      const bool in_lease = (leader_id_ != kNoNode &&
                             election_elapsed_ < config_.election_timeout_ticks &&
                             (leader_id_ != id_ || config_.check_quorum)) ||
                            startup_lease_ticks_ > 0;
      if (in_lease) return Status::OK();
    }
    if (vote_request != nullptr && vote_request->pre_vote) {
      // §9.6: a pre-vote never changes the receiver's term.
    } else if (vote_response != nullptr && vote_response->pre_vote && vote_response->vote_granted) {
      // A granted pre-vote carries the term we would campaign in.
    } else {
      // Figure 2, all servers: a newer term makes us a follower in it.
      const bool from_leader = IsLeaderRequest(m);
      BecomeFollower(m.term, from_leader ? m.from : kNoNode);
    }
  } else if (m.term < current_term_) {
    if ((config_.check_quorum || config_.pre_vote) &&
        (std::holds_alternative<AppendEntriesRequest>(m.body) ||
         std::holds_alternative<HeartbeatRequest>(m.body))) {
      // A deposed leader that cannot win elections (PreVote) or whose
      // followers ignore its term (CheckQuorum) would otherwise never learn
      // of the newer term; tell it.
      SendTo(m.from, current_term_, AppendEntriesResponse{});
    } else if (vote_request != nullptr && vote_request->pre_vote) {
      SendTo(m.from, current_term_, RequestVoteResponse{false, true});
    }
    // Figure 2: reply false / ignore if term < currentTerm.
    return Status::OK();
  }

  if (vote_request != nullptr) {
    HandleRequestVote(m, *vote_request);
    return Status::OK();
  }
  return (this->*step_)(m);
}

Status RaftNode::StepFollower(const Message& m) {
  if (const auto* r = std::get_if<AppendEntriesRequest>(&m.body)) {
    election_elapsed_ = 0;
    leader_id_ = m.from;
    return HandleAppendEntries(m, *r);
  }
  if (const auto* r = std::get_if<HeartbeatRequest>(&m.body)) {
    election_elapsed_ = 0;
    leader_id_ = m.from;
    HandleHeartbeat(m, *r);
    return Status::OK();
  }
  if (const auto* r = std::get_if<InstallSnapshotRequest>(&m.body)) {
    // Trap 8: every chunk resets the election timer.
    election_elapsed_ = 0;
    leader_id_ = m.from;
    return HandleInstallSnapshot(m, *r);
  }
  if (std::holds_alternative<TimeoutNowRequest>(m.body)) {
    // Leadership transfer (dissertation §3.10): campaign now, skipping
    // PreVote and the receivers' leader lease.
    StartElection(true);
    return Status::OK();
  }
  if (const auto* r = std::get_if<ReadIndexResponse>(&m.body)) {
    // The index may be beyond our log: the caller waits until applied.
    read_states_.push_back({r->request_id, r->index});
    return Status::OK();
  }
  return Status::OK();  // responses meant for an earlier role
}

Status RaftNode::StepCandidate(const Message& m) {
  if (IsLeaderRequest(m) && !std::holds_alternative<TimeoutNowRequest>(m.body)) {
    // §5.2: a leader of our term exists; return to follower.
    BecomeFollower(m.term, m.from);
    return StepFollower(m);
  }
  if (const auto* r = std::get_if<RequestVoteResponse>(&m.body)) HandleVoteResponse(m, *r);
  return Status::OK();
}

Status RaftNode::StepLeader(const Message& m) {
  if (const auto* r = std::get_if<AppendEntriesResponse>(&m.body)) {
    return HandleAppendEntriesResponse(m, *r);
  }
  if (const auto* r = std::get_if<HeartbeatResponse>(&m.body)) {
    HandleHeartbeatResponse(m, *r);
    return Status::OK();
  }
  if (const auto* r = std::get_if<InstallSnapshotResponse>(&m.body)) {
    return HandleInstallSnapshotResponse(m, *r);
  }
  if (const auto* r = std::get_if<ReadIndexRequest>(&m.body)) {
    // A refusal (Busy) is not reported back: the follower's caller times
    // out and retries, as after a lost message.
    (void)HandleReadIndexRequest(r->request_id, m.from, /*use_lease=*/false);
    return Status::OK();
  }
  if (const auto* r = std::get_if<ProposeRequest>(&m.body)) {
    // As for reads, a refusal is not reported: the follower retries.
    for (const std::string& command : r->commands) {
      if (!Propose(command).ok()) break;
    }
    return Status::OK();
  }
  if (IsLeaderRequest(m) && !std::holds_alternative<TimeoutNowRequest>(m.body)) {
    return Status::Corruption(fmt::format("second leader {} in term {}", m.from.value(),
                                          current_term_.value()));
  }
  return Status::OK();
}

// ---------------------------------------------------------------------------
// Follower side of replication.

Status RaftNode::HandleAppendEntries(const Message& m, const AppendEntriesRequest& request) {
  // Validate the peer's input before touching the log.
  LogIndex expected = request.prev_log_index + 1;
  Term previous_term = request.prev_log_term;
  for (const Entry& e : request.entries) {
    if (e.index != expected) return Status::InvalidArgument("entries not consecutive");
    if (e.term < previous_term || e.term > m.term) {
      return Status::InvalidArgument("entry terms out of order");
    }
    previous_term = e.term;
    expected = expected + 1;
  }

  if (request.prev_log_index < log_.committed()) {
    // Everything up to our commit index already matches the leader (Log
    // Matching); report it so the leader moves on.
    SendTo(m.from, current_term_,
           AppendEntriesResponse{true, log_.committed(), LogIndex{0}, Term{0}, LogIndex{0}});
    return Status::OK();
  }
  // Figure 2, AppendEntries receiver rules 2-4.
  std::optional<LogIndex> last_new =
      log_.MaybeAppend(request.prev_log_index, request.prev_log_term, request.entries);
  if (last_new) {
    // Rule 5: commitIndex = min(leaderCommit, index of last new entry).
    log_.CommitTo(std::min(request.leader_commit, *last_new));
    SendTo(m.from, current_term_,
           AppendEntriesResponse{true, *last_new, LogIndex{0}, Term{0}, LogIndex{0}});
    return Status::OK();
  }
  // Rule 2: reply false, with a hint that lets the leader skip a whole
  // conflicting term (§5.3, "the protocol can be optimized").
  const LogIndex hint_index = log_.FindConflictByTerm(request.prev_log_index, request.prev_log_term);
  Result<Term> hint_term = log_.TermAt(hint_index);
  SendTo(m.from, current_term_,
         AppendEntriesResponse{false, LogIndex{0}, request.prev_log_index,
                               hint_term.ok() ? *hint_term : Term{0}, hint_index});
  return Status::OK();
}

void RaftNode::HandleHeartbeat(const Message& m, const HeartbeatRequest& request) {
  // The leader sends min(match_index, commit), which our log is known to hold.
  if (request.leader_commit <= log_.LastIndex()) log_.CommitTo(request.leader_commit);
  SendTo(m.from, current_term_, HeartbeatResponse{request.read_round});
}

Status RaftNode::HandleInstallSnapshot(const Message& m, const InstallSnapshotRequest& request) {
  const SnapshotMetadata& metadata = request.metadata;
  if (metadata.last_index == LogIndex{0} || metadata.last_term > m.term) {
    return Status::InvalidArgument("bad snapshot metadata");
  }
  RKV_RETURN_IF_ERROR(CheckConfiguration(metadata.configuration));
  const bool same_snapshot = incoming_snapshot_ && incoming_snapshot_->metadata == metadata;
  const bool continues = same_snapshot && incoming_snapshot_->data.size() == request.offset;
  if (request.offset == 0 && !(same_snapshot && !incoming_snapshot_->data.empty())) {
    incoming_snapshot_ = Snapshot{metadata, request.data};
  } else if (continues) {
    incoming_snapshot_->data += request.data;
  } else {
    // Out of order, a duplicate, or a restart on either side: say what we
    // hold (a duplicate first chunk does not discard what we have).
    SendTo(m.from, current_term_,
           InstallSnapshotResponse{metadata.last_index,
                                   same_snapshot ? incoming_snapshot_->data.size() : 0, false,
                                   LogIndex{0}});
    return Status::OK();
  }
  if (!request.done) {
    SendTo(m.from, current_term_,
           InstallSnapshotResponse{metadata.last_index, incoming_snapshot_->data.size(), false,
                                   LogIndex{0}});
    return Status::OK();
  }
  Snapshot snapshot = std::move(*incoming_snapshot_);
  incoming_snapshot_.reset();
  const uint64_t size = snapshot.data.size();
  RestoreSnapshot(snapshot);
  SendTo(m.from, current_term_,
         InstallSnapshotResponse{metadata.last_index, size, true, log_.committed()});
  return Status::OK();
}

bool RaftNode::RestoreSnapshot(const Snapshot& snapshot) {
  const LogIndex index = snapshot.metadata.last_index;
  if (index <= log_.committed()) return false;  // we already have all it holds
  if (log_.MatchTerm(index, snapshot.metadata.last_term)) {
    // Trap 8 (§7): the snapshot describes a prefix of our log; keep the
    // entries that follow it and just learn that the prefix is committed.
    log_.CommitTo(index);
    return false;
  }
  // Otherwise the snapshot replaces the whole log.
  log_.Restore(snapshot);
  configuration_ = snapshot.metadata.configuration;
  return true;
}

// ---------------------------------------------------------------------------
// Leader side of replication.

void RaftNode::Send(Message m) {
  RKV_ASSERT(m.to != id_);
  RKV_ASSERT(m.from == id_);
  messages_.push_back(std::move(m));
}

bool RaftNode::SendAppend(NodeId to, bool send_if_empty) {
  Progress& pr = progress_.at(to);
  if (pr.IsPaused()) return false;
  const LogIndex prev = pr.next_index - 1;
  Result<Term> prev_term = log_.TermAt(prev);
  Result<std::vector<Entry>> entries =
      prev_term.ok() ? log_.Slice(pr.next_index, log_.LastIndex() + 1, config_.max_bytes_per_message)
                     : Result<std::vector<Entry>>(prev_term.status());
  if (!prev_term.ok() || !entries.ok()) {
    // §7: the entries this follower needs were compacted; send a snapshot.
    Result<SnapshotChunk> snapshot = storage_->GetSnapshotChunk(0, 0);  // its metadata
    if (!snapshot.ok()) return false;  // not available yet; the next heartbeat retries
    pr.BecomeSnapshot(snapshot->metadata.last_index);
    SendSnapshotChunk(to);
    return true;
  }
  if (entries->empty() && !send_if_empty) return false;
  if (!entries->empty()) {
    const LogIndex last = entries->back().index;
    if (pr.state == ProgressState::kReplicate) {
      pr.OptimisticUpdate(last);
      pr.inflights.Add(last);
    } else {
      pr.probe_sent = true;
    }
  } else if (pr.state == ProgressState::kProbe) {
    pr.probe_sent = true;
  }
  SendTo(to, current_term_,
         AppendEntriesRequest{prev, *prev_term, std::move(*entries), log_.committed()});
  return true;
}

void RaftNode::SendSnapshotChunk(NodeId to) {
  Progress& pr = progress_.at(to);
  RKV_ASSERT(pr.state == ProgressState::kSnapshot);
  const uint64_t asked = pr.snapshot_offset;
  Result<SnapshotChunk> chunk = storage_->GetSnapshotChunk(asked, config_.snapshot_chunk_bytes);
  if (!chunk.ok()) return;
  if (chunk->metadata.last_index != pr.pending_snapshot_index) {
    // The storage took a newer snapshot meanwhile; send that one, from its
    // start.
    pr.BecomeSnapshot(chunk->metadata.last_index);
    if (asked != 0) {
      chunk = storage_->GetSnapshotChunk(0, config_.snapshot_chunk_bytes);
      if (!chunk.ok() || chunk->metadata.last_index != pr.pending_snapshot_index) return;
    }
  }
  const uint64_t offset = std::min<uint64_t>(pr.snapshot_offset, chunk->total_bytes);
  const bool done = offset + chunk->data.size() == chunk->total_bytes;
  SendTo(to, current_term_,
         InstallSnapshotRequest{chunk->metadata, offset, std::move(chunk->data), done});
}

void RaftNode::BroadcastAppend() {
  for (auto& [peer, pr] : progress_) {
    if (peer != id_) SendAppend(peer, true);
  }
}

void RaftNode::BroadcastHeartbeat() {
  for (const auto& [peer, pr] : progress_) {
    if (peer == id_) continue;
    SendTo(peer, current_term_,
           HeartbeatRequest{std::min(pr.match_index, log_.committed()), read_round_});
  }
}

void RaftNode::SendTimeoutNow(NodeId to) {
  // The target's campaign bypasses the followers' leases, so this leader's
  // lease can no longer be trusted in this term.
  lease_revoked_ = true;
  SendTo(to, current_term_, TimeoutNowRequest{});
}

bool RaftNode::LeaseValid() const {
  if (config_.read_mode != ReadMode::kLease || lease_revoked_ || !lease_start_tick_) return false;
  // Followers that acknowledged a round sent at lease_start_tick_ ignore
  // RequestVote until a minimum election timeout of their own ticks after
  // they received it. Their ticks are not in phase with ours: a follower's
  // first tick may come just after the heartbeat arrived, so its timeout can
  // end up to one tick period before our election_timeout_ticks-th tick
  // since the round. The lease therefore ends one tick earlier (found by the
  // SIGSTOP integration test: a leader paused just under an election timeout
  // came back and answered a lease read after a new leader had committed).
  return tick_count_ + 1 < *lease_start_tick_ + config_.election_timeout_ticks;
}

void RaftNode::AppendEntry(EntryType type, std::string data) {
  RKV_ASSERT(role_ == Role::kLeader);
  Entry e{current_term_, log_.LastIndex() + 1, type, std::move(data)};
  uncommitted_bytes_ += EntryBytes(e);
  log_.Append({std::move(e)});
}

bool RaftNode::CommittedEntryInCurrentTerm() const {
  Result<Term> t = log_.TermAt(log_.committed());
  return t.ok() && *t == current_term_;
}

bool RaftNode::MaybeCommit() {
  RKV_ASSERT(role_ == Role::kLeader);
  std::vector<uint64_t> matches;
  matches.reserve(configuration_.voters.size());
  for (NodeId voter : configuration_.voters) {
    auto it = progress_.find(voter);
    matches.push_back(it == progress_.end() ? 0 : it->second.match_index.value());
  }
  const LogIndex index{quorum::MajorityValue(std::move(matches))};
  if (index <= log_.committed()) return false;
  // Trap 1, the Figure 8 rule (§5.4.2): only an entry of the current term is
  // committed by counting replicas; earlier entries commit with it.
  if (!log_.MatchTerm(index, current_term_)) return false;
  const bool first_in_term = !CommittedEntryInCurrentTerm();
  const LogIndex old_commit = log_.committed();
  log_.CommitTo(index);
  ReduceUncommittedBytes(old_commit, index);
  if (first_in_term) {
    // Trap 3: reads that arrived before this leader committed an entry of
    // its term may now be given a read index.
    std::vector<WaitingRead> waiting = std::move(reads_waiting_for_commit_);
    reads_waiting_for_commit_.clear();
    for (const WaitingRead& read : waiting) {
      StartReadIndex(read.request_id, read.requester, read.use_lease);
    }
  }
  return true;
}

void RaftNode::ReduceUncommittedBytes(LogIndex old_commit, LogIndex new_commit) {
  Result<std::vector<Entry>> entries = log_.Slice(old_commit + 1, new_commit + 1, UINT64_MAX);
  if (!entries.ok()) {
    uncommitted_bytes_ = 0;
    return;
  }
  for (const Entry& e : *entries) {
    if (e.term != current_term_) continue;  // counted only by the leader that appended it
    uncommitted_bytes_ -= std::min(uncommitted_bytes_, EntryBytes(e));
  }
}

Status RaftNode::HandleAppendEntriesResponse(const Message& m,
                                             const AppendEntriesResponse& response) {
  auto it = progress_.find(m.from);
  if (it == progress_.end()) return Status::OK();  // no longer a member
  Progress& pr = it->second;
  pr.recent_active = true;

  if (!response.success) {
    if (response.rejected_index > log_.LastIndex()) {
      return Status::InvalidArgument("rejection of an index this leader never sent");
    }
    // Fast back-tracking: resume after the last entry that may still match,
    // judging by the follower's hint and our own log.
    LogIndex next = response.rejected_index;
    if (response.conflict_index <= response.rejected_index) {
      next = log_.FindConflictByTerm(response.conflict_index, response.conflict_term) + 1;
    }
    if (pr.MaybeDecreaseTo(response.rejected_index, next)) {
      if (pr.state == ProgressState::kReplicate) pr.BecomeProbe();
      SendAppend(m.from, true);
    }
    return Status::OK();
  }

  if (response.match_index > log_.LastIndex()) {
    return Status::InvalidArgument("match index beyond the leader's log");
  }
  const bool was_paused = pr.IsPaused();
  if (!pr.MaybeUpdate(response.match_index)) return Status::OK();
  switch (pr.state) {
    case ProgressState::kProbe:
      pr.BecomeReplicate();
      break;
    case ProgressState::kSnapshot:
      if (pr.match_index >= pr.pending_snapshot_index) pr.BecomeProbe();
      break;
    case ProgressState::kReplicate:
      pr.inflights.FreeLE(pr.match_index);
      break;
  }
  if (MaybeCommit()) {
    BroadcastAppend();
  } else if (was_paused) {
    // It was waiting on us; even with nothing new, tell it the commit index.
    SendAppend(m.from, true);
  }
  // Fill the window (pipelining).
  while (SendAppend(m.from, false)) {
  }
  if (m.from == lead_transferee_ && pr.match_index == log_.LastIndex()) SendTimeoutNow(m.from);
  return Status::OK();
}

void RaftNode::HandleHeartbeatResponse(const Message& m, const HeartbeatResponse& response) {
  auto it = progress_.find(m.from);
  if (it == progress_.end()) return;
  Progress& pr = it->second;
  pr.recent_active = true;
  pr.probe_sent = false;
  if (pr.state == ProgressState::kSnapshot) {
    SendSnapshotChunk(m.from);  // retransmit in case a chunk was lost
  } else if (pr.match_index < log_.LastIndex()) {
    // An AppendEntries may have been lost; make room and resend.
    if (pr.state == ProgressState::kReplicate && pr.inflights.Full()) pr.inflights.FreeFirstOne();
    SendAppend(m.from, true);
  }
  if (response.read_round <= read_round_ && response.read_round > pr.read_round_acked) {
    pr.read_round_acked = response.read_round;
    MaybeConfirmReads();
  }
}

Status RaftNode::HandleInstallSnapshotResponse(const Message& m,
                                               const InstallSnapshotResponse& response) {
  auto it = progress_.find(m.from);
  if (it == progress_.end()) return Status::OK();
  Progress& pr = it->second;
  pr.recent_active = true;
  if (response.done) {
    if (response.match_index > log_.LastIndex()) {
      return Status::InvalidArgument("match index beyond the leader's log");
    }
    pr.MaybeUpdate(response.match_index);
    if (pr.state == ProgressState::kSnapshot) pr.BecomeProbe();
    if (MaybeCommit()) {
      BroadcastAppend();
    } else {
      SendAppend(m.from, true);
    }
    return Status::OK();
  }
  if (pr.state != ProgressState::kSnapshot || response.snapshot_index != pr.pending_snapshot_index) {
    return Status::OK();
  }
  // The follower's count of bytes held is authoritative: move forward when
  // it grew, and back when it lost data (a restart) or we ran ahead of it.
  if (response.next_offset != pr.snapshot_offset) {
    pr.snapshot_offset = response.next_offset;
    SendSnapshotChunk(m.from);
  }
  return Status::OK();
}

// ---------------------------------------------------------------------------
// Client operations.

Result<LogIndex> RaftNode::Propose(std::string data) {
  RKV_ASSERT(!in_progress_);
  if (role_ != Role::kLeader) {
    return Status::NotLeader(fmt::format("leader={}", leader_id_.value()));
  }
  if (lead_transferee_ != kNoNode) return Status::Busy("leadership transfer in progress");
  const uint64_t bytes = data.size() + EntryBytes(Entry{});
  if (uncommitted_bytes_ > 0 && uncommitted_bytes_ + bytes > config_.max_uncommitted_bytes) {
    return Status::Busy("too many uncommitted bytes");
  }
  AppendEntry(EntryType::kNormal, std::move(data));
  BroadcastAppend();
  return log_.LastIndex();
}

Result<LogIndex> RaftNode::ProposeConfChange(const ConfChange& change) {
  RKV_ASSERT(!in_progress_);
  if (role_ != Role::kLeader) {
    return Status::NotLeader(fmt::format("leader={}", leader_id_.value()));
  }
  if (lead_transferee_ != kNoNode) return Status::Busy("leadership transfer in progress");
  // Trap 5: one change at a time, and only once this leader has committed
  // an entry of its own term (the fix to the single-server change bug).
  if (pending_conf_index_ > log_.applied()) {
    return Status::Busy("a configuration change is pending");
  }
  if (!CommittedEntryInCurrentTerm()) {
    return Status::Busy("leader has not yet committed an entry of its term");
  }
  if (change.node_id == kNoNode) return Status::InvalidArgument("node id 0");
  switch (change.type) {
    case ConfChangeType::kAddVoter:
      if (configuration_.IsVoter(change.node_id)) return Status::InvalidArgument("already a voter");
      break;
    case ConfChangeType::kAddLearner:
      if (configuration_.IsMember(change.node_id)) return Status::InvalidArgument("already a member");
      break;
    case ConfChangeType::kPromoteLearner:
      if (!configuration_.IsLearner(change.node_id)) return Status::InvalidArgument("not a learner");
      break;
    case ConfChangeType::kRemoveNode:
      if (!configuration_.IsMember(change.node_id)) return Status::InvalidArgument("not a member");
      if (configuration_.IsVoter(change.node_id) && configuration_.voters.size() == 1) {
        return Status::InvalidArgument("cannot remove the last voter");
      }
      break;
  }
  AppendEntry(EntryType::kConfChange, EncodeConfChange(change));
  pending_conf_index_ = log_.LastIndex();
  BroadcastAppend();
  return log_.LastIndex();
}

Status RaftNode::Forward(std::vector<std::string> commands) {
  RKV_ASSERT(!in_progress_);
  if (role_ == Role::kLeader || leader_id_ == kNoNode) {
    return Status::NotLeader(fmt::format("leader={}", leader_id_.value()));
  }
  SendTo(leader_id_, current_term_, ProposeRequest{std::move(commands)});
  return Status::OK();
}

Status RaftNode::ReadIndex(uint64_t request_id, bool use_lease) {
  RKV_ASSERT(!in_progress_);
  if (role_ == Role::kFollower && leader_id_ != kNoNode) {
    SendTo(leader_id_, current_term_, ReadIndexRequest{request_id});
    return Status::OK();
  }
  if (role_ != Role::kLeader) {
    return Status::NotLeader(fmt::format("leader={}", leader_id_.value()));
  }
  return HandleReadIndexRequest(request_id, id_, use_lease);
}

Status RaftNode::HandleReadIndexRequest(uint64_t request_id, NodeId requester, bool use_lease) {
  RKV_ASSERT(role_ == Role::kLeader);
  if (reads_waiting_for_commit_.size() + pending_reads_.size() >= config_.max_pending_reads) {
    return Status::Busy("too many pending reads");
  }
  if (!CommittedEntryInCurrentTerm()) {
    // Trap 3 (§6.4 step 1): until the no-op of this term commits, our commit
    // index may be behind the cluster's.
    reads_waiting_for_commit_.push_back({request_id, requester, use_lease});
    return Status::OK();
  }
  StartReadIndex(request_id, requester, use_lease);
  return Status::OK();
}

void RaftNode::CompleteRead(uint64_t request_id, NodeId requester, LogIndex index) {
  if (requester == id_) {
    read_states_.push_back({request_id, index});
  } else {
    SendTo(requester, current_term_, ReadIndexResponse{request_id, index});
  }
}

void RaftNode::StartReadIndex(uint64_t request_id, NodeId requester, bool use_lease) {
  RKV_ASSERT(role_ == Role::kLeader);
  RKV_ASSERT(CommittedEntryInCurrentTerm());
  // Trap 4 (§6.4.1): a lease read skips the round only while the lease
  // from an acknowledged round holds; otherwise it falls back to ReadIndex.
  if (IsSingleVoter() || (use_lease && LeaseValid())) {
    CompleteRead(request_id, requester, log_.committed());
    return;
  }
  // §6.4 steps 2-3: record the commit index, then confirm leadership with a
  // heartbeat round started after this read arrived. All reads that arrive
  // while a round is in flight share the next one. A round whose heartbeats
  // have not left yet (they leave with the next Ready) may still take it.
  const bool join_current = read_round_unsent_ && read_round_ > read_round_confirmed_;
  pending_reads_.push_back({request_id, requester, log_.committed(),
                            join_current ? read_round_ : read_round_ + 1});
  if (read_round_ == read_round_confirmed_) StartReadRound();
}

void RaftNode::StartReadRound() {
  ++read_round_;
  read_round_sent_tick_[read_round_] = tick_count_;
  read_round_unsent_ = true;
  progress_.at(id_).read_round_acked = read_round_;
  BroadcastHeartbeat();
}

void RaftNode::MaybeConfirmReads() {
  if (role_ != Role::kLeader || read_round_ == read_round_confirmed_) return;
  std::vector<uint64_t> acked;
  for (NodeId voter : configuration_.voters) {
    auto it = progress_.find(voter);
    acked.push_back(it == progress_.end() ? 0 : it->second.read_round_acked);
  }
  const uint64_t confirmed = quorum::MajorityValue(std::move(acked));
  if (confirmed <= read_round_confirmed_) return;
  read_round_confirmed_ = confirmed;
  auto sent = read_round_sent_tick_.find(confirmed);
  RKV_ASSERT(sent != read_round_sent_tick_.end());
  lease_start_tick_ = sent->second;
  read_round_sent_tick_.erase(read_round_sent_tick_.begin(), std::next(sent));
  while (!pending_reads_.empty() && pending_reads_.front().round <= confirmed) {
    const PendingRead read = pending_reads_.front();
    pending_reads_.pop_front();
    CompleteRead(read.request_id, read.requester, read.index);
  }
  if (!pending_reads_.empty() && read_round_ == read_round_confirmed_) StartReadRound();
}

Status RaftNode::TransferLeadership(NodeId target) {
  RKV_ASSERT(!in_progress_);
  if (role_ != Role::kLeader) {
    return Status::NotLeader(fmt::format("leader={}", leader_id_.value()));
  }
  if (target == id_) return Status::InvalidArgument("already the leader");
  if (!configuration_.IsVoter(target)) return Status::InvalidArgument("target is not a voter");
  if (lead_transferee_ == target) return Status::OK();
  lead_transferee_ = target;
  // The transfer must finish within one election timeout.
  election_elapsed_ = 0;
  Progress& pr = progress_.at(target);
  if (pr.match_index == log_.LastIndex()) {
    SendTimeoutNow(target);
  } else {
    SendAppend(target, true);
  }
  return Status::OK();
}

// ---------------------------------------------------------------------------
// Membership.

void RaftNode::ApplyConfChange(const ConfChange& change) {
  Configuration next = configuration_;
  auto erase = [](std::vector<NodeId>* ids, NodeId id) {
    ids->erase(std::remove(ids->begin(), ids->end(), id), ids->end());
  };
  auto insert = [](std::vector<NodeId>* ids, NodeId id) {
    auto pos = std::lower_bound(ids->begin(), ids->end(), id);
    if (pos == ids->end() || *pos != id) ids->insert(pos, id);
  };
  switch (change.type) {
    case ConfChangeType::kAddVoter:
    case ConfChangeType::kPromoteLearner:
      erase(&next.learners, change.node_id);
      insert(&next.voters, change.node_id);
      break;
    case ConfChangeType::kAddLearner:
      if (next.IsVoter(change.node_id)) return;  // no demotion; ignored on every server alike
      insert(&next.learners, change.node_id);
      break;
    case ConfChangeType::kRemoveNode:
      erase(&next.voters, change.node_id);
      erase(&next.learners, change.node_id);
      if (next.voters.empty()) return;  // refused at proposal; ignored alike everywhere
      break;
  }
  SetConfiguration(next);
}

void RaftNode::SetConfiguration(const Configuration& configuration) {
  RKV_ASSERT(CheckConfiguration(configuration).ok());
  configuration_ = configuration;
  if (role_ != Role::kLeader) return;
  if (!configuration_.IsVoter(id_)) {
    // §4.2.2: a leader removed from the configuration steps down once the
    // change is committed (it is applied only after commitment).
    BecomeFollower(current_term_, kNoNode);
    return;
  }
  for (auto it = progress_.begin(); it != progress_.end();) {
    if (configuration_.IsMember(it->first)) {
      it->second.is_learner = configuration_.IsLearner(it->first);
      ++it;
    } else {
      it = progress_.erase(it);
    }
  }
  for (NodeId voter : configuration_.voters) progress_.try_emplace(voter, NewProgress(false));
  for (NodeId learner : configuration_.learners) progress_.try_emplace(learner, NewProgress(true));
  if (lead_transferee_ != kNoNode && !configuration_.IsVoter(lead_transferee_)) {
    AbortLeaderTransfer();
  }
  // A smaller quorum may commit more, or confirm reads.
  if (MaybeCommit()) BroadcastAppend();
  MaybeConfirmReads();
  // New members need the log.
  BroadcastAppend();
}

// ---------------------------------------------------------------------------
// Ready / Advance.

bool RaftNode::HasReady() const {
  if (in_progress_) return false;
  return CurrentSoftState() != prev_soft_state_ || CurrentHardState() != persisted_hard_state_ ||
         log_.unstable_snapshot().has_value() || !log_.unstable_entries().empty() ||
         !messages_.empty() || !read_states_.empty() ||
         log_.HasNextCommittedEntries(log_.applied());
}

Ready RaftNode::GetReady() {
  RKV_ASSERT_MSG(!in_progress_, "GetReady called twice without Advance");
  Ready ready;
  InProgress progress;

  const SoftState soft = CurrentSoftState();
  if (soft != prev_soft_state_) {
    ready.soft_state = soft;
    prev_soft_state_ = soft;
  }
  const HardState hard = CurrentHardState();
  if (hard != persisted_hard_state_) ready.hard_state = hard;
  progress.hard_state = hard;

  progress.applied_to = log_.applied();
  if (log_.unstable_snapshot()) {
    ready.snapshot = *log_.unstable_snapshot();
    progress.snapshot_index = ready.snapshot->metadata.last_index;
    progress.applied_to = ready.snapshot->metadata.last_index;
  }
  ready.entries = log_.unstable_entries();
  if (!ready.entries.empty()) progress.last_entry = Entry{ready.entries.back().term,
                                                          ready.entries.back().index,
                                                          EntryType::kNormal, {}};
  ready.committed_entries =
      log_.NextCommittedEntries(log_.applied(), config_.max_committed_bytes_per_ready);
  for (const Entry& e : ready.committed_entries) {
    progress.applied_to = e.index;
    if (e.type != EntryType::kConfChange) continue;
    Result<ConfChange> change = DecodeConfChange(e.data);
    // A corrupt change is skipped by every server alike (the bytes are the
    // same everywhere), so configurations stay in agreement.
    if (change.ok()) progress.conf_changes.push_back(*change);
  }
  ready.read_states = std::move(read_states_);
  read_states_.clear();

  // Trap 9 (persist before send): only a leader's requests in a term that
  // is already durable may leave before this Ready's writes complete
  // (§10.2.1). Votes and acknowledgements wait for the fsync.
  for (Message& m : messages_) {
    if (IsLeaderRequest(m) && m.term == persisted_hard_state_.current_term) {
      ready.messages_before_persist.push_back(std::move(m));
    } else {
      ready.messages.push_back(std::move(m));
    }
  }
  messages_.clear();
  read_round_unsent_ = false;

  ready.must_sync = hard.current_term != persisted_hard_state_.current_term ||
                    hard.voted_for != persisted_hard_state_.voted_for || !ready.entries.empty() ||
                    ready.snapshot.has_value();
  in_progress_ = std::move(progress);
  return ready;
}

void RaftNode::Advance() {
  RKV_ASSERT_MSG(in_progress_.has_value(), "Advance without GetReady");
  InProgress done = std::move(*in_progress_);
  in_progress_.reset();
  persisted_hard_state_ = done.hard_state;
  if (done.snapshot_index) log_.StableSnapshotTo(*done.snapshot_index);
  if (done.last_entry) log_.StableTo(done.last_entry->index, done.last_entry->term);
  if (done.applied_to > log_.applied()) log_.AppliedTo(done.applied_to);
  for (const ConfChange& change : done.conf_changes) ApplyConfChange(change);
  if (role_ == Role::kLeader) {
    // The leader counts itself toward commitment only for what it has
    // persisted (etcd#14370 acknowledged writes before the fsync).
    progress_.at(id_).MaybeUpdate(log_.StableLastIndex());
    if (MaybeCommit()) BroadcastAppend();
  }
}

// ---------------------------------------------------------------------------
// Invariants.

void RaftNode::CheckInvariants() const {
  log_.CheckInvariants();
  RKV_ASSERT(CheckConfiguration(configuration_).ok());
  // A server's term is at least every term in its log.
  RKV_ASSERT(log_.LastTerm() <= current_term_);
  RKV_ASSERT(persisted_hard_state_.current_term <= current_term_);
  RKV_ASSERT(read_round_confirmed_ <= read_round_);
  switch (role_) {
    case Role::kLeader: {
      RKV_ASSERT(step_ == &RaftNode::StepLeader && tick_ == &RaftNode::TickHeartbeat);
      RKV_ASSERT(leader_id_ == id_);
      RKV_ASSERT(voted_for_ == id_);
      RKV_ASSERT(configuration_.IsVoter(id_));
      RKV_ASSERT(log_.LastTerm() == current_term_);  // the no-op at least
      RKV_ASSERT(progress_.size() ==
                 configuration_.voters.size() + configuration_.learners.size());
      for (const auto& [peer, pr] : progress_) {
        RKV_ASSERT(configuration_.IsMember(peer));
        RKV_ASSERT(pr.is_learner == configuration_.IsLearner(peer));
        RKV_ASSERT(pr.match_index < pr.next_index);
        RKV_ASSERT(pr.match_index <= log_.LastIndex());
        RKV_ASSERT(pr.next_index <= log_.LastIndex() + 1);
        RKV_ASSERT(pr.inflights.count() <= config_.max_inflight_messages);
        if (pr.state != ProgressState::kReplicate) RKV_ASSERT(pr.inflights.count() == 0);
      }
      RKV_ASSERT(progress_.at(id_).match_index <= log_.StableLastIndex());
      if (lead_transferee_ != kNoNode) RKV_ASSERT(configuration_.IsVoter(lead_transferee_));
      for (const PendingRead& read : pending_reads_) {
        RKV_ASSERT(read.round > read_round_confirmed_ && read.round <= read_round_ + 1);
        RKV_ASSERT(read.index <= log_.committed());
      }
      RKV_ASSERT(votes_.empty());
      break;
    }
    case Role::kCandidate:
      RKV_ASSERT(step_ == &RaftNode::StepCandidate && tick_ == &RaftNode::TickElection);
      RKV_ASSERT(voted_for_ == id_);
      RKV_ASSERT(leader_id_ == kNoNode);
      RKV_ASSERT(progress_.empty());
      break;
    case Role::kPreCandidate:
      RKV_ASSERT(step_ == &RaftNode::StepCandidate && tick_ == &RaftNode::TickElection);
      RKV_ASSERT(leader_id_ == kNoNode);
      RKV_ASSERT(progress_.empty());
      break;
    case Role::kFollower:
      RKV_ASSERT(step_ == &RaftNode::StepFollower && tick_ == &RaftNode::TickElection);
      RKV_ASSERT(leader_id_ != id_);
      RKV_ASSERT(progress_.empty());
      RKV_ASSERT(lead_transferee_ == kNoNode);
      RKV_ASSERT(pending_reads_.empty() && reads_waiting_for_commit_.empty());
      break;
  }
  if (role_ != Role::kLeader) RKV_ASSERT(uncommitted_bytes_ == 0);
}

}  // namespace rkv::raft
