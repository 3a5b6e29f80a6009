// Majority arithmetic (§5.2, §5.3): table-driven, plus a comparison with a
// brute-force definition on random inputs (as etcd's quorum/quick_test.go).
#include "raft/quorum.h"

#include <gtest/gtest.h>

#include "common/random.h"

namespace rkv::raft::quorum {
namespace {

TEST(QuorumTest, MajorityValueTable) {
  struct Case {
    std::vector<uint64_t> values;
    uint64_t want;
  };
  const Case cases[] = {
      {{5}, 5},          {{5, 1}, 1},       {{1, 5}, 1},          {{2, 2, 1}, 2},
      {{3, 1, 2}, 2},    {{9, 0, 0}, 0},    {{4, 4, 1, 1}, 1},    {{4, 3, 2, 1, 0}, 2},
      {{7, 7, 7, 0, 0}, 7},
  };
  for (size_t i = 0; i < std::size(cases); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(MajorityValue(cases[i].values), cases[i].want);
  }
}

// The definition: the largest v held (>=) by a majority.
uint64_t BruteMajorityValue(const std::vector<uint64_t>& values) {
  uint64_t best = 0;
  for (uint64_t candidate : values) {
    size_t holders = 0;
    for (uint64_t v : values) holders += v >= candidate ? 1 : 0;
    if (holders >= MajoritySize(values.size())) best = std::max(best, candidate);
  }
  return best;
}

TEST(QuorumTest, MajorityValueMatchesBruteForce) {
  Random random(17);
  for (int iteration = 0; iteration < 2000; ++iteration) {
    std::vector<uint64_t> values(random.Range(1, 7));
    for (uint64_t& v : values) v = random.Uniform(10);
    ASSERT_EQ(MajorityValue(values), BruteMajorityValue(values)) << iteration;
  }
}

TEST(QuorumTest, TallyVotesTable) {
  const std::vector<NodeId> three = {NodeId{1}, NodeId{2}, NodeId{3}};
  struct Case {
    std::map<NodeId, bool> votes;
    VoteResult want;
  };
  const Case cases[] = {
      {{}, VoteResult::kPending},
      {{{NodeId{1}, true}}, VoteResult::kPending},
      {{{NodeId{1}, true}, {NodeId{2}, true}}, VoteResult::kWon},
      {{{NodeId{1}, true}, {NodeId{2}, false}}, VoteResult::kPending},
      {{{NodeId{1}, true}, {NodeId{2}, false}, {NodeId{3}, false}}, VoteResult::kLost},
      // Votes from non-voters do not count.
      {{{NodeId{1}, true}, {NodeId{9}, true}}, VoteResult::kPending},
  };
  for (size_t i = 0; i < std::size(cases); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(TallyVotes(three, cases[i].votes), cases[i].want);
  }
  EXPECT_EQ(TallyVotes({NodeId{1}}, {{NodeId{1}, true}}), VoteResult::kWon);
}

}  // namespace
}  // namespace rkv::raft::quorum
