// Scenario tests beyond the core of the paper: PreVote and CheckQuorum (§9.6,
// dissertation §4.2.3 and §6.2), ReadIndex and lease reads (§6.4),
// membership changes (§6, dissertation §4.1), log compaction and snapshots
// (§7), leadership transfer (dissertation §3.10), limits, the Ready
// contract, malformed input and determinism.
#include <gtest/gtest.h>

#include "unit/raft/raft_harness.h"
#include "unit/raft/raft_test_util.h"

namespace rkv::raft::test {
namespace {

void NoPreVote(RaftConfig* c) { c->pre_vote = false; }

// Elects `id` in a fresh network and lets everything settle.
void Elect(Network& net, uint64_t id) {
  for (int attempt = 0; attempt < 3 && net.node(id).role() != Role::kLeader; ++attempt) {
    net.Campaign(id);
  }
  ASSERT_EQ(net.node(id).role(), Role::kLeader);
}

// ---------------------------------------------------------------------------
// PreVote, CheckQuorum, disruptive servers.

// §9.6: "a candidate would first ask other servers whether its log was
// up-to-date enough to get their vote. Only if the candidate believed it
// could get votes from a majority of the cluster would it increment its
// term and start a normal election." A partitioned server therefore does not
// inflate its term, and does not disrupt the leader when it rejoins.
TEST(RaftTest, Section9_6_PartitionedNodeRejoiningWithPreVoteDoesNotDisruptLeader) {
  Network net({1, 2, 3});
  Elect(net, 1);
  const Term term = net.node(1).current_term();
  net.Isolate(3);
  net.TickAndStabilize(100);  // many election timeouts for node 3
  EXPECT_EQ(net.node(3).current_term(), term);
  EXPECT_NE(net.node(3).role(), Role::kLeader);
  net.Heal();
  net.TickAndStabilize(30);
  EXPECT_EQ(net.LeaderIds(), std::vector<uint64_t>{1});
  EXPECT_EQ(net.node(1).current_term(), term);
  EXPECT_EQ(net.node(3).leader_id(), NodeId{1});
}

// The contrast: without PreVote the isolated server's term runs ahead, and
// when it rejoins the leader learns the newer term and must step down.
TEST(RaftTest, Section9_6_WithoutPreVoteRejoiningNodeDisruptsLeader) {
  Network net({1, 2, 3}, {}, NoPreVote);
  Elect(net, 1);
  const Term term = net.node(1).current_term();
  net.Isolate(3);
  net.TickAndStabilize(100);
  EXPECT_GT(net.node(3).current_term(), term);
  net.Heal();
  net.TickAndStabilize(1);
  EXPECT_GT(net.node(1).current_term(), term);
}

// §9.6: a pre-vote changes neither side's term or vote.
TEST(RaftTest, Section9_6_PreVoteChangesNoTermOrVote) {
  SoloNode solo(1, {1, 2, 3}, {1}, 1);
  std::vector<Message> sent =
      solo.Deliver(2, 2, RequestVoteRequest{LogIndex{1}, Term{1}, /*pre_vote=*/true, false});
  auto responses = OfType<RequestVoteResponse>(sent);
  ASSERT_EQ(responses.size(), 1u);
  EXPECT_TRUE(responses[0].second.vote_granted);
  EXPECT_TRUE(responses[0].second.pre_vote);
  EXPECT_EQ(responses[0].first.term, Term{2});
  EXPECT_EQ(solo.node().current_term(), Term{1});
  EXPECT_EQ(solo.node().voted_for(), kNoNode);

  // The pre-candidate side: its term stays until a majority would vote.
  SoloNode candidate(1, {1, 2, 3}, {1}, 1);
  candidate.node().Campaign();
  EXPECT_EQ(candidate.node().role(), Role::kPreCandidate);
  EXPECT_EQ(candidate.node().current_term(), Term{1});
  candidate.Drain();
  candidate.Deliver(2, 2, RequestVoteResponse{true, true});
  EXPECT_EQ(candidate.node().role(), Role::kCandidate);
  EXPECT_EQ(candidate.node().current_term(), Term{2});
}

// Dissertation §4.2.3: "if a server receives a RequestVote request within
// the minimum election timeout of hearing from a current leader, it does not
// update its term or grant its vote." Leadership transfer is exempt.
TEST(RaftTest, Section4_2_3_IgnoreRequestVoteWhileLeaderIsLive) {
  for (bool transfer : {false, true}) {
    SCOPED_TRACE(transfer);
    SoloNode solo(1, {1, 2, 3}, {1}, 1);
    solo.Deliver(2, 1, HeartbeatRequest{LogIndex{0}, 0});
    std::vector<Message> sent =
        solo.Deliver(3, 2, RequestVoteRequest{LogIndex{1}, Term{1}, false, transfer});
    if (transfer) {
      EXPECT_EQ(solo.node().current_term(), Term{2});
      EXPECT_EQ(solo.node().voted_for(), NodeId{3});
    } else {
      EXPECT_TRUE(sent.empty());
      EXPECT_EQ(solo.node().current_term(), Term{1});
      EXPECT_EQ(solo.node().leader_id(), NodeId{2});
    }
  }
  // After an election timeout without the leader, votes are considered.
  SoloNode solo(1, {1, 2, 3}, {1}, 1, NoPreVote);
  solo.Deliver(2, 1, HeartbeatRequest{LogIndex{0}, 0});
  for (int i = 0; i < 10; ++i) {
    solo.node().Tick();
    if (solo.node().role() != Role::kFollower) break;
  }
  solo.Drain();
  solo.Deliver(3, 5, RequestVoteRequest{LogIndex{1}, Term{1}, false, false});
  EXPECT_EQ(solo.node().current_term(), Term{5});
}

// Dissertation §6.2 (CheckQuorum): "a leader steps down if an election
// timeout elapses without a successful round of heartbeats to a majority of
// its cluster". The majority side elects a new leader.
TEST(RaftTest, CheckQuorum_PartitionedLeaderStepsDown) {
  Network net({1, 2, 3});
  Elect(net, 1);
  const Term term = net.node(1).current_term();
  net.Isolate(1);
  // The check runs once per election timeout over the activity seen since
  // the previous check, so the leader steps down within two timeouts.
  net.TickAndStabilize(20);
  EXPECT_EQ(net.node(1).role(), Role::kFollower);
  EXPECT_EQ(net.node(1).current_term(), term);
  net.TickAndStabilize(40);
  std::vector<uint64_t> leaders = net.LeaderIds();
  ASSERT_EQ(leaders.size(), 1u);
  EXPECT_NE(leaders[0], 1u);
  // Proposals on the deposed leader are refused, not silently queued.
  EXPECT_EQ(net.node(1).Propose("x").status().code(), StatusCode::kNotLeader);
}

TEST(RaftTest, CheckQuorum_ConnectedLeaderStaysLeader) {
  Network net({1, 2, 3});
  Elect(net, 1);
  net.Isolate(3);
  net.TickAndStabilize(50);
  EXPECT_EQ(net.node(1).role(), Role::kLeader);
}

// ---------------------------------------------------------------------------
// ReadIndex (dissertation §6.4).

// §6.4 step 1: "If the leader has not yet marked an entry from its current
// term committed, it waits until it has done so." Then one heartbeat round
// confirms leadership (steps 2-3).
TEST(RaftTest, Section6_4_ReadIndexInNewTermWaitsForNoOp) {
  SoloNode solo(1, {1, 2, 3}, {1, 1}, 1);
  solo.MakeLeader();
  const uint64_t term = solo.node().current_term().value();
  ASSERT_TRUE(solo.node().ReadIndex(7).ok());
  std::vector<Message> sent = solo.Drain();
  EXPECT_TRUE(solo.read_states().empty());
  EXPECT_EQ(CountOf<HeartbeatRequest>(sent), 0u);  // no round before the no-op commits
  // The no-op (index 3) commits; now the heartbeat round starts.
  sent = solo.Deliver(2, term, AppendEntriesResponse{true, LogIndex{3}, {}, {}, {}});
  EXPECT_EQ(solo.node().commit_index(), LogIndex{3});
  EXPECT_TRUE(solo.read_states().empty());
  auto heartbeats = OfType<HeartbeatRequest>(sent);
  ASSERT_EQ(heartbeats.size(), 2u);
  const uint64_t round = heartbeats[0].second.read_round;
  EXPECT_GT(round, 0u);
  solo.Deliver(3, term, HeartbeatResponse{round});
  ASSERT_EQ(solo.read_states().size(), 1u);
  EXPECT_EQ(solo.read_states()[0], (ReadState{7, LogIndex{3}}));
}

// One heartbeat round serves every read pending when it starts; reads that
// arrive while it is in flight share the next round.
TEST(RaftTest, Section6_4_ReadsShareOneHeartbeatRound) {
  SoloNode solo(1, {1, 2, 3});
  solo.MakeLeader();
  const uint64_t term = solo.node().current_term().value();
  solo.Deliver(2, term, AppendEntriesResponse{true, LogIndex{1}, {}, {}, {}});
  ASSERT_TRUE(solo.node().ReadIndex(1).ok());
  ASSERT_TRUE(solo.node().ReadIndex(2).ok());
  std::vector<Message> sent = solo.Drain();
  auto heartbeats = OfType<HeartbeatRequest>(sent);
  ASSERT_EQ(heartbeats.size(), 2u);  // one round: one heartbeat per follower
  const uint64_t round = heartbeats[0].second.read_round;
  ASSERT_TRUE(solo.node().ReadIndex(3).ok());
  sent = solo.Drain();
  EXPECT_EQ(CountOf<HeartbeatRequest>(sent), 0u);  // waits for the round in flight
  sent = solo.Deliver(2, term, HeartbeatResponse{round});
  ASSERT_EQ(solo.read_states().size(), 2u);
  EXPECT_EQ(solo.read_states()[0].request_id, 1u);
  EXPECT_EQ(solo.read_states()[1].request_id, 2u);
  // The next round starts at once for read 3.
  heartbeats = OfType<HeartbeatRequest>(sent);
  ASSERT_EQ(heartbeats.size(), 2u);
  EXPECT_EQ(heartbeats[0].second.read_round, round + 1);
  solo.Deliver(3, term, HeartbeatResponse{round + 1});
  ASSERT_EQ(solo.read_states().size(), 3u);
  EXPECT_EQ(solo.read_states()[2].request_id, 3u);
}

// A stale acknowledgement (from an earlier round) confirms nothing new.
TEST(RaftTest, Section6_4_ReadNeedsAcknowledgementOfItsOwnRound) {
  SoloNode solo(1, {1, 2, 3});
  solo.MakeLeader();
  const uint64_t term = solo.node().current_term().value();
  solo.Deliver(2, term, AppendEntriesResponse{true, LogIndex{1}, {}, {}, {}});
  ASSERT_TRUE(solo.node().ReadIndex(1).ok());
  solo.Drain();
  solo.Deliver(2, term, HeartbeatResponse{0});
  EXPECT_TRUE(solo.read_states().empty());
}

// §6.4: "followers could ... request the current readIndex from the
// leader"; the follower then serves the read once it has applied that far.
TEST(RaftTest, Section6_4_ReadIndexThroughFollower) {
  Network net({1, 2, 3});
  EXPECT_EQ(net.node(2).ReadIndex(1).code(), StatusCode::kNotLeader);  // no leader known
  Elect(net, 1);
  net.Propose(1, "x");
  ASSERT_TRUE(net.node(1).ReadIndex(1).ok());
  ASSERT_TRUE(net.node(2).ReadIndex(2).ok());
  net.Stabilize();
  ASSERT_EQ(net.read_states(1).size(), 1u);
  EXPECT_EQ(net.read_states(1)[0], (ReadState{1, net.node(1).commit_index()}));
  ASSERT_EQ(net.read_states(2).size(), 1u);
  EXPECT_EQ(net.read_states(2)[0], (ReadState{2, net.node(1).commit_index()}));
  EXPECT_GE(net.node(2).applied_index(), net.read_states(2)[0].index);
  // A follower cut off from the leader gets no answer (its caller times out).
  net.Cut(1, 3);
  ASSERT_TRUE(net.node(3).ReadIndex(3).ok());
  net.Stabilize();
  EXPECT_TRUE(net.read_states(3).empty());
}

// §6.4.1: lease reads skip the heartbeat round while the lease from an
// acknowledged round holds; they require CheckQuorum.
TEST(RaftTest, Section6_4_1_LeaseReads) {
  MemoryLogStorage storage(MakeConfiguration({1, 2, 3}));
  RaftConfig bad;
  bad.id = NodeId{1};
  bad.read_mode = ReadMode::kLease;
  bad.check_quorum = false;
  EXPECT_TRUE(RaftNode::Create(bad, &storage, Random(1)).status().IsInvalidArgument());

  auto lease = [](RaftConfig* c) { c->read_mode = ReadMode::kLease; };
  SoloNode solo(1, {1, 2, 3}, {}, 0, lease);
  solo.MakeLeader();
  const uint64_t term = solo.node().current_term().value();
  solo.Deliver(2, term, AppendEntriesResponse{true, LogIndex{1}, {}, {}, {}});
  // No acknowledged round yet: the read takes the ReadIndex path.
  ASSERT_TRUE(solo.node().ReadIndex(1).ok());
  auto heartbeats = OfType<HeartbeatRequest>(solo.Drain());
  ASSERT_EQ(heartbeats.size(), 2u);
  EXPECT_TRUE(solo.read_states().empty());
  solo.Deliver(2, term, HeartbeatResponse{heartbeats[0].second.read_round});
  ASSERT_EQ(solo.read_states().size(), 1u);
  // The acknowledged round started a lease: reads are answered at once.
  ASSERT_TRUE(solo.node().ReadIndex(2).ok());
  EXPECT_EQ(CountOf<HeartbeatRequest>(solo.Drain()), 0u);
  ASSERT_EQ(solo.read_states().size(), 2u);
  EXPECT_EQ(solo.read_states()[1], (ReadState{2, LogIndex{1}}));
  // A read that does not accept a lease takes a round all the same.
  ASSERT_TRUE(solo.node().ReadIndex(20, /*use_lease=*/false).ok());
  EXPECT_EQ(CountOf<HeartbeatRequest>(solo.Drain()), 2u);
  EXPECT_EQ(solo.read_states().size(), 2u);
  // Without further acknowledgements the lease runs out one tick before a
  // minimum election timeout since the round was sent (a follower's ticks
  // may run up to one period ahead of ours).
  for (int i = 0; i < 8; ++i) solo.node().Tick();
  solo.Drain();
  ASSERT_TRUE(solo.node().ReadIndex(30).ok());
  EXPECT_EQ(CountOf<HeartbeatRequest>(solo.Drain()), 0u);
  ASSERT_EQ(solo.read_states().size(), 3u);
  solo.node().Tick();
  solo.Drain();
  ASSERT_TRUE(solo.node().ReadIndex(31).ok());
  solo.Drain();
  EXPECT_EQ(solo.read_states().size(), 3u);  // waits for a round now
  solo.node().Tick();
  solo.Drain();
  ASSERT_EQ(solo.node().role(), Role::kLeader);
  ASSERT_TRUE(solo.node().ReadIndex(3).ok());
  solo.Drain();
  EXPECT_EQ(solo.read_states().size(), 3u);

  // A leader that sent TimeoutNow no longer trusts its lease.
  SoloNode transfer(1, {1, 2, 3}, {}, 0, lease);
  transfer.MakeLeader();
  const uint64_t t2 = transfer.node().current_term().value();
  transfer.Deliver(2, t2, AppendEntriesResponse{true, LogIndex{1}, {}, {}, {}});
  transfer.node().Tick();
  auto round = OfType<HeartbeatRequest>(transfer.Drain());
  ASSERT_FALSE(round.empty());
  transfer.Deliver(2, t2, HeartbeatResponse{round[0].second.read_round});
  ASSERT_TRUE(transfer.node().TransferLeadership(NodeId{2}).ok());
  EXPECT_EQ(CountOf<TimeoutNowRequest>(transfer.Drain()), 1u);
  ASSERT_TRUE(transfer.node().ReadIndex(9).ok());
  transfer.Drain();
  EXPECT_TRUE(transfer.read_states().empty());
}

// A follower hands its clients' commands to the leader (ProposeRequest),
// which appends them; a follower without a leader, and a leader, refuse.
TEST(RaftTest, FollowerForwardsProposalsToTheLeader) {
  Network net({1, 2, 3});
  net.Campaign(1);
  ASSERT_EQ(net.node(1).role(), Role::kLeader);
  EXPECT_TRUE(net.node(1).Forward({"x"}).IsNotLeader());
  const LogIndex before = net.node(1).last_index();
  ASSERT_TRUE(net.node(2).Forward({"a", "b"}).ok());
  net.Stabilize();
  EXPECT_EQ(net.node(1).last_index(), before + 2);
  for (uint64_t id : {uint64_t{1}, uint64_t{2}, uint64_t{3}}) {
    const auto& commands = net.applied_commands(id);
    ASSERT_GE(commands.size(), 2u) << id;
    EXPECT_EQ(commands[commands.size() - 2], "a") << id;
    EXPECT_EQ(commands.back(), "b") << id;
  }
  // A forward lost on the way changes nothing; the caller retries.
  net.DropIf([](const Message& m) { return std::holds_alternative<ProposeRequest>(m.body); });
  ASSERT_TRUE(net.node(3).Forward({"lost"}).ok());
  net.Stabilize();
  EXPECT_EQ(net.node(1).last_index(), before + 2);

  SoloNode lonely(1, {1, 2, 3});
  EXPECT_TRUE(lonely.node().Forward({"x"}).IsNotLeader());
}

// With lease reads, a freshly (re)started server withholds its vote for one
// election timeout: it may have acknowledged a lease round just before.
TEST(RaftTest, Section6_4_1_RestartedServerWithholdsVoteInLeaseMode) {
  SoloNode solo(1, {1, 2, 3}, {}, 0, [](RaftConfig* c) { c->read_mode = ReadMode::kLease; });
  std::vector<Message> sent = solo.Deliver(2, 1, RequestVoteRequest{LogIndex{0}, Term{0}, false, false});
  EXPECT_TRUE(sent.empty());
  EXPECT_EQ(solo.node().current_term(), Term{0});
}

// ---------------------------------------------------------------------------
// Membership changes (§6; dissertation §4.1, single-server changes).

ConfChange Change(ConfChangeType type, uint64_t id) { return ConfChange{type, NodeId{id}, ""}; }

void ProposeChange(Network& net, uint64_t leader, ConfChange change) {
  net.Stabilize();
  Result<LogIndex> index = net.node(leader).ProposeConfChange(change);
  ASSERT_TRUE(index.ok()) << index.status().ToString();
  net.Stabilize();
}

TEST(RaftTest, Section6_AddLearnerThenPromote) {
  Network net({1, 2, 3});
  Elect(net, 1);
  net.Propose(1, "before");
  net.AddNode(4, MakeConfiguration({1, 2, 3}));
  ProposeChange(net, 1, Change(ConfChangeType::kAddLearner, 4));
  EXPECT_EQ(net.node(1).configuration(), MakeConfiguration({1, 2, 3}, {4}));
  net.Propose(1, "after");
  EXPECT_EQ(net.applied_commands(4), (std::vector<std::string>{"before", "after"}));
  EXPECT_EQ(net.node(4).configuration(), MakeConfiguration({1, 2, 3}, {4}));
  // A learner never campaigns.
  net.node(4).Campaign();
  EXPECT_EQ(net.node(4).role(), Role::kFollower);
  // Learners do not count toward commitment.
  net.Isolate(2);
  net.Isolate(3);
  const LogIndex index = net.Propose(1, "no quorum");
  EXPECT_LT(net.node(1).commit_index(), index);
  net.Heal();
  net.TickAndStabilize(2);
  ProposeChange(net, 1, Change(ConfChangeType::kPromoteLearner, 4));
  EXPECT_EQ(net.node(1).configuration(), MakeConfiguration({1, 2, 3, 4}));
  EXPECT_EQ(net.node(4).configuration(), MakeConfiguration({1, 2, 3, 4}));
  // Four voters: two are no longer a majority.
  net.Isolate(3);
  net.Isolate(4);
  const LogIndex second = net.Propose(1, "two of four");
  EXPECT_LT(net.node(1).commit_index(), second);
}

TEST(RaftTest, Section6_AddVoterAndRemoveFollower) {
  Network net({1, 2, 3});
  Elect(net, 1);
  net.AddNode(4, MakeConfiguration({1, 2, 3}));
  ProposeChange(net, 1, Change(ConfChangeType::kAddVoter, 4));
  for (uint64_t id : std::vector<uint64_t>{1, 2, 3, 4}) {
    EXPECT_EQ(net.node(id).configuration(), MakeConfiguration({1, 2, 3, 4})) << id;
  }
  ProposeChange(net, 1, Change(ConfChangeType::kRemoveNode, 3));
  EXPECT_EQ(net.node(1).configuration(), MakeConfiguration({1, 2, 4}));
  // With 3 gone, {1, 2} of {1, 2, 4} is a majority.
  net.Isolate(3);
  net.Isolate(4);
  const LogIndex index = net.Propose(1, "x");
  EXPECT_EQ(net.node(1).commit_index(), index);
}

// Dissertation §4.2.2: a leader removed from the configuration manages the
// cluster until the change commits, then steps down; the others elect a new
// leader.
TEST(RaftTest, Section6_RemovedLeaderStepsDownAfterCommit) {
  Network net({1, 2, 3});
  Elect(net, 1);
  ProposeChange(net, 1, Change(ConfChangeType::kRemoveNode, 1));
  EXPECT_EQ(net.node(1).role(), Role::kFollower);
  EXPECT_EQ(net.node(2).configuration(), MakeConfiguration({2, 3}));
  net.node(1).Campaign();  // not a voter any more: no effect
  EXPECT_EQ(net.node(1).role(), Role::kFollower);
  net.Isolate(1);
  net.TickAndStabilize(50);
  std::vector<uint64_t> leaders = net.LeaderIds();
  ASSERT_EQ(leaders.size(), 1u);
  EXPECT_NE(leaders[0], 1u);
  net.Propose(leaders[0], "y");
  EXPECT_EQ(net.applied_commands(2), std::vector<std::string>{"y"});
}

// Trap 5 (single-server change bug): one change at a time, and none before
// the leader committed an entry of its own term.
TEST(RaftTest, Section6_ConfChangeWhilePendingIsRefused) {
  SoloNode solo(1, {1, 2, 3});
  solo.MakeLeader();
  const uint64_t term = solo.node().current_term().value();
  // The no-op is not committed yet.
  EXPECT_TRUE(solo.node().ProposeConfChange(Change(ConfChangeType::kAddVoter, 4)).status().IsBusy());
  solo.Deliver(2, term, AppendEntriesResponse{true, LogIndex{1}, {}, {}, {}});
  ASSERT_EQ(solo.node().applied_index(), LogIndex{1});
  Result<LogIndex> first = solo.node().ProposeConfChange(Change(ConfChangeType::kAddVoter, 4));
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  solo.Drain();
  EXPECT_TRUE(solo.node().ProposeConfChange(Change(ConfChangeType::kAddLearner, 5)).status().IsBusy());
  // Once the first change is committed and applied, the next is accepted.
  solo.Deliver(2, term, AppendEntriesResponse{true, *first, {}, {}, {}});
  EXPECT_EQ(solo.node().configuration(), MakeConfiguration({1, 2, 3, 4}));
  EXPECT_TRUE(solo.node().ProposeConfChange(Change(ConfChangeType::kAddLearner, 5)).ok());
}

TEST(RaftTest, Section6_InvalidConfChangesTable) {
  SoloNode solo(1, {1, 2, 3});
  solo.MakeLeader();
  solo.Deliver(2, solo.node().current_term().value(),
               AppendEntriesResponse{true, LogIndex{1}, {}, {}, {}});
  const ConfChange cases[] = {
      Change(ConfChangeType::kAddVoter, 2),        // already a voter
      Change(ConfChangeType::kAddLearner, 3),      // already a member
      Change(ConfChangeType::kPromoteLearner, 2),  // not a learner
      Change(ConfChangeType::kRemoveNode, 9),      // not a member
  };
  for (size_t i = 0; i < std::size(cases); ++i) {
    SCOPED_TRACE(i);
    EXPECT_TRUE(solo.node().ProposeConfChange(cases[i]).status().IsInvalidArgument());
  }
  SoloNode single(1, {1});
  single.MakeLeader();
  EXPECT_TRUE(
      single.node().ProposeConfChange(Change(ConfChangeType::kRemoveNode, 1)).status().IsInvalidArgument());
}

// ---------------------------------------------------------------------------
// Log compaction and snapshots (§7).

// §7: "the leader must occasionally send snapshots to followers that lag
// behind ... The leader uses a new RPC called InstallSnapshot". Sent in
// chunks; the snapshot carries the configuration.
TEST(RaftTest, Section7_LaggingFollowerCatchesUpFromChunkedSnapshot) {
  Network net({1, 2, 3}, {}, [](RaftConfig* c) { c->snapshot_chunk_bytes = 7; });
  Elect(net, 1);
  net.Isolate(3);
  std::vector<std::string> commands;
  for (int i = 0; i < 10; ++i) {
    commands.push_back("command-" + std::to_string(i));
    net.Propose(1, commands.back());
  }
  net.Compact(1);
  ASSERT_GT(net.storage(1).FirstIndex(), net.node(3).last_index() + 1);
  const size_t trace_mark = net.trace().size();
  net.Heal();
  net.TickAndStabilize(3);
  size_t chunks = 0;
  for (size_t i = trace_mark; i < net.trace().size(); ++i) {
    if (std::holds_alternative<InstallSnapshotRequest>(net.trace()[i].body)) ++chunks;
  }
  EXPECT_GT(chunks, 5u);
  EXPECT_EQ(net.applied_commands(3), commands);
  EXPECT_EQ(net.node(3).configuration(), MakeConfiguration({1, 2, 3}));
  EXPECT_EQ(net.node(3).last_index(), net.node(1).last_index());
  // Replication continues normally after the snapshot.
  net.Propose(1, "after");
  EXPECT_EQ(net.applied_commands(3).back(), "after");
}

// §7: "If the follower receives a snapshot that describes a prefix of its
// log ..., then log entries covered by the snapshot are deleted but entries
// following the snapshot are still valid and must be retained." Otherwise
// the follower discards its entire log.
TEST(RaftTest, Section7_SnapshotPrefixKeepsSuffixOtherwiseReplacesLog) {
  struct Case {
    uint64_t snapshot_index, snapshot_term;
    uint64_t want_last_index, want_commit;
    bool want_restored;
  };
  const Case cases[] = {
      {2, 1, 4, 2, false},  // a prefix of our log: keep entries 3 and 4
      {2, 2, 2, 2, true},   // conflicts at 2: the log is replaced
      {6, 2, 6, 6, true},   // beyond our log: replaced
  };
  for (size_t i = 0; i < std::size(cases); ++i) {
    SCOPED_TRACE(i);
    const Case& c = cases[i];
    SoloNode solo(1, {1, 2, 3}, {1, 1, 1, 1}, 2);
    const SnapshotMetadata metadata{LogIndex{c.snapshot_index}, Term{c.snapshot_term},
                                    MakeConfiguration({1, 2, 3, 4})};
    std::vector<Message> sent =
        solo.Deliver(2, 2, InstallSnapshotRequest{metadata, 0, EncodeState({"s"}), true});
    EXPECT_EQ(solo.node().last_index(), LogIndex{c.want_last_index});
    EXPECT_EQ(solo.node().commit_index(), LogIndex{c.want_commit});
    bool restored = false;
    for (const Ready& r : solo.readies()) restored |= r.snapshot.has_value();
    EXPECT_EQ(restored, c.want_restored);
    if (c.want_restored) {
      EXPECT_EQ(solo.node().configuration(), MakeConfiguration({1, 2, 3, 4}));
      EXPECT_EQ(solo.storage().FirstIndex(), LogIndex{c.snapshot_index + 1});
    }
    auto responses = OfType<InstallSnapshotResponse>(sent);
    ASSERT_EQ(responses.size(), 1u);
    EXPECT_TRUE(responses[0].second.done);
  }
}

// Chunks out of order are not accepted; the follower says what it holds.
TEST(RaftTest, Section7_SnapshotChunksMustArriveInOrder) {
  SoloNode solo(1, {1, 2, 3}, {}, 1);
  const SnapshotMetadata metadata{LogIndex{5}, Term{1}, MakeConfiguration({1, 2, 3})};
  std::vector<Message> sent = solo.Deliver(2, 1, InstallSnapshotRequest{metadata, 0, "abc", false});
  auto r = OfType<InstallSnapshotResponse>(sent);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].second.next_offset, 3u);
  // A duplicate of the first chunk does not throw away what arrived since.
  sent = solo.Deliver(2, 1, InstallSnapshotRequest{metadata, 0, "abc", false});
  r = OfType<InstallSnapshotResponse>(sent);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].second.next_offset, 3u);
  sent = solo.Deliver(2, 1, InstallSnapshotRequest{metadata, 5, "xyz", true});
  r = OfType<InstallSnapshotResponse>(sent);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].second.next_offset, 3u);
  EXPECT_FALSE(r[0].second.done);
  EXPECT_EQ(solo.node().last_index(), LogIndex{0});
  sent = solo.Deliver(2, 1, InstallSnapshotRequest{metadata, 3, "de", true});
  r = OfType<InstallSnapshotResponse>(sent);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_TRUE(r[0].second.done);
  EXPECT_EQ(solo.node().last_index(), LogIndex{5});
  EXPECT_EQ(solo.storage().GetSnapshot()->data, "abcde");
}

