// Follower progress and flow control (etcd raft's tracker/, design.md).
#include "raft/progress.h"

#include <gtest/gtest.h>

namespace rkv::raft {
namespace {

TEST(ProgressTest, InflightsWindow) {
  Inflights in(3);
  in.Add(LogIndex{2});
  in.Add(LogIndex{4});
  EXPECT_FALSE(in.Full());
  in.Add(LogIndex{7});
  EXPECT_TRUE(in.Full());
  in.FreeLE(LogIndex{4});
  EXPECT_EQ(in.count(), 1u);
  in.FreeFirstOne();
  EXPECT_EQ(in.count(), 0u);
}

TEST(ProgressTest, MaybeDecreaseToTable) {
  struct Case {
    ProgressState state;
    uint64_t match, next, rejected, hint_next;
    bool want_changed;
    uint64_t want_next;
  };
  const Case cases[] = {
      // Replicate: a rejection at or below match is stale.
      {ProgressState::kReplicate, 5, 10, 5, 5, false, 10},
      {ProgressState::kReplicate, 5, 10, 4, 4, false, 10},
      // Replicate: a real rejection sends next back to match + 1.
      {ProgressState::kReplicate, 5, 10, 9, 9, true, 6},
      // Probe: only the answer to the outstanding probe (next - 1) counts.
      {ProgressState::kProbe, 0, 10, 5, 5, false, 10},
      {ProgressState::kProbe, 0, 10, 9, 9, true, 9},
      // Probe: the hint skips back further, but never below match + 1.
      {ProgressState::kProbe, 0, 10, 9, 3, true, 3},
      {ProgressState::kProbe, 4, 10, 9, 2, true, 5},
  };
  for (size_t i = 0; i < std::size(cases); ++i) {
    SCOPED_TRACE(i);
    const Case& c = cases[i];
    Progress p(8);
    p.match_index = LogIndex{c.match};
    p.next_index = LogIndex{c.next};
    p.state = c.state;
    EXPECT_EQ(p.MaybeDecreaseTo(LogIndex{c.rejected}, LogIndex{c.hint_next}), c.want_changed);
    EXPECT_EQ(p.next_index, LogIndex{c.want_next});
  }
}

TEST(ProgressTest, PausedByState) {
  Progress p(1);
  EXPECT_FALSE(p.IsPaused());
  p.probe_sent = true;
  EXPECT_TRUE(p.IsPaused());
  p.MaybeUpdate(LogIndex{3});  // an answer resumes probing
  EXPECT_FALSE(p.IsPaused());
  p.BecomeReplicate();
  EXPECT_EQ(p.next_index, LogIndex{4});
  p.inflights.Add(LogIndex{5});
  EXPECT_TRUE(p.IsPaused());  // window of one is full
  p.BecomeSnapshot(LogIndex{10});
  EXPECT_TRUE(p.IsPaused());
  p.BecomeProbe();
  EXPECT_EQ(p.next_index, LogIndex{11});  // resumes after the snapshot
}

}  // namespace
}  // namespace rkv::raft
