// The history text format: escaping, round trips, and errors that name the
// line.
#include <gtest/gtest.h>

#include "common/random.h"
#include "support/test_util.h"
#include "tools/lincheck/lincheck.h"

namespace rkv::lincheck {
namespace {

TEST(HistoryFormatTest, EscapesSpacesPercentHashAndBinary) {
  EXPECT_EQ(EscapeToken("plain-Value_1"), "plain-Value_1");
  EXPECT_EQ(EscapeToken("a b%c#d"), "a%20b%25c%23d");
  EXPECT_EQ(EscapeToken(std::string("\n\0\xff", 3)), "%0A%00%FF");
  EXPECT_EQ(EscapeToken(""), "\"\"");
  EXPECT_EQ(EscapeToken("absent"), "%61bsent");
  EXPECT_EQ(EscapeToken("\"\""), "%22\"");
  std::string out;
  ASSERT_TRUE(UnescapeToken("a%20b%2fc", &out));
  EXPECT_EQ(out, "a b/c");
  ASSERT_TRUE(UnescapeToken("\"\"", &out));
  EXPECT_EQ(out, "");
  EXPECT_FALSE(UnescapeToken("abc%", &out));
  EXPECT_FALSE(UnescapeToken("abc%4", &out));
  EXPECT_FALSE(UnescapeToken("abc%zz", &out));
}

TEST(HistoryFormatTest, ReadsEveryEventKind) {
  auto h = ReadHistory(
      "# a comment line\n"
      "\n"
      "1 7 invoke put my%20key v1   # trailing comment\n"
      "2 7 ok\n"
      "3 8 invoke cas my%20key absent v2\n"
      "4 8 fail\n"
      "5 9 invoke get my%20key\r\n"
      "6 9 ok v1\n"
      "7 9 invoke delete my%20key\n"
      "8 9 unknown\n"
      "9 9 invoke get other\n"
      "10 9 rejected\n"
      "11 9 invoke get other\n");
  ASSERT_OK(h);
  ASSERT_EQ(h->ops.size(), 6u);
  const Operation& put = h->ops[0];
  EXPECT_EQ(put.type, OpType::kPut);
  EXPECT_EQ(put.client, 7u);
  EXPECT_EQ(put.key, "my key");
  EXPECT_EQ(put.value, "v1");
  EXPECT_EQ(put.invoke_time, 1);
  EXPECT_EQ(put.complete_time, 2);
  EXPECT_EQ(put.outcome, Outcome::kOk);
  EXPECT_EQ(put.line, 3);
  EXPECT_EQ(h->ops[1].type, OpType::kCas);
  EXPECT_EQ(h->ops[1].value, std::nullopt);
  EXPECT_EQ(h->ops[1].new_value, "v2");
  EXPECT_EQ(h->ops[1].outcome, Outcome::kFail);
  EXPECT_EQ(h->ops[2].result, "v1");
  EXPECT_EQ(h->ops[3].outcome, Outcome::kUnknown);
  EXPECT_EQ(h->ops[4].outcome, Outcome::kRejected);
  EXPECT_EQ(h->ops[5].outcome, Outcome::kPending);
  EXPECT_EQ(h->ops[5].complete_time, kNoTime);
}

std::string RandomBytes(Random* rng) {
  std::string s(rng->Uniform(6), '\0');
  for (char& c : s) {
    c = rng->OneIn(3) ? static_cast<char>(rng->Uniform(256)) : static_cast<char>('a' + rng->Uniform(3));
  }
  if (rng->OneIn(20)) s = "absent";
  if (rng->OneIn(20)) s = "\"\"";
  return s;
}

TEST(HistoryFormatTest, RoundTripsRecordedHistoriesWithAnyBytes) {
  const uint64_t seed = test::TestSeed(99);
  SCOPED_TRACE(testing::Message() << "seed " << seed);
  Random rng(seed);
  for (int round = 0; round < 50; ++round) {
    Recorder rec;
    std::vector<Recorder::OpId> open;
    for (int i = 0; i < 60; ++i) {
      const auto client = static_cast<uint64_t>(i) * 1000 + rng.Uniform(1000);  // one op per client
      Operation op;
      switch (rng.Uniform(4)) {
        case 0: op = Operation::Put(client, RandomBytes(&rng), RandomBytes(&rng)); break;
        case 1: op = Operation::Get(client, RandomBytes(&rng)); break;
        case 2: op = Operation::Delete(client, RandomBytes(&rng)); break;
        default:
          op = Operation::Cas(client, RandomBytes(&rng),
                              rng.OneIn(3) ? std::nullopt : std::optional<std::string>(RandomBytes(&rng)),
                              RandomBytes(&rng));
      }
      const bool get = op.type == OpType::kGet;
      const auto id = rec.Invoke(std::move(op));
      if (rng.OneIn(10)) continue;  // left pending
      const auto outcome = static_cast<Outcome>(rng.Uniform(4));
      std::optional<std::string> result;
      if (get && outcome == Outcome::kOk && !rng.OneIn(4)) result = RandomBytes(&rng);
      rec.Complete(id, outcome, result);
    }
    const History h = rec.Snapshot();
    const std::string text = WriteHistory(h);
    auto back = ReadHistory(text);
    ASSERT_OK(back);
    ASSERT_EQ(*back, h) << text;
    EXPECT_EQ(WriteHistory(*back), text);
  }
}

TEST(HistoryFormatTest, MalformedLinesNameTheLine) {
  struct Case {
    const char* text;
    int line;
    const char* what;
  };
  const Case cases[] = {
      {"1 1 invoke put k v\n2 1 ok\nbogus\n", 3, "expected"},
      {"x 1 invoke get k\n", 1, "bad time"},
      {"1 -1 invoke get k\n", 1, "bad client"},
      {"# c\n1 1 invoke frob k\n", 2, "unknown operation"},
      {"1 1 invoke put k\n", 1, "put takes 2"},
      {"1 1 invoke get k extra\n", 1, "get takes 1"},
      {"1 1 invoke cas k a\n", 1, "cas takes 3"},
      {"1 1 invoke put k absent\n", 1, "cannot be absent"},
      {"1 1 invoke get absent\n", 1, "key cannot be absent"},
      {"1 1 invoke put k%2 v\n", 1, "bad escape"},
      {"1 1 invoke get k\n2 1 ok\n", 2, "takes the value read"},
      {"1 1 invoke put k v\n2 1 ok v\n", 2, "takes no argument"},
      {"1 1 ok\n", 1, "no outstanding"},
      {"1 1 invoke get k\n2 1 invoke get k\n", 2, "still outstanding"},
      {"5 1 invoke get k\n4 1 ok absent\n", 2, "before the invocation"},
      {"1 1 invoke get k\n2 1 done\n", 2, "unknown event"},
      {"\n\n\n1 1 invoke get k\n2 1 ok %zz\n", 5, "bad escape"},
  };
  for (const Case& c : cases) {
    auto h = ReadHistory(c.text);
    ASSERT_FALSE(h.ok()) << c.text;
    EXPECT_TRUE(h.status().IsInvalidArgument());
    const std::string msg = h.status().message();
    EXPECT_EQ(msg.rfind("line " + std::to_string(c.line) + ":", 0), 0u) << c.text << " -> " << msg;
    EXPECT_NE(msg.find(c.what), std::string::npos) << c.text << " -> " << msg;
  }
}

TEST(HistoryFormatTest, FormatOperationIsReadable) {
  auto h = ReadHistory("1 3 invoke cas k absent v\n4 3 ok\n5 3 invoke get k\n6 3 unknown\n");
  ASSERT_OK(h);
  EXPECT_EQ(FormatOperation(h->ops[0]), "client 3: cas k absent v -> ok [invoked 1, completed 4] (line 1)");
  EXPECT_EQ(FormatOperation(h->ops[1]), "client 3: get k -> unknown [invoked 5, gave up 6] (line 3)");
}

}  // namespace
}  // namespace rkv::lincheck
