// The checker on hand-written histories (each named for what it shows), on
// randomized histories from real sequential executions, and on histories
// recorded by concurrent threads.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <thread>

#include "common/random.h"
#include "support/test_util.h"
#include "tools/lincheck/lincheck.h"

namespace rkv::lincheck {
namespace {

CheckResult CheckText(std::string_view text, const CheckOptions& options = {}) {
  auto history = ReadHistory(text);
  RKV_ASSERT_MSG(history.ok(), history.status().ToString());
  return Check(*history, options);
}

#define EXPECT_LINEARIZABLE(text)                                               \
  do {                                                                          \
    const CheckResult r_ = CheckText(text);                                     \
    EXPECT_EQ(r_.verdict, Verdict::kLinearizable) << r_.explanation;            \
  } while (0)

#define EXPECT_NOT_LINEARIZABLE(text)                                           \
  do {                                                                          \
    const CheckResult r_ = CheckText(text);                                     \
    EXPECT_EQ(r_.verdict, Verdict::kNotLinearizable);                           \
    EXPECT_FALSE(r_.explanation.empty());                                       \
  } while (0)

TEST(LincheckTest, EmptyHistoryIsLinearizable) {
  const CheckResult r = Check(History{});
  EXPECT_EQ(r.verdict, Verdict::kLinearizable);
  EXPECT_EQ(r.stats.partitions, 0u);
}

TEST(LincheckTest, SequentialHistoryIsLinearizable) {
  EXPECT_LINEARIZABLE(R"(
    1 1 invoke get x
    2 1 ok absent
    3 1 invoke put x a
    4 1 ok
    5 2 invoke get x
    6 2 ok a
    7 1 invoke put x b
    8 1 ok
    9 2 invoke get x
    10 2 ok b
  )");
}

TEST(LincheckTest, GetConcurrentWithPutMaySeeEitherValue) {
  constexpr std::string_view kOld = R"(
    1 1 invoke put x a
    2 1 ok
    3 1 invoke put x b
    4 2 invoke get x
    5 2 ok a
    6 1 ok
  )";
  constexpr std::string_view kNew = R"(
    1 1 invoke put x a
    2 1 ok
    3 1 invoke put x b
    4 2 invoke get x
    5 2 ok b
    6 1 ok
  )";
  EXPECT_LINEARIZABLE(kOld);
  EXPECT_LINEARIZABLE(kNew);
}

TEST(LincheckTest, ConcurrentReadsMayNotSeeNewThenOld) {
  // Two sequential reads by one client during a put: new then old is a read
  // going back in time.
  EXPECT_LINEARIZABLE(R"(
    1 1 invoke put x a
    2 1 ok
    3 1 invoke put x b
    4 2 invoke get x
    5 2 ok a
    6 2 invoke get x
    7 2 ok b
    8 1 ok
  )");
  EXPECT_NOT_LINEARIZABLE(R"(
    1 1 invoke put x a
    2 1 ok
    3 1 invoke put x b
    4 2 invoke get x
    5 2 ok b
    6 2 invoke get x
    7 2 ok a
    8 1 ok
  )");
}

TEST(LincheckTest, StaleReadAfterCompletedWriteIsNotLinearizable) {
  const CheckResult r = CheckText(R"(
    1 1 invoke put x a
    2 1 ok
    3 1 invoke put x b
    4 1 ok
    5 2 invoke get x
    6 2 ok a
  )");
  ASSERT_EQ(r.verdict, Verdict::kNotLinearizable);
  EXPECT_EQ(r.key, "x");
  // The longest order places both puts; the get cannot follow them.
  ASSERT_EQ(r.longest_prefix.size(), 2u);
  EXPECT_EQ(r.longest_prefix[1].value, "b");
  ASSERT_TRUE(r.unplaceable.has_value());
  EXPECT_EQ(r.unplaceable->type, OpType::kGet);
  EXPECT_EQ(r.unplaceable->line, 6);  // the text starts with an empty line
  EXPECT_NE(r.explanation.find("Value of x after it: b"), std::string::npos) << r.explanation;
  EXPECT_NE(r.explanation.find("get x -> a"), std::string::npos) << r.explanation;
}

