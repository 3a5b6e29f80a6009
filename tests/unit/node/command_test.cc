// The command and result encodings: round trips of every kind, random
// commands, and malformed input (every truncation, every bit flip, unknown
// versions, kinds and flags, trailing bytes) refused with Corruption or, for
// flips that still spell a valid command, decoded without harm.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/coding.h"
#include "common/random.h"
#include "node/command.h"
#include "support/test_util.h"

namespace rkv {
namespace {

std::vector<Command> Examples() {
  std::vector<Command> out;
  out.push_back(Command::Noop());
  out.push_back(Command::Noop().WithSession(3, 9, 1'700'000'000'123));
  out.push_back(Command::Put("key", "value"));
  out.push_back(
      Command::Put("k", std::string(300, '\0'), 1'700'000'100'000).WithSession(~0ull, ~0ull, ~0ull));
  out.push_back(Command::Put("", ""));
  out.push_back(Command::Delete("gone").WithSession(1, 1, 5));
  out.push_back(Command::Cas("c", std::nullopt, "first"));
  out.push_back(Command::Cas("c", std::string(), "from-empty", 77));
  out.push_back(Command::Cas("c", std::string("old"), "new").WithSession(8, 2, 10));
  out.push_back(Command::Batch({}));
  out.push_back(Command::Batch({{BatchOp::Type::kPut, "a", "1", 0},
                                {BatchOp::Type::kDelete, "b", {}, 0},
                                {BatchOp::Type::kPut, "c", std::string(200, 'c'), 99}})
                    .WithSession(4, 4, 4));
  out.push_back(Command::SetMember(4, MemberAddress{"10.0.0.4:7001", "10.0.0.4:8001"}).WithSession(2, 3, 4));
  out.push_back(Command::SetMember(~0ull, MemberAddress{"h:1", ""}));
  out.push_back(Command::RemoveMember(9));
  out.push_back(Command::Txn({}, {}));
  out.push_back(Command::Txn({{"a", Compare::Target::kRevision, Compare::Op::kEqual, 0, {}},
                              {"b", Compare::Target::kValue, Compare::Op::kGreater, 0, std::string(3, '\0')},
                              {"c", Compare::Target::kRevision, Compare::Op::kLess, ~0ull, {}}},
                             {{BatchOp::Type::kPut, "a", "1", 7}, {BatchOp::Type::kDelete, "b", {}, 0}})
                    .WithSession(5, 6, 7));
  return out;
}

Command RandomCommand(Random* rnd) {
  const auto str = [&](uint64_t max) {
    std::string s(rnd->Uniform(max + 1), '\0');
    for (char& ch : s) ch = static_cast<char>(rnd->Uniform(256));
    return s;
  };
  const auto big = [&] { return rnd->OneIn(3) ? rnd->Next() : rnd->Uniform(1000); };
  Command c;
  switch (rnd->Uniform(6)) {
    case 0: c = Command::Noop(); break;
    case 1: c = Command::Put(str(20), str(200), big()); break;
    case 2: c = Command::Delete(str(20)); break;
    case 3:
      c = Command::Cas(str(20), rnd->OneIn(2) ? std::optional<std::string>(str(30)) : std::nullopt, str(50),
                       big());
      break;
    case 4: {
      std::vector<Compare> compares(rnd->Uniform(4));
      for (Compare& cmp : compares) {
        cmp.key = str(10);
        cmp.op = static_cast<Compare::Op>(rnd->Range(1, 4));
        if (rnd->OneIn(2)) {
          cmp.revision = big();
        } else {
          cmp.target = Compare::Target::kValue;
          cmp.value = str(30);
        }
      }
      std::vector<BatchOp> ops(rnd->Uniform(4));
      for (BatchOp& op : ops) {
        op.key = str(10);
        op.value = str(20);
      }
      c = Command::Txn(std::move(compares), std::move(ops));
      break;
    }
    default: {
      std::vector<BatchOp> ops(rnd->Uniform(6));
      for (BatchOp& op : ops) {
        op.key = str(10);
        if (rnd->OneIn(2)) {
          op.type = BatchOp::Type::kDelete;
        } else {
          op.value = str(40);
          op.expiry_ms = big();
        }
      }
      c = Command::Batch(std::move(ops));
    }
  }
  return c.WithSession(big(), big(), big());
}

TEST(CommandTest, ExamplesRoundTrip) {
  for (const Command& c : Examples()) {
    SCOPED_TRACE(std::string(CommandKindName(c.kind)));
    const std::string bytes = EncodeCommand(c);
    EXPECT_EQ(static_cast<uint8_t>(bytes[0]), kCommandVersion);
    auto back = DecodeCommand(bytes);
    ASSERT_OK(back);
    EXPECT_EQ(*back, c);
  }
}

TEST(CommandTest, RandomRoundTrip) {
  const uint64_t seed = test::TestSeed(20240611);
  SCOPED_TRACE("seed " + std::to_string(seed));
  Random rnd(seed);
  for (int i = 0; i < 5000; ++i) {
    const Command c = RandomCommand(&rnd);
    auto back = DecodeCommand(EncodeCommand(c));
    ASSERT_OK(back);
    ASSERT_EQ(*back, c) << "command " << i;
  }
}

// A put's layout, byte by byte, as docs/formats/state-machine.md gives it.
TEST(CommandTest, PutLayout) {
  const std::string bytes = EncodeCommand(Command::Put("k", "vv", 300).WithSession(1, 2, 3));
  const std::string want = std::string("\x01\x01\x01\x02\x03", 5) + "\x01k" + "\x02vv" + "\xac\x02";
  EXPECT_EQ(bytes, want);
}

TEST(CommandTest, EveryTruncationIsRefused) {
  for (const Command& c : Examples()) {
    const std::string bytes = EncodeCommand(c);
    for (size_t n = 0; n < bytes.size(); ++n) {
      auto r = DecodeCommand(std::string_view(bytes).substr(0, n));
      EXPECT_TRUE(r.status().IsCorruption()) << CommandKindName(c.kind) << " cut to " << n << " of "
                                             << bytes.size() << ": " << r.status().ToString();
    }
  }
}

// No checksum inside a command: entries are checksummed in the WAL and on the
// wire. So a flipped bit may still spell a valid command; what matters is that
// decoding never misbehaves and what it yields is itself well-formed.
TEST(CommandTest, BitFlipsDecodeCleanly) {
  size_t refused = 0, total = 0;
  for (const Command& c : Examples()) {
    const std::string bytes = EncodeCommand(c);
    for (size_t i = 0; i < bytes.size(); ++i) {
      for (int bit = 0; bit < 8; ++bit) {
        std::string flipped = bytes;
        flipped[i] = static_cast<char>(flipped[i] ^ (1 << bit));
        ++total;
        auto r = DecodeCommand(flipped);
        if (!r.ok()) {
          EXPECT_TRUE(r.status().IsCorruption()) << r.status().ToString();
          ++refused;
          continue;
        }
        EXPECT_NE(*r, c) << "a flip at byte " << i << " bit " << bit << " went unnoticed";
        auto again = DecodeCommand(EncodeCommand(*r));
        ASSERT_OK(again);
        EXPECT_EQ(*again, *r);
      }
    }
  }
  // The version, kind, length and flag bytes catch a share (the examples are
  // mostly value bytes, where any flip is another valid value).
  EXPECT_GT(refused, total / 20);
}

TEST(CommandTest, RandomGarbageNeverCrashes) {
  Random rnd(test::TestSeed(7));
  for (int i = 0; i < 20000; ++i) {
    std::string junk(rnd.Uniform(40), '\0');
    for (char& ch : junk) ch = static_cast<char>(rnd.Uniform(256));
    if (!junk.empty() && rnd.OneIn(2)) junk[0] = static_cast<char>(kCommandVersion);
    auto r = DecodeCommand(junk);
    if (!r.ok()) {
      EXPECT_TRUE(r.status().IsCorruption());
    }
  }
}

TEST(CommandTest, UnknownVersionKindFlagsAndTrailingBytesAreRefused) {
  std::string bytes = EncodeCommand(Command::Put("k", "v"));
  for (int version : {0, 2, 255}) {
    std::string b = bytes;
    b[0] = static_cast<char>(version);
    EXPECT_TRUE(DecodeCommand(b).status().IsCorruption()) << "version " << version;
  }
  std::string kind = bytes;
  kind[1] = 7;
  EXPECT_TRUE(DecodeCommand(kind).status().IsCorruption());
  // Member commands name a member.
  EXPECT_TRUE(DecodeCommand(EncodeCommand(Command::RemoveMember(0))).status().IsCorruption());
  EXPECT_TRUE(DecodeCommand(EncodeCommand(Command::SetMember(0, {"h:1", ""}))).status().IsCorruption());
  EXPECT_TRUE(DecodeCommand(bytes + "x").status().IsCorruption());
  EXPECT_TRUE(DecodeCommand("").status().IsCorruption());

  // CAS flags: only bit 0 is defined.
  std::string cas = EncodeCommand(Command::Cas("k", std::nullopt, "v"));
  const size_t flags_at = 5 + 2;  // version, kind, three 1-byte varints, then "\x01k"
  ASSERT_EQ(cas[flags_at], 0);
  cas[flags_at] = 2;
  EXPECT_TRUE(DecodeCommand(cas).status().IsCorruption());

  // A batch op type other than put or delete.
  std::string batch = EncodeCommand(Command::Batch({{BatchOp::Type::kDelete, "k", {}, 0}}));
  batch[6] = 3;  // after the header (5 bytes) and the count
  EXPECT_TRUE(DecodeCommand(batch).status().IsCorruption());
}

TEST(CommandTest, HugeBatchCountIsRefusedWithoutAllocating) {
  std::string bytes = std::string("\x01\x04\x00\x00\x00", 5);
  PutVarint64(&bytes, 1ull << 60);
  bytes += "\x02\x01k";
  auto r = DecodeCommand(bytes);
  EXPECT_TRUE(r.status().IsCorruption()) << r.status().ToString();
}

TEST(MemberAddressTest, RoundTripAndMalformed) {
  const MemberAddress a{"[::1]:7001", "127.0.0.1:8001"};
  const std::string bytes = EncodeMemberAddress(a);
  ASSERT_OK(DecodeMemberAddress(bytes));
  EXPECT_EQ(*DecodeMemberAddress(bytes), a);
  for (size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_TRUE(DecodeMemberAddress(bytes.substr(0, n)).status().IsCorruption()) << n;
  }
  EXPECT_TRUE(DecodeMemberAddress(bytes + "x").status().IsCorruption());
  std::string version = bytes;
  version[0] = 2;
  EXPECT_TRUE(DecodeMemberAddress(version).status().IsCorruption());
}

TEST(CommandResultTest, RoundTripAndMalformed) {
  auto result = [](CommandResult::Code code, std::string message) {
    CommandResult r;
    r.code = code;
    r.message = std::move(message);
    return r;
  };
  for (const CommandResult& r :
       {CommandResult{}, result(CommandResult::Code::kCasFailed, ""),
        result(CommandResult::Code::kStaleSequence, ""),
        result(CommandResult::Code::kRejected, "key of 5000 bytes exceeds 4096")}) {
    const std::string bytes = EncodeCommandResult(r);
    auto back = DecodeCommandResult(bytes);
    ASSERT_OK(back);
    EXPECT_EQ(*back, r);
    EXPECT_FALSE(back->duplicate);
    for (size_t n = 0; n < bytes.size(); ++n) {
      EXPECT_TRUE(DecodeCommandResult(std::string_view(bytes).substr(0, n)).status().IsCorruption());
    }
    EXPECT_TRUE(DecodeCommandResult(bytes + "!").status().IsCorruption());
  }
  EXPECT_TRUE(DecodeCommandResult(std::string("\x09\x00", 2)).status().IsCorruption());
}

TEST(CommandResultTest, RevisionsRoundTripAndVersionOneStillDecodes) {
  CommandResult written;
  written.revision = 1'234'567;
  CommandResult failed;
  failed.code = CommandResult::Code::kCompareFailed;
  failed.failed_compare = 2;
  failed.compare_revisions = {0, 9, ~0ull};
  for (const CommandResult& r : {written, failed}) {
    const std::string bytes = EncodeCommandResult(r);
    auto back = DecodeCommandResult(bytes);
    ASSERT_OK(back);
    EXPECT_EQ(*back, r);
    for (size_t n = 0; n < bytes.size(); ++n) {
      EXPECT_TRUE(DecodeCommandResult(std::string_view(bytes).substr(0, n)).status().IsCorruption()) << n;
    }
  }
  // A version 1 result (a session record written by an older build): code
  // and message only.
  const std::string v1 = std::string("\x03\x04", 2) + "why!";
  auto old = DecodeCommandResult(v1, 1);
  ASSERT_OK(old);
  EXPECT_EQ(old->code, CommandResult::Code::kRejected);
  EXPECT_EQ(old->message, "why!");
  EXPECT_EQ(old->revision, 0u);
  EXPECT_TRUE(DecodeCommandResult(v1, 3).status().IsCorruption());
}

}  // namespace
}  // namespace rkv