// ---------------------------------------------------------------------------
// Leadership transfer (dissertation §3.10).

TEST(RaftTest, Section3_10_TransferToCaughtUpFollower) {
  Network net({1, 2, 3});
  Elect(net, 1);
  const Term term = net.node(1).current_term();
  ASSERT_TRUE(net.node(1).TransferLeadership(NodeId{2}).ok());
  net.Stabilize();
  EXPECT_EQ(net.LeaderIds(), std::vector<uint64_t>{2});
  EXPECT_EQ(net.node(2).current_term(), NextTerm(term));
}

TEST(RaftTest, Section3_10_TransferWaitsForTargetToCatchUp) {
  Network net({1, 2, 3});
  Elect(net, 1);
  net.Isolate(3);
  net.Propose(1, "a");
  net.Propose(1, "b");
  net.Heal();
  ASSERT_LT(net.node(3).last_index(), net.node(1).last_index());
  ASSERT_TRUE(net.node(1).TransferLeadership(NodeId{3}).ok());
  net.Stabilize();
  EXPECT_EQ(net.LeaderIds(), std::vector<uint64_t>{3});
  EXPECT_EQ(net.applied_commands(3), (std::vector<std::string>{"a", "b"}));
}

TEST(RaftTest, Section3_10_ProposalsRefusedDuringTransferUntilItTimesOut) {
  Network net({1, 2, 3});
  Elect(net, 1);
  net.DropIf([](const Message& m) { return std::holds_alternative<TimeoutNowRequest>(m.body); });
  ASSERT_TRUE(net.node(1).TransferLeadership(NodeId{2}).ok());
  net.Stabilize();
  EXPECT_EQ(net.node(1).lead_transferee(), NodeId{2});
  EXPECT_TRUE(net.node(1).Propose("x").status().IsBusy());
  EXPECT_TRUE(net.node(1).TransferLeadership(NodeId{9}).IsInvalidArgument());
  EXPECT_EQ(net.node(2).TransferLeadership(NodeId{3}).code(), StatusCode::kNotLeader);
  net.TickAndStabilize(10);  // one election timeout: the transfer is abandoned
  EXPECT_EQ(net.node(1).role(), Role::kLeader);
  EXPECT_EQ(net.node(1).lead_transferee(), kNoNode);
  EXPECT_TRUE(net.node(1).Propose("x").ok());
}

