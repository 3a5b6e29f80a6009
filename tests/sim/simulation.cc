#include "sim/simulation.h"

#include <algorithm>
#include <cstdio>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include "common/random.h"
#include "common/types.h"
#include "raft/log_storage.h"
#include "raft/message.h"
#include "raft/raft_node.h"
#include "raft/ready.h"
#include "sim/kv_machine.h"
#include "sim/node_simulation.h"
#include "sim/sim_common.h"
#include "sim/wal_disk.h"
#include "tools/lincheck/lincheck.h"

namespace rkv::sim {
namespace {

using raft::ConfChange;
using raft::ConfChangeType;
using raft::Configuration;
using raft::Entry;
using raft::EntryType;
using raft::Message;
using raft::RaftNode;
using raft::Ready;
using raft::Role;

constexpr uint64_t kMaxServers = 9;  // ids 1..9; never reused

// ---------------------------------------------------------------------------
// Client <-> server traffic.

enum class RequestType : uint8_t { kGet, kWrite };

struct ClientRequest {
  uint64_t client = 0;
  uint64_t op = 0;  // the client's operation number
  uint64_t attempt = 0;
  RequestType type = RequestType::kGet;
  std::string key;     // get
  KvCommand command;   // write
};

enum class ReplyType : uint8_t {
  kOk,         // done (get: value holds the result)
  kCasFailed,  // the cas comparison failed
  kRetry,      // definitely not executed: not the leader, busy, or overwritten
};

struct ClientReply {
  uint64_t op = 0;
  uint64_t attempt = 0;
  ReplyType type = ReplyType::kRetry;
  std::optional<std::string> value;
  uint64_t leader_hint = 0;
};

std::string DescribeConfiguration(const Configuration& c) {
  std::string out = "voters";
  for (NodeId v : c.voters) out += " " + std::to_string(v.value());
  if (!c.learners.empty()) out += " learners";
  for (NodeId l : c.learners) out += " " + std::to_string(l.value());
  return out;
}

// ---------------------------------------------------------------------------
// Events.

enum class EventKind : uint8_t {
  kTick,           // server tick
  kDeliver,        // a Raft message reaches a server
  kDiskDone,       // a server's disk write completed
  kRestart,        // a crashed server comes back
  kRequest,        // a client request reaches a server
  kReply,          // a server's reply reaches a client
  kClientWake,     // a client starts its next operation or retries
  kClientTimeout,  // a client gives up on an operation
  kNemesis,        // the next fault action
};

struct Event {
  int64_t time = 0;
  uint64_t seq = 0;
  EventKind kind = EventKind::kTick;
  uint64_t target = 0;  // server or client id
  uint64_t token = 0;   // incarnation (servers) or operation number (clients)
  std::variant<std::monostate, Message, ClientRequest, ClientReply> payload;
};

// ---------------------------------------------------------------------------
// A server: the Raft core, its disk and the state machine.

struct TickInput {};
// An operator's request: a membership change or a leadership transfer.
struct AdminInput {
  std::optional<ConfChange> change;
  NodeId transfer_to;
};
using Input = std::variant<TickInput, Message, ClientRequest, AdminInput>;

struct Server {
  uint64_t id = 0;
  bool started = false;  // has ever run (spares start when they join)
  bool up = false;
  uint64_t incarnation = 0;
  // The disk. Everything in it is durable except a hard state whose only
  // change was the commit index (written without a sync): durable_commit is
  // what survives a crash.
  // With --log memory, the model disk:
  std::unique_ptr<raft::MemoryLogStorage> disk;
  LogIndex durable_commit;
  // With the real WAL (the default): its file system, which outlives
  // crashes, the state machine's snapshots, and the open WAL.
  std::unique_ptr<FaultEnv> env;
  SnapshotStore snapshots;
  std::unique_ptr<WalDisk> wal;
  Term durable_term;
  int64_t sync_us = 0;
  int64_t stalled_until = 0;

  // Volatile.
  std::unique_ptr<RaftNode> raft;
  KvMachine kv;
  LogIndex applied;
  bool disk_busy = false;
  std::optional<Ready> in_flight;
  std::deque<Input> inbox;
  struct Proposal {
    uint64_t client;
    uint64_t op;
    uint64_t attempt;
    Term term;
  };
  std::map<LogIndex, Proposal> proposals;
  struct PendingRead {
    uint64_t client;
    uint64_t op;
    uint64_t attempt;
    std::string key;
    std::optional<LogIndex> index;  // set once confirmed
  };
  std::map<uint64_t, PendingRead> reads;
  uint64_t next_read_id = 1;
  Term last_term;  // this incarnation's highest term (never decreases)

  // What the Raft core reads.
  const raft::LogStorage* log() const {
    if (wal) return wal.get();
    return disk.get();
  }
};

// ---------------------------------------------------------------------------
// A client: one operation at a time.

struct Client {
  uint64_t id = 0;
  uint64_t op_number = 0;  // current operation
  bool active = false;     // an operation is in progress
  lincheck::Recorder::OpId history_id = 0;
  ClientRequest request;
  uint64_t target = 1;
  int64_t started_at = 0;  // when the current operation was invoked
  // Values this client last saw per key (cas expectations that may match).
  std::map<std::string, std::optional<std::string>> seen;
};

class Simulation {
 public:
  explicit Simulation(const SimOptions& options);
  SimReport Run();

 private:
  // Setup.
  void ChooseSetup();
  void StartServer(uint64_t id);

  // Event queue.
  void Schedule(int64_t at, EventKind kind, uint64_t target, uint64_t token,
                decltype(Event::payload) payload = std::monostate{});
  void Dispatch(Event& e);

  // Network.
  void SendRaft(Message m);
  void SendReply(uint64_t client, ClientReply reply);
  int64_t NetworkDelay() { return sim::NetworkDelay(random_, rates_); }

