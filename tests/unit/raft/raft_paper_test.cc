// Tests that read like the Raft paper (Ongaro & Ousterhout, "In Search of an
// Understandable Consensus Algorithm", extended version) and the
// dissertation. Each test checks the sentences of one section, cited in its
// comment, and follows init / act / check. Where a rule has several cases,
// the test is a table looped over with SCOPED_TRACE.
//
// Single-node tests drive one RaftNode by hand (SoloNode); cluster tests
// use the in-process Network harness.
#include <gtest/gtest.h>

#include <set>

#include "unit/raft/raft_harness.h"
#include "unit/raft/raft_test_util.h"

namespace rkv::raft::test {
namespace {

void NoPreVote(RaftConfig* c) { c->pre_vote = false; }

// §5.1: "If one server's current term is smaller than the other's, then it
// updates its current term to the larger value. If a candidate or leader
// discovers that its term is out of date, it immediately reverts to
// follower state."
TEST(RaftPaperTest, Section5_1_NewerTermTurnsAnyRoleIntoFollower) {
  for (Role start : {Role::kFollower, Role::kCandidate, Role::kLeader}) {
    SCOPED_TRACE(RoleName(start));
    SoloNode solo(1, {1, 2, 3}, {}, 0, NoPreVote);
    if (start == Role::kCandidate) solo.node().Campaign();
    if (start == Role::kLeader) solo.MakeLeader();
    solo.Drain();
    ASSERT_EQ(solo.node().role(), start);
    solo.Deliver(2, 5, HeartbeatRequest{LogIndex{0}, 0});
    EXPECT_EQ(solo.node().role(), Role::kFollower);
    EXPECT_EQ(solo.node().current_term(), Term{5});
    EXPECT_EQ(solo.node().leader_id(), NodeId{2});
    EXPECT_EQ(solo.node().voted_for(), kNoNode);
  }
}

// §5.1: "If a server receives a request with a stale term number, it
// rejects the request." A stale leader is told the newer term (so that it
// steps down even though PreVote/CheckQuorum keep it from disrupting us).
TEST(RaftPaperTest, Section5_1_StaleTermRequestsAreRejected) {
  SoloNode solo(1, {1, 2, 3}, {1, 2}, 3);
  std::vector<Message> sent = solo.Deliver(
      2, 2, AppendEntriesRequest{LogIndex{2}, Term{2}, EntriesWithTerms(3, {2}), LogIndex{3}});
  EXPECT_EQ(solo.node().last_index(), LogIndex{2});
  EXPECT_EQ(solo.node().commit_index(), LogIndex{0});
  auto responses = OfType<AppendEntriesResponse>(sent);
  ASSERT_EQ(responses.size(), 1u);
  EXPECT_EQ(responses[0].first.term, Term{3});
  EXPECT_FALSE(responses[0].second.success);

  // A stale RequestVote is not granted.
  sent = solo.Deliver(2, 2, RequestVoteRequest{LogIndex{9}, Term{2}, false, false});
  EXPECT_EQ(CountOf<RequestVoteResponse>(sent), 0u);
  EXPECT_EQ(solo.node().voted_for(), kNoNode);
}

// §5.2: "When servers start up, they begin as followers."
TEST(RaftPaperTest, Section5_2_StartAsFollower) {
  SoloNode solo(1, {1, 2, 3});
  EXPECT_EQ(solo.node().role(), Role::kFollower);
  EXPECT_EQ(solo.node().leader_id(), kNoNode);
}

// §5.2: "Leaders send periodic heartbeats (AppendEntries RPCs that carry no
// log entries) to all followers in order to maintain their authority."
TEST(RaftPaperTest, Section5_2_LeaderBroadcastsHeartbeats) {
  SoloNode solo(1, {1, 2, 3});
  solo.MakeLeader();
  solo.node().Tick();
  std::vector<Message> sent = solo.Drain();
  auto heartbeats = OfType<HeartbeatRequest>(sent);
  ASSERT_EQ(heartbeats.size(), 2u);
  EXPECT_EQ(heartbeats[0].first.to, NodeId{2});
  EXPECT_EQ(heartbeats[1].first.to, NodeId{3});
  EXPECT_EQ(heartbeats[0].first.term, solo.node().current_term());
}

// §5.2: "If a follower receives no communication over a period of time
// called the election timeout, then it ... begins an election ... it
// increments its current term and transitions to candidate state. It then
// votes for itself and issues RequestVote RPCs in parallel."
TEST(RaftPaperTest, Section5_2_FollowerStartsElectionAfterTimeout) {
  SoloNode solo(1, {1, 2, 3}, {1, 1}, 1, NoPreVote);
  const uint64_t timeout = solo.node().randomized_election_timeout();
  for (uint64_t i = 0; i + 1 < timeout; ++i) solo.node().Tick();
  EXPECT_EQ(solo.node().role(), Role::kFollower);
  solo.node().Tick();
  EXPECT_EQ(solo.node().role(), Role::kCandidate);
  EXPECT_EQ(solo.node().current_term(), Term{2});
  EXPECT_EQ(solo.node().voted_for(), NodeId{1});
  std::vector<Message> sent = solo.Drain();
  auto requests = OfType<RequestVoteRequest>(sent);
  ASSERT_EQ(requests.size(), 2u);
  for (const auto& [m, r] : requests) {
    EXPECT_EQ(m.term, Term{2});
    EXPECT_EQ(r.last_log_index, LogIndex{2});
    EXPECT_EQ(r.last_log_term, Term{1});
    EXPECT_FALSE(r.pre_vote);
  }
}

// §5.2: "Raft uses randomized election timeouts ... chosen randomly from a
// fixed interval". Ours: [T, 2T), drawn from the injected generator, so one
// seed always gives the same timeouts.
TEST(RaftPaperTest, Section5_2_ElectionTimeoutIsRandomizedAndSeeded) {
  std::set<uint64_t> seen;
  for (uint64_t seed = 1; seed <= 200; ++seed) {
    SoloNode a(1, {1, 2, 3}, {}, 0, {}, seed);
    SoloNode b(1, {1, 2, 3}, {}, 0, {}, seed);
    const uint64_t t = a.node().randomized_election_timeout();
    EXPECT_EQ(t, b.node().randomized_election_timeout());
    EXPECT_GE(t, 10u);
    EXPECT_LT(t, 20u);
    seen.insert(t);
  }
  EXPECT_EQ(seen.size(), 10u);
}

// §5.2: "A candidate wins an election if it receives votes from a majority
// of the servers in the full cluster for the same term." and (losing) "...
// returns to follower state" when a majority refused.
TEST(RaftPaperTest, Section5_2_ElectionOutcomeTable) {
  struct Case {
    std::vector<uint64_t> voters;
    std::map<uint64_t, bool> votes;
    Role want;
  };
  const Case cases[] = {
      {{1, 2, 3}, {{2, true}, {3, true}}, Role::kLeader},
      {{1, 2, 3}, {{2, true}}, Role::kLeader},
      {{1, 2, 3, 4, 5}, {{2, true}, {3, true}, {4, true}, {5, true}}, Role::kLeader},
      {{1, 2, 3, 4, 5}, {{2, true}, {3, true}}, Role::kLeader},
      {{1, 2, 3, 4, 5}, {{2, true}}, Role::kCandidate},
      {{1, 2, 3, 4, 5}, {{2, true}, {3, false}, {4, false}}, Role::kCandidate},
      {{1, 2, 3, 4, 5}, {{2, false}, {3, false}, {4, false}}, Role::kFollower},
      {{1, 2, 3}, {{2, false}, {3, false}}, Role::kFollower},
      {{1, 2, 3}, {}, Role::kCandidate},
  };
  for (size_t i = 0; i < std::size(cases); ++i) {
    SCOPED_TRACE(i);
    SoloNode solo(1, cases[i].voters, {}, 0, NoPreVote);
    solo.node().Campaign();
    solo.Drain();
    for (const auto& [from, granted] : cases[i].votes) {
      solo.Deliver(from, 1, RequestVoteResponse{granted, false});
    }
    EXPECT_EQ(solo.node().role(), cases[i].want);
    EXPECT_EQ(solo.node().current_term(), Term{1});
  }
}

// §5.2: "Each server will vote for at most one candidate in a given term,
// on a first-come-first-served basis."
TEST(RaftPaperTest, Section5_2_VoteOncePerTermTable) {
  struct Case {
    uint64_t voted_for;
    uint64_t candidate;
    bool want_granted;
  };
  const Case cases[] = {
      {0, 2, true}, {0, 3, true}, {2, 2, true}, {3, 3, true}, {2, 3, false}, {3, 2, false},
  };
  for (size_t i = 0; i < std::size(cases); ++i) {
    SCOPED_TRACE(i);
    SoloNode solo(1, {1, 2, 3}, {}, 1);
    if (cases[i].voted_for != 0) {
      solo.Deliver(cases[i].voted_for, 1, RequestVoteRequest{LogIndex{0}, Term{0}, false, false});
      ASSERT_EQ(solo.node().voted_for(), NodeId{cases[i].voted_for});
    }
    std::vector<Message> sent =
        solo.Deliver(cases[i].candidate, 1, RequestVoteRequest{LogIndex{0}, Term{0}, false, false});
    auto responses = OfType<RequestVoteResponse>(sent);
    ASSERT_EQ(responses.size(), 1u);
    EXPECT_EQ(responses[0].second.vote_granted, cases[i].want_granted);
    // The vote is persistent state: it is in the Ready's hard state.
    EXPECT_EQ(solo.storage().GetInitialState().hard_state.voted_for,
              NodeId{cases[i].voted_for != 0 ? cases[i].voted_for : cases[i].candidate});
  }
}

// §5.2: "While waiting for votes, a candidate may receive an AppendEntries
// RPC from another server claiming to be leader. If the leader's term ... is
// at least as large as the candidate's current term, then the candidate ...
// returns to follower state."
TEST(RaftPaperTest, Section5_2_CandidateFallsBackOnLeaderOfSameOrNewerTerm) {
  for (uint64_t term : std::vector<uint64_t>{1, 2}) {
    SCOPED_TRACE(term);
    SoloNode solo(1, {1, 2, 3}, {}, 0, NoPreVote);
    solo.node().Campaign();
    solo.Drain();
    ASSERT_EQ(solo.node().role(), Role::kCandidate);
    solo.Deliver(2, term, AppendEntriesRequest{LogIndex{0}, Term{0}, {}, LogIndex{0}});
    EXPECT_EQ(solo.node().role(), Role::kFollower);
    EXPECT_EQ(solo.node().current_term(), Term{term});
    EXPECT_EQ(solo.node().leader_id(), NodeId{2});
  }
}

// §5.3: "The leader appends the command to its log as a new entry, then
// issues AppendEntries RPCs in parallel to each of the other servers".
TEST(RaftPaperTest, Section5_3_LeaderReplicatesProposal) {
  SoloNode solo(1, {1, 2, 3});
  solo.MakeLeader();
  const Term term = solo.node().current_term();
  // The followers acknowledge the no-op, which puts them in replicate state.
  solo.Deliver(2, term.value(), AppendEntriesResponse{true, LogIndex{1}, {}, {}, {}});
  solo.Deliver(3, term.value(), AppendEntriesResponse{true, LogIndex{1}, {}, {}, {}});
  ASSERT_TRUE(solo.node().Propose("x").ok());
  std::vector<Message> sent = solo.Drain();
  auto appends = OfType<AppendEntriesRequest>(sent);
  ASSERT_EQ(appends.size(), 2u);
  for (const auto& [m, r] : appends) {
    EXPECT_EQ(r.prev_log_index, LogIndex{1});
    EXPECT_EQ(r.prev_log_term, term);
    ASSERT_EQ(r.entries.size(), 1u);
    EXPECT_EQ(r.entries[0].data, "x");
    EXPECT_EQ(r.leader_commit, LogIndex{1});
  }
}

// §5.3: "A log entry is committed once the leader that created the entry
// has replicated it on a majority of the servers ... The leader keeps track
// of the highest index it knows to be committed, and it includes that index
// in future AppendEntries RPCs".
TEST(RaftPaperTest, Section5_3_LeaderCommitsOnMajorityAndApplies) {
  Network net({1, 2, 3, 4, 5});
  net.Campaign(1);
  ASSERT_EQ(net.node(1).role(), Role::kLeader);
  // Two followers are unreachable: a majority (3 of 5) remains.
  net.Isolate(4);
  net.Isolate(5);
  const LogIndex index = net.Propose(1, "x");
  EXPECT_EQ(net.node(1).commit_index(), index);
  for (uint64_t id : std::vector<uint64_t>{1, 2, 3}) {
    SCOPED_TRACE(id);
    EXPECT_EQ(net.node(id).commit_index(), index);
    EXPECT_EQ(net.applied_commands(id), std::vector<std::string>{"x"});
  }
  EXPECT_TRUE(net.applied_commands(4).empty());
  // A third follower lost: no majority, no commitment.
  net.Isolate(3);
  const LogIndex second = net.Propose(1, "y");
  EXPECT_LT(net.node(1).commit_index(), second);
  EXPECT_EQ(net.applied_commands(1), std::vector<std::string>{"x"});
}

// Figure 2, AppendEntries receiver implementation, rules 1-5, on a follower
// whose log is [1:1 2:2] (table in the manner of etcd's TestHandleMsgApp).
TEST(RaftPaperTest, Figure2_AppendEntriesReceiverTable) {
  struct Case {
    uint64_t prev_index, prev_term;
    std::vector<uint64_t> terms;  // entries from prev_index + 1
    uint64_t leader_commit;
    bool want_success;
    uint64_t want_last_index, want_commit;
  };
  const Case cases[] = {
      // Rule 2: no entry at prev_log_index whose term matches prev_log_term.
      {2, 3, {}, 3, false, 2, 0},
      {3, 3, {}, 3, false, 2, 0},
      // Matching, nothing new; commit follows min(leaderCommit, last new).
      {1, 1, {}, 1, true, 2, 1},
      {0, 0, {2}, 1, true, 1, 1},
      {2, 2, {2, 2}, 3, true, 4, 3},
      {2, 2, {2}, 4, true, 3, 3},
      {1, 1, {2}, 4, true, 2, 2},
      // Rule 3: conflicting entry removed with all that follow.
      {1, 1, {3}, 1, true, 2, 1},
      {1, 1, {3, 3}, 3, true, 3, 3},
      // Rule 5 uses the index of the last *new* entry.
      {0, 0, {1}, 2, true, 2, 1},
  };
  for (size_t i = 0; i < std::size(cases); ++i) {
    SCOPED_TRACE(i);
    const Case& c = cases[i];
    SoloNode solo(1, {1, 2, 3}, {1, 2}, 2);
    std::vector<Message> sent =
        solo.Deliver(2, 3,
                     AppendEntriesRequest{LogIndex{c.prev_index}, Term{c.prev_term},
                                          EntriesWithTerms(c.prev_index + 1, c.terms),
                                          LogIndex{c.leader_commit}});
    auto responses = OfType<AppendEntriesResponse>(sent);
    ASSERT_EQ(responses.size(), 1u);
    EXPECT_EQ(responses[0].second.success, c.want_success);
    EXPECT_EQ(solo.node().last_index(), LogIndex{c.want_last_index});
    EXPECT_EQ(solo.node().commit_index(), LogIndex{c.want_commit});
    // The acknowledgement promises durability: it waits for the fsync.
    EXPECT_TRUE(solo.readies().back().messages_before_persist.empty());
  }
}

// §5.3, the optimization at the end of the section: a rejection carries a
// hint so the leader can skip past a whole conflicting term at once.
TEST(RaftPaperTest, Section5_3_RejectionHintTable) {
  struct Case {
    std::vector<uint64_t> follower_terms;
    uint64_t prev_index, prev_term;
    uint64_t want_hint_index, want_hint_term;
  };
  const Case cases[] = {
      // The follower's log is too short: the hint is its last entry.
      {{1, 1}, 5, 3, 2, 1},
      // The follower has a different term at prev: skip its entries of
      // terms newer than prev_term.
      {{1, 2, 2, 2}, 4, 1, 1, 1},
      {{1, 1, 3, 3, 3}, 5, 2, 2, 1},
      // A term not newer than prev_term: it may match; probe there.
      {{1, 1, 1}, 3, 2, 3, 1},
  };
  for (size_t i = 0; i < std::size(cases); ++i) {
    SCOPED_TRACE(i);
    const Case& c = cases[i];
    SoloNode solo(1, {1, 2, 3}, c.follower_terms, 3);
    std::vector<Message> sent = solo.Deliver(
        2, 3, AppendEntriesRequest{LogIndex{c.prev_index}, Term{c.prev_term}, {}, LogIndex{0}});
    auto responses = OfType<AppendEntriesResponse>(sent);
    ASSERT_EQ(responses.size(), 1u);
    const AppendEntriesResponse& r = responses[0].second;
    EXPECT_FALSE(r.success);
    EXPECT_EQ(r.rejected_index, LogIndex{c.prev_index});
    EXPECT_EQ(r.conflict_index, LogIndex{c.want_hint_index});
    EXPECT_EQ(r.conflict_term, Term{c.want_hint_term});
  }
}

// §5.3, Figure 7: "the leader handles inconsistencies by forcing the
// followers' logs to duplicate its own." Each of followers (a)-(f) ends with
// exactly the leader's log.
TEST(RaftPaperTest, Section5_3_Figure7_LeaderForcesFollowerLogs) {
  const std::vector<uint64_t> leader = {1, 1, 1, 4, 4, 5, 5, 6, 6, 6};
  const std::vector<std::vector<uint64_t>> followers = {
      {1, 1, 1, 4, 4, 5, 5, 6, 6},              // (a)
      {1, 1, 1, 4},                             // (b)
      {1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6},        // (c)
      {1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7},     // (d)
      {1, 1, 1, 4, 4, 4, 4},                    // (e)
      {1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3},        // (f)
  };
  for (size_t i = 0; i < followers.size(); ++i) {
    SCOPED_TRACE(i);
    Network net({1, 2, 3});
    net.SetLog(1, leader, 8);
    net.SetLog(2, followers[i], followers[i].back());
    net.SetLog(3, leader, 8);
    net.Campaign(1);
    ASSERT_EQ(net.node(1).role(), Role::kLeader);
    EXPECT_EQ(net.LogTerms(2), net.LogTerms(1));
    EXPECT_EQ(net.node(2).commit_index(), net.node(1).last_index());
  }
}

// §5.3: "the leader decrements nextIndex and retries"; with the conflict
// hint it skips a whole term per round trip, so a follower holding 50
// entries of a stale term costs a few rejections, not 50.
TEST(RaftPaperTest, Section5_3_FastBacktrackingSkipsWholeTerms) {
  std::vector<uint64_t> leader_log(10, 1);
  std::vector<uint64_t> follower_log = leader_log;
  for (int i = 0; i < 50; ++i) leader_log.push_back(3);
  for (int i = 0; i < 50; ++i) follower_log.push_back(2);
  Network net({1, 2, 3});
  net.SetLog(1, leader_log, 3);
  net.SetLog(2, follower_log, 2);
  net.SetLog(3, leader_log, 3);
  const size_t mark = net.trace().size();
  net.Campaign(1);
  ASSERT_EQ(net.node(1).role(), Role::kLeader);
  size_t rejections = 0;
  for (size_t i = mark; i < net.trace().size(); ++i) {
    const Message& m = net.trace()[i];
    const auto* r = std::get_if<AppendEntriesResponse>(&m.body);
    if (r != nullptr && m.from == NodeId{2} && !r->success) ++rejections;
  }
  EXPECT_GE(rejections, 1u);
  EXPECT_LE(rejections, 2u);
  EXPECT_EQ(net.LogTerms(2), net.LogTerms(1));
}

// A heartbeat carries min(match_index, commit): a follower learns the commit
// index only for entries the leader knows it holds.
TEST(RaftPaperTest, Section5_3_HeartbeatCommitIsBoundedByMatch) {
  SoloNode solo(1, {1, 2, 3});
  solo.MakeLeader();
  const uint64_t term = solo.node().current_term().value();
  solo.Deliver(2, term, AppendEntriesResponse{true, LogIndex{1}, {}, {}, {}});
  ASSERT_EQ(solo.node().commit_index(), LogIndex{1});
  solo.node().Tick();
  auto heartbeats = OfType<HeartbeatRequest>(solo.Drain());
  ASSERT_EQ(heartbeats.size(), 2u);
  EXPECT_EQ(heartbeats[0].second.leader_commit, LogIndex{1});  // node 2: match 1
  EXPECT_EQ(heartbeats[1].second.leader_commit, LogIndex{0});  // node 3: match 0
}

// §5.4.1: "the voter denies its vote if its own log is more up-to-date than
// that of the candidate ... If the logs have last entries with different
// terms, then the log with the later term is more up-to-date. If the logs
// end with the same term, then whichever log is longer is more up-to-date."
TEST(RaftPaperTest, Section5_4_1_VoteOnlyForUpToDateLogTable) {
  struct Case {
    uint64_t last_index, last_term;
    bool want_granted;
  };
  const Case cases[] = {
      {2, 2, true},  {3, 2, true},  {1, 3, true},   // same term longer/equal; newer term
      {1, 2, false}, {3, 1, false}, {9, 1, false},  // shorter, or older last term
  };
  for (size_t i = 0; i < std::size(cases); ++i) {
    SCOPED_TRACE(i);
    SoloNode solo(1, {1, 2, 3}, {1, 2}, 2);
    std::vector<Message> sent = solo.Deliver(
        2, 3,
        RequestVoteRequest{LogIndex{cases[i].last_index}, Term{cases[i].last_term}, false, false});
    auto responses = OfType<RequestVoteResponse>(sent);
    ASSERT_EQ(responses.size(), 1u);
    EXPECT_EQ(responses[0].second.vote_granted, cases[i].want_granted);
  }
}

// §5.4.2: "Raft never commits log entries from previous terms by counting
// replicas. Only log entries from the leader's current term are committed by
// counting replicas; once an entry from the current term has been committed
// in this way, then all prior entries are committed indirectly."
TEST(RaftPaperTest, Section5_4_2_OnlyCurrentTermEntriesCommitByCounting) {
  SoloNode solo(1, {1, 2, 3}, {1, 1}, 1);
  solo.MakeLeader();  // term 2; no-op at index 3
  const uint64_t term = solo.node().current_term().value();
  ASSERT_EQ(term, 2u);
  // A majority (1 and 2) holds index 2, but it is of term 1.
  solo.Deliver(2, term, AppendEntriesResponse{true, LogIndex{2}, {}, {}, {}});
  EXPECT_EQ(solo.node().commit_index(), LogIndex{0});
  // Once the no-op of term 2 is on a majority, everything up to it commits.
  solo.Deliver(2, term, AppendEntriesResponse{true, LogIndex{3}, {}, {}, {}});
  EXPECT_EQ(solo.node().commit_index(), LogIndex{3});
}

// Campaigns until elected: the first PreVote round may only teach the
// candidate the cluster's newer term.
void CampaignUntilLeader(Network& net, uint64_t id) {
  for (int attempt = 0; attempt < 3 && net.node(id).role() != Role::kLeader; ++attempt) {
    net.Campaign(id);
  }
  ASSERT_EQ(net.node(id).role(), Role::kLeader);
}

// §5.4.2, Figure 8: an entry of an older term stored on a majority can still
// be overwritten by a later leader, so it must not count as committed.
TEST(RaftPaperTest, Section5_4_2_Figure8_OldTermEntryOnMajorityIsNotCommitted) {
  // One entry per AppendEntries, so replication can be stopped between two.
  Network net({1, 2, 3, 4, 5}, {}, [](RaftConfig* c) { c->max_bytes_per_message = 1; });
  // (a) S1 leads and replicates entry "a" only to S2.
  CampaignUntilLeader(net, 1);
  for (uint64_t id : std::vector<uint64_t>{3, 4, 5}) net.Cut(1, id);
  net.Propose(1, "a");
  const LogIndex a_index = net.node(1).last_index();
  const Term a_term = net.node(1).current_term();
  ASSERT_EQ(net.node(2).last_index(), a_index);
  // (b) S1 crashes; S5 is elected with votes from S3, S4 (and itself); its
  // own entries never leave it.
  net.Heal();
  net.Isolate(1);
  net.Cut(5, 2);
  net.DropIf([](const Message& m) {
    return m.from == NodeId{5} && std::holds_alternative<AppendEntriesRequest>(m.body);
  });
  for (uint64_t id : std::vector<uint64_t>{3, 4}) net.Restart(id);  // forget the old lease
  CampaignUntilLeader(net, 5);
  ASSERT_EQ(net.node(5).last_index(), a_index);  // its no-op sits where "a" is elsewhere
  const Term b_term = net.node(5).current_term();
  // (c) S5 crashes; S1 restarts and is elected again. It replicates "a" to
  // S3, so "a" (of an older term) is on a majority {S1, S2, S3}, while its
  // own new entry reaches only S2.
  net.Heal();
  net.Isolate(5);
  for (uint64_t id : std::vector<uint64_t>{1, 2, 3, 4}) net.Restart(id);
  net.Cut(1, 4);
  // Once S3 holds "a", drop S1's newer entries to it.
  net.DropIf([&net, b_term, a_index, a_term](const Message& m) {
    const auto* r = std::get_if<AppendEntriesRequest>(&m.body);
    if (r == nullptr || m.from != NodeId{1} || m.to != NodeId{3}) return false;
    if (!net.node(3).log().MatchTerm(a_index, a_term)) return false;
    for (const Entry& e : r->entries) {
      if (e.term > b_term) return true;
    }
    return false;
  });
  CampaignUntilLeader(net, 1);
  ASSERT_TRUE(net.node(3).log().MatchTerm(a_index, a_term));
  ASSERT_TRUE(net.node(2).log().MatchTerm(a_index, a_term));
  // The Figure 8 rule: "a" is on a majority but is not committed.
  EXPECT_LT(net.node(1).commit_index(), a_index);
  // (d) S1 crashes; S5 is elected (its last term is newer than S3's and
  // S4's) and overwrites "a" everywhere. Nothing that was applied is lost:
  // the harness checks that no two entries are ever applied at one index.
  net.Heal();
  net.Isolate(1);
  for (uint64_t id : std::vector<uint64_t>{2, 3, 4, 5}) net.Restart(id);
  CampaignUntilLeader(net, 5);
  for (uint64_t id : std::vector<uint64_t>{2, 3, 4}) {
    EXPECT_EQ(net.LogTerms(id), net.LogTerms(5)) << id;
  }
  EXPECT_FALSE(net.node(3).log().MatchTerm(a_index, a_term));
  for (uint64_t id : std::vector<uint64_t>{2, 3, 4, 5}) {
    for (const std::string& c : net.applied_commands(id)) EXPECT_NE(c, "a");
  }
  // Finally S1 rejoins, steps down and its log is made to match.
  net.Heal();
  net.TickAndStabilize(3);
  EXPECT_EQ(net.node(1).role(), Role::kFollower);
  EXPECT_EQ(net.LogTerms(1), net.LogTerms(5));
}

}  // namespace
}  // namespace rkv::raft::test
