// Randomized cluster runs: a short, seeded stand-in for the simulator.
// Five servers under message loss, duplication and reordering, partitions,
// crash-restarts, log compaction, leadership transfers and reads. After
// every step the harness checks Election Safety, Log Matching, Leader
// Completeness and State Machine Safety (Figure 3), plus each node's own
// invariants; at the end, with faults healed, the cluster must elect a
// leader and every server must apply the same commands (liveness).
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <map>
#include <set>

#include "common/random.h"
#include "support/test_util.h"
#include "unit/raft/raft_harness.h"

namespace rkv::raft::test {
namespace {

void RunRandomCluster(uint64_t seed) {
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  // Seeds rotate through three setups: the defaults, lease reads, and
  // PreVote off.
  Network net({1, 2, 3, 4, 5}, {},
              [seed](RaftConfig* c) {
                c->max_bytes_per_message = 200;
                c->max_inflight_messages = 4;
                c->snapshot_chunk_bytes = 16;
                if (seed % 3 == 1) c->read_mode = ReadMode::kLease;
                if (seed % 3 == 2) c->pre_vote = false;
              },
              seed);
  // Node 6 starts outside the cluster; it joins as a learner, is promoted,
  // and node 5 is removed, while everything else goes on.
  net.AddNode(6, MakeConfiguration({1, 2, 3, 4, 5}));
  Random random(seed);
  net.SetRandomFaults(seed * 7 + 1, 0.1, 0.05, true);
  uint64_t proposals = 0;
  uint64_t read_id = 0;
  std::map<uint64_t, LogIndex> read_floor;  // read id -> lowest acceptable read index
  for (int step = 0; step < 300 && !::testing::Test::HasFailure(); ++step) {
    // Usually let the network settle after each tick; sometimes act in the
    // middle of an exchange (an election half done, a commit not yet known).
    if (random.OneIn(3)) {
      net.TickAll(1);
      net.DeliverSome(random.Uniform(20));
    } else {
      net.TickAndStabilize(1);
    }
    const std::vector<uint64_t> leaders = net.LeaderIds();
    const uint64_t any = random.Range(1, 6);
    const uint64_t action = random.Uniform(100);
    if (action < 35) {
      if (!leaders.empty()) {
        RaftNode& leader = net.node(leaders.back());
        if (leader.Propose("c" + std::to_string(proposals)).ok()) ++proposals;
      }
    } else if (action < 39) {
      net.Isolate(any);
    } else if (action < 45) {
      net.Heal();
    } else if (action < 47) {
      net.Restart(any);
    } else if (action < 48) {
      // Propose, then crash the leader before its write completes: its
      // appends may already be out, but it must not have counted itself.
      if (!leaders.empty()) {
        RaftNode& leader = net.node(leaders.back());
        if (leader.Propose("c" + std::to_string(proposals)).ok()) ++proposals;
        net.CrashDuringReady(leaders.back());
      }
    } else if (action < 53) {
      net.Compact(any);
    } else if (action < 55) {
      if (!leaders.empty()) (void)net.node(leaders.back()).TransferLeadership(NodeId{any});
    } else if (action < 65) {
      // A linearizable read must see every write committed before it was
      // issued: its read index must be at least the highest commit index
      // any server knows now. Every server is asked at once.
      LogIndex committed_now;
      for (uint64_t id = 1; id <= 6; ++id) {
        committed_now = std::max(committed_now, net.node(id).commit_index());
      }
      for (uint64_t id = 1; id <= 6; ++id) {
        ++read_id;
        if (net.node(id).ReadIndex(read_id).ok()) read_floor[read_id] = committed_now;
      }
    } else if (action < 68) {
      if (!leaders.empty()) {
        RaftNode& leader = net.node(leaders.back());
        const Configuration& c = leader.configuration();
        ConfChange change{ConfChangeType::kAddLearner, NodeId{6}, ""};
        if (c.IsLearner(NodeId{6})) change = {ConfChangeType::kPromoteLearner, NodeId{6}, ""};
        if (c.IsVoter(NodeId{6})) change = {ConfChangeType::kRemoveNode, NodeId{5}, ""};
        // Finally a learner that never starts (a member that is down).
        if (!c.IsMember(NodeId{5})) change = {ConfChangeType::kAddLearner, NodeId{9}, ""};
        (void)leader.ProposeConfChange(change);
      }
    }
    if (random.OneIn(20)) net.CrashDuringReady(any);
    net.Stabilize();
  }
  // Liveness: with the faults gone, a leader emerges and everyone catches up.
  net.Heal();
  net.ClearRandomFaults();
  bool converged = false;
  for (int tick = 0; tick < 300 && !converged; ++tick) {
    net.TickAndStabilize(1);
    const std::vector<uint64_t> leaders = net.LeaderIds();
    if (leaders.size() != 1) continue;
    const RaftNode& leader = net.node(leaders[0]);
    converged = leader.commit_index() == leader.last_index();
    for (NodeId member : leader.configuration().voters) {
      const uint64_t id = member.value();
      converged = converged && net.node(id).applied_index() == leader.commit_index() &&
                  net.applied_commands(id) == net.applied_commands(leaders[0]);
    }
  }
  EXPECT_TRUE(converged);
  if (!converged) {
    for (uint64_t id = 1; id <= 6; ++id) {
      const RaftNode& n = net.node(id);
      std::fprintf(stderr,
                   "node %lu role %s term %lu leader %lu commit %lu applied %lu last %lu first %lu "
                   "voters %zu learners %zu voter? %d\n",
                   static_cast<unsigned long>(id), std::string(RoleName(n.role())).c_str(),
                   static_cast<unsigned long>(n.current_term().value()),
                   static_cast<unsigned long>(n.leader_id().value()),
                   static_cast<unsigned long>(n.commit_index().value()),
                   static_cast<unsigned long>(n.applied_index().value()),
                   static_cast<unsigned long>(n.last_index().value()),
                   static_cast<unsigned long>(n.log().FirstIndex().value()),
                   n.configuration().voters.size(), n.configuration().learners.size(),
                   n.configuration().IsVoter(NodeId{id}) ? 1 : 0);
      if (n.role() == Role::kLeader) {
        for (uint64_t p = 1; p <= 6; ++p) {
          if (!n.configuration().IsMember(NodeId{p}) || p == id) continue;
          const Progress& pr = n.progress(NodeId{p});
          std::fprintf(stderr, "  progress %lu %s match %lu next %lu inflight %zu snap %lu off %lu\n",
                       static_cast<unsigned long>(p), std::string(ProgressStateName(pr.state)).c_str(),
                       static_cast<unsigned long>(pr.match_index.value()),
                       static_cast<unsigned long>(pr.next_index.value()), pr.inflights.count(),
                       static_cast<unsigned long>(pr.pending_snapshot_index.value()),
                       static_cast<unsigned long>(pr.snapshot_offset));
        }
      }
    }
    const size_t n = net.trace().size();
    for (size_t i = n > 30 ? n - 30 : 0; i < n; ++i) {
      std::fprintf(stderr, "%s\n", DescribeMessage(net.trace()[i]).c_str());
    }
  }
  // (A duplicated request or answer may serve a read twice; callers match
  // answers to pending requests by id.)
  std::set<uint64_t> served;
  for (uint64_t id = 1; id <= 6; ++id) {
    for (const ReadState& read : net.read_states(id)) {
      auto it = read_floor.find(read.request_id);
      ASSERT_NE(it, read_floor.end()) << "unknown read " << read.request_id;
      EXPECT_GE(read.index, it->second) << "stale read " << read.request_id << " at node " << id;
      served.insert(read.request_id);
    }
  }
  const size_t reads_served = served.size();
  if (std::getenv("RKV_RAFT_VERBOSE") != nullptr) {
    size_t snapshots = 0;
    std::set<uint64_t> terms;
    for (const Message& m : net.trace()) {
      if (std::holds_alternative<InstallSnapshotRequest>(m.body)) ++snapshots;
      terms.insert(m.term.value());
    }
    std::fprintf(stderr,
                 "seed %lu: proposals %lu applied %zu snapshot chunks %zu terms %zu reads %zu/%zu\n",
                 static_cast<unsigned long>(seed), static_cast<unsigned long>(proposals),
                 net.applied_commands(1).size(), snapshots, terms.size(), reads_served,
                 read_floor.size());
    const std::vector<uint64_t> leaders = net.LeaderIds();
    if (!leaders.empty()) {
      const Configuration& c = net.node(leaders[0]).configuration();
      std::fprintf(stderr, "  voters %zu learners %zu 6-voter %d\n", c.voters.size(),
                   c.learners.size(), c.IsVoter(NodeId{6}) ? 1 : 0);
    }
  }
  if (converged) {
    const std::vector<uint64_t> leaders = net.LeaderIds();
    // Every command the cluster applied was proposed, each at most once.
    std::set<std::string> unique(net.applied_commands(leaders[0]).begin(),
                                 net.applied_commands(leaders[0]).end());
    EXPECT_EQ(unique.size(), net.applied_commands(leaders[0]).size());
    EXPECT_LE(unique.size(), proposals);
  }
}

// RKV_RAFT_SEEDS=N runs seeds 1..N instead of the default 200;
// RKV_TEST_SEED=S runs only seed S (to replay a failure).
TEST(RaftRandomTest, SafetyAndLivenessUnderFaults) {
  if (std::getenv("RKV_TEST_SEED") != nullptr) {
    RunRandomCluster(rkv::test::TestSeed(1));
    return;
  }
  const char* seeds = std::getenv("RKV_RAFT_SEEDS");
  const uint64_t count = seeds != nullptr ? std::strtoull(seeds, nullptr, 10) : 200;
  for (uint64_t seed = 1; seed <= count && !::testing::Test::HasFailure(); ++seed) {
    RunRandomCluster(seed);
  }
}

}  // namespace
}  // namespace rkv::raft::test