// ---------------------------------------------------------------------------
// Limits.

TEST(RaftTest, Limits_UncommittedBytesRefuseProposals) {
  SoloNode solo(1, {1, 2, 3}, {}, 0, [](RaftConfig* c) { c->max_uncommitted_bytes = 1000; });
  solo.MakeLeader();
  const std::string payload(100, 'x');
  int accepted = 0;
  Status refused;
  for (int i = 0; i < 20; ++i) {
    Result<LogIndex> r = solo.node().Propose(payload);
    if (!r.ok()) {
      refused = r.status();
      break;
    }
    ++accepted;
  }
  EXPECT_TRUE(refused.IsBusy()) << refused.ToString();
  EXPECT_GT(accepted, 5);
  EXPECT_LT(accepted, 10);
  EXPECT_LE(solo.node().uncommitted_bytes(), 1000u);
  // Commitment frees the budget.
  solo.Drain();
  const uint64_t term = solo.node().current_term().value();
  solo.Deliver(2, term, AppendEntriesResponse{true, solo.node().last_index(), {}, {}, {}});
  EXPECT_EQ(solo.node().uncommitted_bytes(), 0u);
  EXPECT_TRUE(solo.node().Propose(payload).ok());
}

TEST(RaftTest, Limits_InflightWindowAndBytesPerMessage) {
  SoloNode solo(1, {1, 2}, {}, 0, [](RaftConfig* c) {
    c->max_inflight_messages = 3;
    c->max_bytes_per_message = 300;
  });
  solo.MakeLeader();
  const uint64_t term = solo.node().current_term().value();
  solo.Deliver(2, term, AppendEntriesResponse{true, LogIndex{1}, {}, {}, {}});
  size_t appends = 0;
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(solo.node().Propose(std::string(100, 'x')).ok());
    appends += CountOf<AppendEntriesRequest>(solo.Drain());
  }
  EXPECT_EQ(appends, 3u);  // the window is full; nothing more until acknowledged
  EXPECT_EQ(solo.node().progress(NodeId{2}).state, ProgressState::kReplicate);
  // An acknowledgement frees the window; the backlog goes out batched, each
  // message within the byte cap.
  std::vector<Message> sent =
      solo.Deliver(2, term, AppendEntriesResponse{true, LogIndex{4}, {}, {}, {}});
  auto batch = OfType<AppendEntriesRequest>(sent);
  ASSERT_FALSE(batch.empty());
  for (const auto& [m, r] : batch) {
    EXPECT_LE(EntriesBytes(r.entries), 300u);
    EXPECT_GE(r.entries.size(), 1u);
  }
  EXPECT_GT(batch[0].second.entries.size(), 1u);
}

