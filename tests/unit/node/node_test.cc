// Node: three members in one process on MemEnv, with a transport that
// queues messages for the test to deliver, drop or hold. Time is ticks the
// test gives; nothing sleeps.
#include "node/node.h"

#include <gtest/gtest.h>

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "env/mem_env.h"
#include "node/restore.h"
#include "transport/transport.h"
#include "wal/wal.h"

namespace rkv {
namespace {

class QueueTransport final : public transport::Transport {
 public:
  void Send(raft::Message m) override { queue.push_back(std::move(m)); }
  void AddPeer(NodeId id, std::string address) override { peers[id.value()] = std::move(address); }
  void RemovePeer(NodeId id) override { peers.erase(id.value()); }
  std::deque<raft::Message> queue;
  std::map<uint64_t, std::string> peers;  // what the node handed over
};

MemberAddress AddressOf(int id) {
  return MemberAddress{"n" + std::to_string(id) + ":7000", "n" + std::to_string(id) + ":8000"};
}

struct MembershipOutcome {
  std::optional<Result<MembershipInfo>> result;
};

struct WriteOutcome {
  std::optional<Result<CommandResult>> result;
};

struct ReadOutcome {
  std::optional<Result<std::string>> result;
};

class NodeClusterTest : public ::testing::Test {
 protected:
  static constexpr int kNodes = 3;

  void SetUp() override {
    for (int i = 1; i <= kNodes; ++i) Open(i);
  }
  void TearDown() override {
    for (auto& [id, node] : nodes_) {
      if (node) {
        EXPECT_TRUE(node->Close().ok());
      }
    }
  }

  NodeOptions Options(int id) {
    NodeOptions o;
    o.metrics_clock_ns = [this] { return ++fake_clock_ns_; };
    o.id = NodeId{static_cast<uint64_t>(id)};
    for (int i = 1; i <= kNodes; ++i) o.initial_members.voters.push_back(NodeId{static_cast<uint64_t>(i)});
    o.data_dir = "/node" + std::to_string(id);
    o.env = &env_;
    o.election_timeout_ticks = 10;
    o.request_timeout_ticks = 200;
    o.retry_ticks = 20;
    o.engine.background_merge = false;
    o.compact_every_entries = compact_every_entries_;
    o.random_seed = 1000 + static_cast<uint64_t>(id);
    o.cluster_id = 77;
    if (seed_addresses_) {
      for (int i = 1; i <= kNodes; ++i) o.initial_addresses[static_cast<uint64_t>(i)] = AddressOf(i);
    }
    return o;
  }

  // Opens node `id` as a new member joining with what the cluster answered.
  void OpenJoiner(int id, const MembershipInfo& members) {
    NodeOptions o = Options(id);
    o.initial_members = {};
    o.initial_addresses.clear();
    for (const MemberInfo& m : members.members) {
      (m.voter ? o.initial_members.voters : o.initial_members.learners).push_back(NodeId{m.id});
      o.initial_addresses[m.id] = MemberAddress{m.peer_address, m.http_address};
    }
    o.cluster_id = members.cluster_id;
    auto node = Node::Open(o, &transports_[id]);
    ASSERT_TRUE(node.ok()) << node.status().ToString();
    nodes_[id] = std::move(node).value();
  }

  std::shared_ptr<MembershipOutcome> Change(int at, MembershipChange::Kind kind, int id) {
    auto out = std::make_shared<MembershipOutcome>();
    MembershipChange change{kind, NodeId{static_cast<uint64_t>(id)}, AddressOf(id)};
    node(at).ChangeMembership(change, [out](Result<MembershipInfo> r) { out->result = std::move(r); });
    return out;
  }

  // The member table of node `id` as peer addresses.
  std::map<uint64_t, std::string> Table(int id) {
    std::map<uint64_t, std::string> out;
    for (const auto& [member, address] : node(id).state_machine().members()) out[member] = address.peer;
    return out;
  }

  void Open(int id) {
    auto node = Node::Open(Options(id), &transports_[id]);
    ASSERT_TRUE(node.ok()) << node.status().ToString();
    nodes_[id] = std::move(*node);
  }

  Node& node(int id) { return *nodes_.at(id); }

  // Closes every node and opens it again, compacting every `entries`.
  void ReopenAllCompactingEvery(uint64_t entries) {
    for (auto& [id, n] : nodes_) ASSERT_TRUE(n->Close().ok());
    nodes_.clear();
    compact_every_entries_ = entries;
    for (int i = 1; i <= kNodes; ++i) Open(i);
  }

  // Delivers queued messages (except those `drop` refuses) and processes
  // every node until nothing moves.
  void Settle(const std::function<bool(const raft::Message&)>& drop = nullptr) {
    for (int round = 0; round < 10000; ++round) {
      bool moved = false;
      for (auto& [id, n] : nodes_) {
        if (n) n->Process();
      }
      for (auto& [id, t] : transports_) {
        std::deque<raft::Message> out;
        out.swap(t.queue);
        for (raft::Message& m : out) {
          moved = true;
          if (drop && drop(m)) continue;
          auto it = nodes_.find(static_cast<int>(m.to.value()));
          if (it == nodes_.end() || !it->second || down_.count(it->first)) continue;
          it->second->Receive(m);
        }
      }
      if (!moved) return;
    }
    FAIL() << "cluster did not settle";
  }