TEST(LincheckTest, ReadOfValueNeverWrittenIsNotLinearizable) {
  const CheckResult r = CheckText(R"(
    1 1 invoke put x a
    2 1 ok
    3 2 invoke get x
    4 2 ok zzz
  )");
  ASSERT_EQ(r.verdict, Verdict::kNotLinearizable);
  EXPECT_NE(r.explanation.find("no put or cas"), std::string::npos) << r.explanation;
  ASSERT_TRUE(r.unplaceable.has_value());
  EXPECT_EQ(r.unplaceable->result, "zzz");
}

TEST(LincheckTest, LostWriteSeenAsOlderValueIsNotLinearizable) {
  // b was acknowledged, then a read by another client sees a again.
  EXPECT_NOT_LINEARIZABLE(R"(
    1 1 invoke put x a
    2 1 ok
    3 2 invoke get x
    4 2 ok a
    5 1 invoke put x b
    6 1 ok
    7 3 invoke get x
    8 3 ok b
    9 2 invoke get x
    10 2 ok a
  )");
}

TEST(LincheckTest, UnknownPutThatLaterAppearsIsLinearizable) {
  EXPECT_LINEARIZABLE(R"(
    1 1 invoke put x a
    2 1 ok
    3 2 invoke put x b
    4 2 unknown
    5 3 invoke get x
    6 3 ok a
    7 3 invoke get x
    8 3 ok b
  )");
}

TEST(LincheckTest, UnknownPutThatNeverAppearsIsLinearizable) {
  EXPECT_LINEARIZABLE(R"(
    1 1 invoke put x a
    2 1 ok
    3 2 invoke put x b
    4 2 unknown
    5 3 invoke get x
    6 3 ok a
  )");
}

TEST(LincheckTest, UnknownPutSeenBeforeItsInvocationIsNotLinearizable) {
  EXPECT_NOT_LINEARIZABLE(R"(
    1 1 invoke put x a
    2 1 ok
    3 3 invoke get x
    4 3 ok b
    5 2 invoke put x b
    6 2 unknown
  )");
}

TEST(LincheckTest, UnknownWritesNobodyObservedAreLeftOut) {
  const CheckResult r = CheckText(R"(
    1 1 invoke put x a
    2 1 ok
    3 2 invoke put x lost1
    4 2 unknown
    5 3 invoke delete x
    6 3 unknown
    7 4 invoke cas x a lost2
    8 4 unknown
    9 5 invoke get x
    10 5 ok a
  )");
  EXPECT_EQ(r.verdict, Verdict::kLinearizable) << r.explanation;
  EXPECT_EQ(r.stats.pruned, 3u);
  // A failed cas could have seen any of them: nothing is left out.
  const CheckResult with_cas = CheckText(R"(
    1 1 invoke put x a
    2 1 ok
    3 2 invoke put x lost1
    4 2 unknown
    5 3 invoke cas x a b
    6 3 fail
  )");
  EXPECT_EQ(with_cas.verdict, Verdict::kLinearizable) << with_cas.explanation;
  EXPECT_EQ(with_cas.stats.pruned, 0u);
}

TEST(LincheckTest, PendingOperationIsCheckedAsUnknown) {
  // The history ends while the put of b is outstanding.
  EXPECT_LINEARIZABLE(R"(
    1 2 invoke put x b
    2 3 invoke get x
    3 3 ok b
  )");
}

TEST(LincheckTest, RejectedAndFailedWritesAreDropped) {
  const CheckResult r = CheckText(R"(
    1 1 invoke put x a
    2 1 ok
    3 2 invoke put x b
    4 2 rejected
    5 2 invoke delete x
    6 2 fail
    7 3 invoke get x
    8 3 ok a
    9 3 invoke get x
    10 3 unknown
  )");
  EXPECT_EQ(r.verdict, Verdict::kLinearizable) << r.explanation;
  EXPECT_EQ(r.stats.dropped, 3u);
  // A rejected put's value may never be read.
  EXPECT_NOT_LINEARIZABLE(R"(
    1 2 invoke put x b
    2 2 rejected
    3 3 invoke get x
    4 3 ok b
  )");
}