// ---------------------------------------------------------------------------
// The Ready contract.

// Trap 9: votes and acknowledgements promise durable state, so they go out
// only after the hard state and entries are persisted; the candidate's
// RequestVote waits for its new term and self-vote to be durable.
TEST(RaftTest, Ready_VotesAndAcknowledgementsWaitForPersistence) {
  SoloNode solo(1, {1, 2, 3}, {}, 0, NoPreVote);
  solo.node().Campaign();
  ASSERT_TRUE(solo.node().HasReady());
  Ready ready = solo.node().GetReady();
  EXPECT_TRUE(ready.must_sync);
  ASSERT_TRUE(ready.hard_state.has_value());
  EXPECT_EQ(ready.hard_state->current_term, Term{1});
  EXPECT_EQ(ready.hard_state->voted_for, NodeId{1});
  EXPECT_TRUE(ready.messages_before_persist.empty());
  EXPECT_EQ(CountOf<RequestVoteRequest>(ready.messages), 2u);
  solo.storage().SetHardState(*ready.hard_state);
  solo.node().Advance();
}

// A leader's appends may go out before its own write (§10.2.1), but it
// counts itself toward commitment only after Advance (etcd#14370).
TEST(RaftTest, Ready_LeaderSendsBeforePersistButCommitsAfter) {
  SoloNode solo(1, {1, 2, 3});
  solo.MakeLeader();
  const uint64_t term = solo.node().current_term().value();
  solo.Deliver(2, term, AppendEntriesResponse{true, LogIndex{1}, {}, {}, {}});
  solo.Deliver(3, term, AppendEntriesResponse{true, LogIndex{1}, {}, {}, {}});
  ASSERT_TRUE(solo.node().Propose("x").ok());
  Ready ready = solo.node().GetReady();
  EXPECT_EQ(ready.entries.size(), 1u);
  EXPECT_EQ(CountOf<AppendEntriesRequest>(ready.messages_before_persist), 2u);
  EXPECT_TRUE(ready.messages.empty());
  solo.storage().Append(ready.entries);
  solo.node().Advance();
  // Follower 2 acknowledges; with the leader's own durable copy that is a majority.
  solo.Deliver(2, term, AppendEntriesResponse{true, LogIndex{2}, {}, {}, {}});
  EXPECT_EQ(solo.node().commit_index(), LogIndex{2});
}

