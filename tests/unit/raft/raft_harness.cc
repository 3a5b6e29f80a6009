#include "unit/raft/raft_harness.h"

#include <gtest/gtest.h>

#include "common/coding.h"

namespace rkv::raft::test {

std::string EncodeState(const std::vector<std::string>& commands) {
  std::string out;
  for (const std::string& c : commands) PutLengthPrefixed(&out, c);
  return out;
}

std::vector<std::string> DecodeState(const std::string& data) {
  std::vector<std::string> out;
  std::string_view input = data;
  std::string_view item;
  while (!input.empty()) {
    EXPECT_TRUE(GetLengthPrefixed(&input, &item));
    out.emplace_back(item);
  }
  return out;
}

Configuration MakeConfiguration(std::vector<uint64_t> voters, std::vector<uint64_t> learners) {
  Configuration c;
  std::sort(voters.begin(), voters.end());
  std::sort(learners.begin(), learners.end());
  for (uint64_t v : voters) c.voters.push_back(NodeId{v});
  for (uint64_t l : learners) c.learners.push_back(NodeId{l});
  return c;
}

std::vector<Entry> EntriesWithTerms(uint64_t first, const std::vector<uint64_t>& terms) {
  std::vector<Entry> out;
  for (size_t i = 0; i < terms.size(); ++i) {
    out.push_back(Entry{Term{terms[i]}, LogIndex{first + i}, EntryType::kNormal,
                        "e" + std::to_string(first + i)});
  }
  return out;
}

SoloNode::SoloNode(uint64_t id, std::vector<uint64_t> voters, const std::vector<uint64_t>& terms,
                   uint64_t current_term, const std::function<void(RaftConfig*)>& tweak,
                   uint64_t seed)
    : storage_(MakeConfiguration(std::move(voters))) {
  storage_.Append(EntriesWithTerms(1, terms));
  storage_.SetHardState(HardState{Term{current_term}, kNoNode, LogIndex{0}});
  RaftConfig config;
  config.id = NodeId{id};
  if (tweak) tweak(&config);
  Result<std::unique_ptr<RaftNode>> node = RaftNode::Create(config, &storage_, Random(seed));
  EXPECT_TRUE(node.ok()) << node.status().ToString();
  if (node.ok()) node_ = std::move(*node);
}

std::vector<Message> SoloNode::Drain() {
  std::vector<Message> out;
  while (node_->HasReady()) {
    Ready ready = node_->GetReady();
    readies_.push_back(ready);
    for (Message& m : ready.messages_before_persist) out.push_back(std::move(m));
    if (ready.snapshot) storage_.ApplySnapshot(*ready.snapshot);
    storage_.Append(ready.entries);
    if (ready.hard_state) storage_.SetHardState(*ready.hard_state);
    for (Message& m : ready.messages) out.push_back(std::move(m));
    for (const Entry& e : ready.committed_entries) applied_.push_back(e);
    for (const ReadState& r : ready.read_states) read_states_.push_back(r);
    node_->Advance();
    node_->CheckInvariants();
  }
  return out;
}

std::vector<Message> SoloNode::Deliver(uint64_t from, uint64_t term, MessageBody body) {
  Status s = node_->Step(Message{NodeId{from}, node_->id(), Term{term}, std::move(body)});
  EXPECT_TRUE(s.ok()) << s.ToString();
  return Drain();
}

void SoloNode::MakeLeader() {
  node_->Campaign();
  for (int round = 0; round < 2 && node_->role() != Role::kLeader; ++round) {
    std::vector<Message> sent = Drain();
    for (const Message& m : sent) {
      const auto* request = std::get_if<RequestVoteRequest>(&m.body);
      if (request == nullptr) continue;
      Status s = node_->Step(Message{m.to, node_->id(), m.term,
                                     RequestVoteResponse{true, request->pre_vote}});
      EXPECT_TRUE(s.ok());
    }
  }
  EXPECT_EQ(node_->role(), Role::kLeader);
  Drain();
}

Network::Network(std::vector<uint64_t> voters, std::vector<uint64_t> learners, ConfigTweak tweak,
                 uint64_t seed)
    : tweak_(std::move(tweak)), seed_(seed) {
  const Configuration configuration = MakeConfiguration(voters, learners);
  for (NodeId id : configuration.voters) AddNode(id.value(), configuration);
  for (NodeId id : configuration.learners) AddNode(id.value(), configuration);
}

void Network::AddNode(uint64_t id, const Configuration& bootstrap) {
  Peer& peer = peers_[id];
  peer.storage = std::make_unique<MemoryLogStorage>(bootstrap);
  StartNode(id);
}

void Network::StartNode(uint64_t id) {
  Peer& peer = peers_.at(id);
  RaftConfig config;
  config.id = NodeId{id};
  config.applied_index = peer.applied_index;
  if (tweak_) tweak_(&config);
  Result<std::unique_ptr<RaftNode>> node =
      RaftNode::Create(config, peer.storage.get(), Random(seed_ * 1000 + id));
  ASSERT_TRUE(node.ok()) << node.status().ToString();
  peer.node = std::move(*node);
}

RaftNode& Network::node(uint64_t id) { return *peers_.at(id).node; }
MemoryLogStorage& Network::storage(uint64_t id) { return *peers_.at(id).storage; }

void Network::SetLog(uint64_t id, const std::vector<uint64_t>& terms, uint64_t current_term) {
  Peer& peer = peers_.at(id);
  const Configuration configuration = peer.storage->GetInitialState().configuration;
  peer.storage = std::make_unique<MemoryLogStorage>(configuration);
  peer.storage->Append(EntriesWithTerms(1, terms));
  peer.storage->SetHardState(HardState{Term{current_term}, kNoNode, LogIndex{0}});
  peer.applied.clear();
  peer.state.clear();
  peer.applied_index = LogIndex{0};
  StartNode(id);
}

void Network::Restart(uint64_t id) { StartNode(id); }

void Network::CrashDuringReady(uint64_t id) {
  Peer& peer = peers_.at(id);
  if (peer.node->HasReady()) {
    Ready ready = peer.node->GetReady();
    for (Message& m : ready.messages_before_persist) Enqueue(std::move(m));
  }
  StartNode(id);
}

bool Network::Dropped(const Message& m) const {
  if (cut_.count({m.from.value(), m.to.value()}) > 0) return true;
  for (const auto& rule : drop_rules_) {
    if (rule(m)) return true;
  }
  return peers_.count(m.to.value()) == 0;
}

void Network::Enqueue(Message m) {
  trace_.push_back(m);
  if (Dropped(m)) return;
  if (fault_random_) {
    if (fault_random_->Chance(drop_probability_)) return;
    if (fault_random_->Chance(duplicate_probability_)) queue_.push_back(m);
  }
  queue_.push_back(std::move(m));
}

void Network::SetRandomFaults(uint64_t seed, double drop, double duplicate, bool reorder) {
  fault_random_.emplace(seed);
  drop_probability_ = drop;
  duplicate_probability_ = duplicate;
  reorder_ = reorder;
}

bool Network::HandleReady(uint64_t id) {
  Peer& peer = peers_.at(id);
  if (!peer.node->HasReady()) return false;
  Ready ready = peer.node->GetReady();
  // 1. Leader requests may leave before the local write.
  for (Message& m : ready.messages_before_persist) {
    EXPECT_TRUE(IsLeaderRequest(m)) << DescribeMessage(m);
    Enqueue(std::move(m));
  }
  // 2. Persist: snapshot, entries, hard state.
  if (ready.snapshot) peer.storage->ApplySnapshot(*ready.snapshot);
  peer.storage->Append(ready.entries);
  if (ready.hard_state) peer.storage->SetHardState(*ready.hard_state);
  // 3. The rest of the messages.
  for (Message& m : ready.messages) Enqueue(std::move(m));
  // 4. Apply.
  if (ready.snapshot) {
    peer.state = DecodeState(ready.snapshot->data);
    peer.applied_index = ready.snapshot->metadata.last_index;
  }
  for (const Entry& e : ready.committed_entries) {
    EXPECT_EQ(e.index, peer.applied_index + 1) << "committed entries out of order at node " << id;
    peer.applied_index = e.index;
    peer.applied.push_back(e);
    if (e.type == EntryType::kNormal && !e.data.empty()) peer.state.push_back(e.data);
    auto [it, inserted] =
        applied_at_.emplace(e.index.value(), std::make_pair(e, peer.node->current_term()));
    if (!inserted) {
      EXPECT_EQ(it->second.first, e) << "state machine safety: two entries applied at index "
                                     << e.index;
    }
  }
  for (const ReadState& r : ready.read_states) peer.read_states.push_back(r);
  // 5. Advance.
  peer.node->Advance();
  peer.storage->SetConfiguration(peer.node->configuration());
  return true;
}

void Network::Stabilize() {
  for (int round = 0; round < 100000; ++round) {
    bool moved = false;
    for (auto& [id, peer] : peers_) {
      while (HandleReady(id)) moved = true;
    }
    if (queue_.empty() && !moved) {
      CheckSafety();
      return;
    }
    std::deque<Message> batch;
    batch.swap(queue_);
    if (fault_random_ && reorder_) {
      for (size_t i = batch.size(); i > 1; --i) {
        std::swap(batch[i - 1], batch[fault_random_->Uniform(i)]);
      }
    }
    for (const Message& m : batch) {
      auto it = peers_.find(m.to.value());
      if (it == peers_.end()) continue;
      Status s = it->second.node->Step(m);
      EXPECT_TRUE(s.ok()) << s.ToString() << " for " << DescribeMessage(m);
      while (HandleReady(m.to.value())) {
      }
    }
  }
  ADD_FAILURE() << "network did not stabilize";
}

void Network::DeliverSome(size_t max_messages) {
  for (size_t delivered = 0; delivered < max_messages; ++delivered) {
    for (auto& [id, peer] : peers_) {
      while (HandleReady(id)) {
      }
    }
    if (queue_.empty()) return;
    const Message m = std::move(queue_.front());
    queue_.pop_front();
    auto it = peers_.find(m.to.value());
    if (it == peers_.end()) continue;
    Status s = it->second.node->Step(m);
    EXPECT_TRUE(s.ok()) << s.ToString() << " for " << DescribeMessage(m);
  }
  for (auto& [id, peer] : peers_) {
    while (HandleReady(id)) {
    }
  }
}

void Network::Send(const Message& m) {
  Enqueue(m);
  Stabilize();
}

void Network::Tick(uint64_t id, uint64_t times) {
  for (uint64_t i = 0; i < times; ++i) node(id).Tick();
}

void Network::TickAll(uint64_t times) {
  for (uint64_t i = 0; i < times; ++i) {
    for (auto& [id, peer] : peers_) Tick(id);
  }
}

void Network::TickAndStabilize(uint64_t times) {
  for (uint64_t i = 0; i < times; ++i) {
    for (auto& [id, peer] : peers_) Tick(id);
    Stabilize();
  }
}

void Network::Campaign(uint64_t id) {
  Stabilize();
  node(id).Campaign();
  Stabilize();
}

LogIndex Network::Propose(uint64_t id, const std::string& data) {
  Stabilize();
  Result<LogIndex> index = node(id).Propose(data);
  EXPECT_TRUE(index.ok()) << index.status().ToString();
  Stabilize();
  return index.ok() ? *index : LogIndex{0};
}

void Network::Cut(uint64_t a, uint64_t b) {
  cut_.insert({a, b});
  cut_.insert({b, a});
}

void Network::Isolate(uint64_t id) {
  for (const auto& [other, peer] : peers_) {
    if (other != id) Cut(id, other);
  }
}

void Network::DropIf(std::function<bool(const Message&)> predicate) {
  drop_rules_.push_back(std::move(predicate));
}

void Network::Heal() {
  cut_.clear();
  drop_rules_.clear();
}

std::vector<uint64_t> Network::LeaderIds() const {
  std::vector<uint64_t> out;
  for (const auto& [id, peer] : peers_) {
    if (peer.node->role() == Role::kLeader) out.push_back(id);
  }
  return out;
}

void Network::Compact(uint64_t id) {
  Peer& peer = peers_.at(id);
  if (peer.applied_index < peer.storage->FirstIndex()) return;  // nothing new to compact
  ASSERT_TRUE(peer.storage
                  ->CreateSnapshot(peer.applied_index, peer.node->configuration(),
                                   EncodeState(peer.state))
                  .ok());
}

std::vector<uint64_t> Network::LogTerms(uint64_t id) {
  const RaftLog& log = node(id).log();
  std::vector<uint64_t> out;
  for (LogIndex i = log.FirstIndex(); i <= log.LastIndex(); i = i + 1) {
    Result<Term> t = log.TermAt(i);
    out.push_back(t.ok() ? t->value() : 0);
  }
  return out;
}

void Network::CheckSafety() {
  // Log Matching (§5.3): entries with the same index and term are the same
  // entry and follow the same previous term, on every server.
  std::map<std::pair<uint64_t, uint64_t>, std::pair<std::string, uint64_t>> seen;
  for (auto& [id, peer] : peers_) {
    const RaftNode& node = *peer.node;
    node.CheckInvariants();
    if (node.role() == Role::kLeader) {
      // Election Safety: at most one leader per term, ever.
      const uint64_t term = node.current_term().value();
      auto [it, inserted] = leader_of_term_.emplace(term, id);
      EXPECT_EQ(it->second, id) << "election safety: two leaders in term " << term;
      // Leader Completeness: every applied (so committed) entry is in the log
      // of every later leader, unless compacted away.
      for (const auto& [index, applied] : applied_at_) {
        // The entry was committed in a term <= applied_term; only leaders of
        // later terms are bound to hold it.
        const auto& [entry, applied_term] = applied;
        if (node.current_term() <= applied_term) continue;
        Result<Term> t = node.log().TermAt(LogIndex{index});
        if (!t.ok()) continue;
        EXPECT_EQ(*t, entry.term) << "leader completeness: leader " << id << " index " << index;
      }
    }
    const RaftLog& log = node.log();
    for (LogIndex i = log.FirstIndex(); i <= log.LastIndex(); i = i + 1) {
      Result<std::vector<Entry>> e = log.Slice(i, i + 1, UINT64_MAX);
      Result<Term> prev = log.TermAt(i - 1);
      if (!e.ok() || e->empty() || !prev.ok()) continue;
      const Entry& entry = e->front();
      auto key = std::make_pair(i.value(), entry.term.value());
      auto value = std::make_pair(entry.data, prev->value());
      auto [it, inserted] = seen.emplace(key, value);
      EXPECT_EQ(it->second, value) << "log matching: node " << id << " index " << i;
    }
  }
}

}  // namespace rkv::raft::test