TEST(LincheckTest, CasSuccessAndFailure) {
  EXPECT_LINEARIZABLE(R"(
    1 1 invoke cas x absent a
    2 1 ok
    3 1 invoke cas x absent b
    4 1 fail
    5 1 invoke cas x a b
    6 1 ok
    7 2 invoke get x
    8 2 ok b
  )");
  // A cas that failed although the value was the expected one.
  EXPECT_NOT_LINEARIZABLE(R"(
    1 1 invoke put x a
    2 1 ok
    3 1 invoke cas x a b
    4 1 fail
  )");
  // A cas that succeeded although the value was not the expected one.
  EXPECT_NOT_LINEARIZABLE(R"(
    1 1 invoke put x a
    2 1 ok
    3 1 invoke put x c
    4 1 ok
    5 1 invoke cas x a b
    6 1 ok
  )");
}

TEST(LincheckTest, ConcurrentCasFromTheSameValueOnlyOneWins) {
  EXPECT_LINEARIZABLE(R"(
    1 1 invoke put x a
    2 1 ok
    3 1 invoke cas x a b
    4 2 invoke cas x a c
    5 1 ok
    6 2 fail
    7 3 invoke get x
    8 3 ok b
  )");
  EXPECT_NOT_LINEARIZABLE(R"(
    1 1 invoke put x a
    2 1 ok
    3 1 invoke cas x a b
    4 2 invoke cas x a c
    5 1 ok
    6 2 ok
  )");
}

TEST(LincheckTest, UnknownCasMayOrMayNotHaveSwapped) {
  EXPECT_LINEARIZABLE(R"(
    1 1 invoke put x a
    2 1 ok
    3 2 invoke cas x a b
    4 2 unknown
    5 3 invoke get x
    6 3 ok b
  )");
  EXPECT_LINEARIZABLE(R"(
    1 1 invoke put x a
    2 1 ok
    3 2 invoke cas x a b
    4 2 unknown
    5 3 invoke get x
    6 3 ok a
  )");
}

TEST(LincheckTest, DeleteThenGetIsAbsent) {
  EXPECT_LINEARIZABLE(R"(
    1 1 invoke put x a
    2 1 ok
    3 1 invoke delete x
    4 1 ok
    5 2 invoke get x
    6 2 ok absent
  )");
  EXPECT_NOT_LINEARIZABLE(R"(
    1 1 invoke put x a
    2 1 ok
    3 1 invoke delete x
    4 1 ok
    5 2 invoke get x
    6 2 ok a
  )");
}

TEST(LincheckTest, EqualTimesCountAsConcurrent) {
  // The put completes at 3 and the get is invoked at 3: either order is allowed.
  EXPECT_LINEARIZABLE(R"(
    1 1 invoke put x a
    3 1 ok
    3 2 invoke get x
    4 2 ok absent
  )");
}

TEST(LincheckTest, OnlyTheBadKeyIsNamed) {
  const CheckResult r = CheckText(R"(
    1 1 invoke put alpha 1
    2 1 ok
    3 2 invoke put beta 1
    4 2 ok
    5 3 invoke put gamma 1
    6 3 ok
    7 1 invoke put beta 2
    8 1 ok
    9 2 invoke get alpha
    10 2 ok 1
    11 3 invoke get beta
    12 3 ok 1
    13 1 invoke get gamma
    14 1 ok 1
  )");
  ASSERT_EQ(r.verdict, Verdict::kNotLinearizable);
  EXPECT_EQ(r.key, "beta");
  EXPECT_EQ(r.bad_keys, std::vector<std::string>{"beta"});
  EXPECT_EQ(r.stats.partitions, 3u);
  EXPECT_NE(r.explanation.find("key beta is not linearizable"), std::string::npos) << r.explanation;
  EXPECT_EQ(r.explanation.find("alpha"), std::string::npos) << r.explanation;
  for (const PartitionReport& p : r.partitions) {
    EXPECT_EQ(p.verdict, p.key == "beta" ? Verdict::kNotLinearizable : Verdict::kLinearizable) << p.key;
  }
}