TEST(RaftTest, Ready_SingleNodeCommitsOnlyAfterPersisting) {
  SoloNode solo(1, {1});
  solo.node().Campaign();
  ASSERT_EQ(solo.node().role(), Role::kLeader);
  Ready first = solo.node().GetReady();
  ASSERT_EQ(first.entries.size(), 1u);         // the no-op
  EXPECT_TRUE(first.committed_entries.empty());  // not durable yet: not committed
  EXPECT_EQ(solo.node().commit_index(), LogIndex{0});
  solo.storage().Append(first.entries);
  solo.storage().SetHardState(*first.hard_state);
  solo.node().Advance();
  EXPECT_EQ(solo.node().commit_index(), LogIndex{1});
  Ready second = solo.node().GetReady();
  ASSERT_EQ(second.committed_entries.size(), 1u);
  solo.node().Advance();
  EXPECT_FALSE(solo.node().HasReady());
}

// The subtle case of trap 9: a single voter becomes leader within one step,
// so its new term is not yet durable when it first replicates to a learner.
// Had those appends left before the fsync and the leader crashed, it could
// be elected again in the same term with a different log, and the learner
// would hold two different entries at one index and term.
TEST(RaftTest, Ready_NoEarlySendsInATermNotYetDurable) {
  Network net({1}, {2});
  net.node(1).Campaign();
  ASSERT_EQ(net.node(1).role(), Role::kLeader);
  Ready first = net.node(1).GetReady();
  ASSERT_TRUE(first.hard_state.has_value());
  EXPECT_TRUE(first.must_sync);
  EXPECT_TRUE(first.messages_before_persist.empty());
  EXPECT_EQ(CountOf<AppendEntriesRequest>(first.messages), 1u);
  net.storage(1).Append(first.entries);
  net.storage(1).SetHardState(*first.hard_state);
  net.node(1).Advance();
  for (const Message& m : first.messages) net.Send(m);
  // Now the term is durable: appends may go before the local write.
  ASSERT_TRUE(net.node(1).Propose("x").ok());
  Ready second = net.node(1).GetReady();
  EXPECT_EQ(CountOf<AppendEntriesRequest>(second.messages_before_persist), 1u);
  net.storage(1).Append(second.entries);
  net.node(1).Advance();
  for (const Message& m : second.messages_before_persist) net.Send(m);
  EXPECT_EQ(net.applied_commands(2), std::vector<std::string>{"x"});
}

