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
#include "transport/transport.h"
#include "wal/wal.h"

namespace rkv {
namespace {

class QueueTransport final : public transport::Transport {
 public:
  void Send(raft::Message m) override { queue.push_back(std::move(m)); }
  void AddPeer(NodeId, std::string) override {}
  void RemovePeer(NodeId) override {}
  std::deque<raft::Message> queue;
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
    return o;
  }

  void Open(int id) {
    auto node = Node::Open(Options(id), &transports_[id]);
    ASSERT_TRUE(node.ok()) << node.status().ToString();
    nodes_[id] = std::move(*node);
  }

  Node& node(int id) { return *nodes_.at(id); }

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

  // Ticks until `done` holds (at most `ticks`).
  template <typename Pred>
  bool TickUntil(Pred done, int ticks = 200,
                 const std::function<bool(const raft::Message&)>& drop = nullptr) {
    Settle(drop);
    for (int i = 0; i < ticks && !done(); ++i) Tick(1, drop);
    return done();
  }

  uint64_t compact_every_entries_ = 10'000;
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
  for (int i = 0; i < 20; ++i) {
    auto w = Put(leader, "k" + std::to_string(i), "v" + std::to_string(i));
    ASSERT_TRUE(TickUntil([&] { return w->result.has_value(); }));
  }
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
  // Reopen every node with frequent compaction.
  for (auto& [id, n] : nodes_) ASSERT_TRUE(n->Close().ok());
  nodes_.clear();
  compact_every_entries_ = 50;
  for (int i = 1; i <= kNodes; ++i) Open(i);
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

}  // namespace
}  // namespace rkv
