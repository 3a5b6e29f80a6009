// An in-process network of RaftNodes for tests (after etcd raft's
// newNetwork): messages move by function calls, in FIFO order, with no
// sockets, threads or sleeps, so every test is deterministic.
//
// Each node has a MemoryLogStorage and a trivial state machine (the list of
// applied command strings). Handling a Ready follows ready.h exactly:
// messages_before_persist are queued, the snapshot, entries and hard state
// are written, the remaining messages are queued, the snapshot and committed
// entries are applied, then Advance() is called.
//
// Faults: Cut(a, b) drops messages between two nodes both ways, Isolate(a)
// cuts a node from everyone, DropIf(pred) drops matching messages, Heal()
// removes every fault.
#ifndef RKV_TESTS_UNIT_RAFT_RAFT_HARNESS_H_
#define RKV_TESTS_UNIT_RAFT_RAFT_HARNESS_H_

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "common/types.h"
#include "raft/log_storage.h"
#include "raft/message.h"
#include "raft/raft_node.h"

namespace rkv::raft::test {

// The test state machine's snapshot encoding: the applied commands.
std::string EncodeState(const std::vector<std::string>& commands);
std::vector<std::string> DecodeState(const std::string& data);

// A configuration from plain ids.
Configuration MakeConfiguration(std::vector<uint64_t> voters, std::vector<uint64_t> learners = {});
// Entries with the given terms at indexes first, first + 1, ...
std::vector<Entry> EntriesWithTerms(uint64_t first, const std::vector<uint64_t>& terms);

// One node alone, driven by hand: the test steps messages into it and reads
// what it sends (etcd raft's single-node paper tests).
class SoloNode {
 public:
  // A node `id` among `voters`, with a persisted log of entries with `terms`
  // and hard state term `current_term`.
  SoloNode(uint64_t id, std::vector<uint64_t> voters, const std::vector<uint64_t>& terms = {},
           uint64_t current_term = 0, const std::function<void(RaftConfig*)>& tweak = {},
           uint64_t seed = 1);

  RaftNode& node() { return *node_; }
  MemoryLogStorage& storage() { return storage_; }
  // Handles every pending Ready as Network does and returns the messages
  // sent, in order (before-persist ones first within each Ready).
  std::vector<Message> Drain();
  // Steps a message from `from` in `term` and drains.
  std::vector<Message> Deliver(uint64_t from, uint64_t term, MessageBody body);
  // Becomes leader of term current+1 by winning a vote (PreVote, if on,
  // included); drains everything sent on the way.
  void MakeLeader();
  // Committed entries handed out so far.
  const std::vector<Entry>& applied() const { return applied_; }
  std::vector<ReadState>& read_states() { return read_states_; }
  std::vector<Ready>& readies() { return readies_; }

 private:
  MemoryLogStorage storage_;
  std::unique_ptr<RaftNode> node_;
  std::vector<Entry> applied_;
  std::vector<ReadState> read_states_;
  std::vector<Ready> readies_;
};

class Network {
 public:
  using ConfigTweak = std::function<void(RaftConfig*)>;

  // Starts one node per voter and learner, each with storage bootstrapped
  // with the configuration. `tweak` adjusts every node's RaftConfig.
  explicit Network(std::vector<uint64_t> voters, std::vector<uint64_t> learners = {},
                   ConfigTweak tweak = {}, uint64_t seed = 1);

  RaftNode& node(uint64_t id);
  MemoryLogStorage& storage(uint64_t id);
  bool has_node(uint64_t id) const { return peers_.count(id) > 0; }

  // Starts a new server whose storage is bootstrapped with `bootstrap` (the
  // cluster's initial configuration), as a joining server is.
  void AddNode(uint64_t id, const Configuration& bootstrap);
  // Replaces a node's persisted log and hard state, then restarts it.
  void SetLog(uint64_t id, const std::vector<uint64_t>& terms, uint64_t current_term);
  // Crash and restart: the node is rebuilt from its storage; whatever it had
  // not handed out in a Ready is lost.
  void Restart(uint64_t id);
  // Crash in the middle of handling a Ready: its messages_before_persist
  // leave, nothing is persisted or applied, and the node restarts from its
  // storage.
  void CrashDuringReady(uint64_t id);