// A leader that crashes after its early sends but before its write loses
// the entry locally; it was never counted as committed, and the cluster
// stays consistent (the harness checks safety after every step).
TEST(RaftTest, Ready_LeaderCrashBeforeItsWriteCompletes) {
  Network net({1, 2, 3});
  Elect(net, 1);
  net.Isolate(2);
  net.Isolate(3);
  ASSERT_TRUE(net.node(1).Propose("lost?").ok());
  const LogIndex index = net.node(1).last_index();
  net.CrashDuringReady(1);
  EXPECT_LT(net.node(1).last_index(), index);
  EXPECT_LT(net.node(1).commit_index(), index);
  net.Heal();
  net.TickAndStabilize(60);
  ASSERT_EQ(net.LeaderIds().size(), 1u);
  net.Propose(net.LeaderIds()[0], "y");
  for (uint64_t id : std::vector<uint64_t>{1, 2, 3}) {
    EXPECT_EQ(net.applied_commands(id), std::vector<std::string>{"y"}) << id;
  }
}

// A crashed and restarted server keeps its term, vote and log (Figure 2,
// "persistent state on all servers"), so it cannot vote twice in a term.
TEST(RaftTest, Restart_KeepsVoteAcrossCrash) {
  Network net({1, 2, 3}, {}, NoPreVote);
  net.Send(Message{NodeId{2}, NodeId{3}, Term{1},
                   RequestVoteRequest{LogIndex{0}, Term{0}, false, false}});
  ASSERT_EQ(net.node(3).voted_for(), NodeId{2});
  net.Restart(3);
  EXPECT_EQ(net.node(3).current_term(), Term{1});
  EXPECT_EQ(net.node(3).voted_for(), NodeId{2});
  net.Send(Message{NodeId{1}, NodeId{3}, Term{1},
                   RequestVoteRequest{LogIndex{0}, Term{0}, false, false}});
  EXPECT_EQ(net.node(3).voted_for(), NodeId{2});
}

