// The node-level simulation (raft-kv-sim --server node): each simulated
// server is a real rkv::Node (src/node/node.h) with its WAL, storage engine
// and replicated state machine on the server's own FaultEnv. See
// node_simulation.h and docs/testing.md.
#include "sim/node_simulation.h"

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "common/random.h"
#include "common/types.h"
#include "env/fault_env.h"
#include "node/command.h"
#include "node/node.h"
#include "node/state_machine.h"
#include "raft/message.h"
#include "raft/raft_node.h"
#include "sim/sim_common.h"
#include "tools/lincheck/lincheck.h"
#include "transport/transport.h"
#include "wal/wal.h"

namespace rkv::sim {
namespace {

using raft::Message;
using raft::Role;

constexpr uint64_t kEpochMs = 1'700'000'000'000;  // wall time at simulated time 0
constexpr uint64_t kNoCrashPoint = ~uint64_t{0};

uint64_t Mix(uint64_t a, uint64_t b) {
  uint64_t z = a * 0x9e3779b97f4a7c15ULL + b + 0x632be59bd9b4e019ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t HashBytes(std::string_view data) {
  uint64_t h = 1469598103934665603ULL;
  for (char c : data) h = (h ^ static_cast<uint8_t>(c)) * 1099511628211ULL;
  return h;
}

// ---------------------------------------------------------------------------
// Events.

enum class EventKind : uint8_t {
  kTick,            // a server's timer
  kDeliver,         // a Raft message reaches a server
  kRestart,         // a stopped server comes back
  kRequest,         // a client's attempt reaches a server
  kReply,           // a server's answer reaches a client
  kClientWake,      // a client starts its next operation, or retries
  kAttemptTimeout,  // a client stops waiting for one attempt
  kClientTimeout,   // a client gives up on an operation
  kNemesis,         // the next fault action
};

enum class ReplyType : uint8_t {
  kOk,         // done (a read: value holds the result)
  kCasFailed,  // the cas comparison failed
  kRetry,      // no answer the client can use: try again, elsewhere
};

struct Reply {
  uint64_t attempt = 0;
  ReplyType type = ReplyType::kRetry;
  std::optional<std::string> value;
  std::string why;  // kRetry: the status, for the trace
};

struct Event {
  int64_t time = 0;
  uint64_t seq = 0;
  EventKind kind = EventKind::kTick;
  uint64_t target = 0;  // server or client id
  uint64_t token = 0;   // incarnation (servers), operation number (clients)
  uint64_t attempt = 0;
  std::variant<std::monostate, Message, Reply> payload;
};

class NodeSimulation;

// Hands a server's messages to the simulated network.
class SimTransport final : public transport::Transport {
 public:
  SimTransport(NodeSimulation* sim, uint64_t id) : sim_(sim), id_(id) {}
  void Send(raft::Message m) override;
  void AddPeer(NodeId, std::string) override {}
  void RemovePeer(NodeId) override {}

 private:
  NodeSimulation* sim_;
  uint64_t id_;
};

// How a server's next stop is armed.
enum class Armed : uint8_t {
  kNone,
  // A power loss at the k-th file operation from now: that operation and
  // everything after it never happens (nothing more leaves the machine).
  kPowerLoss,
  // An I/O error at the k-th file operation from now (and every later one):
  // the node must stop without promising anything it did not make durable;
  // the simulator then stops it and reboots the machine.
  kIoError,
};

struct Server {
  uint64_t id = 0;
  std::unique_ptr<FaultEnv> env;  // outlives crashes
  std::unique_ptr<SimTransport> transport;
  std::unique_ptr<Node> node;
  bool up = false;
  uint64_t incarnation = 0;
  Armed armed = Armed::kNone;
  uint64_t failures_at_arm = 0;  // the env's injected failures when kIoError was armed
  LogIndex checked;   // applied indexes up to here went through the checks
  LogIndex first_index;  // of its WAL, to count compactions
  Term last_term;     // this incarnation's highest term
};

struct Client {
  uint64_t id = 0;
  uint64_t op_number = 0;
  bool active = false;
  lincheck::Recorder::OpId history_id = 0;
  OpKind kind = OpKind::kGet;
  std::string key;
  std::string value;
  std::optional<std::string> expected;
  ReadConsistency consistency = ReadConsistency::kLinearizable;
  std::string idempotency_key;
  uint64_t attempt = 0;
  uint64_t target = 1;
  int64_t started_at = 0;
  std::map<std::string, std::optional<std::string>> seen;
};

// What the committed log says, as the simulator saw it.
struct CommittedEntry {
  Term term;
  uint64_t hash = 0;    // of the entry's data; 0: not seen
  bool known = false;   // type and data seen in some server's log
  bool normal = false;  // a normal entry (not a configuration change)
  std::string data;     // a normal entry's command
  uint64_t server = 0;  // the first server seen applying it
};

class NodeSimulation {
 public:
  explicit NodeSimulation(const SimOptions& options)
      : options_(options), random_(options.seed) {
    report_.seed = options.seed;
  }
  SimReport Run();

  void OnSend(uint64_t from, Message m);

 private:
  void ChooseSetup();
  NodeOptions MakeOptions(const Server& s);

  void Schedule(int64_t at, EventKind kind, uint64_t target, uint64_t token, uint64_t attempt = 0,
                decltype(Event::payload) payload = std::monostate{});
  void Dispatch(Event& e);
  int64_t NetworkDelay() { return sim::NetworkDelay(random_, rates_); }
  bool Lossy() { return Lost(random_, rates_, healed_); }
  uint64_t NowMs() const { return kEpochMs + static_cast<uint64_t>(now_ / 1000); }
  // True once a power loss armed on `s` has happened: the machine is dead
  // from that file operation on, whatever the process still does.
  bool Dead(const Server& s) const {
    return s.armed == Armed::kPowerLoss && s.env->CrashPointReached();
  }

  // Servers.
  void Restart(Server& s);
  void Stop(Server& s, const char* why);
  void AfterCall(Server& s);
  void Observe(Server& s);
  void HandleRequest(Server& s, uint64_t client, uint64_t op, uint64_t attempt);
  void SendReply(const Server& s, uint64_t client, uint64_t op, Reply reply);

  // Clients.
  void StartOperation(Client& c);
  void SendAttempt(Client& c);
  void Retry(Client& c, int64_t after_us);
  void OnReply(Client& c, const Reply& reply);
  void Complete(Client& c, lincheck::Outcome outcome, std::optional<std::string> value);

  // Faults.
  void Nemesis();
  void Partition();
  void HealAll();
  void Arm(Server& s, Armed how, uint64_t ops);

  // Checks.
  void CheckServer(Server& s);
  void RecordCommitted(uint64_t index, CommittedEntry entry, const Server& s);
  void AdvanceModel();
  bool LivenessReached();
  bool Converged();
  void Fail(std::string what);

  Server* Leader();
  std::vector<uint64_t> UpServers() const;
  std::string Name(const Server& s) const { return "server " + std::to_string(s.id); }
  void Trace(const char* format, ...) __attribute__((format(printf, 2, 3)));

  SimOptions options_;
  Random random_;
  FaultRates rates_;
  SimReport report_;

  int64_t now_ = 0;
  EventQueue<Event> events_;
  bool stop_ = false;

  raft::Configuration members_;
  raft::RaftConfig raft_template_;
  uint64_t retry_ticks_ = 20;
  uint64_t request_timeout_ticks_ = 50;
  uint64_t data_file_size_ = 1 << 20;
  uint64_t compact_every_ = 100;
  std::map<uint64_t, Server> servers_;
  Links links_;  // directed links cut
  // Relative weights of the node-level fault actions.
  uint32_t w_partition_ = 4, w_heal_ = 4, w_crash_ = 3, w_crash_point_ = 3, w_io_error_ = 1;

  std::vector<Client> clients_;
  std::vector<std::string> keys_;
  std::set<std::string> used_keys_;
  lincheck::Recorder recorder_;
  int64_t attempt_timeout_us_ = 600'000;
  int64_t client_timeout_us_ = 2'000'000;
  int64_t key_epoch_us_ = 500'000;

  bool healed_ = false;
  int64_t healed_at_ = 0;
  int64_t live_at_ = 0;
  bool draining_ = false;
  bool write_after_heal_ = false;

  std::map<uint64_t, uint64_t> leader_of_term_;
  std::map<uint64_t, CommittedEntry> committed_;
  // (index, term) -> (normal entry?, its data) of the entries seen in
  // AppendEntries.
  std::map<std::pair<uint64_t, uint64_t>, std::pair<bool, std::string>> proposed_;
  std::set<std::pair<uint64_t, uint64_t>> snapshots_;  // (server, index) installed
  // The model: the committed log applied with exactly-once sessions.
  uint64_t model_next_ = 1;
  uint64_t model_term_ = 0;  // of the last entry the model applied
  bool model_gap_ = false;
  std::map<std::string, std::string> model_;
  std::map<uint64_t, uint64_t> model_sessions_;  // client id -> last sequence applied
};

void SimTransport::Send(raft::Message m) { sim_->OnSend(id_, std::move(m)); }

void NodeSimulation::Trace(const char* format, ...) {
  if (!options_.trace) return;
  std::fprintf(stderr, "%10.3f ms    ", static_cast<double>(now_) / 1000);
  va_list args;
  va_start(args, format);
  std::vfprintf(stderr, format, args);
  va_end(args);
  std::fputc('\n', stderr);
}

void NodeSimulation::Fail(std::string what) {
  if (!report_.failure.empty()) return;
  report_.failure = FailureAt(now_, what);
  stop_ = true;
}

// ---------------------------------------------------------------------------
// Setup.

void NodeSimulation::ChooseSetup() {
  const uint64_t voters = random_.OneIn(2) ? 3 : 5;
  for (uint64_t id = 1; id <= voters; ++id) members_.voters.push_back(NodeId{id});

  raft::RaftConfig& c = raft_template_;
  c.pre_vote = !random_.OneIn(4);
  c.check_quorum = true;
  c.read_mode = random_.OneIn(3) ? raft::ReadMode::kLease : raft::ReadMode::kReadIndex;
  c.max_bytes_per_message = random_.Range(100, 4096);
  c.max_inflight_messages = random_.Range(1, 16);
  c.snapshot_chunk_bytes = random_.Range(16, 4096);
  c.max_committed_bytes_per_ready = random_.Range(200, 8192);
  c.max_uncommitted_bytes = random_.Range(2'000, 64'000);
  retry_ticks_ = random_.Range(5, 30);
  request_timeout_ticks_ = random_.Range(30, 80);
  data_file_size_ = random_.Range(4 << 10, 1 << 20);
  // Small, so compaction runs and lagging or restarted servers get
  // snapshots (during which they crash too).
  compact_every_ = options_.compact_every_entries != 0 ? options_.compact_every_entries
                                                       : random_.Range(10, 100);

  if (options_.swarm) {
    // The node-level servers have no simulated disk rates (their disk is
    // the FaultEnv) and their own fault actions.
    DrawSwarmNetworkRates(random_, rates_);
    rates_.nemesis_interval_us = static_cast<int64_t>(random_.Range(10'000, 600'000));
    w_partition_ = SwarmWeight(random_);
    w_heal_ = SwarmWeight(random_);
    w_crash_ = SwarmWeight(random_);
    w_crash_point_ = SwarmWeight(random_);
    w_io_error_ = SwarmWeight(random_);
  }

  AddClients(random_, voters, clients_);
  ChooseKeys(random_, key_epoch_us_, keys_);

  char line[400];
  std::snprintf(line, sizeof line,
                "node servers %zu prevote %d reads %s clients %zu keys %zu/%ldms retry %lut timeout %lut "
                "compact@%lu | loss %.2f dup %.2f delay %ld-%ldus nemesis %ldms "
                "[part %u heal %u crash %u crash-point %u io-error %u]",
                members_.voters.size(), c.pre_vote ? 1 : 0,
                c.read_mode == raft::ReadMode::kLease ? "lease" : "readindex", clients_.size(),
                keys_.size(), static_cast<long>(key_epoch_us_ / 1000),
                static_cast<unsigned long>(retry_ticks_),
                static_cast<unsigned long>(request_timeout_ticks_),
                static_cast<unsigned long>(compact_every_), rates_.message_loss,
                rates_.message_duplicate, static_cast<long>(rates_.min_delay_us),
                static_cast<long>(rates_.max_delay_us),
                static_cast<long>(rates_.nemesis_interval_us / 1000), w_partition_, w_heal_, w_crash_,
                w_crash_point_, w_io_error_);
  report_.setup = line;

  for (uint64_t id = 1; id <= voters; ++id) {
    Server& s = servers_[id];
    s.id = id;
    s.env = std::make_unique<FaultEnv>();
    s.transport = std::make_unique<SimTransport>(this, id);
  }
  for (auto& [id, s] : servers_) Restart(s);
}

NodeOptions NodeSimulation::MakeOptions(const Server& s) {
  NodeOptions o;
  o.id = NodeId{s.id};
  o.initial_members = members_;
  o.data_dir = "/node" + std::to_string(s.id);
  o.env = s.env.get();
  o.election_timeout_ticks = 10;
  o.heartbeat_interval_ticks = 1;
  o.request_timeout_ticks = request_timeout_ticks_;
  o.retry_ticks = retry_ticks_;
  o.compact_every_entries = compact_every_;
  o.sync_wal = true;
  o.engine.background_merge = false;
  o.engine.data_file_size_max = data_file_size_;
  o.raft = raft_template_;
  o.random_seed = Mix(Mix(options_.seed, s.id), s.incarnation);
  return o;
}

// ---------------------------------------------------------------------------
// Event queue and main loop.

void NodeSimulation::Schedule(int64_t at, EventKind kind, uint64_t target, uint64_t token,
                              uint64_t attempt, decltype(Event::payload) payload) {
  events_.Push(Event{at, 0, kind, target, token, attempt, std::move(payload)});
}

SimReport NodeSimulation::Run() {
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
    // Healing restarts real nodes, which can fail the run: stop at once.
    if (!healed_ && now_ >= options_.fault_phase_us) HealAll();
    if (stop_) break;
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
    if (live_at_ != 0 && !draining_ && now_ >= live_at_ + 300'000) draining_ = true;
    if (draining_ && !stop_ && Converged()) break;
  }
  // The applied states and the committed log, hashed too: a different
  // outcome with the same event timing still changes the hash.
  for (const auto& [index, entry] : committed_) hash = (hash ^ entry.hash ^ index) * kTraceHashPrime;
  report_.trace_hash = hash;
  report_.simulated_us = now_;
  for (const auto& [id, s] : servers_) {
    if (s.node) report_.terms = std::max(report_.terms, s.node->raft().current_term().value());
  }

  if (std::string violation = CheckClientHistory(recorder_, options_, report_); !violation.empty()) {
    Fail(violation);
  }
  report_.passed = report_.failure.empty() && !report_.inconclusive;
  // Nodes close without a checkpoint: the environments go with them.
  for (auto& [id, s] : servers_) s.node.reset();
  return report_;
}

void NodeSimulation::Dispatch(Event& e) {
  switch (e.kind) {
    case EventKind::kTick: {
      Server& s = servers_.at(e.target);
      if (!s.up || s.incarnation != e.token) return;
      Schedule(now_ + kTickUs, EventKind::kTick, s.id, s.incarnation);
      s.node->Tick(NowMs());
      AfterCall(s);
      return;
    }
    case EventKind::kDeliver: {
      Server& s = servers_.at(e.target);
      if (!s.up) return;
      s.node->Receive(std::get<Message>(e.payload));
      AfterCall(s);
      return;
    }
    case EventKind::kRestart: {
      Server& s = servers_.at(e.target);
      if (s.up || s.incarnation != e.token) return;
      Restart(s);
      return;
    }
    case EventKind::kRequest: {
      Server& s = servers_.at(e.target);
      HandleRequest(s, e.token >> 32, e.token & 0xffffffff, e.attempt);
      return;
    }
    case EventKind::kReply: {
      Client& c = clients_.at(e.target - 1);
      if (!c.active || c.op_number != e.token) return;
      OnReply(c, std::get<Reply>(e.payload));
      return;
    }
    case EventKind::kClientWake: {
      Client& c = clients_.at(e.target - 1);
      if (e.attempt == 0) {  // time for the next operation
        if (!c.active && !draining_) StartOperation(c);
      } else if (c.active && c.op_number == e.token && c.attempt == e.attempt) {
        SendAttempt(c);  // a retry
      }
      return;
    }
    case EventKind::kAttemptTimeout: {
      Client& c = clients_.at(e.target - 1);
      if (!c.active || c.op_number != e.token || c.attempt != e.attempt) return;
      Trace("client %lu op %lu attempt %lu: no answer", static_cast<unsigned long>(c.id),
            static_cast<unsigned long>(c.op_number), static_cast<unsigned long>(c.attempt));
      Retry(c, 0);
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

void NodeSimulation::OnSend(uint64_t from, Message m) {
  const Server& sender = servers_.at(from);
  if (Dead(sender)) return;  // the machine lost power before this send
  // Every committed entry went out in some leader's AppendEntries: the
  // model learns the entries there, since a server may apply and compact
  // entries in one call, before the simulator looks at its log.
  if (const auto* append = std::get_if<raft::AppendEntriesRequest>(&m.body)) {
    for (const raft::Entry& e : append->entries) {
      const bool normal = e.type == raft::EntryType::kNormal;
      proposed_.try_emplace({e.index.value(), e.term.value()}, normal, normal ? e.data : std::string());
    }
  }
  if (const auto* r = std::get_if<raft::InstallSnapshotResponse>(&m.body)) {
    if (r->done && r->match_index == r->snapshot_index &&
        snapshots_.insert({from, r->snapshot_index.value()}).second) {
      ++report_.snapshots_installed;
    }
  }
  const uint64_t to = m.to.value();
  if (servers_.count(to) == 0 || links_.Blocked(from, to)) return;
  const int copies = Copies(random_, rates_, healed_);
  if (copies == 0) return;
  if (copies == 2) Schedule(now_ + NetworkDelay(), EventKind::kDeliver, to, 0, 0, m);
  Schedule(now_ + NetworkDelay(), EventKind::kDeliver, to, 0, 0, std::move(m));
}

void NodeSimulation::SendReply(const Server& s, uint64_t client, uint64_t op, Reply reply) {
  if (Dead(s)) return;  // answered after the power loss: never sent
  if (Lossy()) return;
  Schedule(now_ + NetworkDelay(), EventKind::kReply, client, op, 0, std::move(reply));
}

// ---------------------------------------------------------------------------
// Servers.

void NodeSimulation::Restart(Server& s) {
  ++s.incarnation;
  // Sometimes the machine loses power again during recovery.
  const bool crash_in_recovery = !healed_ && w_crash_point_ > 0 && random_.OneIn(6);
  if (crash_in_recovery) {
    s.env->SetCrashPoint(random_.Uniform(60));
    s.armed = Armed::kPowerLoss;
  }
  Result<std::unique_ptr<Node>> node = Node::Open(MakeOptions(s), s.transport.get());
  if (s.armed == Armed::kPowerLoss && s.env->CrashPointReached()) {
    ++report_.recovery_crashes;
    Trace("server %lu loses power during recovery (%s)", static_cast<unsigned long>(s.id),
          node.ok() ? "opened" : node.status().ToString().c_str());
    if (node.ok()) node->reset();
    s.env->Crash(CrashOptions{0, false, random_.Next() | 1});
    s.armed = Armed::kNone;
    Schedule(now_ + static_cast<int64_t>(random_.Range(1'000, 200'000)), EventKind::kRestart, s.id,
             s.incarnation);
    return;
  }
  if (!node.ok()) {
    Fail(Name(s) + ": Node::Open failed after a crash: " + node.status().ToString());
    return;
  }
  s.node = std::move(*node);
  s.up = true;
  s.checked = s.node->state_machine().applied_index();
  s.first_index = s.node->wal().FirstIndex();
  s.last_term = s.node->raft().current_term();
  Trace("server %lu starts: term %lu applied %lu log %lu..%lu", static_cast<unsigned long>(s.id),
        static_cast<unsigned long>(s.last_term.value()), static_cast<unsigned long>(s.checked.value()),
        static_cast<unsigned long>(s.node->wal().FirstIndex().value()),
        static_cast<unsigned long>(s.node->wal().LastIndex().value()));
  Schedule(now_ + static_cast<int64_t>(random_.Range(1, kTickUs)), EventKind::kTick, s.id, s.incarnation);
  // Replay may have applied entries already.
  Observe(s);
}

// The machine stops (power loss, or the process dies after an I/O error):
// the file system keeps a random prefix of every file's unsynced bytes.
void NodeSimulation::Stop(Server& s, const char* why) {
  if (!s.up) return;
  Trace("server %lu stops: %s (term %lu)", static_cast<unsigned long>(s.id), why,
        static_cast<unsigned long>(s.node->raft().current_term().value()));
  ++report_.crashes;
  s.env->ClearFaults();
  switch (random_.Uniform(4)) {
    case 0: s.env->Crash(CrashOptions{}); break;                    // unsynced bytes lost
    case 1: s.env->Crash(CrashOptions{0, true, 0}); break;          // the page cache survived
    default: s.env->Crash(CrashOptions{0, false, random_.Next() | 1}); break;  // torn
  }
  // After the crash every file handle is stale, so nothing the node does
  // while it is destroyed reaches the disk. Pending callbacks are dropped
  // with it: their clients hear nothing.
  s.node.reset();
  s.up = false;
  s.armed = Armed::kNone;
  // The clients whose attempt is at this server see the connection drop.
  for (Client& c : clients_) {
    if (c.active && c.target == s.id) Retry(c, static_cast<int64_t>(random_.Range(1'000, 20'000)));
  }
  Schedule(now_ + static_cast<int64_t>(random_.Range(1'000, 1'000'000)), EventKind::kRestart, s.id,
           s.incarnation);
}

// After any input: the node loop, then what the simulator watches for.
void NodeSimulation::AfterCall(Server& s) {
  if (!s.up || stop_) return;
  s.node->Process();
  Observe(s);
}

void NodeSimulation::Observe(Server& s) {
  if (!s.up || stop_) return;
  if (Dead(s)) {
    ++report_.crash_points_hit;
    Stop(s, "power loss in the middle of the node loop");
    return;
  }
  if (s.armed == Armed::kIoError && s.env->InjectedFailureCount() > s.failures_at_arm) {
    ++report_.io_errors_hit;
    // The node must have stopped itself, or must at least stop now: we take
    // the process down either way, as an operator's supervisor would.
    Stop(s, s.node->failure().ok() ? "I/O error (the node had not noticed yet)"
                                   : "I/O error; the node stopped itself");
    return;
  }
  if (!s.node->failure().ok()) {
    Fail(Name(s) + " stopped on its own: " + s.node->failure().ToString());
    return;
  }
  CheckServer(s);
}

void NodeSimulation::HandleRequest(Server& s, uint64_t client_id, uint64_t op, uint64_t attempt) {
  Client& c = clients_.at(client_id - 1);
  if (!c.active || c.op_number != op || c.attempt != attempt) return;  // the client moved on
  if (!s.up) {
    // Connection refused: the client hears it after a round trip.
    Schedule(now_ + NetworkDelay(), EventKind::kReply, client_id, op, 0,
             Reply{attempt, ReplyType::kRetry, std::nullopt, "connection refused"});
    return;
  }
  const uint64_t server_id = s.id;
  const uint64_t incarnation = s.incarnation;
  const bool is_write = c.kind != OpKind::kGet;
  auto answer = [this, server_id, incarnation, client_id, op, attempt, is_write](Reply reply) {
    Server& server = servers_.at(server_id);
    if (server.incarnation != incarnation) return;
    reply.attempt = attempt;
    if (is_write && reply.type == ReplyType::kRetry) ++report_.write_retries;
    SendReply(server, client_id, op, std::move(reply));
  };
  if (!is_write) {
    auto done = [answer](Result<std::string> r) {
      if (r.ok()) {
        answer(Reply{0, ReplyType::kOk, std::move(*r), ""});
      } else if (r.status().IsNotFound()) {
        answer(Reply{0, ReplyType::kOk, std::nullopt, ""});
      } else {
        answer(Reply{0, ReplyType::kRetry, std::nullopt, r.status().ToString()});
      }
    };
    if (options_.unsafe_node_stale_reads) {
      done(s.node->StaleGet(c.key, NowMs()));
    } else {
      s.node->Read(c.key, c.consistency, done);
    }
  } else {
    Command command;
    switch (c.kind) {
      case OpKind::kPut: command = Command::Put(c.key, c.value); break;
      case OpKind::kDelete: command = Command::Delete(c.key); break;
      default: command = Command::Cas(c.key, c.expected, c.value); break;
    }
    std::string key = c.idempotency_key;
    if (options_.unsafe_node_fresh_key_on_retry) key += "#" + std::to_string(attempt);
    s.node->Write(std::move(command), key, [answer](Result<CommandResult> r) {
      if (!r.ok()) {
        answer(Reply{0, ReplyType::kRetry, std::nullopt, r.status().ToString()});
      } else if (r->code == CommandResult::Code::kOk) {
        answer(Reply{0, ReplyType::kOk, std::nullopt, ""});
      } else if (r->code == CommandResult::Code::kCasFailed) {
        answer(Reply{0, ReplyType::kCasFailed, std::nullopt, ""});
      } else {
        // Rejected or a stale sequence: neither can happen to these writes.
        answer(Reply{0, ReplyType::kRetry, std::nullopt,
                     "unexpected result " + std::string(CommandResultCodeName(r->code))});
      }
    });
  }
  AfterCall(s);
}

// ---------------------------------------------------------------------------
// Clients.

void NodeSimulation::StartOperation(Client& c) {
  ++c.op_number;
  c.active = true;
  c.attempt = 0;
  c.key = DrawKey(random_, keys_, now_, key_epoch_us_);
  used_keys_.insert(c.key);
  c.value = std::to_string(c.id) + "." + std::to_string(c.op_number);
  c.idempotency_key = "client" + std::to_string(c.id) + "-op" + std::to_string(c.op_number);
  c.expected.reset();
  lincheck::Operation op;
  c.kind = DrawOpKind(random_);
  switch (c.kind) {
    case OpKind::kGet:
      // Real nodes also serve lease reads (the core-level clients leave the
      // read mode to the cluster's configuration).
      c.consistency = random_.OneIn(2) ? ReadConsistency::kLease : ReadConsistency::kLinearizable;
      op = lincheck::Operation::Get(c.id, c.key);
      break;
    case OpKind::kPut:
      op = lincheck::Operation::Put(c.id, c.key, c.value);
      break;
    case OpKind::kDelete:
      op = lincheck::Operation::Delete(c.id, c.key);
      break;
    case OpKind::kCas:
      c.expected = DrawCasExpected(random_, c.seen, c.key);
      op = lincheck::Operation::Cas(c.id, c.key, c.expected, c.value);
      break;
  }
  c.history_id = recorder_.Invoke(std::move(op));
  c.started_at = now_;
  Schedule(now_ + client_timeout_us_, EventKind::kClientTimeout, c.id, c.op_number);
  // Any server will do: followers forward writes and ask the leader for
  // read indexes.
  if (random_.OneIn(3)) c.target = random_.Range(1, servers_.size());
  c.attempt = 1;
  SendAttempt(c);
}

void NodeSimulation::SendAttempt(Client& c) {
  Schedule(now_ + attempt_timeout_us_, EventKind::kAttemptTimeout, c.id, c.op_number, c.attempt);
  if (Lossy()) return;  // the request is lost
  Schedule(now_ + NetworkDelay(), EventKind::kRequest, c.target, (c.id << 32) | c.op_number, c.attempt);
}

// The attempt got no usable answer: the same operation (a write with the
// same idempotency key) goes to another server shortly. The attempt number
// moves on at once, so a late answer to the old attempt is ignored.
void NodeSimulation::Retry(Client& c, int64_t after_us) {
  if (servers_.size() > 1) {
    uint64_t next = c.target;
    while (next == c.target) next = random_.Range(1, servers_.size());
    c.target = next;
  }
  ++c.attempt;
  ++report_.client_retries;
  Schedule(now_ + after_us, EventKind::kClientWake, c.id, c.op_number, c.attempt);
}

void NodeSimulation::OnReply(Client& c, const Reply& reply) {
  if (reply.attempt != c.attempt) return;  // a duplicate, or an attempt given up
  switch (reply.type) {
    case ReplyType::kOk:
      if (c.kind == OpKind::kGet) {
        c.seen[c.key] = reply.value;
        Complete(c, lincheck::Outcome::kOk, reply.value);
      } else {
        c.seen[c.key] = c.kind == OpKind::kDelete ? std::nullopt : std::optional<std::string>(c.value);
        if (healed_ && c.started_at >= healed_at_) write_after_heal_ = true;
        Complete(c, lincheck::Outcome::kOk, std::nullopt);
      }
      return;
    case ReplyType::kCasFailed:
      Complete(c, lincheck::Outcome::kFail, std::nullopt);
      return;
    case ReplyType::kRetry:
      Trace("client %lu op %lu attempt %lu at server %lu: %s", static_cast<unsigned long>(c.id),
            static_cast<unsigned long>(c.op_number), static_cast<unsigned long>(c.attempt),
            static_cast<unsigned long>(c.target), reply.why.c_str());
      Retry(c, static_cast<int64_t>(random_.Range(1'000, 30'000)));
      return;
  }
}

void NodeSimulation::Complete(Client& c, lincheck::Outcome outcome, std::optional<std::string> value) {
  Trace("client %lu op %lu (%s) completes after %lu attempts: outcome %d value %s",
        static_cast<unsigned long>(c.id), static_cast<unsigned long>(c.op_number), c.key.c_str(),
        static_cast<unsigned long>(c.attempt), static_cast<int>(outcome), value.value_or("-").c_str());
  recorder_.Complete(c.history_id, outcome, std::move(value));
  c.active = false;
  Schedule(now_ + static_cast<int64_t>(random_.Uniform(20'000)), EventKind::kClientWake, c.id, 0);
}

// ---------------------------------------------------------------------------
// Faults.

void NodeSimulation::Nemesis() {
  // Its own fault actions, weighted like the core-level ones.
  const uint32_t weights[] = {w_partition_, w_heal_, w_crash_, w_crash_point_, w_io_error_};
  const std::optional<size_t> picked = PickWeighted(random_, weights);
  if (!picked) return;
  const size_t action = *picked;

  const std::vector<uint64_t> up = UpServers();
  if (action == 0) {
    Partition();
    return;
  }
  if (action == 1) {
    links_.Clear();
    return;
  }
  if (up.empty()) return;
  Server* leader = Leader();
  Server& victim = leader != nullptr && random_.OneIn(2) ? *leader : servers_.at(up[random_.Uniform(up.size())]);
  switch (action) {
    case 2:
      Stop(victim, "power loss");
      return;
    case 3:
      // Somewhere in the next few hundred file operations: in a WAL write,
      // an engine write while applying, a compaction or a snapshot install.
      Arm(victim, Armed::kPowerLoss, random_.Uniform(300));
      return;
    default:
      Arm(victim, Armed::kIoError, random_.Uniform(300));
      return;
  }
}

void NodeSimulation::Arm(Server& s, Armed how, uint64_t ops) {
  if (s.armed != Armed::kNone) return;
  Trace("server %lu: %s armed after %lu file operations", static_cast<unsigned long>(s.id),
        how == Armed::kPowerLoss ? "power loss" : "I/O error", static_cast<unsigned long>(ops));
  s.armed = how;
  if (how == Armed::kPowerLoss) {
    s.env->SetCrashPoint(ops);
  } else {
    s.failures_at_arm = s.env->InjectedFailureCount();
    s.env->FailAfter(ops, FaultOp::kMutating, Status::IOError("injected I/O error"));
  }
}

void NodeSimulation::Partition() {
  ++report_.partitions;
  links_.Clear();
  // Every server has been started (there are no spares here), and there is
  // no bridge partition: four shapes, not the core-level five.
  std::vector<uint64_t> ids;
  for (const auto& [id, s] : servers_) ids.push_back(id);
  Server* leader = Leader();
  switch (random_.Uniform(4)) {
    case 0:
      links_.Isolate(ids[random_.Uniform(ids.size())], ids);
      return;
    case 1:
      if (leader != nullptr) links_.Isolate(leader->id, ids);
      return;
    case 2:  // two sides
      links_.SplitInTwo(random_, ids);
      return;
    default:  // random one-way cuts
      links_.CutOneWayAtRandom(random_, ids);
      return;
  }
}

void NodeSimulation::HealAll() {
  healed_ = true;
  healed_at_ = now_;
  links_.Clear();
  Trace("heal: every fault ends, every server restarts");
  for (auto& [id, s] : servers_) {
    if (s.up && s.armed != Armed::kNone) {
      // A fault armed and not reached is disarmed.
      if (Dead(s) || (s.armed == Armed::kIoError && s.env->InjectedFailureCount() > s.failures_at_arm)) {
        Observe(s);
      } else {
        s.env->ClearFaults();
        s.env->SetCrashPoint(kNoCrashPoint - s.env->OperationCount());
        s.armed = Armed::kNone;
      }
    }
  }
  for (auto& [id, s] : servers_) {
    if (!s.up) Restart(s);
  }
}

// ---------------------------------------------------------------------------
// Checks.

void NodeSimulation::CheckServer(Server& s) {
  const Node& n = *s.node;
  const raft::RaftNode& r = n.raft();
  r.CheckInvariants();
  if (r.current_term() < s.last_term) {
    Fail(Name(s) + ": term went from " + std::to_string(s.last_term.value()) + " to " +
         std::to_string(r.current_term().value()));
    return;
  }
  s.last_term = r.current_term();
  const wal::Wal& wal = n.wal();
  if (r.role() == Role::kLeader) {
    // Election Safety: at most one leader per term, ever.
    auto [it, inserted] = leader_of_term_.emplace(r.current_term().value(), s.id);
    if (it->second != s.id) {
      Fail("election safety: servers " + std::to_string(it->second) + " and " + std::to_string(s.id) +
           " both led term " + std::to_string(r.current_term().value()));
      return;
    }
  }
  if (wal.FirstIndex() > s.first_index) ++report_.compactions;
  s.first_index = wal.FirstIndex();

  // State Machine Safety: every server applies the same entry at an index.
  const LogIndex applied = n.state_machine().applied_index();
  if (applied <= s.checked) return;
  const uint64_t lo = std::max(s.checked.value() + 1, wal.FirstIndex().value());
  if (lo <= applied.value()) {
    Result<std::vector<raft::Entry>> entries = wal.Entries(LogIndex{lo}, applied + 1, UINT64_MAX);
    if (!entries.ok()) {
      Fail(Name(s) + ": applied index " + std::to_string(applied.value()) +
           " but its log cannot show the entries from " + std::to_string(lo) + ": " +
           entries.status().ToString());
      return;
    }
    for (const raft::Entry& e : *entries) {
      CommittedEntry entry;
      entry.term = e.term;
      entry.hash = HashBytes(e.data) | 1;
      entry.known = true;
      entry.normal = e.type == raft::EntryType::kNormal;
      if (entry.normal) entry.data = e.data;
      RecordCommitted(e.index.value(), std::move(entry), s);
      if (stop_) return;
    }
  }
  // The applied entry itself, also when it came in a snapshot: by its term.
  CommittedEntry last;
  last.term = n.state_machine().applied_term();
  RecordCommitted(applied.value(), std::move(last), s);
  s.checked = applied;
  AdvanceModel();
}

void NodeSimulation::RecordCommitted(uint64_t index, CommittedEntry entry, const Server& s) {
  auto [it, inserted] = committed_.try_emplace(index);
  CommittedEntry& known = it->second;
  if (inserted) {
    entry.server = s.id;
    known = std::move(entry);
    return;
  }
  if (known.term != entry.term || (known.hash != 0 && entry.hash != 0 && known.hash != entry.hash)) {
    Fail("state machine safety: " + Name(s) + " applied index " + std::to_string(index) + " with term " +
         std::to_string(entry.term.value()) + ", server " + std::to_string(known.server) +
         " applied it with term " + std::to_string(known.term.value()) +
         (known.term == entry.term ? " but other data" : ""));
    return;
  }
  if (!known.known && entry.known) {
    const uint64_t server = known.server;
    known = std::move(entry);
    known.server = server;
  }
}

// The model applies the committed log in order with exactly-once sessions,
// as far as the simulator has seen the entries.
void NodeSimulation::AdvanceModel() {
  for (;;) {
    auto it = committed_.find(model_next_);
    if (it == committed_.end()) {
      // No server showed this index before compacting it away. The entry
      // went out in some AppendEntries (a majority holds it), and its term
      // lies between its neighbours' terms: if only one entry sent for this
      // index fits, it is the committed one.
      auto next = committed_.upper_bound(model_next_);
      if (next == committed_.end()) return;
      const uint64_t hi = next->second.term.value();
      auto only = proposed_.end();
      for (auto p = proposed_.lower_bound({model_next_, model_term_});
           p != proposed_.end() && p->first.first == model_next_ && p->first.second <= hi; ++p) {
        if (only != proposed_.end()) return;  // more than one fits
        only = p;
      }
      if (only == proposed_.end()) return;
      CommittedEntry entry;
      entry.term = Term{only->first.second};
      entry.known = true;
      entry.normal = only->second.first;
      entry.data = only->second.second;
      it = committed_.emplace(model_next_, std::move(entry)).first;
    }
    CommittedEntry& e = it->second;
    if (!e.known) {
      auto p = proposed_.find({model_next_, e.term.value()});
      if (p == proposed_.end()) return;
      e.known = true;
      e.normal = p->second.first;
      e.data = p->second.second;
    }
    ++model_next_;
    model_term_ = e.term.value();
    if (!e.normal || e.data.empty()) continue;
    Result<Command> command = DecodeCommand(e.data);
    if (!command.ok()) {
      Fail("undecodable command at index " + std::to_string(it->first) + ": " + command.status().ToString());
      return;
    }
    if (command->client_id != 0) {
      uint64_t& last = model_sessions_[command->client_id];
      if (command->sequence <= last) continue;  // a duplicate: no effect
      last = command->sequence;
    }
    switch (command->kind) {
      case Command::Kind::kPut:
        model_[command->key] = command->value;
        break;
      case Command::Kind::kDelete:
        model_.erase(command->key);
        break;
      case Command::Kind::kCas: {
        auto cur = model_.find(command->key);
        const std::optional<std::string> value =
            cur == model_.end() ? std::nullopt : std::optional<std::string>(cur->second);
        if (value == command->expected) model_[command->key] = command->value;
        break;
      }
      default:
        break;
    }
  }
}

Server* NodeSimulation::Leader() {
  Server* best = nullptr;
  for (auto& [id, s] : servers_) {
    if (!s.up || s.node->raft().role() != Role::kLeader) continue;
    if (best == nullptr || s.node->raft().current_term() > best->node->raft().current_term()) best = &s;
  }
  return best;
}

std::vector<uint64_t> NodeSimulation::UpServers() const {
  std::vector<uint64_t> out;
  for (const auto& [id, s] : servers_) {
    if (s.up) out.push_back(id);
  }
  return out;
}

bool NodeSimulation::LivenessReached() {
  Server* leader = Leader();
  if (leader == nullptr) return false;
  const raft::RaftNode& r = leader->node->raft();
  Result<Term> commit_term = leader->node->wal().TermAt(r.commit_index());
  if (!commit_term.ok() || *commit_term != r.current_term()) return false;
  return write_after_heal_;
}

// Every server has applied everything the leader committed, the leader's log
// is fully committed, and the servers hold the same user data, which is the
// data of the model (the committed log applied once per write).
bool NodeSimulation::Converged() {
  Server* leader = Leader();
  if (leader == nullptr) return false;
  const raft::RaftNode& r = leader->node->raft();
  const LogIndex applied = leader->node->state_machine().applied_index();
  if (r.commit_index() != r.last_index() || applied != r.commit_index()) return false;
  for (const Client& c : clients_) {
    if (c.active) return false;
  }
  for (auto& [id, s] : servers_) {
    if (!s.up || s.node->state_machine().applied_index() != applied) return false;
  }
  const bool model_complete = model_next_ > applied.value();
  if (model_complete) {
    ++report_.model_checks;
  } else {
    ++report_.model_gaps;
    auto it = committed_.find(model_next_);
    Trace("the model stops before index %lu (%s)", static_cast<unsigned long>(model_next_),
          it == committed_.end() ? "never seen applied" : "its entry was never seen");
  }
  for (const std::string& key : used_keys_) {
    Result<std::string> expected = leader->node->StaleGet(key, NowMs());
    const std::string want = expected.ok() ? *expected : "<" + expected.status().ToString() + ">";
    for (auto& [id, s] : servers_) {
      Result<std::string> got = s.node->StaleGet(key, NowMs());
      const std::string have = got.ok() ? *got : "<" + got.status().ToString() + ">";
      if (have != want) {
        Fail("servers " + std::to_string(leader->id) + " and " + std::to_string(id) + " differ at key " + key +
             " after applying index " + std::to_string(applied.value()) + ": " + want + " vs " + have);
        return true;
      }
    }
    if (!model_complete) continue;
    auto m = model_.find(key);
    const std::string model = m == model_.end() ? "<NotFound>" : m->second;
    const bool absent = !expected.ok() && expected.status().IsNotFound();
    if (absent ? m != model_.end() : (!expected.ok() || model != *expected)) {
      Fail("exactly-once: at index " + std::to_string(applied.value()) + " key " + key + " is " + want +
           " on every server, but the committed log applied once per write gives " + model);
      return true;
    }
  }
  return true;
}

}  // namespace

SimReport RunNodeSimulation(const SimOptions& options) {
  NodeSimulation sim(options);
  return sim.Run();
}

}  // namespace rkv::sim