  void Tick(int ticks = 1, const std::function<bool(const raft::Message&)>& drop = nullptr) {
    for (int t = 0; t < ticks; ++t) {
      now_ms_ += 50;
      for (auto& [id, n] : nodes_) {
        if (n && !down_.count(id)) n->Tick(now_ms_);
      }
      Settle(drop);
    }
  }

  int Leader() {
    for (auto& [id, n] : nodes_) {
      if (n && !down_.count(id) && n->status().role == raft::Role::kLeader) return id;
    }
    return 0;
  }

  int ElectLeader() {
    for (int i = 0; i < 100 && Leader() == 0; ++i) Tick();
    return Leader();
  }

  std::shared_ptr<WriteOutcome> Put(int id, std::string key, std::string value,
                                    std::string idempotency_key = {}) {
    auto out = std::make_shared<WriteOutcome>();
    node(id).Write(Command::Put(std::move(key), std::move(value)), idempotency_key,
                   [out](Result<CommandResult> r) { out->result = std::move(r); });
    return out;
  }

  std::shared_ptr<ReadOutcome> Get(int id, std::string key,
                                   ReadConsistency c = ReadConsistency::kLinearizable) {
    auto out = std::make_shared<ReadOutcome>();
    node(id).Read(std::move(key), c, [out](Result<std::string> r) { out->result = std::move(r); });
    return out;
  }

  // Writes "k<i>" = "v<i>" for i in [from, to) through node `at`, one at a
  // time, each acknowledged.
  void PutKeys(int at, int from, int to) {
    for (int i = from; i < to; ++i) {
      auto w = Put(at, "k" + std::to_string(i), "v" + std::to_string(i));
      ASSERT_TRUE(TickUntil([&] { return w->result.has_value(); }));
      ASSERT_TRUE(w->result->ok()) << w->result->status().ToString();
    }
  }

  // Ticks until `done` holds (at most `ticks`).
  template <typename Pred>
  bool TickUntil(Pred done, int ticks = 200,
                 const std::function<bool(const raft::Message&)>& drop = nullptr) {
    Settle(drop);
    for (int i = 0; i < ticks && !done(); ++i) Tick(1, drop);
    return done();
  }