// Many concurrent puts and gets on one key, then two reads that no order of
// the concurrent block can explain: the search must try (nearly) every subset.
History HardHistory(int writers) {
  History h;
  int64_t t = 0;
  for (int i = 0; i < writers; ++i) {
    Operation put = Operation::Put(static_cast<uint64_t>(i), "hot", "v" + std::to_string(i));
    put.invoke_time = t;
    put.complete_time = 1000;
    put.outcome = Outcome::kOk;
    h.ops.push_back(put);
    Operation get = Operation::Get(static_cast<uint64_t>(100 + i), "hot");
    get.invoke_time = t;
    get.complete_time = 1000;
    get.outcome = Outcome::kOk;
    get.result = "v" + std::to_string((i + 1) % writers);
    h.ops.push_back(get);
    ++t;
  }
  for (int i = 0; i < 2; ++i) {
    Operation get = Operation::Get(500, "hot");
    get.invoke_time = 2000 + 10 * i;
    get.complete_time = 2005 + 10 * i;
    get.outcome = Outcome::kOk;
    get.result = i == 0 ? "v1" : "v0";
    h.ops.push_back(get);
  }
  Operation other = Operation::Put(600, "cold", "x");
  other.invoke_time = 1;
  other.complete_time = 2;
  other.outcome = Outcome::kOk;
  h.ops.push_back(other);
  return h;
}