// ---------------------------------------------------------------------------
// Malformed input is an error Status, never a crash.

TEST(RaftTest, MalformedMessagesAreRejectedWithStatus) {
  SoloNode solo(1, {1, 2, 3}, {1}, 1);
  RaftNode& node = solo.node();
  EXPECT_TRUE(node.Step(Message{NodeId{2}, NodeId{9}, Term{1}, HeartbeatResponse{}})
                  .IsInvalidArgument());
  EXPECT_TRUE(node.Step(Message{NodeId{1}, NodeId{1}, Term{1}, HeartbeatResponse{}})
                  .IsInvalidArgument());
  EXPECT_TRUE(node.Step(Message{kNoNode, NodeId{1}, Term{1}, HeartbeatResponse{}})
                  .IsInvalidArgument());
  // Entries that skip an index, or whose terms go backwards.
  EXPECT_TRUE(node.Step(Message{NodeId{2}, NodeId{1}, Term{2},
                                AppendEntriesRequest{LogIndex{1}, Term{1},
                                                     EntriesWithTerms(3, {2}), LogIndex{0}}})
                  .IsInvalidArgument());
  EXPECT_TRUE(node.Step(Message{NodeId{2}, NodeId{1}, Term{2},
                                AppendEntriesRequest{LogIndex{1}, Term{1},
                                                     EntriesWithTerms(2, {2, 1}), LogIndex{0}}})
                  .IsInvalidArgument());
  EXPECT_EQ(node.last_index(), LogIndex{1});
  EXPECT_TRUE(DecodeConfChange("junk").status().IsCorruption());
  node.CheckInvariants();
}