  uint64_t compact_every_entries_ = 10'000;
  uint64_t fake_clock_ns_ = 0;  // the metrics clock: one tick per reading
  bool seed_addresses_ = true;
  MemEnv env_;
  std::map<int, QueueTransport> transports_;
  std::map<int, std::unique_ptr<Node>> nodes_;
  std::set<int> down_;
  uint64_t now_ms_ = 1'700'000'000'000;
};

TEST_F(NodeClusterTest, WritesOnAnyNodeAreReadFromEveryNode) {
  const int leader = ElectLeader();
  ASSERT_NE(leader, 0);
  for (int id = 1; id <= kNodes; ++id) {
    auto w = Put(id, "k" + std::to_string(id), "v" + std::to_string(id));
    ASSERT_TRUE(TickUntil([&] { return w->result.has_value(); })) << "write on node " << id;
    ASSERT_TRUE(w->result->ok()) << w->result->status().ToString();
    EXPECT_TRUE((*w->result)->ok());
  }
  for (int reader = 1; reader <= kNodes; ++reader) {
    for (int id = 1; id <= kNodes; ++id) {
      for (ReadConsistency c : {ReadConsistency::kLinearizable, ReadConsistency::kLease}) {
        auto r = Get(reader, "k" + std::to_string(id), c);
        ASSERT_TRUE(TickUntil([&] { return r->result.has_value(); }));
        ASSERT_TRUE(r->result->ok()) << reader << ": " << r->result->status().ToString();
        EXPECT_EQ(**r->result, "v" + std::to_string(id));
      }
      // Every write was applied on every node before the linearizable
      // reads above returned on it, so a stale read sees it too.
      auto stale = node(reader).StaleGet("k" + std::to_string(id), 0);
      ASSERT_TRUE(stale.ok());
      EXPECT_EQ(*stale, "v" + std::to_string(id));
    }
  }
  auto missing = Get(leader, "absent");
  ASSERT_TRUE(TickUntil([&] { return missing->result.has_value(); }));
  EXPECT_TRUE(missing->result->status().IsNotFound());
}

TEST_F(NodeClusterTest, WithoutALeaderRequestsAreRefusedAtOnce) {
  // No ticks yet: nobody leads.
  auto w = Put(1, "k", "v");
  ASSERT_TRUE(w->result.has_value());
  EXPECT_TRUE(w->result->status().IsNotLeader());
  auto r = Get(2, "k");
  ASSERT_TRUE(r->result.has_value());
  EXPECT_TRUE(r->result->status().IsNotLeader());
}

TEST_F(NodeClusterTest, LostForwardIsRetriedAndAppliedOnce) {
  const int leader = ElectLeader();
  ASSERT_NE(leader, 0);
  const int follower = leader % kNodes + 1;
  int dropped = 0;
  auto drop_first_forward = [&](const raft::Message& m) {
    if (std::holds_alternative<raft::ProposeRequest>(m.body) && dropped == 0) {
      ++dropped;
      return true;
    }
    return false;
  };
  const LogIndex before = node(leader).status().last_index;
  auto w = Put(follower, "k", "v");
  ASSERT_TRUE(TickUntil([&] { return w->result.has_value(); }, 200, drop_first_forward));
  EXPECT_EQ(dropped, 1);
  ASSERT_TRUE(w->result->ok());
  EXPECT_TRUE((*w->result)->ok());
  // One entry for the one write (the lost forward never reached the log).
  EXPECT_EQ(node(leader).status().last_index, before + 1);
}

TEST_F(NodeClusterTest, DuplicateForwardIsAppliedOnce) {
  const int leader = ElectLeader();
  ASSERT_NE(leader, 0);
  const int follower = leader % kNodes + 1;
  // Deliver every forward twice: the session table answers the copy.
  bool duplicated = false;
  auto w = Put(follower, "counter", "1");
  node(follower).Process();
  for (raft::Message& m : transports_[follower].queue) {
    if (std::holds_alternative<raft::ProposeRequest>(m.body)) {
      node(leader).Receive(m);
      duplicated = true;
    }
  }
  ASSERT_TRUE(duplicated);
  ASSERT_TRUE(TickUntil([&] { return w->result.has_value(); }));
  ASSERT_TRUE(w->result->ok());
  // Overwrite, then let the duplicate (already in the log) be applied: the
  // later value must stay.
  auto w2 = Put(leader, "counter", "2");
  ASSERT_TRUE(TickUntil([&] { return w2->result.has_value(); }));
  Tick(5);
  auto r = Get(follower, "counter");
  ASSERT_TRUE(TickUntil([&] { return r->result.has_value(); }));
  ASSERT_TRUE(r->result->ok());
  EXPECT_EQ(**r->result, "2");
}

TEST_F(NodeClusterTest, IdempotencyKeyAppliesARetryOnce) {
  const int leader = ElectLeader();
  ASSERT_NE(leader, 0);
  auto first = Put(leader, "k", "v1", "request-A");
  ASSERT_TRUE(TickUntil([&] { return first->result.has_value(); }));
  ASSERT_TRUE(first->result->ok());
  auto other = Put(leader, "k", "v2");
  ASSERT_TRUE(TickUntil([&] { return other->result.has_value(); }));
  // The client retries its first request (through another node): answered
  // from the session, not applied again.
  auto retry = Put(leader % kNodes + 1, "k", "v1", "request-A");
  ASSERT_TRUE(TickUntil([&] { return retry->result.has_value(); }));
  ASSERT_TRUE(retry->result->ok());
  EXPECT_TRUE((*retry->result)->ok());
  EXPECT_TRUE((*retry->result)->duplicate);
  auto r = Get(leader, "k");
  ASSERT_TRUE(TickUntil([&] { return r->result.has_value(); }));
  EXPECT_EQ(**r->result, "v2");
}

TEST_F(NodeClusterTest, WriteSurvivesLeaderChangeAndIsAppliedOnce) {
  const int leader = ElectLeader();
  ASSERT_NE(leader, 0);
  const int follower = leader % kNodes + 1;
  // The write reaches the old leader's log, then the leader is cut off
  // before it can replicate it; the follower that took it retries through
  // the new leader.
  auto w = Put(follower, "k", "v");
  down_.insert(leader);
  ASSERT_TRUE(TickUntil([&] { return w->result.has_value(); }, 400));
  ASSERT_TRUE(w->result->ok()) << w->result->status().ToString();
  const int new_leader = Leader();
  EXPECT_NE(new_leader, leader);
  down_.erase(leader);
  Tick(40);
  for (int id = 1; id <= kNodes; ++id) {
    auto r = Get(id, "k");
    ASSERT_TRUE(TickUntil([&] { return r->result.has_value(); }));
    ASSERT_TRUE(r->result->ok()) << id;
    EXPECT_EQ(**r->result, "v");
  }
}

TEST_F(NodeClusterTest, WriteWithoutQuorumTimesOut) {
  const int leader = ElectLeader();
  ASSERT_NE(leader, 0);
  for (int id = 1; id <= kNodes; ++id) {
    if (id != leader) down_.insert(id);
  }
  auto w = Put(leader, "k", "v");
  auto r = Get(leader, "k");
  // The leader steps down (CheckQuorum) and the requests end in a timeout.
  ASSERT_TRUE(TickUntil([&] { return w->result.has_value() && r->result.has_value(); }, 400));
  EXPECT_TRUE(w->result->status().IsTimeout()) << w->result->status().ToString();
  EXPECT_FALSE(r->result->ok());
}

TEST_F(NodeClusterTest, RestartReplaysTheLog) {
  const int leader = ElectLeader();
  ASSERT_NE(leader, 0);
  ASSERT_NO_FATAL_FAILURE(PutKeys(leader, 0, 20));
  const int follower = leader % kNodes + 1;
  ASSERT_TRUE(node(follower).Close().ok());
  nodes_[follower].reset();
  // Writes go on without it.
  for (int i = 20; i < 30; ++i) {
    auto w = Put(leader, "k" + std::to_string(i), "v" + std::to_string(i));
    ASSERT_TRUE(TickUntil([&] { return w->result.has_value(); }));
    ASSERT_TRUE(w->result->ok());
  }
  Open(follower);
  ASSERT_TRUE(TickUntil([&] {
    return node(follower).status().applied_index == node(leader).status().commit_index;
  }));
  for (int i = 0; i < 30; ++i) {
    auto v = node(follower).StaleGet("k" + std::to_string(i), 0);
    ASSERT_TRUE(v.ok()) << i;
    EXPECT_EQ(*v, "v" + std::to_string(i));
  }
}

TEST_F(NodeClusterTest, LaggingFollowerCatchesUpBySnapshot) {
  ASSERT_NO_FATAL_FAILURE(ReopenAllCompactingEvery(50));
  const int leader = ElectLeader();
  ASSERT_NE(leader, 0);
  const int follower = leader % kNodes + 1;
  ASSERT_TRUE(node(follower).Close().ok());
  nodes_[follower].reset();
  auto first = Put(leader, "once", "x", "key-B");
  ASSERT_TRUE(TickUntil([&] { return first->result.has_value(); }));
  for (int i = 0; i < 300; ++i) {
    auto w = Put(leader, "k" + std::to_string(i % 100), "v" + std::to_string(i));
    ASSERT_TRUE(TickUntil([&] { return w->result.has_value(); }));
    ASSERT_TRUE(w->result->ok());
  }
  // The leader's log no longer holds what the follower lacks.
  ASSERT_GT(node(leader).wal().FirstIndex(), LogIndex{50});
  Open(follower);
  const LogIndex before = node(follower).status().last_index;
  ASSERT_LT(before, node(leader).wal().FirstIndex());
  ASSERT_TRUE(TickUntil([&] {
    return node(follower).status().applied_index == node(leader).status().commit_index;
  }, 400));
  // It got a snapshot: its own log starts past where it stopped.
  EXPECT_GT(node(follower).wal().FirstIndex(), before + 1);
  EXPECT_EQ(node(follower).metrics().snapshots_installed.value(), 1u);
  EXPECT_EQ(node(leader).metrics().snapshot_sends_started.value(), 1u);
  EXPECT_EQ(node(leader).metrics().snapshot_sends_completed.value(), 1u);
  EXPECT_EQ(node(leader).metrics().snapshot_send_seconds.count(), 1u);
  for (int i = 200; i < 300; ++i) {
    auto v = node(follower).StaleGet("k" + std::to_string(i % 100), 0);
    ASSERT_TRUE(v.ok()) << i;
    EXPECT_EQ(*v, "v" + std::to_string(i));
  }
  // Sessions came with the snapshot: a retry through the follower of a
  // write made while it was away is answered from the session table.
  auto retry = Put(follower, "once", "x", "key-B");
  ASSERT_TRUE(TickUntil([&] { return retry->result.has_value(); }));
  ASSERT_TRUE(retry->result->ok()) << retry->result->status().ToString();
  EXPECT_TRUE((*retry->result)->duplicate);
  // And it restarts from the installed state.
  ASSERT_TRUE(node(follower).Close().ok());
  nodes_[follower].reset();
  Open(follower);
  auto v = node(follower).StaleGet("k99", 0);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, "v299");
}

TEST_F(NodeClusterTest, RefusesADataDirectoryOfTheSingleNodeLayout) {
  ASSERT_TRUE(env_.CreateDir("/old").ok());
  auto file = env_.NewWritableFile("/old/00000000000000000001.data");
  ASSERT_TRUE(file.ok());
  ASSERT_TRUE((*file)->Close().ok());
  NodeOptions o = Options(1);
  o.data_dir = "/old";
  QueueTransport t;
  auto node = Node::Open(o, &t);
  ASSERT_FALSE(node.ok());
  EXPECT_TRUE(node.status().IsInvalidArgument()) << node.status().ToString();
  EXPECT_NE(node.status().message().find("single-node layout"), std::string::npos);
}

TEST_F(NodeClusterTest, FailedNodeRefusesRequests) {
  const int leader = ElectLeader();
  ASSERT_NE(leader, 0);
  ASSERT_TRUE(node(leader).Close().ok());
  auto w = Put(leader, "k", "v");
  ASSERT_TRUE(w->result.has_value());
  EXPECT_TRUE(w->result->status().IsShuttingDown());
  nodes_[leader].reset();
}

// ---------------------------------------------------------------------------
// Membership.

std::map<uint64_t, std::string> Peers(std::initializer_list<int> ids) {
  std::map<uint64_t, std::string> out;
  for (int id : ids) out[static_cast<uint64_t>(id)] = AddressOf(id).peer;
  return out;
}

TEST_F(NodeClusterTest, MemberTableIsSeededAndHandedToTheTransport) {
  ASSERT_NE(ElectLeader(), 0);
  for (int id = 1; id <= kNodes; ++id) {
    EXPECT_EQ(Table(id), Peers({1, 2, 3})) << id;
    EXPECT_EQ(node(id).cluster_id(), 77u);
    std::map<uint64_t, std::string> others = Peers({1, 2, 3});
    others.erase(static_cast<uint64_t>(id));
    EXPECT_EQ(transports_[id].peers, others) << id;
  }
}

TEST_F(NodeClusterTest, AddLearnerPromoteAndRemove) {
  const int leader = ElectLeader();
  ASSERT_NE(leader, 0);
  ASSERT_NO_FATAL_FAILURE(PutKeys(leader, 0, 20));
  const int follower = leader % kNodes + 1;
  // Only the leader changes the membership.
  auto refused = Change(follower, MembershipChange::Kind::kAddLearner, 4);
  ASSERT_TRUE(refused->result.has_value());
  EXPECT_TRUE(refused->result->status().IsNotLeader());

  auto added = Change(leader, MembershipChange::Kind::kAddLearner, 4);
  ASSERT_TRUE(TickUntil([&] { return added->result.has_value(); }));
  ASSERT_TRUE(added->result->ok()) << added->result->status().ToString();
  const MembershipInfo& joined = **added->result;
  EXPECT_EQ(joined.cluster_id, 77u);
  ASSERT_EQ(joined.members.size(), 4u);
  EXPECT_FALSE(joined.members[3].voter);
  EXPECT_EQ(joined.members[3].peer_address, AddressOf(4).peer);
  EXPECT_EQ(joined.members[3].http_address, AddressOf(4).http);
  // Every member learned the new address from the log.
  for (int id = 1; id <= kNodes; ++id) {
    EXPECT_EQ(transports_[id].peers.count(4), 1u) << id;
    EXPECT_EQ(Table(id), Peers({1, 2, 3, 4})) << id;
  }

  OpenJoiner(4, joined);
  ASSERT_TRUE(TickUntil([&] {
    return node(4).status().applied_index == node(leader).status().commit_index;
  }));
  EXPECT_EQ(Table(4), Peers({1, 2, 3, 4}));
  EXPECT_EQ(*node(4).StaleGet("k19", 0), "v19");
  EXPECT_EQ(node(4).cluster_id(), 77u);

  // A retry of the same add answers at once; a different address for the
  // same id is refused.
  auto again = Change(leader, MembershipChange::Kind::kAddLearner, 4);
  Settle();
  ASSERT_TRUE(again->result.has_value());
  EXPECT_TRUE(again->result->ok());
  auto other = std::make_shared<MembershipOutcome>();
  node(leader).ChangeMembership({MembershipChange::Kind::kAddLearner, NodeId{4}, AddressOf(9)},
                                [other](Result<MembershipInfo> r) { other->result = std::move(r); });
  Settle();
  ASSERT_TRUE(other->result.has_value());
  EXPECT_TRUE(other->result->status().IsInvalidArgument());

  auto promoted = Change(leader, MembershipChange::Kind::kPromote, 4);
  ASSERT_TRUE(TickUntil([&] { return promoted->result.has_value(); }));
  ASSERT_TRUE(promoted->result->ok()) << promoted->result->status().ToString();
  EXPECT_TRUE((*promoted->result)->members[3].voter);
  ASSERT_TRUE(TickUntil([&] { return node(4).status().configuration.IsVoter(NodeId{4}); }));

  // The new voter takes writes (forwarded) like any member.
  auto w = Put(4, "from-4", "yes");
  ASSERT_TRUE(TickUntil([&] { return w->result.has_value(); }));
  ASSERT_TRUE(w->result->ok());

  const int removed = leader % kNodes + 1;
  auto gone = Change(leader, MembershipChange::Kind::kRemove, removed);
  ASSERT_TRUE(TickUntil([&] { return gone->result.has_value(); }));
  ASSERT_TRUE(gone->result->ok()) << gone->result->status().ToString();
  EXPECT_EQ((*gone->result)->members.size(), 3u);
  EXPECT_EQ(transports_[leader].peers.count(static_cast<uint64_t>(removed)), 0u);
  ASSERT_TRUE(TickUntil([&] { return node(removed).removed(); }));
  auto refused_write = Put(removed, "x", "y");
  ASSERT_TRUE(refused_write->result.has_value());
  EXPECT_FALSE(refused_write->result->ok());

  auto missing = Change(leader, MembershipChange::Kind::kRemove, 9);
  Settle();
  ASSERT_TRUE(missing->result.has_value());
  EXPECT_TRUE(missing->result->status().IsNotFound());

  // The three left commit without the removed one.
  down_.insert(removed);
  auto after = Put(4, "after", "removal");
  ASSERT_TRUE(TickUntil([&] { return after->result.has_value(); }));
  ASSERT_TRUE(after->result->ok());
}

TEST_F(NodeClusterTest, RemovingTheLeaderHandsOverToTheOthers) {
  const int leader = ElectLeader();
  ASSERT_NE(leader, 0);
  auto gone = Change(leader, MembershipChange::Kind::kRemove, leader);
  ASSERT_TRUE(TickUntil([&] { return gone->result.has_value(); }));
  ASSERT_TRUE(gone->result->ok()) << gone->result->status().ToString();
  EXPECT_TRUE(node(leader).removed());
  down_.insert(leader);
  ASSERT_TRUE(TickUntil([&] { return Leader() != 0; }));
  const int next = Leader();
  EXPECT_NE(next, leader);
  EXPECT_EQ(node(next).status().configuration.voters.size(), 2u);
  auto w = Put(next, "still", "here");
  ASSERT_TRUE(TickUntil([&] { return w->result.has_value(); }));
  ASSERT_TRUE(w->result->ok());
}

TEST_F(NodeClusterTest, PromotionWaitsForTheLearnerToCatchUp) {
  const int leader = ElectLeader();
  ASSERT_NE(leader, 0);
  auto added = Change(leader, MembershipChange::Kind::kAddLearner, 4);
  ASSERT_TRUE(TickUntil([&] { return added->result.has_value(); }));
  ASSERT_TRUE(added->result->ok());
  // Node 4 is not running: the promotion waits, then says why it failed.
  auto promoted = Change(leader, MembershipChange::Kind::kPromote, 4);
  ASSERT_TRUE(TickUntil([&] { return promoted->result.has_value(); }, 400));
  ASSERT_TRUE(promoted->result->status().IsTimeout());
  EXPECT_NE(promoted->result->status().message().find("not caught up"), std::string::npos)
      << promoted->result->status().ToString();
  EXPECT_TRUE(node(leader).status().configuration.IsLearner(NodeId{4}));

  OpenJoiner(4, **added->result);
  promoted = Change(leader, MembershipChange::Kind::kPromote, 4);
  ASSERT_TRUE(TickUntil([&] { return promoted->result.has_value(); }));
  ASSERT_TRUE(promoted->result->ok()) << promoted->result->status().ToString();
}

TEST_F(NodeClusterTest, MemberTableTravelsInSnapshotsAndSurvivesRestart) {
  ASSERT_NO_FATAL_FAILURE(ReopenAllCompactingEvery(50));
  const int leader = ElectLeader();
  ASSERT_NE(leader, 0);
  for (int i = 0; i < 200; ++i) {
    auto w = Put(leader, "k" + std::to_string(i % 50), "v" + std::to_string(i));
    ASSERT_TRUE(TickUntil([&] { return w->result.has_value(); }));
  }
  ASSERT_GT(node(leader).wal().FirstIndex(), LogIndex{50});
  auto added = Change(leader, MembershipChange::Kind::kAddLearner, 4);
  ASSERT_TRUE(TickUntil([&] { return added->result.has_value(); }));
  ASSERT_TRUE(added->result->ok());
  // The joiner seeds only itself and the leader: the rest comes with the
  // snapshot.
  MembershipInfo partial = **added->result;
  for (MemberInfo& m : partial.members) {
    if (m.id != 4 && m.id != static_cast<uint64_t>(leader)) m.peer_address = "stale:1";
  }
  OpenJoiner(4, partial);
  ASSERT_TRUE(TickUntil([&] {
    return node(4).status().applied_index == node(leader).status().commit_index;
  }, 400));
  EXPECT_GT(node(4).wal().FirstIndex(), LogIndex{50});  // installed a snapshot
  EXPECT_EQ(Table(4), Peers({1, 2, 3, 4}));
  std::map<uint64_t, std::string> others = Peers({1, 2, 3});
  EXPECT_EQ(transports_[4].peers, others);

  ASSERT_TRUE(node(4).Close().ok());
  nodes_[4].reset();
  transports_[4].peers.clear();
  auto reopened = Node::Open([&] {
    NodeOptions o = Options(4);
    o.initial_addresses.clear();  // a restart is told nothing
    o.initial_members = {};
    return o;
  }(), &transports_[4]);
  ASSERT_TRUE(reopened.ok()) << reopened.status().ToString();
  nodes_[4] = std::move(reopened).value();
  EXPECT_EQ(transports_[4].peers, others);
  EXPECT_EQ(node(4).cluster_id(), 77u);
}

TEST_F(NodeClusterTest, MembersAnnounceTheirOwnAddresses) {
  // A cluster created without addresses (as before the member table).
  for (auto& [id, n] : nodes_) ASSERT_TRUE(n->Close().ok());
  nodes_.clear();
  seed_addresses_ = false;
  for (int id = 1; id <= kNodes; ++id) {
    NodeOptions o = Options(id);
    o.data_dir = "/unseeded" + std::to_string(id);
    o.self_address = AddressOf(id);
    auto node = Node::Open(o, &transports_[id]);
    ASSERT_TRUE(node.ok()) << node.status().ToString();
    nodes_[id] = std::move(node).value();
  }
  ASSERT_NE(ElectLeader(), 0);
  ASSERT_TRUE(TickUntil([&] {
    for (int id = 1; id <= kNodes; ++id) {
      if (Table(id) != Peers({1, 2, 3})) return false;
    }
    return true;
  }));
  EXPECT_EQ(node(1).state_machine().members().at(2).http, AddressOf(2).http);
}

}  // namespace
}  // namespace rkv