  // The node loop.
  void Feed(Server& s, Input input);
  void Pump(Server& s);
  void Process(Server& s, Input& input);
  void HandleRequest(Server& s, const ClientRequest& request);
  void StartReady(Server& s, Ready ready);
  void FinishReady(Server& s, Ready& ready);
  void Persist(Server& s, const Ready& ready);
  void Apply(Server& s, const Ready& ready);
  void ServeReads(Server& s);
  void Crash(Server& s);
  void Restart(Server& s);
  void Compact(Server& s);

  // Clients.
  void StartOperation(Client& c);
  void SendAttempt(Client& c);
  void OnReply(Client& c, const ClientReply& reply);
  void Complete(Client& c, lincheck::Outcome outcome, std::optional<std::string> value);

  // Faults.
  void Nemesis();
  void Partition();
  void ChangeMembership();
  void HealAll();

  // Checks.
  void CheckServer(Server& s);
  void CheckLeaderCompleteness(const Server& s);
  void RecordAppended(const Server& s, const std::vector<Entry>& entries);
  void Fail(std::string what);
  bool LivenessReached();
  bool Converged();

  Server* Leader();
  std::vector<uint64_t> UpServers() const;
  std::string Describe(const Server& s) const;

  SimOptions options_;
  Random random_;
  FaultRates rates_;
  SimReport report_;

  int64_t now_ = 0;
  EventQueue<Event> events_;
  bool stop_ = false;

  // Cluster shape.
  Configuration initial_;
  raft::RaftConfig config_template_;
  std::map<uint64_t, Server> servers_;
  std::vector<uint64_t> spares_;  // ids that have not joined yet
  Links links_;  // directed links cut

  std::vector<Client> clients_;
  std::vector<std::string> keys_;
  lincheck::Recorder recorder_;
  int64_t client_timeout_us_ = 400'000;
  int64_t key_epoch_us_ = 500'000;

  // Phases.
  bool healed_ = false;
  int64_t healed_at_ = 0;
  int64_t live_at_ = 0;  // when liveness was reached (0: not yet)
  bool draining_ = false;  // clients start no new operations
  bool write_after_heal_ = false;  // a write invoked after the heal succeeded