TEST(LincheckTest, StepBudgetExceededIsUnknownAndNamesTheKey) {
  CheckOptions options;
  options.max_steps = 200'000;
  const CheckResult r = Check(HardHistory(24), options);
  ASSERT_EQ(r.verdict, Verdict::kUnknown) << r.explanation;
  EXPECT_EQ(r.key, "hot");
  EXPECT_NE(r.explanation.find("hot"), std::string::npos) << r.explanation;
  EXPECT_LE(r.stats.steps, 200'000u);
  // The small key was checked first and found linearizable.
  ASSERT_EQ(r.partitions.size(), 2u);
  EXPECT_EQ(r.partitions[0].key, "cold");
  EXPECT_EQ(r.partitions[0].verdict, Verdict::kLinearizable);
}

TEST(LincheckTest, TimeLimitExceededIsUnknown) {
  CheckOptions options;
  options.max_steps = 0;
  options.time_limit = std::chrono::milliseconds(50);
  const auto start = std::chrono::steady_clock::now();
  const CheckResult r = Check(HardHistory(24), options);
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(r.verdict, Verdict::kUnknown) << r.explanation;
  EXPECT_NE(r.explanation.find("time limit"), std::string::npos) << r.explanation;
  EXPECT_LT(took, std::chrono::seconds(3));
}

TEST(LincheckTest, CacheMemoryLimitExceededIsUnknown) {
  CheckOptions options;
  options.max_steps = 0;
  options.max_cache_bytes = 1 << 20;
  const CheckResult r = Check(HardHistory(24), options);
  EXPECT_EQ(r.verdict, Verdict::kUnknown) << r.explanation;
  EXPECT_EQ(r.key, "hot");
  EXPECT_NE(r.explanation.find("memory limit"), std::string::npos) << r.explanation;
}

TEST(LincheckTest, SmallHardHistoryIsDecided) {
  const CheckResult r = Check(HardHistory(6));
  EXPECT_EQ(r.verdict, Verdict::kNotLinearizable) << r.explanation;
  EXPECT_EQ(r.key, "hot");
}

// ---------------------------------------------------------------------------
// Randomized: histories from a real sequential execution.

struct GenOptions {
  int ops = 300;
  int keys = 3;
  int64_t max_width = 40;  // how far an interval reaches around its point
};

// Runs random operations one after another against a map; operation i takes
// effect at time 10*i, and its interval is stretched randomly around that
// point. Clients are assigned so that none has two operations at once. Some
// writes are given unknown outcomes (taken effect or not), some rejected.
History Generate(Random* rng, const GenOptions& g) {
  std::map<std::string, std::string> store;
  History h;
  std::vector<std::string> written;  // values written so far, for cas guesses
  for (int i = 0; i < g.ops; ++i) {
    const std::string key = "k" + std::to_string(rng->Uniform(static_cast<uint64_t>(g.keys)));
    const std::string fresh = "v" + std::to_string(i);
    const uint64_t pick = rng->Uniform(100);
    Operation op;
    bool applied = true;
    if (pick < 30) {
      op = Operation::Put(0, key, fresh);
      if (rng->OneIn(20)) applied = false;  // an unknown or rejected write that never happened
      if (applied) store[key] = fresh;
      op.outcome = applied ? Outcome::kOk : (rng->OneIn(2) ? Outcome::kUnknown : Outcome::kRejected);
    } else if (pick < 65) {
      op = Operation::Get(0, key);
      auto it = store.find(key);
      op.result = it == store.end() ? std::nullopt : std::optional<std::string>(it->second);
      op.outcome = Outcome::kOk;
    } else if (pick < 75) {
      op = Operation::Delete(0, key);
      store.erase(key);
      op.outcome = Outcome::kOk;
    } else {
      auto it = store.find(key);
      std::optional<std::string> expected;
      if (it != store.end() && rng->OneIn(2)) {
        expected = it->second;
      } else if (!written.empty() && rng->OneIn(2)) {
        expected = written[rng->Uniform(written.size())];
      }
      op = Operation::Cas(0, key, expected, fresh);
      const std::optional<std::string> current =
          it == store.end() ? std::nullopt : std::optional<std::string>(it->second);
      const bool swapped = current == expected;
      if (swapped) store[key] = fresh;
      op.outcome = swapped ? Outcome::kOk : Outcome::kFail;
    }
    if (applied && op.type != OpType::kGet && rng->OneIn(25)) op.outcome = Outcome::kUnknown;
    if (op.type == OpType::kPut || op.type == OpType::kCas) written.push_back(fresh);
    const int64_t point = 10 * static_cast<int64_t>(i);
    op.invoke_time = point - static_cast<int64_t>(rng->Uniform(static_cast<uint64_t>(g.max_width)));
    op.complete_time = point + static_cast<int64_t>(rng->Uniform(static_cast<uint64_t>(g.max_width)));
    h.ops.push_back(std::move(op));
  }
  // An unknown write's client gives up at complete_time; later operations of
  // that client may start after that.
  std::vector<size_t> order(h.ops.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return h.ops[a].invoke_time < h.ops[b].invoke_time; });
  std::vector<int64_t> client_free;  // per client, the completion of its last op
  for (size_t i : order) {
    Operation& op = h.ops[i];
    size_t c = 0;
    while (c < client_free.size() && client_free[c] >= op.invoke_time) ++c;
    if (c == client_free.size()) client_free.push_back(0);
    client_free[c] = op.complete_time;
    op.client = c + 1;
  }
  return h;
}

// Changes one get to read a value written only by an operation invoked after
// the get completed. Returns false if the history has no such pair.
bool ReadFromTheFuture(Random* rng, History* h) {
  std::vector<std::pair<size_t, size_t>> pairs;
  for (size_t g = 0; g < h->ops.size(); ++g) {
    const Operation& get = h->ops[g];
    if (get.type != OpType::kGet || get.outcome != Outcome::kOk) continue;
    for (size_t w = 0; w < h->ops.size(); ++w) {
      const Operation& write = h->ops[w];
      if (write.key != get.key || write.invoke_time <= get.complete_time) continue;
      if (write.type == OpType::kPut && write.outcome != Outcome::kRejected) pairs.push_back({g, w});
      if (write.type == OpType::kCas && write.outcome != Outcome::kFail) pairs.push_back({g, w});
      if (pairs.size() > 200) break;
    }
  }
  if (pairs.empty()) return false;
  const auto [g, w] = pairs[rng->Uniform(pairs.size())];
  const Operation& write = h->ops[w];
  h->ops[g].result = write.type == OpType::kPut ? *write.value : write.new_value;
  return true;
}