namespace rkv {
namespace {

TEST_F(NodeClusterTest, TransferLeaderHandsOverWhileWritesGoOn) {
  const int leader = ElectLeader();
  ASSERT_NE(leader, 0);
  const int target = leader == 1 ? 2 : 1;
  PutKeys(leader, 0, 5);
  std::optional<Result<LeaderInfo>> outcome;
  node(leader).TransferLeader(NodeId{static_cast<uint64_t>(target)},
                              [&](Result<LeaderInfo> r) { outcome = std::move(r); });
  // A write taken during the transfer waits and is applied once the new
  // leader is in.
  auto during = Put(leader, "during", "x");
  ASSERT_TRUE(TickUntil([&] { return outcome.has_value() && during->result.has_value(); }));
  ASSERT_TRUE(outcome->ok()) << outcome->status().ToString();
  EXPECT_EQ((*outcome)->leader, static_cast<uint64_t>(target));
  EXPECT_EQ(Leader(), target);
  ASSERT_TRUE(during->result->ok()) << during->result->status().ToString();
  auto read = Get(target, "during");
  ASSERT_TRUE(TickUntil([&] { return read->result.has_value(); }));
  EXPECT_EQ(read->result->value(), "x");

  // Back with no target named: the most caught-up other voter.
  std::optional<Result<LeaderInfo>> again;
  node(target).TransferLeader(kNoNode, [&](Result<LeaderInfo> r) { again = std::move(r); });
  ASSERT_TRUE(TickUntil([&] { return again.has_value(); }));
  ASSERT_TRUE(again->ok()) << again->status().ToString();
  EXPECT_NE((*again)->leader, static_cast<uint64_t>(target));
  EXPECT_EQ(Leader(), static_cast<int>((*again)->leader));
}

TEST_F(NodeClusterTest, TransferLeaderRefusesWhatItCannotDo) {
  const int leader = ElectLeader();
  ASSERT_NE(leader, 0);
  const int follower = leader == 1 ? 2 : 1;
  std::optional<Result<LeaderInfo>> r;
  node(follower).TransferLeader(NodeId{static_cast<uint64_t>(leader)}, [&](Result<LeaderInfo> x) { r = std::move(x); });
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(r->status().IsNotLeader());
  r.reset();
  node(leader).TransferLeader(NodeId{9}, [&](Result<LeaderInfo> x) { r = std::move(x); });
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(r->status().IsNotFound()) << r->status().ToString();
  r.reset();
  node(leader).TransferLeader(NodeId{static_cast<uint64_t>(leader)}, [&](Result<LeaderInfo> x) { r = std::move(x); });
  ASSERT_TRUE(r.has_value() && r->ok());
  EXPECT_EQ((*r)->leader, static_cast<uint64_t>(leader));
  // A target that never answers: the transfer times out and the old
  // leader leads on.
  down_.insert(follower);
  r.reset();
  node(leader).TransferLeader(NodeId{static_cast<uint64_t>(follower)}, [&](Result<LeaderInfo> x) { r = std::move(x); });
  ASSERT_TRUE(TickUntil([&] { return r.has_value(); }, 400));
  EXPECT_EQ(r->status().code(), StatusCode::kTimeout) << r->status().ToString();
  EXPECT_EQ(Leader(), leader);
}

TEST_F(NodeClusterTest, ReadEntryAndScanSeeAcknowledgedWrites) {
  const int leader = ElectLeader();
  ASSERT_NE(leader, 0);
  PutKeys(leader, 0, 12);
  const int follower = leader == 1 ? 2 : 1;
  std::optional<Result<KvEntry>> entry;
  node(follower).ReadEntry("k3", ReadConsistency::kLinearizable, [&](Result<KvEntry> r) { entry = std::move(r); });
  ASSERT_TRUE(TickUntil([&] { return entry.has_value(); }));
  ASSERT_TRUE(entry->ok());
  EXPECT_EQ((*entry)->value, "v3");
  EXPECT_GT((*entry)->revision, 0u);
  ScanRequest scan;
  scan.prefix = "k1";
  std::optional<Result<ScanResult>> page;
  node(follower).Scan(scan, ReadConsistency::kLinearizable, [&](Result<ScanResult> r) { page = std::move(r); });
  ASSERT_TRUE(TickUntil([&] { return page.has_value(); }));
  ASSERT_TRUE(page->ok());
  ASSERT_EQ((*page)->entries.size(), 3u);  // k1, k10, k11
  EXPECT_EQ((*page)->entries[1].key, "k10");
}

TEST_F(NodeClusterTest, BackupRestoredIntoANewClusterHasEveryKey) {
  const int leader = ElectLeader();
  ASSERT_NE(leader, 0);
  PutKeys(leader, 0, 40);
  const int follower = leader == 1 ? 2 : 1;
  std::optional<Result<Backup>> backup;
  std::optional<Result<Backup>> second;
  node(follower).TakeBackup([&](Result<Backup> r) { backup = std::move(r); });
  // One at a time: a second asked for while the first is built is refused.
  node(follower).TakeBackup([&](Result<Backup> r) { second = std::move(r); });
  // The barrier passes; the first is then built on a thread of its own.
  ASSERT_TRUE(TickUntil([&] { return second.has_value(); }));
  node(follower).WaitForBackup();
  ASSERT_TRUE(backup.has_value());
  ASSERT_TRUE(backup->ok()) << backup->status().ToString();
  EXPECT_TRUE(second->status().IsBusy()) << second->status().ToString();
  EXPECT_EQ(node(follower).metrics().backups_taken.value(), 1u);
  const uint64_t backup_index = (*backup)->applied_index;
  EXPECT_GE(backup_index, 40u);
  // Everything acknowledged before the backup is in it: a write after it
  // is not.
  PutKeys(leader, 100, 101);
  for (auto& [id, n] : nodes_) ASSERT_TRUE(n->Close().ok());
  nodes_.clear();

  // A new cluster of three, every member restored from the backup.
  RestoreOptions restore;
  restore.env = &env_;
  restore.cluster_id = 4242;
  for (int i = 1; i <= kNodes; ++i) restore.members[static_cast<uint64_t>(i)] = AddressOf(i + 10);
  for (int i = 1; i <= kNodes; ++i) {
    restore.id = NodeId{static_cast<uint64_t>(i)};
    auto summary = RestoreBackup((*backup)->data, "/restored" + std::to_string(i), restore);
    ASSERT_TRUE(summary.ok()) << summary.status().ToString();
    EXPECT_EQ(summary->index, backup_index);
  }
  // Into a directory that holds data: refused, nothing touched.
  restore.id = NodeId{1};
  EXPECT_EQ(RestoreBackup((*backup)->data, "/restored1", restore).status().code(), StatusCode::kInvalidArgument);
  // A damaged backup: refused.
  std::string damaged = (*backup)->data;
  damaged[damaged.size() / 2] ^= 1;
  EXPECT_TRUE(RestoreBackup(damaged, "/restored-bad", restore).status().IsCorruption());

  for (int i = 1; i <= kNodes; ++i) {
    NodeOptions o = Options(i);
    o.data_dir = "/restored" + std::to_string(i);
    o.initial_addresses.clear();
    auto n = Node::Open(o, &transports_[i]);
    ASSERT_TRUE(n.ok()) << n.status().ToString();
    nodes_[i] = std::move(*n);
    EXPECT_EQ(nodes_[i]->cluster_id(), 4242u);
    EXPECT_EQ(nodes_[i]->state_machine().members().at(2).peer, AddressOf(12).peer);
  }
  const int new_leader = ElectLeader();
  ASSERT_NE(new_leader, 0);
  for (int i = 0; i < 40; ++i) {
    auto read = Get(1 + i % kNodes, "k" + std::to_string(i));
    ASSERT_TRUE(TickUntil([&] { return read->result.has_value(); }));
    ASSERT_TRUE(read->result->ok()) << i << ": " << read->result->status().ToString();
    EXPECT_EQ(read->result->value(), "v" + std::to_string(i));
  }
  auto after = Get(new_leader, "k100");
  ASSERT_TRUE(TickUntil([&] { return after->result.has_value(); }));
  EXPECT_TRUE(after->result->status().IsNotFound());
  // The new cluster's log goes on after the backup: revisions keep growing.
  auto w = Put(new_leader, "fresh", "1");
  ASSERT_TRUE(TickUntil([&] { return w->result.has_value(); }));
  ASSERT_TRUE(w->result->ok());
  EXPECT_EQ((*w->result)->code, CommandResult::Code::kOk) << CommandResultCodeName((*w->result)->code);
  EXPECT_GT((*w->result)->revision, backup_index);
  EXPECT_EQ(node(new_leader).state_machine().session_count(), 1u);  // the old cluster's are gone
}

}  // namespace
}  // namespace rkv