  // Handles one node's pending Ready, if any. Returns whether there was one.
  bool HandleReady(uint64_t id);
  // Delivers every queued message and handles every Ready until nothing
  // moves. Asserts that no Step returned an error and invariants hold.
  void Stabilize();
  // Delivers at most `max_messages` queued messages (handling Readies as
  // Stabilize does), leaving the rest queued: an intermediate state.
  void DeliverSome(size_t max_messages);
  // Queues a message as if sent by m.from and stabilizes.
  void Send(const Message& m);

  void Tick(uint64_t id, uint64_t times = 1);
  void TickAll(uint64_t times = 1);
  // Ticks everyone and stabilizes after each tick.
  void TickAndStabilize(uint64_t times);
  // Campaign at `id` and stabilize.
  void Campaign(uint64_t id);
  // Proposes `data` at `id` (which must lead) and stabilizes.
  LogIndex Propose(uint64_t id, const std::string& data);

  // Faults.
  void Cut(uint64_t a, uint64_t b);
  void Isolate(uint64_t id);
  void DropIf(std::function<bool(const Message&)> predicate);
  void Heal();
  // Random faults on every later delivery, drawn from `seed`: each message
  // is dropped with probability `drop`, delivered twice with probability
  // `duplicate`, and each batch is shuffled when `reorder` is set.
  void SetRandomFaults(uint64_t seed, double drop, double duplicate, bool reorder);
  void ClearRandomFaults() { fault_random_.reset(); }

  // Observations.
  const std::vector<std::string>& applied_commands(uint64_t id) { return peers_.at(id).state; }
  const std::vector<Entry>& applied_entries(uint64_t id) { return peers_.at(id).applied; }
  std::vector<ReadState>& read_states(uint64_t id) { return peers_.at(id).read_states; }
  // Every message delivered or dropped so far, in order.
  const std::vector<Message>& trace() const { return trace_; }
  std::vector<uint64_t> LeaderIds() const;
  // Compacts `id`'s log up to its applied index into a snapshot.
  void Compact(uint64_t id);
  // The terms of a node's whole log (entries not compacted), for checks.
  std::vector<uint64_t> LogTerms(uint64_t id);
  // Checks each node's invariants plus cross-node safety: one leader per
  // term ever, and applied entries agree at every index.
  void CheckSafety();

 private:
  struct Peer {
    std::unique_ptr<MemoryLogStorage> storage;
    std::unique_ptr<RaftNode> node;
    std::vector<Entry> applied;
    std::vector<std::string> state;
    std::vector<ReadState> read_states;
    LogIndex applied_index;
  };

  void StartNode(uint64_t id);
  void Enqueue(Message m);
  bool Dropped(const Message& m) const;

  ConfigTweak tweak_;
  uint64_t seed_;
  std::map<uint64_t, Peer> peers_;
  std::deque<Message> queue_;
  std::set<std::pair<uint64_t, uint64_t>> cut_;
  std::vector<std::function<bool(const Message&)>> drop_rules_;
  std::vector<Message> trace_;
  std::optional<Random> fault_random_;
  double drop_probability_ = 0;
  double duplicate_probability_ = 0;
  bool reorder_ = false;
  std::map<uint64_t, uint64_t> leader_of_term_;
  // index -> the entry applied there (by any node) and the term of the
  // node that applied it first (at least the term it was committed in).
  std::map<uint64_t, std::pair<Entry, Term>> applied_at_;
};

}  // namespace rkv::raft::test

#endif  // RKV_TESTS_UNIT_RAFT_RAFT_HARNESS_H_
