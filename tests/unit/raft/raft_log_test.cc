// RaftLog: the persisted log plus its unstable tail (Figure 2's log rules,
// §5.3 Log Matching, §7 snapshots).
#include "raft/raft_log.h"

#include <gtest/gtest.h>

#include <type_traits>

#include "unit/raft/raft_harness.h"

namespace rkv::raft {
namespace {

using test::EntriesWithTerms;
using test::MakeConfiguration;

// The strong types do not mix: swapping a term and an index, or passing a
// raw integer, does not compile.
static_assert(!std::is_convertible_v<Term, LogIndex>);
static_assert(!std::is_convertible_v<LogIndex, Term>);
static_assert(!std::is_convertible_v<NodeId, Term>);
static_assert(!std::is_convertible_v<uint64_t, LogIndex>);
static_assert(!std::is_convertible_v<LogIndex, uint64_t>);
static_assert(std::is_same_v<decltype(LogIndex{3} + 1), LogIndex>);
static_assert(std::is_same_v<decltype(LogIndex{3} - LogIndex{1}), uint64_t>);

std::vector<uint64_t> Terms(const std::vector<Entry>& entries) {
  std::vector<uint64_t> out;
  for (const Entry& e : entries) out.push_back(e.term.value());
  return out;
}

// §5.3: the first entry whose term differs from ours is where logs diverge.
TEST(RaftLogTest, FindConflictTable) {
  MemoryLogStorage storage(MakeConfiguration({1}));
  storage.Append(EntriesWithTerms(1, {1, 2, 3}));
  RaftLog log(&storage, LogIndex{0}, LogIndex{0});
  struct Case {
    uint64_t first;
    std::vector<uint64_t> terms;
    uint64_t want;  // 0: no conflict
  };
  const Case cases[] = {
      {1, {}, 0},           {1, {1, 2, 3}, 0},    {2, {2, 3}, 0},  {3, {3}, 0},
      {1, {1, 2, 3, 4}, 4}, {2, {2, 3, 4, 4}, 4}, {4, {4, 4}, 4},  {1, {4, 4}, 1},
      {2, {1, 4, 4}, 2},    {3, {1, 2, 4, 4}, 3},
  };
  for (size_t i = 0; i < std::size(cases); ++i) {
    SCOPED_TRACE(i);
    auto conflict = log.FindConflict(EntriesWithTerms(cases[i].first, cases[i].terms));
    EXPECT_EQ(conflict.value_or(LogIndex{0}), LogIndex{cases[i].want});
  }
}

// Figure 2, AppendEntries receiver rules 2-4.
TEST(RaftLogTest, MaybeAppendTable) {
  struct Case {
    uint64_t prev_index, prev_term;
    uint64_t first;
    std::vector<uint64_t> terms;
    bool want_ok;
    uint64_t want_last_new;
    std::vector<uint64_t> want_log;
  };
  const Case cases[] = {
      // Rule 2: no entry at prev_index with prev_term.
      {3, 2, 4, {4}, false, 0, {1, 2, 3}},
      {4, 3, 5, {4}, false, 0, {1, 2, 3}},
      // Matches: append new entries.
      {3, 3, 4, {4}, true, 4, {1, 2, 3, 4}},
      {3, 3, 4, {}, true, 3, {1, 2, 3}},
      // Entries already present are kept, nothing truncated (an old, shorter
      // request must not cut the log).
      {1, 1, 2, {2}, true, 2, {1, 2, 3}},
      // Rule 3: a conflicting entry and all after it are replaced.
      {1, 1, 2, {4}, true, 2, {1, 4}},
      {2, 2, 3, {4, 4}, true, 4, {1, 2, 4, 4}},
  };
  for (size_t i = 0; i < std::size(cases); ++i) {
    SCOPED_TRACE(i);
    const Case& c = cases[i];
    MemoryLogStorage storage(MakeConfiguration({1}));
    storage.Append(EntriesWithTerms(1, {1, 2, 3}));
    RaftLog log(&storage, LogIndex{1}, LogIndex{0});
    auto last_new = log.MaybeAppend(LogIndex{c.prev_index}, Term{c.prev_term},
                                    EntriesWithTerms(c.first, c.terms));
    EXPECT_EQ(last_new.has_value(), c.want_ok);
    if (last_new) {
      EXPECT_EQ(*last_new, LogIndex{c.want_last_new});
    }
    auto all = log.Slice(LogIndex{1}, log.LastIndex() + 1, UINT64_MAX);
    ASSERT_TRUE(all.ok());
    EXPECT_EQ(Terms(*all), c.want_log);
    log.CheckInvariants();
  }
}

// §5.4.1: compare last terms, then lengths.
TEST(RaftLogTest, IsUpToDateTable) {
  MemoryLogStorage storage(MakeConfiguration({1}));
  storage.Append(EntriesWithTerms(1, {1, 2, 3}));
  RaftLog log(&storage, LogIndex{0}, LogIndex{0});
  struct Case {
    uint64_t last_index, last_term;
    bool want;
  };
  const Case cases[] = {
      {2, 4, true}, {3, 4, true}, {4, 4, true},    // higher last term wins
      {2, 2, false}, {3, 2, false}, {9, 2, false},  // lower last term loses
      {2, 3, false}, {3, 3, true}, {4, 3, true},   // same term: longer or equal wins
  };
  for (size_t i = 0; i < std::size(cases); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(log.IsUpToDate(LogIndex{cases[i].last_index}, Term{cases[i].last_term}),
              cases[i].want);
  }
}

TEST(RaftLogTest, StableToAndCommittedEntriesOnlyWhenPersisted) {
  MemoryLogStorage storage(MakeConfiguration({1}));
  RaftLog log(&storage, LogIndex{0}, LogIndex{0});
  log.Append(EntriesWithTerms(1, {1, 1, 1}));
  log.CommitTo(LogIndex{3});
  // Committed but not persisted: nothing to apply yet.
  EXPECT_FALSE(log.HasNextCommittedEntries(LogIndex{0}));
  storage.Append(log.unstable_entries());
  log.StableTo(LogIndex{2}, Term{1});
  EXPECT_EQ(log.StableLastIndex(), LogIndex{2});
  EXPECT_EQ(log.NextCommittedEntries(LogIndex{0}, UINT64_MAX).size(), 2u);
  // A StableTo for an entry since replaced is ignored.
  log.StableTo(LogIndex{3}, Term{9});
  EXPECT_EQ(log.StableLastIndex(), LogIndex{2});
  log.StableTo(LogIndex{3}, Term{1});
  EXPECT_EQ(log.NextCommittedEntries(LogIndex{0}, UINT64_MAX).size(), 3u);
  // The byte cap hands out at least one entry.
  EXPECT_EQ(log.NextCommittedEntries(LogIndex{0}, 1).size(), 1u);
}

TEST(RaftLogTest, SliceAcrossStableAndUnstableRespectsByteCap) {
  MemoryLogStorage storage(MakeConfiguration({1}));
  storage.Append(EntriesWithTerms(1, {1, 1}));
  RaftLog log(&storage, LogIndex{0}, LogIndex{0});
  log.Append(EntriesWithTerms(3, {2, 2}));
  auto all = log.Slice(LogIndex{1}, LogIndex{5}, UINT64_MAX);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(Terms(*all), (std::vector<uint64_t>{1, 1, 2, 2}));
  const uint64_t one = EntryBytes((*all)[0]);
  auto capped = log.Slice(LogIndex{1}, LogIndex{5}, one * 3);
  ASSERT_TRUE(capped.ok());
  EXPECT_EQ(capped->size(), 3u);
}

// §7: after compaction the entries before the snapshot are gone, but the
// snapshot's last entry can still be matched.
TEST(RaftLogTest, CompactedPrefix) {
  MemoryLogStorage storage(MakeConfiguration({1}));
  storage.Append(EntriesWithTerms(1, {1, 1, 2, 2}));
  ASSERT_TRUE(storage.CreateSnapshot(LogIndex{3}, MakeConfiguration({1}), "x").ok());
  RaftLog log(&storage, LogIndex{3}, LogIndex{3});
  EXPECT_EQ(log.FirstIndex(), LogIndex{4});
  EXPECT_FALSE(log.TermAt(LogIndex{2}).ok());
  EXPECT_EQ(*log.TermAt(LogIndex{3}), Term{2});
  EXPECT_FALSE(log.Slice(LogIndex{3}, LogIndex{5}, UINT64_MAX).ok());
  EXPECT_TRUE(log.MatchTerm(LogIndex{3}, Term{2}));
}

TEST(RaftLogTest, RestoreReplacesTheLog) {
  MemoryLogStorage storage(MakeConfiguration({1}));
  storage.Append(EntriesWithTerms(1, {1, 1}));
  RaftLog log(&storage, LogIndex{1}, LogIndex{1});
  Snapshot snapshot{{LogIndex{10}, Term{3}, MakeConfiguration({1, 2})}, "data"};
  log.Restore(snapshot);
  EXPECT_EQ(log.LastIndex(), LogIndex{10});
  EXPECT_EQ(log.committed(), LogIndex{10});
  EXPECT_EQ(log.LastTerm(), Term{3});
  EXPECT_FALSE(log.HasNextCommittedEntries(LogIndex{1}));  // the snapshot goes first
  log.CheckInvariants();
}

}  // namespace
}  // namespace rkv::raft