TEST(LincheckTest, RandomizedHistoriesOfRealExecutions) {
  const uint64_t seed = test::TestSeed(20261124);
  std::printf("seed %llu (RKV_TEST_SEED=%llu repeats this run)\n", static_cast<unsigned long long>(seed),
              static_cast<unsigned long long>(seed));
  Random rng(seed);
  constexpr int kRounds = 400;
  size_t total_ops = 0;
  uint64_t total_steps = 0;
  uint64_t max_steps = 0;
  int never_written = 0;
  int from_future = 0;
  const auto start = std::chrono::steady_clock::now();
  for (int round = 0; round < kRounds; ++round) {
    GenOptions g;
    g.ops = static_cast<int>(rng.Range(20, 300));
    g.keys = static_cast<int>(rng.Range(1, 4));
    g.max_width = static_cast<int64_t>(rng.Range(1, 50));
    History h = Generate(&rng, g);
    total_ops += h.ops.size();
    const CheckResult r = Check(h);
    total_steps += r.stats.steps;
    max_steps = std::max(max_steps, r.stats.steps);
    ASSERT_EQ(r.verdict, Verdict::kLinearizable)
        << "seed " << seed << " round " << round << "\n" << r.explanation << WriteHistory(h);

    // One get reads a value nobody wrote.
    std::vector<size_t> gets;
    for (size_t i = 0; i < h.ops.size(); ++i) {
      if (h.ops[i].type == OpType::kGet && h.ops[i].outcome == Outcome::kOk) gets.push_back(i);
    }
    if (!gets.empty()) {
      History bad = h;
      Operation& get = bad.ops[gets[rng.Uniform(gets.size())]];
      get.result = "never-written";
      const CheckResult rb = Check(bad);
      ASSERT_EQ(rb.verdict, Verdict::kNotLinearizable) << "seed " << seed << " round " << round;
      ASSERT_EQ(rb.key, get.key);
      ++never_written;
    }
    // One get reads a value written only after it completed.
    History future = h;
    if (ReadFromTheFuture(&rng, &future)) {
      const CheckResult rf = Check(future);
      ASSERT_EQ(rf.verdict, Verdict::kNotLinearizable)
          << "seed " << seed << " round " << round << "\n" << WriteHistory(future);
      total_steps += rf.stats.steps;
      max_steps = std::max(max_steps, rf.stats.steps);
      ++from_future;
    }
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%d histories, %zu operations, %llu steps (at most %llu for one), %d never-written and %d "
              "read-from-the-future mutants, %.3f s\n",
              kRounds, total_ops, static_cast<unsigned long long>(total_steps),
              static_cast<unsigned long long>(max_steps), never_written, from_future, secs);
  EXPECT_GT(from_future, kRounds / 2);
}

TEST(LincheckTest, LargeRandomizedHistory) {
  const uint64_t seed = test::TestSeed(7);
  std::printf("seed %llu\n", static_cast<unsigned long long>(seed));
  Random rng(seed);
  GenOptions g;
  g.ops = 50'000;
  g.keys = 10;
  g.max_width = 50;
  const History h = Generate(&rng, g);
  const auto start = std::chrono::steady_clock::now();
  const CheckResult r = Check(h);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_EQ(r.verdict, Verdict::kLinearizable) << r.explanation;
  std::printf("%zu operations on %zu keys: %llu steps, %llu cache entries, %.3f s\n", h.ops.size(),
              r.stats.partitions, static_cast<unsigned long long>(r.stats.steps),
              static_cast<unsigned long long>(r.stats.cache_entries), secs);
}

// ---------------------------------------------------------------------------
// Against brute force: small random histories (outcomes, results and
// intervals all random, so about half are linearizable) judged by trying every
// order.

bool BruteForceDropped(const Operation& op) {
  if (op.outcome == Outcome::kRejected) return true;
  if (op.outcome == Outcome::kFail && op.type != OpType::kCas) return true;
  return op.type == OpType::kGet && (op.outcome == Outcome::kUnknown || op.outcome == Outcome::kPending);
}

