// The state machine on a MemEnv engine: each command kind, the key namespace,
// exactly-once sessions, deterministic session expiry and eviction, TTLs at
// entry time, restart, replay, and a random log checked against the model
// and across two replicas.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "common/logging.h"
#include "env/mem_env.h"
#include "node/state_machine.h"
#include "state_machine_model.h"
#include "storage/engine.h"
#include "support/test_util.h"

namespace rkv {
namespace {

using test::LogEntry;
using Code = CommandResult::Code;

constexpr uint64_t kT0 = 1'700'000'000'000;

// One replica: an engine in its own directory and the state machine over it.
class Replica {
 public:
  Replica(Env* env, std::string dir, StateMachineOptions options = {})
      : env_(env), dir_(std::move(dir)), options_(options) {
    Open();
  }

  void Open() {
    auto engine = storage::Engine::Open(test::NodeEngineOptions(env_), dir_);
    ASSERT_OK(engine);
    engine_ = std::move(*engine);
    auto sm = StateMachine::Open(engine_.get(), options_);
    ASSERT_OK(sm);
    sm_ = std::move(*sm);
  }

  // A clean shutdown and restart of the process.
  void Restart() {
    sm_.reset();
    ASSERT_OK(engine_->Close());
    engine_.reset();
    Open();
  }

  // Applies `c` as the next entry (term 1) and returns its result.
  CommandResult Apply(const Command& c) { return ApplyData(EncodeCommand(c)); }
  CommandResult ApplyData(std::string_view data) {
    auto r = sm_->Apply(sm_->applied_index() + 1, Term{1}, data);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : CommandResult{};
  }

  std::string Get(std::string_view key, uint64_t now_ms = 0) {
    auto r = sm_->Get(key, now_ms);
    if (r.status().IsNotFound()) return "<absent>";
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : "<error>";
  }

  StateMachine* sm() { return sm_.get(); }
  storage::Engine* engine() { return engine_.get(); }