TEST(ConfChangeCodecTest, ContextRoundTrips) {
  const ConfChange plain{ConfChangeType::kRemoveNode, NodeId{7}, ""};
  EXPECT_EQ(EncodeConfChange(plain).size(), 9u);
  EXPECT_EQ(*DecodeConfChange(EncodeConfChange(plain)), plain);
  const ConfChange with{ConfChangeType::kAddLearner, NodeId{4}, std::string("ctx\0bytes", 9)};
  EXPECT_EQ(*DecodeConfChange(EncodeConfChange(with)), with);
  EXPECT_TRUE(DecodeConfChange(EncodeConfChange(with).substr(0, 8)).status().IsCorruption());
}

// ---------------------------------------------------------------------------
// Determinism: same seed and inputs, same outputs, bit for bit.

std::vector<std::string> RunScript(uint64_t seed) {
  Network net({1, 2, 3, 4, 5}, {}, {}, seed);
  Random script(99);
  for (int step = 0; step < 300; ++step) {
    net.TickAndStabilize(1);
    std::vector<uint64_t> leaders = net.LeaderIds();
    if (!leaders.empty() && script.OneIn(3)) {
      EXPECT_TRUE(net.node(leaders[0]).Propose("p" + std::to_string(step)).ok() ||
                  !net.node(leaders[0]).Propose("retry").ok());
    }
    if (script.OneIn(40)) net.Isolate(script.Range(1, 5));
    if (script.OneIn(25)) net.Heal();
  }
  net.Heal();
  net.TickAndStabilize(50);
  std::vector<std::string> out;
  for (const Message& m : net.trace()) out.push_back(DescribeMessage(m));
  EXPECT_EQ(net.LeaderIds().size(), 1u);
  return out;
}

TEST(RaftTest, DeterministicGivenSeed) {
  const std::vector<std::string> a = RunScript(7);
  const std::vector<std::string> b = RunScript(7);
  EXPECT_EQ(a, b);
  EXPECT_GT(a.size(), 100u);
  EXPECT_NE(RunScript(8), a);
}

}  // namespace
}  // namespace rkv::raft::test