  // Cross-server safety state.
  std::map<uint64_t, uint64_t> leader_of_term_;
  // index -> the entry first applied there and the lowest term of a server
  // that applied it (the entry was committed in that term or before).
  std::map<uint64_t, std::pair<Entry, Term>> applied_at_;
  // (index, term) -> (hash of data, term of the entry before): Log Matching.
  std::map<std::pair<uint64_t, uint64_t>, std::pair<size_t, uint64_t>> log_entries_;
};

// ---------------------------------------------------------------------------

Simulation::Simulation(const SimOptions& options)
    : options_(options), random_(options.seed) {
  report_.seed = options.seed;
}

void Simulation::ChooseSetup() {
  const uint64_t voters = random_.OneIn(2) ? 3 : 5;
  const uint64_t learners = random_.OneIn(3) ? 1 : 0;
  for (uint64_t id = 1; id <= voters; ++id) initial_.voters.push_back(NodeId{id});
  for (uint64_t id = voters + 1; id <= voters + learners; ++id) {
    initial_.learners.push_back(NodeId{id});
  }
  for (uint64_t id = voters + learners + 1; id <= std::min<uint64_t>(voters + learners + 3,
                                                                      kMaxServers); ++id) {
    spares_.push_back(id);
  }

  raft::RaftConfig& c = config_template_;
  c.election_timeout_ticks = 10;
  c.heartbeat_interval_ticks = 1;
  c.pre_vote = !random_.OneIn(4);
  c.check_quorum = true;
  c.read_mode = random_.OneIn(3) ? raft::ReadMode::kLease : raft::ReadMode::kReadIndex;
  // Small limits, so batching, flow control and chunking all happen.
  c.max_bytes_per_message = random_.Range(100, 4096);
  c.max_inflight_messages = random_.Range(1, 16);
  c.snapshot_chunk_bytes = random_.Range(16, 512);
  c.max_committed_bytes_per_ready = random_.Range(200, 8192);
  c.max_uncommitted_bytes = random_.Range(2'000, 64'000);

  if (options_.swarm) {
    // Each rate is often off entirely, so some seeds see only one kind of
    // fault at a high rate.
    DrawSwarmNetworkRates(random_, rates_);
    // Fsyncs too stay well below the election timeout (100 ms).
    rates_.disk_sync_us = static_cast<int64_t>(random_.Range(20, random_.OneIn(4) ? 1'500 : 500));
    rates_.slow_disk = random_.NextDouble() * 0.5;
    rates_.nemesis_interval_us = static_cast<int64_t>(random_.Range(10'000, 600'000));
    rates_.partition = SwarmWeight(random_);
    rates_.heal = SwarmWeight(random_);
    rates_.crash = SwarmWeight(random_);
    rates_.membership = SwarmWeight(random_);
    rates_.transfer = SwarmWeight(random_);
    rates_.compact = SwarmWeight(random_);
    rates_.disk_stall = SwarmWeight(random_);
    rates_.compact_threshold = random_.Range(4, 200);
  }

  AddClients(random_, voters, clients_);
  ChooseKeys(random_, key_epoch_us_, keys_);

  char line[400];
  std::snprintf(line, sizeof line,
                "voters %zu learners %zu spares %zu prevote %d reads %s clients %zu keys %zu/%ldms | "
                "loss %.2f dup %.2f delay %ld-%ldus sync %ldus slow %.2f nemesis %ldms "
                "[part %u heal %u crash %u member %u transfer %u compact %u stall %u] compact@%lu",
                initial_.voters.size(), initial_.learners.size(), spares_.size(),
                c.pre_vote ? 1 : 0, c.read_mode == raft::ReadMode::kLease ? "lease" : "readindex",
                clients_.size(), keys_.size(), static_cast<long>(key_epoch_us_ / 1000), rates_.message_loss, rates_.message_duplicate,
                static_cast<long>(rates_.min_delay_us), static_cast<long>(rates_.max_delay_us),
                static_cast<long>(rates_.disk_sync_us), rates_.slow_disk,
                static_cast<long>(rates_.nemesis_interval_us / 1000), rates_.partition,
                rates_.heal, rates_.crash, rates_.membership, rates_.transfer, rates_.compact,
                rates_.disk_stall, static_cast<unsigned long>(rates_.compact_threshold));
  report_.setup = line;

  for (uint64_t id = 1; id <= voters + learners + spares_.size(); ++id) {
    Server& s = servers_[id];
    s.id = id;
    if (options_.real_wal) {
      s.env = std::make_unique<FaultEnv>();
    } else {
      s.disk = std::make_unique<raft::MemoryLogStorage>(initial_);
    }
    s.sync_us = rates_.disk_sync_us;
    if (random_.Chance(rates_.slow_disk)) s.sync_us *= 20;  // at most 30 ms
  }
  for (uint64_t id = 1; id <= voters + learners; ++id) StartServer(id);
}

void Simulation::StartServer(uint64_t id) {
  Server& s = servers_.at(id);
  s.started = true;
  Restart(s);
}

// ---------------------------------------------------------------------------
// Event queue.

void Simulation::Schedule(int64_t at, EventKind kind, uint64_t target, uint64_t token,
                          decltype(Event::payload) payload) {
  events_.Push(Event{at, 0, kind, target, token, std::move(payload)});
}

void Simulation::Fail(std::string what) {
  if (!report_.failure.empty()) return;
  report_.failure = FailureAt(now_, what);
  stop_ = true;
}

SimReport Simulation::Run() {
  ChooseSetup();
  for (Client& c : clients_) {
    Schedule(static_cast<int64_t>(random_.Uniform(50'000)), EventKind::kClientWake, c.id, 0);
  }
  Schedule(rates_.nemesis_interval_us, EventKind::kNemesis, 0, 0);

  const int64_t deadline = options_.fault_phase_us + options_.liveness_bound_us;
  uint64_t hash = kTraceHashSeed;
  while (!events_.empty() && !stop_) {
    Event e = events_.Pop();
    now_ = e.time;
    if (!healed_ && now_ >= options_.fault_phase_us) HealAll();
    // (NodeSimulation stops here if the heal failed the run; this loop has
    // always gone on to count and dispatch the event, and trace hashes of
    // failing seeds depend on that.)
    if (now_ > deadline) {
      Fail(live_at_ == 0 ? "liveness: no leader committed a new write within the bound after healing"
                         : "liveness: servers did not converge within the bound after healing");
      break;
    }
    ++report_.events;
    hash = HashEvent(hash, e.time, static_cast<uint64_t>(e.kind), e.target);
    if (options_.trace) {
      TraceEvent(now_, static_cast<int>(e.kind), e.target, std::get_if<Message>(&e.payload));
    }
    Dispatch(e);
    if (healed_ && live_at_ == 0 && LivenessReached()) {
      live_at_ = now_;
      report_.recovery_us = now_ - healed_at_;
    }
    // Once live, let clients finish, then require every member to converge.
    if (live_at_ != 0 && !draining_ && now_ >= live_at_ + 300'000) draining_ = true;
    if (draining_ && Converged()) break;
  }
  report_.trace_hash = hash;
  report_.simulated_us = now_;
  for (const auto& [id, s] : servers_) {
    if (s.raft) report_.terms = std::max(report_.terms, s.raft->current_term().value());
  }

  // The client history.
  if (std::string violation = CheckClientHistory(recorder_, options_, report_); !violation.empty()) {
    Fail(violation);
  }
  report_.passed = report_.failure.empty() && !report_.inconclusive;
  return report_;
}

void Simulation::Dispatch(Event& e) {
  switch (e.kind) {
    case EventKind::kTick: {
      Server& s = servers_.at(e.target);
      if (!s.up || s.incarnation != e.token) return;
      Schedule(now_ + kTickUs, EventKind::kTick, s.id, s.incarnation);
      Feed(s, TickInput{});
      return;
    }
    case EventKind::kDeliver: {
      Server& s = servers_.at(e.target);
      if (!s.up) return;
      Feed(s, std::move(std::get<Message>(e.payload)));
      return;
    }
    case EventKind::kRequest: {
      Server& s = servers_.at(e.target);
      if (!s.up) return;
      Feed(s, std::move(std::get<ClientRequest>(e.payload)));
      return;
    }
    case EventKind::kDiskDone: {
      Server& s = servers_.at(e.target);
      if (!s.up || s.incarnation != e.token) return;
      Ready ready = std::move(*s.in_flight);
      s.in_flight.reset();
      s.disk_busy = false;
      if (s.wal) {
        Status status = s.wal->Sync();
        if (!status.ok()) {
          Fail("server " + std::to_string(s.id) + ": WAL sync failed: " + status.ToString());
          return;
        }
        s.durable_term = s.wal->GetInitialState().hard_state.current_term;
      }
      FinishReady(s, ready);
      Pump(s);
      return;
    }
    case EventKind::kRestart: {
      Server& s = servers_.at(e.target);
      if (s.up) return;
      Restart(s);
      return;
    }
    case EventKind::kReply: {
      Client& c = clients_.at(e.target - 1);
      if (!c.active || c.op_number != e.token) return;
      OnReply(c, std::get<ClientReply>(e.payload));
      return;
    }
    case EventKind::kClientWake: {
      Client& c = clients_.at(e.target - 1);
      if (c.active) {
        if (c.op_number == e.token) SendAttempt(c);  // a retry
        return;
      }
      if (!draining_) StartOperation(c);
      return;
    }
    case EventKind::kClientTimeout: {
      Client& c = clients_.at(e.target - 1);
      if (!c.active || c.op_number != e.token) return;
      Complete(c, lincheck::Outcome::kUnknown, std::nullopt);
      return;
    }
    case EventKind::kNemesis:
      if (healed_) return;
      Nemesis();
      Schedule(now_ + NextNemesisDelay(random_, rates_), EventKind::kNemesis, 0, 0);
      return;
  }
}

// ---------------------------------------------------------------------------
// Network.

void Simulation::SendRaft(Message m) {
  const uint64_t from = m.from.value();
  const uint64_t to = m.to.value();
  if (servers_.count(to) == 0 || links_.Blocked(from, to)) return;
  const int copies = Copies(random_, rates_, healed_);
  if (copies == 0) return;
  if (copies == 2) Schedule(now_ + NetworkDelay(), EventKind::kDeliver, to, 0, m);
  Schedule(now_ + NetworkDelay(), EventKind::kDeliver, to, 0, std::move(m));
}

void Simulation::SendReply(uint64_t client, ClientReply reply) {
  if (Lost(random_, rates_, healed_)) return;
  const uint64_t op = reply.op;
  Schedule(now_ + NetworkDelay(), EventKind::kReply, client, op, std::move(reply));
}

// ---------------------------------------------------------------------------
// The node loop.

void Simulation::Feed(Server& s, Input input) {
  s.inbox.push_back(std::move(input));
  Pump(s);
}

// Drains the inbox into the core, then handles the Ready; stops while a disk
// write is in flight (its completion event resumes the loop).
void Simulation::Pump(Server& s) {
  while (s.up && !s.disk_busy && !stop_) {
    while (!s.inbox.empty()) {
      Input input = std::move(s.inbox.front());
      s.inbox.pop_front();
      Process(s, input);
      if (stop_) return;
    }
    if (!s.raft->HasReady()) return;
    StartReady(s, s.raft->GetReady());
  }
}

void Simulation::Process(Server& s, Input& input) {
  if (std::holds_alternative<TickInput>(input)) {
    s.raft->Tick();
  } else if (auto* admin = std::get_if<AdminInput>(&input)) {
    if (admin->change) {
      (void)s.raft->ProposeConfChange(*admin->change);
    } else if (s.raft->TransferLeadership(admin->transfer_to).ok()) {
      ++report_.transfers;
    }
  } else if (auto* m = std::get_if<Message>(&input)) {
    Status status = s.raft->Step(*m);
    if (!status.ok()) {
      Fail("server " + std::to_string(s.id) + " refused " + raft::DescribeMessage(*m) + ": " +
           status.ToString());
      return;
    }
  } else {
    HandleRequest(s, std::get<ClientRequest>(input));
  }
  CheckServer(s);
}

void Simulation::HandleRequest(Server& s, const ClientRequest& request) {
  ClientReply retry{request.op, request.attempt, ReplyType::kRetry, std::nullopt, s.raft->leader_id().value()};
  if (request.type == RequestType::kWrite) {
    Result<LogIndex> index = s.raft->Propose(EncodeCommand(request.command));
    if (!index.ok()) {
      SendReply(request.client, retry);
      return;
    }
    s.proposals[*index] = {request.client, request.op, request.attempt, s.raft->current_term()};
    return;
  }
  if (options_.unsafe_local_reads) {
    SendReply(request.client,
              ClientReply{request.op, request.attempt, ReplyType::kOk, s.kv.Get(request.key), 0});
    return;
  }
  const uint64_t read_id = s.next_read_id++;
  if (!s.raft->ReadIndex(read_id).ok()) {
    SendReply(request.client, retry);
    return;
  }
  s.reads[read_id] = {request.client, request.op, request.attempt, request.key, std::nullopt};
}

void Simulation::StartReady(Server& s, Ready ready) {
  if (ready.soft_state && ready.soft_state->role == Role::kLeader) CheckLeaderCompleteness(s);
  for (Message& m : ready.messages_before_persist) {
    if (!raft::IsLeaderRequest(m)) {
      Fail("server " + std::to_string(s.id) + " may send before persisting a non-leader request: " +
           raft::DescribeMessage(m));
    }
    SendRaft(std::move(m));
  }
  ready.messages_before_persist.clear();
  if (options_.unsafe_ack_before_persist) {
    for (Message& m : ready.messages) SendRaft(std::move(m));
    ready.messages.clear();
  }
  if (ready.hard_state && ready.hard_state->current_term < s.durable_term) {
    Fail("server " + std::to_string(s.id) + " wrote a lower term to disk");
  }
  if (s.wal) {
    Status status = s.wal->Write(ready);
    if (!status.ok()) {
      Fail("server " + std::to_string(s.id) + ": WAL write failed: " + status.ToString());
      return;
    }
    if (!ready.entries.empty()) RecordAppended(s, ready.entries);
  }
  if (!ready.must_sync) {
    FinishReady(s, ready);
    return;
  }
  s.disk_busy = true;
  s.in_flight = std::move(ready);
  const int64_t done = std::max(now_, s.stalled_until) + s.sync_us;
  Schedule(done, EventKind::kDiskDone, s.id, s.incarnation);
}

void Simulation::FinishReady(Server& s, Ready& ready) {
  if (!s.wal) Persist(s, ready);
  for (Message& m : ready.messages) SendRaft(std::move(m));
  Apply(s, ready);
  const Configuration before = s.raft->configuration();
  s.raft->Advance();
  if (options_.trace && !(before == s.raft->configuration())) {
    std::fprintf(stderr, "    server %lu configuration now %s (applied %lu)\n", static_cast<unsigned long>(s.id),
                 DescribeConfiguration(s.raft->configuration()).c_str(),
                 static_cast<unsigned long>(s.applied.value()));
  }
  // The configuration in effect at the applied index (read on restart only
  // through the snapshot; see Restart).
  if (!(before == s.raft->configuration())) {
    if (s.wal) {
      Status status = s.wal->SetConfiguration(s.raft->configuration());
      if (!status.ok()) Fail("server " + std::to_string(s.id) + ": WAL write failed: " + status.ToString());
    } else {
      s.disk->SetConfiguration(s.raft->configuration());
    }
  }
  CheckServer(s);
  if (s.applied.value() >= s.log()->FirstIndex().value() + rates_.compact_threshold) Compact(s);
}

void Simulation::Persist(Server& s, const Ready& ready) {
  if (ready.snapshot) s.disk->ApplySnapshot(*ready.snapshot);
  if (!ready.entries.empty()) {
    s.disk->Append(ready.entries);
    RecordAppended(s, ready.entries);
  }
  if (ready.hard_state) s.disk->SetHardState(*ready.hard_state);
  if (ready.must_sync && (ready.hard_state || !options_.unsafe_torn_commit)) {
    // The sync makes every earlier write durable too, including a commit
    // index written without one (unless the planted bug keeps such commit
    // indexes in memory only).
    const raft::HardState hs = s.disk->GetInitialState().hard_state;
    s.durable_term = hs.current_term;
    s.durable_commit = hs.commit_index;
  }
}

void Simulation::Apply(Server& s, const Ready& ready) {
  if (ready.snapshot) {
    if (!s.kv.Decode(ready.snapshot->data)) Fail("undecodable snapshot");
    s.applied = ready.snapshot->metadata.last_index;
    ++report_.snapshots_installed;
    // Proposals the snapshot covers: their fate is unknown here; the
    // clients time out.
    s.proposals.erase(s.proposals.begin(), s.proposals.upper_bound(s.applied));
  }
  for (const Entry& e : ready.committed_entries) {
    if (e.index != s.applied + 1) {
      Fail("server " + std::to_string(s.id) + " applied index " + std::to_string(e.index.value()) +
           " after " + std::to_string(s.applied.value()));
      return;
    }
    s.applied = e.index;
    // State Machine Safety: one entry per index, on every server.
    auto [it, inserted] = applied_at_.emplace(e.index.value(), std::make_pair(e, s.raft->current_term()));
    if (!inserted) {
      if (!(it->second.first == e)) {
        Fail("state machine safety: server " + std::to_string(s.id) + " applied a different entry at index " +
             std::to_string(e.index.value()) + " (term " + std::to_string(e.term.value()) + " vs " +
             std::to_string(it->second.first.term.value()) + ")");
        return;
      }
      it->second.second = std::min(it->second.second, s.raft->current_term());
    }
    bool took_effect = true;
    std::optional<KvCommand> command;
    if (e.type == EntryType::kNormal && !e.data.empty()) {
      command = DecodeCommand(e.data);
      if (!command) {
        Fail("undecodable command at index " + std::to_string(e.index.value()));
        return;
      }
      took_effect = s.kv.Apply(*command);
      if (options_.trace) {
        std::fprintf(stderr, "    server %lu applies %lu (term %lu): client %lu op %lu key %s\n",
                     static_cast<unsigned long>(s.id), static_cast<unsigned long>(e.index.value()),
                     static_cast<unsigned long>(e.term.value()), static_cast<unsigned long>(command->client),
                     static_cast<unsigned long>(command->op), command->key.c_str());
      }
    }
    if (e.type == EntryType::kConfChange && s.raft->role() == Role::kLeader) ++report_.membership_changes;
    auto p = s.proposals.find(e.index);
    if (p == s.proposals.end()) continue;
    const Server::Proposal proposal = p->second;
    s.proposals.erase(p);
    if (proposal.term != e.term) {
      // Another leader's entry took the index: this proposal never commits.
      SendReply(proposal.client, ClientReply{proposal.op, proposal.attempt, ReplyType::kRetry, std::nullopt,
                                                   s.raft->leader_id().value()});
    } else {
      SendReply(proposal.client,
                ClientReply{proposal.op, proposal.attempt, took_effect ? ReplyType::kOk : ReplyType::kCasFailed,
                            std::nullopt, 0});
    }
  }
  for (const raft::ReadState& r : ready.read_states) {
    auto it = s.reads.find(r.request_id);
    if (it != s.reads.end() && !it->second.index) it->second.index = r.index;
  }
  ServeReads(s);
}

void Simulation::ServeReads(Server& s) {
  for (auto it = s.reads.begin(); it != s.reads.end();) {
    const Server::PendingRead& read = it->second;
    if (!read.index || *read.index > s.applied) {
      ++it;
      continue;
    }
    if (options_.trace) {
      std::fprintf(stderr, "    server %lu (%s, term %lu) serves read of %s at index %lu, applied %lu: %s\n",
                   static_cast<unsigned long>(s.id), std::string(raft::RoleName(s.raft->role())).c_str(),
                   static_cast<unsigned long>(s.raft->current_term().value()), read.key.c_str(),
                   static_cast<unsigned long>(read.index->value()), static_cast<unsigned long>(s.applied.value()),
                   s.kv.Get(read.key).value_or("absent").c_str());
    }
    SendReply(read.client, ClientReply{read.op, read.attempt, ReplyType::kOk, s.kv.Get(read.key), 0});
    it = s.reads.erase(it);
  }
}

void Simulation::Crash(Server& s) {
  if (!s.up) return;
  if (options_.trace) {
    std::fprintf(stderr, "    server %lu crashes (term %lu, %s)\n", static_cast<unsigned long>(s.id),
                 static_cast<unsigned long>(s.raft->current_term().value()),
                 s.in_flight ? "a write in flight" : "disk idle");
  }
  ++report_.crashes;
  if (s.wal) {
    // A power loss: the WAL's files keep a random prefix of their unsynced
    // bytes (none, some, or all), directory changes not synced revert.
    s.wal.reset();
    s.env->Crash(CrashOptions{0, false, random_.Next() | 1});
  }
  // A write in flight is lost whole: a log writes each Ready as one batch
  // that recovery applies whole or not at all (ready.h). The planted bug
  // instead tears it, keeping the entries (and term and vote) but not the
  // commit index written with them.
  if (options_.unsafe_torn_commit && s.disk && s.in_flight && !s.in_flight->snapshot && random_.OneIn(2)) {
    const Ready& ready = *s.in_flight;
    if (ready.hard_state) {
      raft::HardState hs = *ready.hard_state;
      hs.commit_index = s.disk->GetInitialState().hard_state.commit_index;
      s.disk->SetHardState(hs);
      s.durable_term = hs.current_term;
    }
    const size_t keep = random_.Uniform(ready.entries.size() + 1);
    if (keep > 0) {
      std::vector<Entry> prefix(ready.entries.begin(), ready.entries.begin() + static_cast<std::ptrdiff_t>(keep));
      s.disk->Append(prefix);
      RecordAppended(s, prefix);
    }
  }
  if (s.disk) {
    // A commit index written without a sync may be lost; it never exceeds
    // the log that survived.
    raft::HardState hs = s.disk->GetInitialState().hard_state;
    hs.commit_index = std::min(s.durable_commit, s.disk->LastIndex());
    s.disk->SetHardState(hs);
  }

  s.up = false;
  ++s.incarnation;
  s.raft.reset();
  s.in_flight.reset();
  s.disk_busy = false;
  s.inbox.clear();
  s.proposals.clear();
  s.reads.clear();
}

void Simulation::Restart(Server& s) {
  // The state machine is volatile here: it restarts from the snapshot on
  // disk and the core replays the committed entries after it.
  if (s.env) {
    Result<std::unique_ptr<WalDisk>> wal = WalDisk::Open(s.env.get(), initial_, &s.snapshots);
    if (!wal.ok()) {
      Fail("server " + std::to_string(s.id) + ": WAL recovery failed: " + wal.status().ToString());
      return;
    }
    s.wal = std::move(*wal);
  }
  Result<raft::Snapshot> snapshot = s.log()->GetSnapshot();
  if (!snapshot.ok()) {
    Fail("server " + std::to_string(s.id) + ": no snapshot to restart from: " + snapshot.status().ToString());
    return;
  }
  if (s.wal) {
    if (!(s.wal->GetInitialState().configuration == snapshot->metadata.configuration)) {
      Status status = s.wal->SetConfiguration(snapshot->metadata.configuration);
      if (!status.ok()) Fail("server " + std::to_string(s.id) + ": WAL write failed: " + status.ToString());
    }
  } else {
    s.disk->SetConfiguration(snapshot->metadata.configuration);
  }
  s.kv = KvMachine();
  if (!s.kv.Decode(snapshot->data)) Fail("undecodable snapshot on disk");
  s.applied = snapshot->metadata.last_index;

  raft::RaftConfig config = config_template_;
  config.id = NodeId{s.id};
  config.applied_index = s.applied;
  Result<std::unique_ptr<RaftNode>> node =
      RaftNode::Create(config, s.log(), Random(options_.seed * 7919 + s.id * 131 + s.incarnation));
  if (!node.ok()) {
    Fail("server " + std::to_string(s.id) + " cannot restart: " + node.status().ToString());
    return;
  }
  s.raft = std::move(*node);
  s.up = true;
  if (options_.trace) {
    std::fprintf(stderr, "    server %lu starts: term %lu vote %lu log %lu..%lu configuration %s\n",
                 static_cast<unsigned long>(s.id), static_cast<unsigned long>(s.raft->current_term().value()),
                 static_cast<unsigned long>(s.raft->voted_for().value()),
                 static_cast<unsigned long>(s.log()->FirstIndex().value()),
                 static_cast<unsigned long>(s.log()->LastIndex().value()),
                 DescribeConfiguration(s.raft->configuration()).c_str());
  }
  s.last_term = s.raft->current_term();
  if (s.last_term < s.durable_term) Fail("server " + std::to_string(s.id) + " restarted with a lower term");
  Schedule(now_ + static_cast<int64_t>(random_.Range(1, kTickUs)), EventKind::kTick, s.id, s.incarnation);
}

void Simulation::Compact(Server& s) {
  if (!s.up || s.applied < s.log()->FirstIndex()) return;
  Status status = s.wal ? s.wal->Compact(s.applied, s.raft->configuration(), s.kv.Encode())
                        : s.disk->CreateSnapshot(s.applied, s.raft->configuration(), s.kv.Encode());
  if (!status.ok()) {
    Fail("compaction failed at server " + std::to_string(s.id) + ": " + status.ToString());
    return;
  }
  ++report_.compactions;
}

// ---------------------------------------------------------------------------
// Clients.

void Simulation::StartOperation(Client& c) {
  ++c.op_number;
  c.active = true;
  // Keys are renamed every key_epoch_us_, so each key's history stays short
  // enough to check exactly, while the few keys alive at a time keep the
  // clients contending (Jepsen's independent keys).
  const std::string key = DrawKey(random_, keys_, now_, key_epoch_us_);
  const std::string value = std::to_string(c.id) + "." + std::to_string(c.op_number);
  ClientRequest& r = c.request;
  r = ClientRequest{};
  r.client = c.id;
  r.op = c.op_number;
  r.key = key;
  r.command.client = c.id;
  r.command.op = c.op_number;
  r.command.key = key;
  lincheck::Operation op;
  switch (DrawOpKind(random_)) {
    case OpKind::kGet:
      r.type = RequestType::kGet;
      op = lincheck::Operation::Get(c.id, key);
      break;
    case OpKind::kPut:
      r.type = RequestType::kWrite;
      r.command.type = CommandType::kPut;
      r.command.value = value;
      op = lincheck::Operation::Put(c.id, key, value);
      break;
    case OpKind::kDelete:
      r.type = RequestType::kWrite;
      r.command.type = CommandType::kDelete;
      op = lincheck::Operation::Delete(c.id, key);
      break;
    case OpKind::kCas:
      r.type = RequestType::kWrite;
      r.command.type = CommandType::kCas;
      r.command.value = value;
      r.command.expected = DrawCasExpected(random_, c.seen, key);
      op = lincheck::Operation::Cas(c.id, key, r.command.expected, value);
      break;
  }
  c.history_id = recorder_.Invoke(std::move(op));
  c.started_at = now_;
  Schedule(now_ + client_timeout_us_, EventKind::kClientTimeout, c.id, c.op_number);
  // Reads go to any server now and then (followers serve them through
  // ReadIndex); writes go to the server believed to lead.
  if (r.type == RequestType::kGet && random_.OneIn(3)) {
    const std::vector<uint64_t> up = UpServers();
    if (!up.empty()) c.target = up[random_.Uniform(up.size())];
  }
  SendAttempt(c);
}

void Simulation::SendAttempt(Client& c) {
  ++c.request.attempt;
  if (random_.Chance(healed_ ? 0 : rates_.message_loss)) return;  // the request is lost
  Schedule(now_ + NetworkDelay(), EventKind::kRequest, c.target, 0, c.request);
}

void Simulation::OnReply(Client& c, const ClientReply& reply) {
  if (reply.attempt != c.request.attempt) return;  // a duplicate or stale answer
  switch (reply.type) {
    case ReplyType::kOk:
      if (c.request.type == RequestType::kGet) {
        c.seen[c.request.key] = reply.value;
        Complete(c, lincheck::Outcome::kOk, reply.value);
      } else {
        c.seen[c.request.key] = c.request.command.type == CommandType::kDelete
                                    ? std::nullopt
                                    : std::optional<std::string>(c.request.command.value);
        if (healed_ && c.started_at >= healed_at_) write_after_heal_ = true;
        Complete(c, lincheck::Outcome::kOk, std::nullopt);
      }
      return;
    case ReplyType::kCasFailed:
      Complete(c, lincheck::Outcome::kFail, std::nullopt);
      return;
    case ReplyType::kRetry: {
      // Not executed: try the hinted leader, or another server, shortly.
      if (reply.leader_hint != 0 && reply.leader_hint != c.target) {
        c.target = reply.leader_hint;
      } else {
        const std::vector<uint64_t> up = UpServers();
        c.target = up.empty() ? 1 : up[random_.Uniform(up.size())];
      }
      Schedule(now_ + static_cast<int64_t>(random_.Range(1'000, 20'000)), EventKind::kClientWake, c.id,
               c.op_number);
      return;
    }
  }
}

void Simulation::Complete(Client& c, lincheck::Outcome outcome, std::optional<std::string> value) {
  if (options_.trace) {
    std::fprintf(stderr, "    client %lu op %lu (%s) completes: outcome %d value %s\n",
                 static_cast<unsigned long>(c.id), static_cast<unsigned long>(c.op_number), c.request.key.c_str(),
                 static_cast<int>(outcome), value.value_or("-").c_str());
  }
  recorder_.Complete(c.history_id, outcome, std::move(value));
  c.active = false;
  Schedule(now_ + static_cast<int64_t>(random_.Uniform(20'000)), EventKind::kClientWake, c.id, 0);
}

// ---------------------------------------------------------------------------
// Faults.

void Simulation::Nemesis() {
  const uint32_t weights[] = {rates_.partition, rates_.heal, rates_.crash, rates_.membership,
                              rates_.transfer, rates_.compact, rates_.disk_stall};
  const std::optional<size_t> picked = PickWeighted(random_, weights);
  if (!picked) return;
  const size_t action = *picked;

  std::vector<uint64_t> up = UpServers();
  Server* leader = Leader();
  switch (action) {
    case 0:
      Partition();
      return;
    case 1:
      links_.Clear();
      return;
    case 2: {
      // The leader half of the time; down for up to a second.
      if (up.empty()) return;
      Server& victim = leader != nullptr && random_.OneIn(2) ? *leader
                                                               : servers_.at(up[random_.Uniform(up.size())]);
      Crash(victim);
      Schedule(now_ + static_cast<int64_t>(random_.Range(1'000, 1'000'000)), EventKind::kRestart,
               victim.id, 0);
      return;
    }
    case 3:
      ChangeMembership();
      return;
    case 4: {
      if (leader == nullptr) return;
      const std::vector<NodeId>& voters = leader->raft->configuration().voters;
      Feed(*leader, AdminInput{std::nullopt, voters[random_.Uniform(voters.size())]});
      return;
    }
    case 5:
      if (!up.empty()) Compact(servers_.at(up[random_.Uniform(up.size())]));
      return;
    case 6: {
      if (up.empty()) return;
      Server& s = servers_.at(up[random_.Uniform(up.size())]);
      s.stalled_until = now_ + static_cast<int64_t>(random_.Range(10'000, 400'000));
      return;
    }
    default:
      return;
  }
}

void Simulation::Partition() {
  ++report_.partitions;
  links_.Clear();
  // Among the servers started so far (spares that have not joined have no
  // links yet); the node-level simulation has no spares and no bridge.
  std::vector<uint64_t> ids;
  for (const auto& [id, s] : servers_) {
    if (s.started) ids.push_back(id);
  }
  Server* leader = Leader();
  switch (random_.Uniform(5)) {
    case 0:  // one server alone
      links_.Isolate(ids[random_.Uniform(ids.size())], ids);
      return;
    case 1:  // the leader alone
      if (leader != nullptr) links_.Isolate(leader->id, ids);
      return;
    case 2:  // two sides, cut both ways
      links_.SplitInTwo(random_, ids);
      return;
    case 3:  // asymmetric: random one-way cuts
      links_.CutOneWayAtRandom(random_, ids);
      return;
    default: {  // a bridge: two sides that only one server connects
      const uint64_t bridge = ids[random_.Uniform(ids.size())];
      links_.SplitInTwo(random_, ids, bridge);
      return;
    }
  }
}

void Simulation::ChangeMembership() {
  Server* leader = Leader();
  if (leader == nullptr) return;
  const Configuration& c = leader->raft->configuration();
  std::vector<ConfChange> choices;
  if (!spares_.empty() && c.learners.size() < 2) {
    choices.push_back({ConfChangeType::kAddLearner, NodeId{spares_.front()}, ""});
  }
  for (NodeId learner : c.learners) choices.push_back({ConfChangeType::kPromoteLearner, learner, ""});
  if (c.voters.size() > 3) {
    for (NodeId voter : c.voters) choices.push_back({ConfChangeType::kRemoveNode, voter, ""});
  }
  for (NodeId learner : c.learners) choices.push_back({ConfChangeType::kRemoveNode, learner, ""});
  if (choices.empty()) return;
  // Sometimes an impatient operator asks for a second change right after
  // the first; the leader must refuse it until the first is applied.
  const int count = random_.OneIn(3) ? 2 : 1;
  for (int i = 0; i < count && !choices.empty(); ++i) {
    const size_t pick = random_.Uniform(choices.size());
    const ConfChange change = choices[pick];
    choices.erase(choices.begin() + static_cast<std::ptrdiff_t>(pick));
    if (change.type == ConfChangeType::kAddLearner) {
      // The new server starts now (as an operator would start it before
      // adding it); it learns the log from the leader.
      spares_.erase(spares_.begin());
      StartServer(change.node_id.value());
      std::erase_if(choices, [](const ConfChange& other) { return other.type == ConfChangeType::kAddLearner; });
    }
    Feed(*leader, AdminInput{change, kNoNode});
  }
}

void Simulation::HealAll() {
  healed_ = true;
  healed_at_ = now_;
  links_.Clear();
  for (auto& [id, s] : servers_) {
    s.stalled_until = 0;
    if (s.started && !s.up) Restart(s);
  }
}

// ---------------------------------------------------------------------------
// Checks.

void Simulation::CheckServer(Server& s) {
  if (!s.up || stop_) return;
  const RaftNode& node = *s.raft;
  node.CheckInvariants();
  // A server's term never decreases.
  if (node.current_term() < s.last_term) {
    Fail("server " + std::to_string(s.id) + ": term went from " + std::to_string(s.last_term.value()) + " to " +
         std::to_string(node.current_term().value()));
    return;
  }
  s.last_term = node.current_term();
  if (node.role() == Role::kLeader) {
    // Election Safety: at most one leader per term, ever.
    auto [it, inserted] = leader_of_term_.emplace(node.current_term().value(), s.id);
    if (it->second != s.id) {
      Fail("election safety: servers " + std::to_string(it->second) + " and " + std::to_string(s.id) +
           " both led term " + std::to_string(node.current_term().value()));
      return;
    }
  }
}

// Leader Completeness: a leader of term T holds every entry committed in a
// term before T. Checked when a server becomes leader.
void Simulation::CheckLeaderCompleteness(const Server& s) {
  const RaftNode& node = *s.raft;
  const raft::RaftLog& log = node.log();
  for (const auto& [index, applied] : applied_at_) {
    const auto& [entry, applied_term] = applied;
    if (node.current_term() <= applied_term) continue;
    if (LogIndex{index} > log.LastIndex()) {
      Fail("leader completeness: leader " + std::to_string(s.id) + " of term " +
           std::to_string(node.current_term().value()) + " lacks committed index " +
           std::to_string(index) + " (its last index is " + std::to_string(log.LastIndex().value()) + ")");
      return;
    }
    Result<Term> term = log.TermAt(LogIndex{index});
    if (!term.ok()) continue;  // compacted into its snapshot
    if (*term != entry.term) {
      Fail("leader completeness: leader " + std::to_string(s.id) + " has term " +
           std::to_string(term->value()) + " at committed index " + std::to_string(index) +
           ", committed with term " + std::to_string(entry.term.value()));
      return;
    }
  }
}

// Log Matching: two entries with the same index and term hold the same
// command and follow the same term, on every server, ever.
void Simulation::RecordAppended(const Server& s, const std::vector<Entry>& entries) {
  Result<Term> before = s.log()->TermAt(entries.front().index - 1);
  uint64_t prev = before.ok() ? before->value() : UINT64_MAX;
  for (const Entry& e : entries) {
    const std::pair<size_t, uint64_t> value{std::hash<std::string>{}(e.data), prev};
    auto [it, inserted] = log_entries_.emplace(std::make_pair(e.index.value(), e.term.value()), value);
    if (!inserted) {
      const bool same_data = it->second.first == value.first;
      const bool same_prev = it->second.second == value.second || value.second == UINT64_MAX ||
                             it->second.second == UINT64_MAX;
      if (!same_data || !same_prev) {
        Fail("log matching: server " + std::to_string(s.id) + " index " + std::to_string(e.index.value()) +
             " term " + std::to_string(e.term.value()) + " differs from another server's");
        return;
      }
      if (it->second.second == UINT64_MAX) it->second.second = value.second;
    }
    prev = e.term.value();
  }
}

Server* Simulation::Leader() {
  Server* best = nullptr;
  for (auto& [id, s] : servers_) {
    if (!s.up || s.raft->role() != Role::kLeader) continue;
    if (best == nullptr || s.raft->current_term() > best->raft->current_term()) best = &s;
  }
  return best;
}

std::vector<uint64_t> Simulation::UpServers() const {
  std::vector<uint64_t> out;
  for (const auto& [id, s] : servers_) {
    if (s.up) out.push_back(id);
  }
  return out;
}

// After healing: a leader has committed an entry of its own term, and some
// client write issued after the heal has completed.
bool Simulation::LivenessReached() {
  Server* leader = Leader();
  if (leader == nullptr) return false;
  const RaftNode& node = *leader->raft;
  Result<Term> commit_term = node.log().TermAt(node.commit_index());
  if (!commit_term.ok() || *commit_term != node.current_term()) return false;
  return write_after_heal_;
}

// Every member of the leader's configuration has applied everything the
// leader committed, the leader's log is fully committed, and their state
// machines agree.
bool Simulation::Converged() {
  Server* leader = Leader();
  if (leader == nullptr) return false;
  const RaftNode& node = *leader->raft;
  if (node.commit_index() != node.last_index() || leader->applied != node.commit_index()) return false;
  for (const Client& c : clients_) {
    if (c.active) return false;
  }
  const Configuration& config = node.configuration();
  for (auto& [id, s] : servers_) {
    if (!config.IsMember(NodeId{id})) continue;
    if (!s.up || s.applied != leader->applied) return false;
  }
  for (auto& [id, s] : servers_) {
    if (!config.IsMember(NodeId{id})) continue;
    if (!(s.kv == leader->kv)) {
      Fail("state machines differ between servers " + std::to_string(leader->id) + " and " +
           std::to_string(id) + " at index " + std::to_string(s.applied.value()));
      return true;
    }
  }
  return true;
}

}  // namespace

SimReport RunSimulation(const SimOptions& options) {
  if (options.server == ServerKind::kNode) return RunNodeSimulation(options);
  Simulation sim(options);
  return sim.Run();
}

}  // namespace rkv::sim