 private:
  Env* env_;
  std::string dir_;
  StateMachineOptions options_;
  std::unique_ptr<storage::Engine> engine_;
  std::unique_ptr<StateMachine> sm_;
};

class StateMachineTest : public ::testing::Test {
 protected:
  void SetUp() override { log::SetLevel(log::Level::kWarn); }
  void TearDown() override { log::SetLevel(log::Level::kInfo); }
  MemEnv env_;
};

TEST_F(StateMachineTest, FreshEngineStartsAtIndexZero) {
  Replica r(&env_, "/a");
  EXPECT_EQ(r.sm()->applied_index(), LogIndex{0});
  EXPECT_EQ(r.sm()->applied_term(), Term{0});
  EXPECT_EQ(r.sm()->durable_applied_index(), LogIndex{0});
  EXPECT_EQ(r.sm()->session_count(), 0u);
  EXPECT_EQ(r.Get("k"), "<absent>");
}

TEST_F(StateMachineTest, PutDeleteAndNoops) {
  Replica r(&env_, "/a");
  EXPECT_TRUE(r.Apply(Command::Put("k", "v1")).ok());
  EXPECT_EQ(r.Get("k"), "v1");
  EXPECT_TRUE(r.Apply(Command::Put("k", "v2")).ok());
  EXPECT_EQ(r.Get("k"), "v2");
  EXPECT_TRUE(r.Apply(Command::Put("empty", "")).ok());
  EXPECT_EQ(r.Get("empty"), "");

  // The leader's no-op (empty data) and a no-op command move only the index.
  const auto before = test::DumpEngine(r.engine());
  EXPECT_TRUE(r.ApplyData("").ok());
  EXPECT_TRUE(r.Apply(Command::Noop()).ok());
  EXPECT_EQ(r.sm()->applied_index(), LogIndex{5});
  auto after = test::DumpEngine(r.engine());
  after.erase("mapplied");
  auto before_data = before;
  before_data.erase("mapplied");
  EXPECT_EQ(after, before_data);

  EXPECT_TRUE(r.Apply(Command::Delete("k")).ok());
  EXPECT_EQ(r.Get("k"), "<absent>");
  EXPECT_TRUE(r.Apply(Command::Delete("never-there")).ok());  // deleting an absent key succeeds
  EXPECT_EQ(r.sm()->applied_index(), LogIndex{7});
}

TEST_F(StateMachineTest, AppliedTermFollowsEntries) {
  Replica r(&env_, "/a");
  ASSERT_OK(r.sm()->Apply(LogIndex{1}, Term{1}, ""));
  ASSERT_OK(r.sm()->Apply(LogIndex{2}, Term{4}, EncodeCommand(Command::Put("a", "b"))));
  EXPECT_EQ(r.sm()->applied_index(), LogIndex{2});
  EXPECT_EQ(r.sm()->applied_term(), Term{4});
}

TEST_F(StateMachineTest, CompareAndSwap) {
  Replica r(&env_, "/a");
  // Expected absent: holds on an absent key, then fails once it exists.
  EXPECT_EQ(r.Apply(Command::Cas("c", std::nullopt, "one")).code, Code::kOk);
  EXPECT_EQ(r.Get("c"), "one");
  EXPECT_EQ(r.Apply(Command::Cas("c", std::nullopt, "two")).code, Code::kCasFailed);
  EXPECT_EQ(r.Get("c"), "one");
  // Expected value.
  EXPECT_EQ(r.Apply(Command::Cas("c", std::string("wrong"), "two")).code, Code::kCasFailed);
  EXPECT_EQ(r.Apply(Command::Cas("c", std::string("one"), "two")).code, Code::kOk);
  EXPECT_EQ(r.Get("c"), "two");
  // An empty value is a value, not absence.
  EXPECT_EQ(r.Apply(Command::Cas("e", std::string(), "x")).code, Code::kCasFailed);
  EXPECT_TRUE(r.Apply(Command::Put("e", "")).ok());
  EXPECT_EQ(r.Apply(Command::Cas("e", std::nullopt, "x")).code, Code::kCasFailed);
  EXPECT_EQ(r.Apply(Command::Cas("e", std::string(), "x")).code, Code::kOk);
  EXPECT_EQ(r.Get("e"), "x");
  // After a delete, absent again.
  EXPECT_TRUE(r.Apply(Command::Delete("c")).ok());
  EXPECT_EQ(r.Apply(Command::Cas("c", std::nullopt, "three")).code, Code::kOk);
  EXPECT_EQ(r.Get("c"), "three");
}

TEST_F(StateMachineTest, BatchIsAllOrNothing) {
  Replica r(&env_, "/a");
  ASSERT_TRUE(r.Apply(Command::Put("gone", "x")).ok());
  EXPECT_TRUE(r.Apply(Command::Batch({{BatchOp::Type::kPut, "a", "1", 0},
                                      {BatchOp::Type::kPut, "b", "2", 0},
                                      {BatchOp::Type::kDelete, "gone", {}, 0},
                                      {BatchOp::Type::kPut, "a", "1b", 0}}))
                  .ok());
  EXPECT_EQ(r.Get("a"), "1b");  // later ops win
  EXPECT_EQ(r.Get("b"), "2");
  EXPECT_EQ(r.Get("gone"), "<absent>");

  // One bad op refuses the whole batch.
  const CommandResult bad = r.Apply(Command::Batch({{BatchOp::Type::kPut, "a", "new", 0},
                                                    {BatchOp::Type::kPut, "", "no key", 0}}));
  EXPECT_EQ(bad.code, Code::kRejected);
  EXPECT_EQ(r.Get("a"), "1b");
  EXPECT_TRUE(r.Apply(Command::Batch({})).ok());
}

// A key's revision is the index of the entry that last wrote it; an absent
// key has revision 0; a write answers its own index.
TEST_F(StateMachineTest, RevisionsAreTheIndexOfTheLastWrite) {
  Replica r(&env_, "/a");
  EXPECT_EQ(r.Apply(Command::Put("a", "1")).revision, 1u);
  EXPECT_EQ(r.Apply(Command::Put("b", "2")).revision, 2u);
  EXPECT_TRUE(r.ApplyData("").ok());  // index 3: a no-op
  EXPECT_EQ(r.Apply(Command::Put("a", "3")).revision, 4u);
  auto a = r.sm()->GetEntry("a");
  ASSERT_OK(a);
  EXPECT_EQ(a->value, "3");
  EXPECT_EQ(a->revision, 4u);
  auto b = r.sm()->GetEntry("b");
  ASSERT_OK(b);
  EXPECT_EQ(b->revision, 2u);
  EXPECT_EQ(r.Apply(Command::Delete("b")).revision, 5u);
  EXPECT_TRUE(r.sm()->GetEntry("b").status().IsNotFound());
  // Revisions survive a restart.
  r.Restart();
  a = r.sm()->GetEntry("a");
  ASSERT_OK(a);
  EXPECT_EQ(a->revision, 4u);
}

TEST_F(StateMachineTest, TxnAppliesAllOrNothingOnItsCompares) {
  Replica r(&env_, "/a");
  const auto rev = [](std::string key, Compare::Op op, uint64_t revision) {
    return Compare{std::move(key), Compare::Target::kRevision, op, revision, {}};
  };
  const auto val = [](std::string key, Compare::Op op, std::string value) {
    return Compare{std::move(key), Compare::Target::kValue, op, 0, std::move(value)};
  };
  const auto put = [](std::string key, std::string value) {
    return BatchOp{BatchOp::Type::kPut, std::move(key), std::move(value), 0};
  };
  // "Create if absent": revision == 0.
  CommandResult created = r.Apply(Command::Txn({rev("a", Compare::Op::kEqual, 0)}, {put("a", "1"), put("b", "x")}));
  ASSERT_EQ(created.code, Code::kOk);
  EXPECT_EQ(created.revision, 1u);
  EXPECT_EQ(r.Get("a"), "1");
  EXPECT_EQ(r.Get("b"), "x");

  // The same again fails, writes nothing, and says which compare failed and
  // every compared key's revision.
  CommandResult again = r.Apply(Command::Txn({rev("b", Compare::Op::kGreater, 0), rev("a", Compare::Op::kEqual, 0),
                                              rev("zz", Compare::Op::kEqual, 0)},
                                             {put("a", "2"), {BatchOp::Type::kDelete, "b", {}, 0}}));
  EXPECT_EQ(again.code, Code::kCompareFailed);
  EXPECT_EQ(again.failed_compare, 1u);
  EXPECT_EQ(again.compare_revisions, (std::vector<uint64_t>{1, 1, 0}));
  EXPECT_EQ(r.Get("a"), "1");
  EXPECT_EQ(r.Get("b"), "x");

  // Value compares: bytewise; an absent key satisfies only "not equal".
  EXPECT_EQ(r.Apply(Command::Txn({val("a", Compare::Op::kEqual, "1"), val("b", Compare::Op::kLess, "y"),
                                  val("none", Compare::Op::kNotEqual, "")},
                                 {put("a", "3")}))
                .code,
            Code::kOk);
  EXPECT_EQ(r.Get("a"), "3");
  EXPECT_EQ(r.Apply(Command::Txn({val("none", Compare::Op::kEqual, "")}, {put("a", "4")})).code,
            Code::kCompareFailed);
  EXPECT_EQ(r.Apply(Command::Txn({val("none", Compare::Op::kLess, "zzz")}, {put("a", "4")})).code,
            Code::kCompareFailed);
  EXPECT_EQ(r.Apply(Command::Txn({val("a", Compare::Op::kGreater, "3")}, {put("a", "4")})).code,
            Code::kCompareFailed);
  // Revision compares: a's last write was index 3.
  EXPECT_EQ(r.Apply(Command::Txn({rev("a", Compare::Op::kLess, 3)}, {put("a", "5")})).code, Code::kCompareFailed);
  EXPECT_EQ(r.Apply(Command::Txn({rev("a", Compare::Op::kEqual, 3), rev("a", Compare::Op::kNotEqual, 4)},
                                 {put("a", "5")}))
                .code,
            Code::kOk);
  EXPECT_EQ(r.Get("a"), "5");
  // No compares: an unconditional atomic batch. A bad op refuses it all.
  EXPECT_EQ(r.Apply(Command::Txn({}, {put("c", "1"), put("", "no key")})).code, Code::kRejected);
  EXPECT_EQ(r.Get("c"), "<absent>");
  EXPECT_EQ(r.Apply(Command::Txn({rev("", Compare::Op::kEqual, 0)}, {put("c", "1")})).code, Code::kRejected);
}

TEST_F(StateMachineTest, ScanPagesThroughUserKeysInOrder) {
  Replica r(&env_, "/a");
  for (int i = 0; i < 30; ++i) {
    char key[8];
    snprintf(key, sizeof(key), "p%02d", i);
    ASSERT_TRUE(r.Apply(Command::Put(key, std::string(static_cast<size_t>(i), 'v'))).ok());
  }
  ASSERT_TRUE(r.Apply(Command::Put("q", "other")).ok());
  ASSERT_TRUE(r.Apply(Command::Put("o", "other")).ok());
  ASSERT_TRUE(r.Apply(Command::Put("gone", "ttl", kT0 + 10).WithSession(0, 0, kT0)).ok());

  // Pages of 7 by prefix, each starting at the last page's next_key.
  ScanRequest request;
  request.prefix = "p";
  request.limit = 7;
  std::vector<std::string> keys;
  for (int pages = 0;; ++pages) {
    ASSERT_LT(pages, 10);
    auto page = r.sm()->Scan(request);
    ASSERT_OK(page);
    EXPECT_LE(page->entries.size(), 7u);
    EXPECT_EQ(page->applied_index, r.sm()->applied_index().value());
    for (const KvEntry& e : page->entries) {
      keys.push_back(e.key);
      EXPECT_EQ(e.value, std::string(std::stoul(e.key.substr(1)), 'v'));
      EXPECT_EQ(e.revision, static_cast<uint64_t>(std::stoi(e.key.substr(1)) + 1));
    }
    if (!page->more) break;
    request.start = page->next_key;
  }
  ASSERT_EQ(keys.size(), 30u);
  EXPECT_TRUE(std::is_sorted(keys.begin(), keys.end()));

  // A range, keys only; the end is exclusive; expired keys are left out.
  ScanRequest range;
  range.start = "p28";
  range.end = "q";
  range.keys_only = true;
  auto page = r.sm()->Scan(range);
  ASSERT_OK(page);
  ASSERT_EQ(page->entries.size(), 2u);
  EXPECT_EQ(page->entries[1].key, "p29");
  EXPECT_EQ(page->entries[1].value, "");
  EXPECT_FALSE(page->more);
  ScanRequest all;
  all.limit = 1000;
  page = r.sm()->Scan(all, kT0 + 20);
  ASSERT_OK(page);
  EXPECT_EQ(page->entries.size(), 32u);  // p00..p29, q, o: not "gone"

  // A byte budget ends a page early, but never before its first key.
  ScanRequest small;
  small.prefix = "p2";
  small.max_bytes = 45;
  page = r.sm()->Scan(small);
  ASSERT_OK(page);
  ASSERT_EQ(page->entries.size(), 2u);  // 20 + 21 bytes; 22 more would pass 45
  EXPECT_TRUE(page->more);
  EXPECT_EQ(page->next_key, "p22");
  small.max_bytes = 1;
  page = r.sm()->Scan(small);
  ASSERT_OK(page);
  EXPECT_EQ(page->entries.size(), 1u);
}

TEST_F(StateMachineTest, LimitsRejectDeterministically) {
  StateMachineOptions o;
  o.max_key_size = 8;
  o.max_value_size = 16;
  Replica r(&env_, "/a", o);
  const CommandResult long_key = r.Apply(Command::Put("123456789", "v"));
  EXPECT_EQ(long_key.code, Code::kRejected);
  EXPECT_NE(long_key.message.find("key"), std::string::npos);
  EXPECT_EQ(r.Apply(Command::Put("k", std::string(17, 'v'))).code, Code::kRejected);
  EXPECT_EQ(r.Apply(Command::Put("", "v")).code, Code::kRejected);
  EXPECT_EQ(r.Apply(Command::Delete("")).code, Code::kRejected);
  EXPECT_EQ(r.Apply(Command::Cas("k", std::nullopt, std::string(17, 'v'))).code, Code::kRejected);
  EXPECT_TRUE(r.Apply(Command::Put("12345678", std::string(16, 'v'))).ok());
  // A rejected entry still counts as applied.
  EXPECT_EQ(r.sm()->applied_index(), LogIndex{6});
  EXPECT_TRUE(r.sm()->Get("").status().IsInvalidArgument());
}

// The largest key (with a TTL, so its expiry index key is the longest
// record key) and the largest value fit an engine fitted by FitEngineOptions.
TEST_F(StateMachineTest, LargestKeyAndValueFitAFittedEngine) {
  StateMachineOptions o;
  o.max_value_size = 1u << 20;
  storage::Options engine_options = test::NodeEngineOptions(&env_);
  engine_options.data_file_size_max = 4u << 20;
  engine_options.key_size_max = 16;
  engine_options.value_size_max = 16;
  StateMachine::FitEngineOptions(o, &engine_options);
  EXPECT_EQ(engine_options.key_size_max, o.max_key_size + StateMachine::kKeyOverhead);
  auto engine = storage::Engine::Open(engine_options, "/a");
  ASSERT_OK(engine);
  auto sm = StateMachine::Open(engine->get(), o);
  ASSERT_OK(sm);
  const std::string key(o.max_key_size, 'k');
  const std::string value(o.max_value_size, 'v');
  auto r = (*sm)->Apply(LogIndex{1}, Term{1}, EncodeCommand(Command::Put(key, value, ~0ull - 1)));
  ASSERT_OK(r);
  EXPECT_TRUE(r->ok());
  auto got = (*sm)->Get(key);
  ASSERT_OK(got);
  EXPECT_EQ(*got, value);
  // One byte more of either is refused by the state machine, not the engine.
  r = (*sm)->Apply(LogIndex{2}, Term{1}, EncodeCommand(Command::Put(key + "k", "v")));
  ASSERT_OK(r);
  EXPECT_EQ(r->code, Code::kRejected);
  r = (*sm)->Apply(LogIndex{3}, Term{1}, EncodeCommand(Command::Put("k", value + "v")));
  ASSERT_OK(r);
  EXPECT_EQ(r->code, Code::kRejected);
}

// User keys that look like internal records stay user keys, and internal
// records never show through Get.
TEST_F(StateMachineTest, UserKeysNeverCollideWithInternalRecords) {
  Replica r(&env_, "/a");
  const std::vector<std::string> keys = {"mapplied",
                                         "applied",
                                         "m",
                                         "s",
                                         "u",
                                         "x",
                                         std::string("\0\0\0\0\0\0\0\x07", 8),
                                         std::string("s\0\0\0\0\0\0\0\x07", 9)};
  ASSERT_TRUE(r.Apply(Command::Put("a", "1").WithSession(7, 1, kT0)).ok());
  ASSERT_TRUE(r.Apply(Command::Put("t", "2", kT0 + 5000)).ok());
  for (const std::string& k : keys) EXPECT_EQ(r.Get(k), "<absent>");
  for (const std::string& k : keys) ASSERT_TRUE(r.Apply(Command::Put(k, "user:" + k)).ok());
  for (const std::string& k : keys) EXPECT_EQ(r.Get(k), "user:" + k);
  // The state machine's own records are intact.
  ASSERT_EQ(r.sm()->session_count(), 1u);
  EXPECT_EQ(r.sm()->sessions()[0].last_sequence, 1u);
  r.Restart();
  EXPECT_EQ(r.sm()->applied_index(), LogIndex{2 + keys.size()});
  EXPECT_EQ(r.sm()->session_count(), 1u);
  for (const std::string& k : keys) EXPECT_EQ(r.Get(k), "user:" + k);
  // Every engine key carries one of the four prefixes.
  for (const auto& [key, value] : test::DumpEngine(r.engine())) {
    ASSERT_FALSE(key.empty());
    EXPECT_NE(std::string("msux").find(key[0]), std::string::npos) << key;
  }
}

TEST_F(StateMachineTest, RetriedWriteIsAppliedOnce) {
  Replica r(&env_, "/a");
  const std::string put = EncodeCommand(Command::Put("k", "first").WithSession(42, 1, kT0));
  EXPECT_TRUE(r.ApplyData(put).ok());
  // Someone else overwrites k; a retry of the first put (a timeout, or a new
  // leader re-proposing it) must not bring "first" back.
  EXPECT_TRUE(r.Apply(Command::Put("k", "other").WithSession(43, 1, kT0 + 1)).ok());
  const CommandResult retry = r.ApplyData(put);
  EXPECT_TRUE(retry.ok());
  EXPECT_TRUE(retry.duplicate);
  EXPECT_EQ(r.Get("k"), "other");

  // The cached result is the first one's, CAS failure included.
  const std::string cas =
      EncodeCommand(Command::Cas("k", std::string("nope"), "x").WithSession(42, 2, kT0 + 2));
  EXPECT_EQ(r.ApplyData(cas).code, Code::kCasFailed);
  EXPECT_TRUE(r.Apply(Command::Put("k", "nope").WithSession(43, 2, kT0 + 3)).ok());
  const CommandResult cas_retry = r.ApplyData(cas);
  EXPECT_EQ(cas_retry.code, Code::kCasFailed);  // not re-evaluated against the new value
  EXPECT_TRUE(cas_retry.duplicate);
  EXPECT_EQ(r.Get("k"), "nope");

  // An older sequence is stale and changes nothing, the session included.
  const CommandResult stale = r.Apply(Command::Put("k", "stale").WithSession(42, 1, kT0 + 4));
  EXPECT_EQ(stale.code, Code::kStaleSequence);
  EXPECT_FALSE(stale.duplicate);
  EXPECT_EQ(r.Get("k"), "nope");
  const auto sessions = r.sm()->sessions();
  ASSERT_EQ(sessions.size(), 2u);
  EXPECT_EQ(sessions[0].client_id, 42u);
  EXPECT_EQ(sessions[0].last_sequence, 2u);
  EXPECT_EQ(sessions[0].last_result.code, Code::kCasFailed);
  EXPECT_EQ(sessions[0].last_active_ms, kT0 + 2);

  // A newer sequence (gaps allowed) applies.
  EXPECT_TRUE(r.Apply(Command::Put("k", "third").WithSession(42, 7, kT0 + 5)).ok());
  EXPECT_EQ(r.Get("k"), "third");
}

TEST_F(StateMachineTest, WritesWithoutSessionApplyEveryTime) {
  Replica r(&env_, "/a");
  const std::string cas = EncodeCommand(Command::Cas("n", std::nullopt, "1"));
  EXPECT_EQ(r.ApplyData(cas).code, Code::kOk);
  EXPECT_EQ(r.ApplyData(cas).code, Code::kCasFailed);  // applied again, so it fails
  EXPECT_EQ(r.sm()->session_count(), 0u);
}

TEST_F(StateMachineTest, SessionsExpireByEntryTime) {
  StateMachineOptions o;
  o.session_ttl_ms = 1000;
  Replica r(&env_, "/a", o);
  const std::string put = EncodeCommand(Command::Put("k", "v").WithSession(1, 1, kT0));
  ASSERT_TRUE(r.ApplyData(put).ok());
  ASSERT_TRUE(r.Apply(Command::Put("other", "x").WithSession(2, 1, kT0 + 1000)).ok());
  EXPECT_EQ(r.sm()->session_count(), 2u);  // idle exactly the TTL: kept
  // Empty entries carry no time: nothing expires.
  ASSERT_TRUE(r.ApplyData("").ok());
  EXPECT_EQ(r.sm()->session_count(), 2u);
  // A leader's time-stamped no-op moves time past client 1's TTL.
  ASSERT_TRUE(r.Apply(Command::Noop().WithSession(0, 0, kT0 + 1001)).ok());
  ASSERT_EQ(r.sm()->session_count(), 1u);
  EXPECT_EQ(r.sm()->sessions()[0].client_id, 2u);
  // A retry after expiry is a new write: applied again.
  ASSERT_TRUE(r.Apply(Command::Put("k", "changed")).ok());
  const CommandResult late = r.ApplyData(put);
  EXPECT_TRUE(late.ok());
  EXPECT_FALSE(late.duplicate);
  EXPECT_EQ(r.Get("k"), "v");
}

TEST_F(StateMachineTest, TimeNeverGoesBack) {
  StateMachineOptions o;
  o.session_ttl_ms = 1000;
  Replica r(&env_, "/a", o);
  ASSERT_TRUE(r.Apply(Command::Put("k", "v").WithSession(1, 1, kT0)).ok());
  ASSERT_TRUE(r.Apply(Command::Noop().WithSession(0, 0, kT0 + 5000)).ok());  // expires client 1
  EXPECT_EQ(r.sm()->session_count(), 0u);
  // A new leader with a clock behind: the entry time stays at kT0 + 5000.
  ASSERT_TRUE(r.Apply(Command::Put("k", "w").WithSession(3, 1, kT0 + 100)).ok());
  EXPECT_EQ(r.sm()->time_ms(), kT0 + 5000);
  ASSERT_EQ(r.sm()->session_count(), 1u);
  EXPECT_EQ(r.sm()->sessions()[0].last_active_ms, kT0 + 5000);
}

TEST_F(StateMachineTest, EvictionDropsLeastRecentlyActiveTiesByClientId) {
  StateMachineOptions o;
  o.max_sessions = 3;
  Replica r(&env_, "/a", o);
  ASSERT_TRUE(r.Apply(Command::Put("a", "1").WithSession(30, 1, kT0)).ok());
  ASSERT_TRUE(r.Apply(Command::Put("a", "1").WithSession(20, 1, kT0)).ok());
  ASSERT_TRUE(r.Apply(Command::Put("a", "1").WithSession(10, 1, kT0 + 1)).ok());
  ASSERT_TRUE(r.Apply(Command::Put("a", "1").WithSession(30, 2, kT0 + 2)).ok());  // 30 is active again
  // A fourth client: the oldest is 20 (kT0; 30 moved on).
  ASSERT_TRUE(r.Apply(Command::Put("a", "1").WithSession(40, 1, kT0 + 2)).ok());
  std::vector<uint64_t> ids;
  for (const SessionInfo& s : r.sm()->sessions()) ids.push_back(s.client_id);
  EXPECT_EQ(ids, (std::vector<uint64_t>{10, 30, 40}));
  // A fifth: 10 (kT0 + 1) is now the least recently active.
  ASSERT_TRUE(r.Apply(Command::Put("a", "1").WithSession(50, 1, kT0 + 2)).ok());
  ids.clear();
  for (const SessionInfo& s : r.sm()->sessions()) ids.push_back(s.client_id);
  EXPECT_EQ(ids, (std::vector<uint64_t>{30, 40, 50}));
  r.Restart();  // the evictions were written, not only forgotten in memory
  ids.clear();
  for (const SessionInfo& s : r.sm()->sessions()) ids.push_back(s.client_id);
  EXPECT_EQ(ids, (std::vector<uint64_t>{30, 40, 50}));
}

TEST_F(StateMachineTest, EvictionBreaksTiesByClientId) {
  StateMachineOptions o;
  o.max_sessions = 2;
  Replica r(&env_, "/a", o);
  ASSERT_TRUE(r.Apply(Command::Put("a", "1").WithSession(9, 1, kT0)).ok());
  ASSERT_TRUE(r.Apply(Command::Put("a", "1").WithSession(5, 1, kT0)).ok());
  ASSERT_TRUE(r.Apply(Command::Put("a", "1").WithSession(7, 1, kT0)).ok());
  std::vector<uint64_t> ids;
  for (const SessionInfo& s : r.sm()->sessions()) ids.push_back(s.client_id);
  EXPECT_EQ(ids, (std::vector<uint64_t>{7, 9}));  // 5 went: same time, lowest id
}

// A table over the bound (opened with a smaller max_sessions) shrinks on the
// next write, down to the bound, and never evicts the writer.
TEST_F(StateMachineTest, OversizedTableShrinksWithoutEvictingTheWriter) {
  {
    Replica r(&env_, "/a");
    for (uint64_t id = 1; id <= 5; ++id) {
      ASSERT_TRUE(r.Apply(Command::Put("a", "1").WithSession(id, 1, kT0 + id)).ok());
    }
  }
  StateMachineOptions o;
  o.max_sessions = 2;
  Replica r(&env_, "/a", o);
  EXPECT_EQ(r.sm()->session_count(), 5u);
  // Client 1 is the least recently active, and the one writing.
  ASSERT_TRUE(r.Apply(Command::Put("a", "2").WithSession(1, 2, kT0 + 10)).ok());
  std::vector<uint64_t> ids;
  for (const SessionInfo& s : r.sm()->sessions()) ids.push_back(s.client_id);
  EXPECT_EQ(ids, (std::vector<uint64_t>{1, 5}));
}

TEST_F(StateMachineTest, TtlIsJudgedAtEntryTime) {
  Replica r(&env_, "/a");
  ASSERT_TRUE(r.Apply(Command::Put("t", "v", kT0 + 1000).WithSession(0, 0, kT0)).ok());
  EXPECT_EQ(r.Get("t"), "v");
  EXPECT_EQ(r.Get("t", kT0 + 999), "v");
  EXPECT_EQ(r.Get("t", kT0 + 1000), "<absent>");  // a reader's clock may say it expired
  // CAS against the entry's time: at kT0 + 500 the value is there...
  EXPECT_EQ(r.Apply(Command::Cas("t", std::nullopt, "w").WithSession(0, 0, kT0 + 500)).code,
            Code::kCasFailed);
  // ...and at kT0 + 1000 it is gone, whatever the local clock says.
  EXPECT_EQ(r.Apply(Command::Cas("t", std::nullopt, "w").WithSession(0, 0, kT0 + 1000)).code, Code::kOk);
  EXPECT_EQ(r.Get("t"), "w");
  // An overwrite without TTL keeps the key past the old expiry.
  ASSERT_TRUE(r.Apply(Command::Put("u", "1", kT0 + 2000)).ok());
  ASSERT_TRUE(r.Apply(Command::Put("u", "2")).ok());
  ASSERT_TRUE(r.Apply(Command::Noop().WithSession(0, 0, kT0 + 3000)).ok());
  EXPECT_EQ(r.Get("u"), "2");
}

TEST_F(StateMachineTest, ExpiredKeysAreDeletedAFewPerEntry) {
  StateMachineOptions o;
  o.expiry_sweep_max = 2;
  Replica r(&env_, "/a", o);
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(r.Apply(Command::Put("e" + std::to_string(i), "v", kT0 + 100).WithSession(0, 0, kT0)).ok());
  }
  ASSERT_TRUE(r.Apply(Command::Put("keep", "v", kT0 + 10'000).WithSession(0, 0, kT0)).ok());
  const auto count_user_keys = [&] {
    size_t n = 0;
    for (const auto& [key, value] : test::DumpEngine(r.engine())) n += key[0] == StateMachine::kUserPrefix;
    return n;
  };
  EXPECT_EQ(count_user_keys(), 6u);
  ASSERT_TRUE(r.Apply(Command::Noop().WithSession(0, 0, kT0 + 100)).ok());
  EXPECT_EQ(count_user_keys(), 4u);
  EXPECT_EQ(r.Get("e4"), "<absent>");  // logically gone before it is swept
  ASSERT_TRUE(r.Apply(Command::Noop().WithSession(0, 0, kT0 + 100)).ok());
  ASSERT_TRUE(r.Apply(Command::Noop().WithSession(0, 0, kT0 + 100)).ok());
  EXPECT_EQ(count_user_keys(), 1u);
  EXPECT_EQ(r.Get("keep"), "v");
  // The index is empty of due keys; "keep"'s index entry remains.
  size_t index_entries = 0;
  for (const auto& [key, value] : test::DumpEngine(r.engine())) {
    index_entries += key[0] == StateMachine::kExpiryPrefix;
  }
  EXPECT_EQ(index_entries, 1u);
}

TEST_F(StateMachineTest, RestartRestoresIndexTimeSessionsAndTtls) {
  StateMachineOptions o;
  o.session_ttl_ms = 10'000;
  Replica r(&env_, "/a", o);
  const std::string put = EncodeCommand(Command::Put("k", "v").WithSession(5, 3, kT0 + 10));
  ASSERT_TRUE(r.ApplyData(put).ok());
  ASSERT_TRUE(r.Apply(Command::Cas("c", std::string("x"), "y").WithSession(6, 1, kT0 + 20)).code ==
              Code::kCasFailed);
  ASSERT_TRUE(r.Apply(Command::Put("t", "ttl", kT0 + 500).WithSession(0, 0, kT0 + 30)).ok());
  ASSERT_OK(r.sm()->Apply(LogIndex{4}, Term{2}, ""));
  const auto sessions = r.sm()->sessions();
  ASSERT_EQ(sessions.size(), 2u);

  r.Restart();
  EXPECT_EQ(r.sm()->applied_index(), LogIndex{4});
  EXPECT_EQ(r.sm()->applied_term(), Term{2});
  EXPECT_EQ(r.sm()->durable_applied_index(), LogIndex{4});  // Open syncs
  EXPECT_EQ(r.sm()->time_ms(), kT0 + 30);
  EXPECT_EQ(r.sm()->sessions(), sessions);
  EXPECT_EQ(r.Get("k"), "v");
  EXPECT_EQ(r.Get("t"), "ttl");
  // The retried write is still answered from its session...
  const CommandResult retry = r.ApplyData(put);
  EXPECT_TRUE(retry.ok());
  EXPECT_TRUE(retry.duplicate);
  // ...and the TTL index still works: the sweep finds "t" after the restart.
  ASSERT_TRUE(r.Apply(Command::Noop().WithSession(0, 0, kT0 + 600)).ok());
  EXPECT_EQ(r.Get("t"), "<absent>");
  EXPECT_EQ(test::DumpEngine(r.engine()).count("ut"), 0u);
}

TEST_F(StateMachineTest, ReplayedIndexesAreSkipped) {
  Replica r(&env_, "/a");
  ASSERT_TRUE(r.Apply(Command::Put("k", "1")).ok());
  ASSERT_TRUE(r.Apply(Command::Put("k", "2")).ok());
  const auto before = test::DumpEngine(r.engine());
  for (uint64_t i : {uint64_t{1}, uint64_t{2}}) {
    auto res = r.sm()->Apply(LogIndex{i}, Term{1}, EncodeCommand(Command::Put("k", "replayed")));
    ASSERT_OK(res);
    EXPECT_EQ(res->code, Code::kAlreadyApplied);
  }
  EXPECT_EQ(test::DumpEngine(r.engine()), before);
  EXPECT_EQ(r.Get("k"), "2");
  EXPECT_EQ(r.sm()->applied_index(), LogIndex{2});
}

TEST_F(StateMachineTest, CorruptEntryStopsWithoutApplying) {
  Replica r(&env_, "/a");
  ASSERT_TRUE(r.Apply(Command::Put("k", "1")).ok());
  const auto before = test::DumpEngine(r.engine());
  std::string bad = EncodeCommand(Command::Put("k", "2"));
  bad[0] = 9;  // a version this build does not know
  auto res = r.sm()->Apply(LogIndex{2}, Term{1}, bad);
  EXPECT_TRUE(res.status().IsCorruption()) << res.status().ToString();
  EXPECT_EQ(r.sm()->applied_index(), LogIndex{1});
  EXPECT_EQ(test::DumpEngine(r.engine()), before);
}

TEST_F(StateMachineTest, FailedEngineWriteChangesNothing) {
  StateMachineOptions o;
  o.session_ttl_ms = 10;
  Replica r(&env_, "/a", o);
  ASSERT_TRUE(r.Apply(Command::Put("k", "1").WithSession(1, 1, kT0)).ok());
  ASSERT_OK(r.engine()->Close());  // every later write fails
  auto res =
      r.sm()->Apply(LogIndex{2}, Term{1}, EncodeCommand(Command::Put("k", "2").WithSession(2, 1, kT0 + 100)));
  EXPECT_FALSE(res.ok());
  EXPECT_EQ(r.sm()->applied_index(), LogIndex{1});
  EXPECT_EQ(r.sm()->time_ms(), kT0);
  ASSERT_EQ(r.sm()->session_count(), 1u);  // client 1 not expired, client 2 not added
  EXPECT_EQ(r.sm()->sessions()[0].client_id, 1u);
}

TEST_F(StateMachineTest, CheckpointMakesTheAppliedIndexDurable) {
  Replica r(&env_, "/a");
  ASSERT_TRUE(r.Apply(Command::Put("k", "1")).ok());
  EXPECT_EQ(r.sm()->durable_applied_index(), LogIndex{0});
  ASSERT_OK(r.sm()->Checkpoint());
  EXPECT_EQ(r.sm()->durable_applied_index(), LogIndex{1});
  ASSERT_TRUE(r.Apply(Command::Put("k", "2")).ok());
  EXPECT_EQ(r.sm()->durable_applied_index(), LogIndex{1});
}

TEST_F(StateMachineTest, ApplyingPastTheNextIndexIsABug) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        MemEnv env;
        Replica r(&env, "/a");
        (void)r.sm()->Apply(LogIndex{2}, Term{1}, "");
      },
      "applying index 2 after 0");
}

TEST_F(StateMachineTest, NewerFormatIsRefused) {
  {
    Replica r(&env_, "/a");
    ASSERT_TRUE(r.Apply(Command::Put("k", "1")).ok());
    ASSERT_OK(r.engine()->Put("mapplied", std::string(1, static_cast<char>(StateMachine::kFormatVersion + 1)) +
                                               std::string(24, '\0')));
  }
  auto engine = storage::Engine::Open(test::NodeEngineOptions(&env_), "/a");
  ASSERT_OK(engine);
  auto sm = StateMachine::Open(engine->get());
  EXPECT_EQ(sm.status().code(), StatusCode::kNotSupported) << sm.status().ToString();
  ASSERT_OK((*engine)->Put("mapplied", "\x01short"));
  EXPECT_TRUE(StateMachine::Open(engine->get()).status().IsCorruption());
}

// A random log against the model, and on two replicas that must end with
// byte-identical engines, restarts of one of them included.
TEST_F(StateMachineTest, RandomLogMatchesModelAndReplicasAgree) {
  const uint64_t seed = test::TestSeed(31337);
  SCOPED_TRACE("seed " + std::to_string(seed));
  const StateMachineOptions o = test::SmallSessionOptions();
  for (uint64_t round = 0; round < 10; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const std::vector<LogEntry> log = test::RandomLog(seed + round, 400);
    MemEnv env;
    Replica a(&env, "/a", o);
    Replica b(&env, "/b", o);
    test::Model model(o);
    Random rnd(seed ^ round);
    size_t evictions_seen = 0, duplicates = 0, stale = 0;
    for (const LogEntry& e : log) {
      auto ra = a.sm()->Apply(e.index, e.term, e.data);
      auto rb = b.sm()->Apply(e.index, e.term, e.data);
      ASSERT_OK(ra);
      ASSERT_OK(rb);
      const CommandResult want = model.Apply(e);
      ASSERT_EQ(ra->code, want.code) << "index " << e.index;
      ASSERT_EQ(ra->duplicate, want.duplicate) << "index " << e.index;
      ASSERT_EQ(*ra, *rb);
      duplicates += ra->duplicate;
      stale += ra->code == Code::kStaleSequence;
      evictions_seen += a.sm()->session_count() == o.max_sessions;
      if (rnd.OneIn(40)) b.Restart();
      if (rnd.OneIn(25)) ASSERT_OK(a.sm()->Checkpoint());
      test::ExpectMatchesModel(*a.sm(), model);
      if (HasFailure()) return;
    }
    EXPECT_EQ(test::DumpEngine(a.engine()), test::DumpEngine(b.engine()));
    EXPECT_EQ(a.sm()->sessions(), b.sm()->sessions());
    EXPECT_GT(duplicates, 0u);
    EXPECT_GT(stale, 0u);
    EXPECT_GT(evictions_seen, 0u);
  }
}

TEST_F(StateMachineTest, MemberTableIsSeededChangedAndReloaded) {
  Replica r(&env_, "/a");
  EXPECT_TRUE(r.sm()->members().empty());
  EXPECT_EQ(r.sm()->cluster_id(), 0u);
  const std::map<uint64_t, MemberAddress> seed = {{1, {"h1:7001", "h1:8001"}}, {2, {"h2:7001", ""}}};
  ASSERT_OK(r.sm()->Seed(42, seed));
  EXPECT_EQ(r.sm()->members(), seed);
  EXPECT_EQ(r.sm()->cluster_id(), 42u);
  // Seeding again replaces the table (a restart before anything applied).
  const std::map<uint64_t, MemberAddress> seed2 = {{1, {"h1:7001", "h1:8001"}}};
  ASSERT_OK(r.sm()->Seed(42, seed2));
  EXPECT_EQ(r.sm()->members(), seed2);

  EXPECT_TRUE(r.Apply(Command::SetMember(3, {"h3:7001", "h3:8001"})).ok());
  EXPECT_TRUE(r.Apply(Command::SetMember(1, {"h1:7009", "h1:8001"})).ok());
  EXPECT_TRUE(r.Apply(Command::RemoveMember(5)).ok());  // absent: nothing to do
  const std::map<uint64_t, MemberAddress> want = {{1, {"h1:7009", "h1:8001"}}, {3, {"h3:7001", "h3:8001"}}};
  EXPECT_EQ(r.sm()->members(), want);
  // Not before an entry: the log owns the table from now on.
  EXPECT_TRUE(r.sm()->Seed(42, seed).IsInvalidArgument());
  EXPECT_EQ(r.Get("mmember"), "<absent>");  // no user key sees it

  r.Restart();
  EXPECT_EQ(r.sm()->members(), want);
  EXPECT_EQ(r.sm()->cluster_id(), 42u);
  EXPECT_TRUE(r.Apply(Command::RemoveMember(3)).ok());
  r.Restart();
  EXPECT_EQ(r.sm()->members(), (std::map<uint64_t, MemberAddress>{{1, {"h1:7009", "h1:8001"}}}));
}

}  // namespace
}  // namespace rkv
