#include "node/node_host.h"

#include <algorithm>
#include <future>
#include <utility>

#include <fmt/format.h>

#include "common/logging.h"
#include "transport/transport.h"

namespace rkv {
namespace {

std::string_view RoleText(raft::Role role) {
  switch (role) {
    case raft::Role::kLeader:
      return "leader";
    case raft::Role::kCandidate:
      return "candidate";
    case raft::Role::kPreCandidate:
      return "pre-candidate";
    case raft::Role::kFollower:
      break;
  }
  return "follower";
}

ServiceStatus ToServiceStatus(const NodeStatus& s) {
  ServiceStatus out;
  out.id = s.id.value();
  out.role = std::string(RoleText(s.role));
  out.leader = s.leader.value();
  out.term = s.term.value();
  out.commit_index = s.commit_index.value();
  out.applied_index = s.applied_index.value();
  out.first_index = s.first_index.value();
  out.last_index = s.last_index.value();
  for (NodeId id : s.configuration.voters) out.voters.push_back(id.value());
  for (NodeId id : s.configuration.learners) out.learners.push_back(id.value());
  for (const auto& [id, index] : s.match_index) out.match_index[id.value()] = index.value();
  return out;
}

// The HTTP status the front ends give a write's result.
Status ResultToStatus(const Result<CommandResult>& result) {
  if (!result.ok()) return result.status();
  switch (result->code) {
    case CommandResult::Code::kOk:
    case CommandResult::Code::kAlreadyApplied:
      return Status::OK();
    case CommandResult::Code::kRejected:
      return Status::InvalidArgument(result->message);
    case CommandResult::Code::kCasFailed:
      return Status::Aborted("compare-and-swap failed");
    case CommandResult::Code::kStaleSequence:
      return Status::Aborted("a newer write of this client was applied already");
    case CommandResult::Code::kCompareFailed:
      return Status::Aborted("a compare of the transaction failed");
  }
  return Status::OK();
}

uint64_t SteadyNanos() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

// The cheapest command that does what `request` asks: a plain put or
// delete when there is nothing to compare and one op.
Command TxnCommand(TxnRequest request, uint64_t now_ms) {
  for (BatchOp& op : request.ops) {
    if (op.ttl_ms != 0) {
      op.expiry_ms = now_ms + op.ttl_ms;
      op.ttl_ms = 0;
    }
  }
  if (request.compares.empty() && request.ops.size() == 1) {
    BatchOp& op = request.ops[0];
    if (op.type == BatchOp::Type::kPut) return Command::Put(std::move(op.key), std::move(op.value), op.expiry_ms);
    return Command::Delete(std::move(op.key));
  }
  if (request.compares.empty()) return Command::Batch(std::move(request.ops));
  return Command::Txn(std::move(request.compares), std::move(request.ops));
}

}  // namespace

NodeHost::NodeHost(NodeHostOptions options) : options_(std::move(options)) {}

NodeHost::~NodeHost() { (void)Stop(); }

Result<std::unique_ptr<NodeHost>> NodeHost::Start(NodeHostOptions options) {
  std::unique_ptr<NodeHost> host(new NodeHost(std::move(options)));
  NodeHost* self = host.get();
  const NodeId id = self->options_.node.id;

  transport::TcpTransportOptions transport_options;
  transport_options.id = id;
  transport_options.cluster_id = self->options_.cluster_id;
  transport_options.jitter_seed = self->options_.node.random_seed;
  std::string listen = self->options_.peer_listen;
  if (listen.empty()) {
    auto it = self->options_.peer_addresses.find(id.value());
    if (it != self->options_.peer_addresses.end()) listen = it->second;
  }
  transport_options.listen_address = listen.empty() ? "127.0.0.1:0" : listen;
  transport_options.on_message = [self](raft::Message m) {
    {
      std::lock_guard lock(self->mu_);
      if (self->stopping_) return;
      self->inbox_messages_.push_back(std::move(m));
    }
    self->cv_.notify_one();
  };
  self->transport_ = std::make_unique<transport::TcpTransport>(std::move(transport_options));
  // The flags' addresses first; the node's member table (Node::Open)
  // overrides them.
  for (const auto& [peer, address] : self->options_.peer_addresses) {
    if (peer != id.value()) self->transport_->AddPeer(NodeId{peer}, address);
  }

  self->options_.node.cluster_id = self->options_.cluster_id;
  if (!self->options_.node.metrics_clock_ns) self->options_.node.metrics_clock_ns = SteadyNanos;
  RKV_ASSIGN_OR_RETURN(self->node_, Node::Open(self->options_.node, self->transport_.get()));
  self->cluster_id_ = self->node_->cluster_id();
  if (self->cluster_id_ != self->options_.cluster_id) {
    RKV_LOG_INFO("event=cluster_id_from_data cluster_id={:016x} flags_cluster_id={:016x}",
                 self->cluster_id_, self->options_.cluster_id);
  }
  self->transport_->SetClusterId(self->cluster_id_);
  const MembershipInfo members = self->node_->membership();
  if (listen.empty()) {
    for (const MemberInfo& m : members.members) {
      if (m.id == id.value()) listen = m.peer_address;
    }
  }
  // A lone member with no peer address needs no listener (nobody could
  // reach it).
  if (self->options_.peer_addresses.size() > 1 || !self->options_.peer_listen.empty() ||
      members.members.size() > 1) {
    if (listen.empty()) {
      (void)self->node_->Close();
      return Status::InvalidArgument(
          "no peer address for this node: give --peer-listen HOST:PORT");
    }
    self->transport_->SetListenAddress(listen);
    Status s = self->transport_->Start();
    if (!s.ok()) {
      (void)self->node_->Close();
      return Status::IOError("cannot listen for peers on " + listen + ": " + s.message());
    }
    self->peer_listener_ = true;
  }
  self->Publish();
  if (self->options_.metrics != nullptr) {
    self->collector_id_ =
        self->options_.metrics->AddCollector([self](metrics::Registry::Collector& out) { self->Collect(out); });
  }
  self->running_ = true;
  self->loop_ = std::thread([self] { self->Loop(); });
  return host;
}

uint64_t NodeHost::NowMs() const {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

void NodeHost::Loop() {
  using SteadyClock = std::chrono::steady_clock;
  const auto tick = options_.tick;
  // Catching up on more ticks than this at once only repeats what the
  // first election timeout's worth already did.
  const uint64_t max_catch_up = 4 * options_.node.election_timeout_ticks + 4;
  SteadyClock::time_point next_tick = SteadyClock::now() + tick;
  std::vector<raft::Message> messages;
  std::vector<Task> tasks;
  for (;;) {
    {
      std::unique_lock lock(mu_);
      cv_.wait_until(lock, next_tick, [&] {
        return stopping_ || !inbox_messages_.empty() || !inbox_tasks_.empty();
      });
      if (stopping_) break;
      messages.swap(inbox_messages_);
      tasks.swap(inbox_tasks_);
    }
    // Messages first: a leader whose loop was held up (a long fdatasync, a
    // snapshot to build) counts the acknowledgements that waited meanwhile
    // before its catch-up ticks run CheckQuorum. Then the ticks, before any
    // request: after a pause the lease has run out by the time a read asks.
    for (const raft::Message& m : messages) node_->Receive(m);
    messages.clear();
    const SteadyClock::time_point now = SteadyClock::now();
    if (now >= next_tick) {
      const uint64_t due = static_cast<uint64_t>((now - next_tick) / tick) + 1;
      const uint64_t n = std::min(due, max_catch_up);
      const uint64_t now_ms = NowMs();
      for (uint64_t i = 0; i < n; ++i) node_->Tick(now_ms);
      next_tick += tick * static_cast<int64_t>(due);
    }
    for (Task& task : tasks) task(*node_);
    tasks.clear();
    node_->Process();
    Publish();
  }
}

void NodeHost::Publish() {
  const rkv::NodeStatus node_status = node_->status();
  ServiceStatus status = ToServiceStatus(node_status);
  MembershipInfo membership = node_->membership();
  for (MemberInfo& m : membership.members) {
    FillAddresses(&m);
    if (m.id == status.leader) status.leader_http = m.http_address;
  }
  if (status.leader_http.empty()) {
    if (auto it = options_.http_addresses.find(status.leader); it != options_.http_addresses.end()) {
      status.leader_http = it->second;
    }
  }
  std::lock_guard lock(status_mu_);
  status_ = std::move(status);
  membership_ = std::move(membership);
  removed_ = node_->removed();
  pending_writes_ = node_status.pending_writes;
  pending_reads_ = node_status.pending_reads;
}

void NodeHost::Collect(metrics::Registry::Collector& out) const {
  ServiceStatus status;
  uint64_t pending_writes = 0;
  uint64_t pending_reads = 0;
  {
    std::lock_guard lock(status_mu_);
    status = status_;
    pending_writes = pending_writes_;
    pending_reads = pending_reads_;
  }
  out.Gauge("raft_kv_term", "The current Raft term.", static_cast<double>(status.term));
  for (const char* role : {"leader", "follower", "candidate", "pre-candidate"}) {
    out.Gauge("raft_kv_role", "1 for this node's current Raft role, 0 for the others.",
              status.role == role ? 1.0 : 0.0, {{"role", role}});
  }
  out.Gauge("raft_kv_is_leader", "1 if this node is the leader.", status.role == "leader" ? 1.0 : 0.0);
  out.Gauge("raft_kv_leader_id", "The member id of the leader this node knows (0: none).",
            static_cast<double>(status.leader));
  out.Gauge("raft_kv_commit_index", "The highest log index known committed.",
            static_cast<double>(status.commit_index));
  out.Gauge("raft_kv_applied_index", "The highest log index applied to the state machine.",
            static_cast<double>(status.applied_index));
  out.Gauge("raft_kv_log_first_index", "The first log index still held (after compaction).",
            static_cast<double>(status.first_index));
  out.Gauge("raft_kv_log_last_index", "The last log index held.", static_cast<double>(status.last_index));
  out.Gauge("raft_kv_members", "Members of the cluster by kind.", static_cast<double>(status.voters.size()),
            {{"kind", "voter"}});
  out.Gauge("raft_kv_members", "Members of the cluster by kind.", static_cast<double>(status.learners.size()),
            {{"kind", "learner"}});
  out.Gauge("raft_kv_pending_writes", "Writes taken and not yet answered.", static_cast<double>(pending_writes));
  out.Gauge("raft_kv_pending_reads", "Reads waiting for their read index.", static_cast<double>(pending_reads));
  for (const auto& [id, match] : status.match_index) {
    if (id == status.id) continue;
    out.Gauge("raft_kv_follower_match_index", "Leader only: the highest index each follower holds.",
              static_cast<double>(match), {{"peer", std::to_string(id)}});
    out.Gauge("raft_kv_follower_lag_entries", "Leader only: entries each follower lacks of the leader's log.",
              static_cast<double>(status.last_index > match ? status.last_index - match : 0),
              {{"peer", std::to_string(id)}});
  }
  node_->metrics().Collect(out);
  node_->CollectStorageMetrics(out);
  transport_->CollectMetrics(out);
}

void NodeHost::FillAddresses(MemberInfo* member) const {
  if (member->peer_address.empty()) {
    if (auto it = options_.peer_addresses.find(member->id); it != options_.peer_addresses.end()) {
      member->peer_address = it->second;
    }
  }
  if (member->http_address.empty()) {
    if (auto it = options_.http_addresses.find(member->id); it != options_.http_addresses.end()) {
      member->http_address = it->second;
    }
  }
}

void NodeHost::Submit(Task task, const std::function<void(Status)>& refuse) {
  Status refused;
  {
    std::lock_guard lock(mu_);
    if (stopping_) {
      refused = Status::ShuttingDown("node is stopping");
    } else if (inbox_tasks_.size() >= options_.max_queued_requests) {
      refused = Status::Busy("request queue is full");
    } else {
      inbox_tasks_.push_back(std::move(task));
    }
  }
  if (!refused.ok()) {
    refuse(refused);
    return;
  }
  cv_.notify_one();
}

void NodeHost::Get(std::string key, const ServiceReadOptions& options, GetCallback done) {
  if (options.consistency == ReadConsistency::kStale) {
    if (!running_.load(std::memory_order_acquire)) {
      done(Status::ShuttingDown("node is stopping"));
      return;
    }
    done(node_->StaleGet(key, NowMs()));
    return;
  }
  auto shared_done = std::make_shared<GetCallback>(std::move(done));
  Submit(
      [key = std::move(key), consistency = options.consistency, shared_done](Node& node) mutable {
        node.Read(std::move(key), consistency,
                  [shared_done](Result<std::string> r) { (*shared_done)(std::move(r)); });
      },
      [shared_done](Status s) { (*shared_done)(s); });
}

void NodeHost::Write(Command command, const ServiceWriteOptions& options, WriteCallback done) {
  auto shared_done = std::make_shared<WriteCallback>(std::move(done));
  Submit(
      [command = std::move(command), key = options.idempotency_key, shared_done](Node& node) mutable {
        node.Write(std::move(command), key, [shared_done](Result<CommandResult> r) {
          (*shared_done)(ResultToStatus(r));
        });
      },
      [shared_done](Status s) { (*shared_done)(s); });
}

void NodeHost::Put(std::string key, std::string value, const ServiceWriteOptions& options,
                   WriteCallback done) {
  Write(Command::Put(std::move(key), std::move(value)), options, std::move(done));
}

void NodeHost::Delete(std::string key, const ServiceWriteOptions& options, WriteCallback done) {
  Write(Command::Delete(std::move(key)), options, std::move(done));
}

void NodeHost::GetEntry(std::string key, const ServiceReadOptions& options, EntryCallback done) {
  if (options.consistency == ReadConsistency::kStale) {
    if (!running_.load(std::memory_order_acquire)) {
      done(Status::ShuttingDown("node is stopping"));
      return;
    }
    done(node_->StaleGetEntry(key, NowMs()));
    return;
  }
  auto shared_done = std::make_shared<EntryCallback>(std::move(done));
  Submit(
      [key = std::move(key), consistency = options.consistency, shared_done](Node& node) mutable {
        node.ReadEntry(std::move(key), consistency,
                       [shared_done](Result<KvEntry> r) { (*shared_done)(std::move(r)); });
      },
      [shared_done](Status s) { (*shared_done)(s); });
}

void NodeHost::Scan(ScanRequest request, const ServiceReadOptions& options, ScanCallback done) {
  if (options.consistency == ReadConsistency::kStale) {
    if (!running_.load(std::memory_order_acquire)) {
      done(Status::ShuttingDown("node is stopping"));
      return;
    }
    done(node_->StaleScan(request, NowMs()));
    return;
  }
  auto shared_done = std::make_shared<ScanCallback>(std::move(done));
  Submit(
      [request = std::move(request), consistency = options.consistency, shared_done](Node& node) mutable {
        node.Scan(std::move(request), consistency,
                  [shared_done](Result<ScanResult> r) { (*shared_done)(std::move(r)); });
      },
      [shared_done](Status s) { (*shared_done)(s); });
}

void NodeHost::Txn(TxnRequest request, const ServiceWriteOptions& options, TxnCallback done) {
  auto shared_done = std::make_shared<TxnCallback>(std::move(done));
  Submit(
      [this, request = std::move(request), key = options.idempotency_key, shared_done](Node& node) mutable {
        node.Write(TxnCommand(std::move(request), NowMs()), key, [shared_done](Result<CommandResult> r) {
          if (!r.ok()) {
            (*shared_done)(r.status());
            return;
          }
          TxnResult out;
          switch (r->code) {
            case CommandResult::Code::kOk:
              out.revision = r->revision;
              break;
            case CommandResult::Code::kCompareFailed:
              out.succeeded = false;
              out.failed_compare = static_cast<size_t>(r->failed_compare);
              out.compare_revisions = std::move(r->compare_revisions);
              break;
            default:
              (*shared_done)(ResultToStatus(r));
              return;
          }
          (*shared_done)(std::move(out));
        });
      },
      [shared_done](Status s) { (*shared_done)(s); });
}

void NodeHost::TransferLeader(uint64_t id, LeaderCallback done) {
  auto shared_done = std::make_shared<LeaderCallback>(std::move(done));
  Submit(
      [id, shared_done](Node& node) {
        node.TransferLeader(NodeId{id}, [shared_done](Result<LeaderInfo> r) { (*shared_done)(std::move(r)); });
      },
      [shared_done](Status s) { (*shared_done)(s); });
}

void NodeHost::TakeBackup(BackupCallback done) {
  auto shared_done = std::make_shared<BackupCallback>(std::move(done));
  Submit([shared_done](Node& node) { node.TakeBackup([shared_done](Result<Backup> r) { (*shared_done)(std::move(r)); }); },
         [shared_done](Status s) { (*shared_done)(s); });
}

Readiness NodeHost::Ready() const {
  if (!running_.load(std::memory_order_acquire)) return {false, "not running"};
  std::lock_guard lock(status_mu_);
  if (removed_) return {false, "removed from the cluster"};
  if (status_.leader == 0) return {false, "no leader"};
  if (status_.applied_index + options_.ready_max_lag < status_.commit_index) {
    return {false, fmt::format("catching up: applied {} of {}", status_.applied_index, status_.commit_index)};
  }
  return {true, ""};
}

void NodeHost::ChangeMembership(MembershipChange change, MembershipCallback done) {
  auto shared_done = std::make_shared<MembershipCallback>(std::move(done));
  Submit(
      [change = std::move(change), shared_done](Node& node) mutable {
        node.ChangeMembership(std::move(change), [shared_done](Result<MembershipInfo> r) {
          (*shared_done)(std::move(r));
        });
      },
      [shared_done](Status s) { (*shared_done)(s); });
}

void NodeHost::AddMember(MemberRequest request, MembershipCallback done) {
  if (!peer_listener_) {
    done(Status::InvalidArgument(
        "this node has no peer address, so a new member could not reach it: restart it with "
        "--peer-listen HOST:PORT first"));
    return;
  }
  MembershipChange change;
  change.kind = request.learner ? MembershipChange::Kind::kAddLearner : MembershipChange::Kind::kAddVoter;
  change.id = NodeId{request.id};
  change.address = MemberAddress{std::move(request.peer_address), std::move(request.http_address)};
  ChangeMembership(std::move(change), std::move(done));
}

void NodeHost::PromoteMember(uint64_t id, MembershipCallback done) {
  ChangeMembership(MembershipChange{MembershipChange::Kind::kPromote, NodeId{id}, {}}, std::move(done));
}

void NodeHost::RemoveMember(uint64_t id, MembershipCallback done) {
  ChangeMembership(MembershipChange{MembershipChange::Kind::kRemove, NodeId{id}, {}}, std::move(done));
}

bool NodeHost::Healthy() const { return running_.load(std::memory_order_acquire); }

ServiceStatus NodeHost::NodeStatus() const {
  std::lock_guard lock(status_mu_);
  return status_;
}

MembershipInfo NodeHost::Members() const {
  std::lock_guard lock(status_mu_);
  return membership_;
}

void NodeHost::Cluster(std::function<void(ClusterInfo)> done) {
  ClusterInfo info;
  std::vector<MemberInfo> members;
  {
    std::lock_guard lock(status_mu_);
    info.cluster_id = cluster_id_;
    info.self = status_;
    members = membership_.members;
  }
  std::vector<size_t> to_fetch;  // indexes into info.members
  for (MemberInfo& member : members) {
    const uint64_t id = member.id;
    if (id == info.self.id) {
      member.status = info.self;
    } else if (!member.http_address.empty() && options_.fetch_status) {
      to_fetch.push_back(info.members.size());
    } else {
      member.error = "no HTTP address known for this member";
    }
    info.members.push_back(std::move(member));
  }
  if (to_fetch.empty()) {
    done(std::move(info));
    return;
  }
  // Asking the others blocks up to their timeout. Not on the caller's
  // thread: an HTTP thread would serve nothing meanwhile, and two members
  // asked at once would each wait for the other's blocked thread. One
  // thread per member asked, all at once; Stop() waits for them.
  {
    std::lock_guard lock(cluster_fetches_->mu);
    ++cluster_fetches_->running;
  }
  std::thread([fetches = cluster_fetches_, fetch = options_.fetch_status, info = std::move(info),
               to_fetch = std::move(to_fetch), done = std::move(done)]() mutable {
    std::vector<std::future<Result<ServiceStatus>>> replies;
    for (size_t i : to_fetch) {
      replies.push_back(std::async(std::launch::async, fetch, info.members[i].http_address));
    }
    for (size_t k = 0; k < to_fetch.size(); ++k) {
      Result<ServiceStatus> status = replies[k].get();
      MemberInfo& member = info.members[to_fetch[k]];
      if (status.ok()) {
        member.status = std::move(*status);
      } else {
        member.error = status.status().ToString();
      }
    }
    done(std::move(info));
    std::lock_guard lock(fetches->mu);
    if (--fetches->running == 0) fetches->idle.notify_all();
  }).detach();
}

uint16_t NodeHost::peer_port() const { return transport_->bound_port(); }

Status NodeHost::Stop() {
  {
    std::lock_guard lock(mu_);
    if (closed_) return close_status_;
    closed_ = true;
    stopping_ = true;
  }
  cv_.notify_all();
  if (options_.metrics != nullptr && collector_id_ != 0) options_.metrics->RemoveCollector(collector_id_);
  if (loop_.joinable()) loop_.join();
  running_ = false;
  // Requests that never reached the loop run against the closed node,
  // which answers them ShuttingDown.
  std::vector<Task> tasks;
  {
    std::lock_guard lock(mu_);
    tasks.swap(inbox_tasks_);
  }
  transport_->Stop();
  {
    // Cluster() requests still asking other members (bounded by their
    // timeout).
    std::unique_lock lock(cluster_fetches_->mu);
    cluster_fetches_->idle.wait(lock, [&] { return cluster_fetches_->running == 0; });
  }
  if (node_ != nullptr) {
    close_status_ = node_->Close();
    for (Task& task : tasks) task(*node_);
  }
  return close_status_;
}

}  // namespace rkv