// Tries every order of the operations consistent with real time; an
// operation with an unknown outcome may also be left out (as if it took
// effect after everything else, or never).
bool BruteForce(const std::vector<Operation>& ops, std::vector<bool>* done,
                const std::optional<std::string>& state) {
  bool all_known_done = true;
  for (size_t i = 0; i < ops.size(); ++i) {
    if (!(*done)[i] && ops[i].outcome != Outcome::kUnknown) all_known_done = false;
  }
  if (all_known_done) return true;
  for (size_t i = 0; i < ops.size(); ++i) {
    if ((*done)[i]) continue;
    const Operation& op = ops[i];
    bool must_wait = false;  // another remaining operation completed before this one began
    for (size_t j = 0; j < ops.size() && !must_wait; ++j) {
      must_wait = j != i && !(*done)[j] && ops[j].outcome != Outcome::kUnknown &&
                  ops[j].complete_time < op.invoke_time;
    }
    if (must_wait) continue;
    std::optional<std::string> next = state;
    bool valid = true;
    const bool unknown = op.outcome == Outcome::kUnknown;
    switch (op.type) {
      case OpType::kPut: next = op.value; break;
      case OpType::kDelete: next.reset(); break;
      case OpType::kGet: valid = op.result == state; break;
      case OpType::kCas:
        if (unknown) {
          if (state == op.value) next = op.new_value;
        } else if (op.outcome == Outcome::kOk) {
          valid = state == op.value;
          next = op.new_value;
        } else {
          valid = state != op.value;
        }
        break;
    }
    if (!valid) continue;
    (*done)[i] = true;
    const bool found = BruteForce(ops, done, next);
    (*done)[i] = false;
    if (found) return true;
  }
  return false;
}

TEST(LincheckTest, AgreesWithBruteForceOnSmallHistories) {
  const uint64_t seed = test::TestSeed(424242);
  std::printf("seed %llu\n", static_cast<unsigned long long>(seed));
  Random rng(seed);
  const char* const kValues[] = {"a", "b", "c"};
  auto random_value = [&]() -> std::optional<std::string> {
    if (rng.OneIn(4)) return std::nullopt;
    return std::string(kValues[rng.Uniform(3)]);
  };
  int linearizable = 0;
  size_t pruned = 0;
  constexpr int kRounds = 4000;
  for (int round = 0; round < kRounds; ++round) {
    History h;
    const auto n = rng.Range(1, 8);
    for (uint64_t i = 0; i < n; ++i) {
      Operation op;
      switch (rng.Uniform(4)) {
        case 0: op = Operation::Put(i, "k", kValues[rng.Uniform(3)]); break;
        case 1: op = Operation::Get(i, "k"); break;
        case 2: op = Operation::Delete(i, "k"); break;
        default: op = Operation::Cas(i, "k", random_value(), kValues[rng.Uniform(3)]); break;
      }
      op.invoke_time = static_cast<int64_t>(rng.Uniform(20));
      op.complete_time = op.invoke_time + static_cast<int64_t>(rng.Uniform(8));
      const uint64_t o = rng.Uniform(10);
      op.outcome = o < 6 ? Outcome::kOk : o < 8 ? Outcome::kUnknown : o < 9 ? Outcome::kFail : Outcome::kRejected;
      if (op.type == OpType::kGet && op.outcome == Outcome::kOk) op.result = random_value();
      h.ops.push_back(std::move(op));
    }
    std::vector<Operation> kept;
    for (const Operation& op : h.ops) {
      if (!BruteForceDropped(op)) kept.push_back(op);
    }
    std::vector<bool> done(kept.size(), false);
    const bool expected = BruteForce(kept, &done, std::nullopt);
    const CheckResult r = Check(h);
    ASSERT_EQ(r.verdict, expected ? Verdict::kLinearizable : Verdict::kNotLinearizable)
        << "seed " << seed << " round " << round << "\n" << WriteHistory(h) << r.explanation;
    linearizable += expected ? 1 : 0;
    pruned += r.stats.pruned;
  }
  std::printf("%d of %d random small histories linearizable; %zu unobserved unknown writes left out\n",
              linearizable, kRounds, pruned);
  EXPECT_GT(pruned, 0u);
  EXPECT_GT(linearizable, kRounds / 10);
  EXPECT_LT(linearizable, kRounds * 9 / 10);
}

// ---------------------------------------------------------------------------
// The Recorder, from concurrent threads.

TEST(LincheckTest, RecorderHistoryOfAMutexGuardedMapIsLinearizable) {
  Recorder rec;
  std::mutex mu;
  std::map<std::string, std::string> store;
  constexpr int kThreads = 4;
  constexpr int kOpsPerThread = 400;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Random rng(static_cast<uint64_t>(t) + 1);
      const auto client = static_cast<uint64_t>(t);
      for (int i = 0; i < kOpsPerThread; ++i) {
        const std::string key = "k" + std::to_string(rng.Uniform(3));
        const std::string value = std::to_string(t) + "-" + std::to_string(i);
        switch (rng.Uniform(4)) {
          case 0: {
            const auto id = rec.Invoke(Operation::Put(client, key, value));
            { std::lock_guard<std::mutex> l(mu); store[key] = value; }
            rec.Complete(id, Outcome::kOk);
            break;
          }
          case 1: {
            const auto id = rec.Invoke(Operation::Get(client, key));
            std::optional<std::string> got;
            {
              std::lock_guard<std::mutex> l(mu);
              if (auto it = store.find(key); it != store.end()) got = it->second;
            }
            rec.Complete(id, Outcome::kOk, got);
            break;
          }
          case 2: {
            const auto id = rec.Invoke(Operation::Delete(client, key));
            { std::lock_guard<std::mutex> l(mu); store.erase(key); }
            rec.Complete(id, Outcome::kOk);
            break;
          }
          default: {
            std::optional<std::string> expected;
            {
              std::lock_guard<std::mutex> l(mu);
              if (auto it = store.find(key); it != store.end()) expected = it->second;
            }
            const auto id = rec.Invoke(Operation::Cas(client, key, expected, value));
            bool swapped;
            {
              std::lock_guard<std::mutex> l(mu);
              auto it = store.find(key);
              const std::optional<std::string> cur =
                  it == store.end() ? std::nullopt : std::optional<std::string>(it->second);
              swapped = cur == expected;
              if (swapped) store[key] = value;
            }
            rec.Complete(id, swapped ? Outcome::kOk : Outcome::kFail);
            break;
          }
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  const History h = rec.Snapshot();
  ASSERT_EQ(h.ops.size(), static_cast<size_t>(kThreads * kOpsPerThread));
  // Time stamps are unique.
  std::vector<int64_t> times;
  for (const Operation& op : h.ops) {
    times.push_back(op.invoke_time);
    times.push_back(op.complete_time);
  }
  std::sort(times.begin(), times.end());
  EXPECT_EQ(std::adjacent_find(times.begin(), times.end()), times.end());
  const CheckResult r = Check(h);
  EXPECT_EQ(r.verdict, Verdict::kLinearizable) << r.explanation;
  // The recorded history survives the text format.
  auto again = ReadHistory(WriteHistory(h));
  ASSERT_OK(again);
  EXPECT_EQ(*again, h);
}

TEST(LincheckTest, RecorderSnapshotShowsPendingOperations) {
  Recorder rec;
  const auto a = rec.Invoke(Operation::Put(1, "k", "v"));
  const auto b = rec.Invoke(Operation::Get(2, "k"));
  rec.Complete(b, Outcome::kOk, std::string("v"));
  const History h = rec.Snapshot();
  ASSERT_EQ(h.ops.size(), 2u);
  EXPECT_EQ(h.ops[a].outcome, Outcome::kPending);
  EXPECT_EQ(h.ops[b].result, "v");
  EXPECT_LT(h.ops[a].invoke_time, h.ops[b].invoke_time);
  EXPECT_EQ(Check(h).verdict, Verdict::kLinearizable);
}

}  // namespace
}  // namespace rkv::lincheck
