#include "storage/keydir.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "common/random.h"
#include "support/test_util.h"

namespace rkv::storage {
namespace {

Location Loc(uint32_t n) { return Location{n, n * 10, n * 100}; }

using Scanned = std::vector<std::pair<std::string, Location>>;

Scanned ScanAll(const Keydir& keydir, std::string_view start = {}, size_t limit = SIZE_MAX) {
  Scanned out;
  if (limit == 0) return out;
  keydir.ScanFrom(start, [&](std::string_view key, const Location& location) {
    out.emplace_back(std::string(key), location);
    return out.size() < limit;
  });
  return out;
}

std::vector<std::string> Keys(const Scanned& scanned) {
  std::vector<std::string> keys;
  for (const auto& [key, location] : scanned) keys.push_back(key);
  return keys;
}

TEST(KeydirTest, EmptyKeydir) {
  Keydir keydir;
  EXPECT_EQ(keydir.size(), 0u);
  EXPECT_EQ(keydir.Find("a"), nullptr);
  EXPECT_FALSE(keydir.Erase("a").has_value());
  EXPECT_FALSE(keydir.NeedsOrdering());
  EXPECT_TRUE(ScanAll(keydir).empty());
  keydir.Order();
  EXPECT_FALSE(keydir.NeedsOrdering());
}

TEST(KeydirTest, PutFindOverwrite) {
  Keydir keydir;
  EXPECT_FALSE(keydir.Put("alpha", Loc(1)).has_value());
  EXPECT_FALSE(keydir.Put("beta", Loc(2)).has_value());
  EXPECT_EQ(keydir.size(), 2u);
  ASSERT_NE(keydir.Find("alpha"), nullptr);
  EXPECT_EQ(*keydir.Find("alpha"), Loc(1));
  EXPECT_EQ(*keydir.Find("beta"), Loc(2));
  EXPECT_EQ(keydir.Find("alph"), nullptr);
  EXPECT_EQ(keydir.Find("alphaa"), nullptr);

  // Overwrite returns the previous location and does not add a key.
  auto previous = keydir.Put("alpha", Loc(3));
  ASSERT_TRUE(previous.has_value());
  EXPECT_EQ(*previous, Loc(1));
  EXPECT_EQ(*keydir.Find("alpha"), Loc(3));
  EXPECT_EQ(keydir.size(), 2u);

  // Overwrite after ordering too.
  keydir.Order();
  previous = keydir.Put("beta", Loc(4));
  ASSERT_TRUE(previous.has_value());
  EXPECT_EQ(*previous, Loc(2));
  EXPECT_FALSE(keydir.NeedsOrdering()) << "an overwrite must not add a pending key";
  EXPECT_EQ(ScanAll(keydir), (Scanned{{"alpha", Loc(3)}, {"beta", Loc(4)}}));
}

TEST(KeydirTest, LocationKeepsExpiryFlag) {
  Keydir keydir;
  const Location location{7, 8, 9 | Location::kExpiryFlag};
  keydir.Put("k", location);
  ASSERT_NE(keydir.Find("k"), nullptr);
  EXPECT_TRUE(keydir.Find("k")->has_expiry());
  EXPECT_EQ(keydir.Find("k")->record_size(), 9u);
}

TEST(KeydirTest, EraseOrderedAndPendingKeys) {
  Keydir keydir;
  keydir.Put("ordered1", Loc(1));
  keydir.Put("ordered2", Loc(2));
  keydir.Order();
  keydir.Put("pending1", Loc(3));
  keydir.Put("pending2", Loc(4));
  EXPECT_TRUE(keydir.NeedsOrdering());

  auto erased = keydir.Erase("ordered1");
  ASSERT_TRUE(erased.has_value());
  EXPECT_EQ(*erased, Loc(1));
  erased = keydir.Erase("pending1");
  ASSERT_TRUE(erased.has_value());
  EXPECT_EQ(*erased, Loc(3));
  EXPECT_FALSE(keydir.Erase("pending1").has_value()) << "second erase";
  EXPECT_EQ(keydir.Find("ordered1"), nullptr);
  EXPECT_EQ(keydir.Find("pending1"), nullptr);
  EXPECT_EQ(keydir.size(), 2u);

  keydir.Order();
  EXPECT_FALSE(keydir.NeedsOrdering());
  EXPECT_EQ(ScanAll(keydir), (Scanned{{"ordered2", Loc(2)}, {"pending2", Loc(4)}}));
}

TEST(KeydirTest, ErasePendingThenPutAgainBeforeOrder) {
  Keydir keydir;
  keydir.Put("k", Loc(1));
  EXPECT_TRUE(keydir.Erase("k").has_value());
  keydir.Put("k", Loc(2));  // a second pending entry for the same key
  EXPECT_EQ(*keydir.Find("k"), Loc(2));
  EXPECT_TRUE(keydir.Erase("k").has_value());
  keydir.Put("k", Loc(3));
  keydir.Order();
  EXPECT_EQ(ScanAll(keydir), (Scanned{{"k", Loc(3)}}));
  EXPECT_EQ(keydir.size(), 1u);

  // Erase everything pending: Order() only frees.
  keydir.Put("x", Loc(4));
  EXPECT_TRUE(keydir.Erase("x").has_value());
  EXPECT_TRUE(keydir.NeedsOrdering());
  keydir.Order();
  EXPECT_FALSE(keydir.NeedsOrdering());
  EXPECT_EQ(ScanAll(keydir), (Scanned{{"k", Loc(3)}}));
}

TEST(KeydirTest, ReplaceIf) {
  Keydir keydir;
  EXPECT_FALSE(keydir.ReplaceIf("missing", Loc(1), Loc(2)));
  EXPECT_EQ(keydir.Find("missing"), nullptr) << "ReplaceIf must not insert";

  keydir.Put("k", Loc(1));
  EXPECT_FALSE(keydir.ReplaceIf("k", Loc(9), Loc(2)));
  EXPECT_EQ(*keydir.Find("k"), Loc(1));
  EXPECT_TRUE(keydir.ReplaceIf("k", Loc(1), Loc(2)));
  EXPECT_EQ(*keydir.Find("k"), Loc(2));
  // Expected must match every field.
  EXPECT_FALSE(keydir.ReplaceIf("k", Location{2, 20, 201}, Loc(3)));
  EXPECT_FALSE(keydir.ReplaceIf("k", Location{3, 20, 200}, Loc(3)));
  EXPECT_EQ(*keydir.Find("k"), Loc(2));

  // After an erase the key is gone for ReplaceIf too.
  keydir.Erase("k");
  EXPECT_FALSE(keydir.ReplaceIf("k", Loc(2), Loc(3)));
  EXPECT_EQ(keydir.Find("k"), nullptr);
  EXPECT_EQ(keydir.size(), 0u);
}

TEST(KeydirTest, ScanFromMixesPendingAndOrderedKeysInByteOrder) {
  Keydir keydir;
  for (const char* key : {"d", "b", "f"}) keydir.Put(key, Loc(1));
  EXPECT_TRUE(keydir.NeedsOrdering());
  keydir.Order();
  EXPECT_FALSE(keydir.NeedsOrdering());
  for (const char* key : {"e", "a", "c", "g", "bb"}) keydir.Put(key, Loc(2));
  EXPECT_TRUE(keydir.NeedsOrdering());
  keydir.Order();
  EXPECT_FALSE(keydir.NeedsOrdering());

  EXPECT_EQ(Keys(ScanAll(keydir)),
            (std::vector<std::string>{"a", "b", "bb", "c", "d", "e", "f", "g"}));
  // Start bound: inclusive, and between keys.
  EXPECT_EQ(Keys(ScanAll(keydir, "c")), (std::vector<std::string>{"c", "d", "e", "f", "g"}));
  EXPECT_EQ(Keys(ScanAll(keydir, "b\x01")),
            (std::vector<std::string>{"bb", "c", "d", "e", "f", "g"}));
  EXPECT_EQ(Keys(ScanAll(keydir, "ba")), (std::vector<std::string>{"bb", "c", "d", "e", "f", "g"}));
  EXPECT_TRUE(ScanAll(keydir, "h").empty());
  EXPECT_EQ(Keys(ScanAll(keydir, "")).size(), 8u);
  // Stops when fn returns false.
  EXPECT_EQ(Keys(ScanAll(keydir, "b", 2)), (std::vector<std::string>{"b", "bb"}));
}

TEST(KeydirTest, ScanOrderIsUnsignedBytesAndLongerAfterPrefix) {
  Keydir keydir;
  const std::vector<std::string> sorted = {std::string("\x00", 1),
                                           std::string("\x00\x00", 2),
                                           std::string("\x00\x01", 2),
                                           "a",
                                           std::string("a\x00", 2),
                                           std::string("a\x00\x00\x00\x00", 5),
                                           std::string("a\x00\x00\x00\x01", 5),
                                           "ab",
                                           "abcd",
                                           "abcd\x01",
                                           "abce",
                                           "b",
                                           "\x7f",
                                           "\x80",
                                           "\xff",
                                           "\xff\xff\xff\xff",
                                           "\xff\xff\xff\xff\xff"};
  // Insert in a scrambled order, half before and half after an Order().
  Random random(3);
  std::vector<std::string> shuffled = sorted;
  for (size_t i = shuffled.size(); i > 1; --i)
    std::swap(shuffled[i - 1], shuffled[random.Uniform(i)]);
  for (size_t i = 0; i < shuffled.size(); ++i) {
    keydir.Put(shuffled[i], Loc(static_cast<uint32_t>(i)));
    if (i == shuffled.size() / 2) keydir.Order();
  }
  keydir.Order();
  EXPECT_EQ(Keys(ScanAll(keydir)), sorted);
  for (size_t i = 0; i < sorted.size(); ++i) {
    EXPECT_EQ(Keys(ScanAll(keydir, sorted[i], 1)), std::vector<std::string>{sorted[i]}) << i;
  }
}

TEST(KeydirTest, BinaryKeysAndExtremeLengths) {
  Keydir keydir;
  const std::string nul_key("a\0b", 3);
  const std::string nul_prefix("a\0", 2);
  const std::string one(1, 'z');
  const std::string longest(65535, 'x');
  std::string longest_other = longest;
  longest_other.back() = 'y';

  keydir.Put(nul_key, Loc(1));
  keydir.Put(nul_prefix, Loc(2));
  keydir.Put(one, Loc(3));
  keydir.Put(longest, Loc(4));
  keydir.Put(longest_other, Loc(5));
  keydir.Put(std::string(1, '\0'), Loc(6));
  EXPECT_EQ(keydir.size(), 6u);

  EXPECT_EQ(*keydir.Find(nul_key), Loc(1));
  EXPECT_EQ(*keydir.Find(nul_prefix), Loc(2));
  EXPECT_EQ(keydir.Find("a"), nullptr) << "keys with NUL bytes are not C strings";
  EXPECT_EQ(*keydir.Find(one), Loc(3));
  EXPECT_EQ(*keydir.Find(longest), Loc(4));
  EXPECT_EQ(*keydir.Find(longest_other), Loc(5));
  EXPECT_EQ(keydir.Find(std::string(65534, 'x')), nullptr);
  EXPECT_EQ(*keydir.Find(std::string(1, '\0')), Loc(6));

  keydir.Order();
  EXPECT_EQ(Keys(ScanAll(keydir)),
            (std::vector<std::string>{std::string(1, '\0'), nul_prefix, nul_key, longest,
                                      longest_other, one}));
  EXPECT_EQ(*keydir.Erase(longest), Loc(4));
  EXPECT_EQ(keydir.Find(longest), nullptr);
  EXPECT_EQ(*keydir.Find(longest_other), Loc(5));

  // ForEach sees the same keys, in some order.
  std::map<std::string, Location> seen;
  keydir.ForEach([&](std::string_view key, const Location& location) {
    EXPECT_TRUE(seen.emplace(std::string(key), location).second);
  });
  EXPECT_EQ(seen.size(), 5u);
  EXPECT_EQ(seen.at(longest_other), Loc(5));
}

TEST(KeydirTest, ManyLongKeysSpanSeveralChunks) {
  // 600 keys of 8 KiB: about 5 MiB of entries, so more than one 2 MiB chunk
  // and several chunk tails on free lists.
  Keydir keydir;
  auto key_of = [](uint32_t i) {
    std::string key(8000 + i % 300, static_cast<char>('a' + i % 26));
    key += std::to_string(i);
    return key;
  };
  for (uint32_t i = 0; i < 600; ++i) keydir.Put(key_of(i), Loc(i));
  for (uint32_t i = 0; i < 600; ++i) {
    const Location* location = keydir.Find(key_of(i));
    ASSERT_NE(location, nullptr) << i;
    EXPECT_EQ(*location, Loc(i));
  }
  // Small keys fill the free tails.
  for (uint32_t i = 0; i < 2000; ++i) keydir.Put("s" + std::to_string(i), Loc(i));
  for (uint32_t i = 0; i < 600; ++i) EXPECT_EQ(*keydir.Find(key_of(i)), Loc(i)) << i;
  for (uint32_t i = 0; i < 2000; ++i) EXPECT_EQ(*keydir.Find("s" + std::to_string(i)), Loc(i)) << i;
  keydir.Order();
  EXPECT_EQ(ScanAll(keydir).size(), 2600u);
}

TEST(KeydirTest, MemoryIsReusedWhenKeysAreErasedAndPutAgain) {
  Keydir keydir;
  auto key_of = [](int i) { return "key-" + std::to_string(i); };
  for (int i = 0; i < 20000; ++i) keydir.Put(key_of(i), Loc(1));
  keydir.Order();
  EXPECT_GT(keydir.MemoryBytes(), 20000u * 8);

  // One round: erase ordered keys and put them again (they become pending),
  // erase some of those while pending and put them again, then order. A leak
  // of the erased entries would add 5000-10000 entries (>= 120 KB) a round.
  auto round = [&](uint32_t value) {
    for (int i = 0; i < 20000; i += 2) ASSERT_TRUE(keydir.Erase(key_of(i)).has_value());
    for (int i = 0; i < 20000; i += 2) keydir.Put(key_of(i), Loc(value));
    for (int i = 0; i < 20000; i += 4) ASSERT_TRUE(keydir.Erase(key_of(i)).has_value());
    for (int i = 0; i < 20000; i += 4) keydir.Put(key_of(i), Loc(value + 1));
    keydir.Order();
    ASSERT_EQ(keydir.size(), 20000u);
  };
  round(2);  // the btree loses its sorted-build compactness once
  const size_t memory = keydir.MemoryBytes();
  for (uint32_t r = 0; r < 30; ++r) {
    round(3 + r);
    // The btree's shape varies a little from round to round; the arena must
    // not grow at all.
    ASSERT_LE(keydir.MemoryBytes(), memory + memory / 50) << "round " << r;
  }
  EXPECT_EQ(*keydir.Find(key_of(1)), Loc(1));
  EXPECT_EQ(*keydir.Find(key_of(2)), Loc(32));
  EXPECT_EQ(*keydir.Find(key_of(4)), Loc(33));

  // Erase all and put all again: the same memory as a fresh build of the
  // same keys after the same history.
  for (int i = 0; i < 20000; ++i) ASSERT_TRUE(keydir.Erase(key_of(i)).has_value());
  EXPECT_EQ(keydir.size(), 0u);
  for (int i = 0; i < 20000; ++i) keydir.Put(key_of(i), Loc(4));
  keydir.Order();
  EXPECT_LE(keydir.MemoryBytes(), memory + memory / 50);
  EXPECT_EQ(*keydir.Find(key_of(12345)), Loc(4));
  EXPECT_EQ(ScanAll(keydir).size(), 20000u);
}

TEST(KeydirTest, PendingListStaysBounded) {
  // Without any Order() call, Put orders by itself now and then, so the
  // pending list does not grow with the number of keys.
  Keydir keydir;
  Random random(8);
  for (uint32_t i = 0; i < 300000; ++i) {
    keydir.Put("k" + std::to_string(random.Next()), Loc(i));
  }
  EXPECT_LT(keydir.MemoryBytes(), size_t{300000} * 80);
  keydir.Order();
  std::string previous;
  size_t count = 0;
  keydir.ScanFrom("", [&](std::string_view key, const Location&) {
    EXPECT_LT(previous, key);
    previous = std::string(key);
    ++count;
    return true;
  });
  EXPECT_EQ(count, keydir.size());
}

TEST(KeydirTest, OrderInsertsClusteredBatchesIntoALargerIndex) {
  // A batch whose values sit in two far-apart clusters of a larger ordered
  // index: inserting it walks within a cluster and must jump between them.
  Keydir keydir;
  char buffer[16];
  auto key_of = [&](int i) {
    std::snprintf(buffer, sizeof(buffer), "k%06d", i);
    return std::string(buffer);
  };
  std::map<std::string, Location> model;
  for (int i = 0; i < 40000; i += 2) {
    keydir.Put(key_of(i), Loc(static_cast<uint32_t>(i)));
    model.emplace(key_of(i), Loc(static_cast<uint32_t>(i)));
  }
  keydir.Order();
  for (int round = 0; round < 3; ++round) {
    for (int i = 1 + round * 600; i < 2000 + round * 600; i += 2) {
      keydir.Put(key_of(i), Loc(1));
      model.emplace(key_of(i), Loc(1));
      keydir.Put(key_of(40000 - i), Loc(2));
      model.emplace(key_of(40000 - i), Loc(2));
    }
    EXPECT_TRUE(keydir.NeedsOrdering());
    keydir.Order();
    EXPECT_FALSE(keydir.NeedsOrdering());
    ASSERT_EQ(ScanAll(keydir), Scanned(model.begin(), model.end())) << "round " << round;
  }
  EXPECT_EQ(Keys(ScanAll(keydir, key_of(1999), 3)),
            (std::vector<std::string>{key_of(1999), key_of(2000), key_of(2001)}));
}

// Random keys from a small alphabet and short lengths, so operations hit the
// same keys often and many keys share prefixes (and the 4-byte ordering
// prefix ties); now and then a long key.
std::string RandomKey(Random& random) {
  static constexpr char kAlphabet[] = {'\0', '\x01', 'a', 'b', '\x7f', '\x80', '\xff'};
  size_t length = 1 + random.Uniform(6);
  if (random.OneIn(200)) length = 1 + random.Uniform(3000);
  std::string key;
  for (size_t i = 0; i < length; ++i) key += kAlphabet[random.Uniform(sizeof(kAlphabet))];
  return key;
}

TEST(KeydirTest, RandomOperationsMatchStdMap) {
  const uint64_t seed = test::TestSeed(20261124);
  SCOPED_TRACE(testing::Message() << "seed " << seed << " (rerun with RKV_TEST_SEED=" << seed
                                  << ")");
  Random random(seed);
  Keydir keydir;
  std::map<std::string, Location> model;
  auto random_location = [&] {
    return Location{static_cast<uint32_t>(random.Uniform(4)), static_cast<uint32_t>(random.Next()),
                    static_cast<uint32_t>(random.Next())};
  };
  auto existing_key = [&]() -> std::string {
    if (model.empty()) return RandomKey(random);
    auto it = model.lower_bound(RandomKey(random));
    if (it == model.end()) it = model.begin();
    return it->first;
  };

  for (int op = 0; op < 100000; ++op) {
    const uint64_t kind = random.Uniform(100);
    if (kind < 40) {
      const std::string key = RandomKey(random);
      const Location location = random_location();
      auto previous = keydir.Put(key, location);
      auto it = model.find(key);
      if (it == model.end()) {
        ASSERT_FALSE(previous.has_value()) << "op " << op;
        model.emplace(key, location);
      } else {
        ASSERT_TRUE(previous.has_value()) << "op " << op;
        ASSERT_EQ(*previous, it->second) << "op " << op;
        it->second = location;
      }
    } else if (kind < 65) {
      const std::string key = random.OneIn(2) ? existing_key() : RandomKey(random);
      auto erased = keydir.Erase(key);
      auto it = model.find(key);
      ASSERT_EQ(erased.has_value(), it != model.end()) << "op " << op;
      if (it != model.end()) {
        ASSERT_EQ(*erased, it->second) << "op " << op;
        model.erase(it);
      }
    } else if (kind < 75) {
      const std::string key = existing_key();
      auto it = model.find(key);
      const Location expected =
          (it != model.end() && random.OneIn(2)) ? it->second : random_location();
      const Location location = random_location();
      const bool replaced = keydir.ReplaceIf(key, expected, location);
      const bool model_replaced = it != model.end() && it->second == expected;
      ASSERT_EQ(replaced, model_replaced) << "op " << op;
      if (model_replaced) it->second = location;
    } else if (kind < 95) {
      const std::string key = random.OneIn(2) ? existing_key() : RandomKey(random);
      const Location* found = keydir.Find(key);
      auto it = model.find(key);
      ASSERT_EQ(found != nullptr, it != model.end()) << "op " << op;
      if (found != nullptr) {
        ASSERT_EQ(*found, it->second) << "op " << op;
      }
    } else if (kind < 98) {
      keydir.Order();
      ASSERT_FALSE(keydir.NeedsOrdering());
    } else {
      // A bounded scan from a random start.
      if (keydir.NeedsOrdering()) keydir.Order();
      const std::string start = RandomKey(random);
      const size_t limit = random.Uniform(20);
      Scanned expected;
      for (auto it = model.lower_bound(start); it != model.end() && expected.size() < limit; ++it) {
        expected.emplace_back(it->first, it->second);
      }
      ASSERT_EQ(ScanAll(keydir, start, limit), expected) << "op " << op;
    }
    ASSERT_EQ(keydir.size(), model.size()) << "op " << op;
  }

  keydir.Order();
  const Scanned expected(model.begin(), model.end());
  EXPECT_EQ(ScanAll(keydir), expected);
  for (const auto& [key, location] : model) {
    const Location* found = keydir.Find(key);
    ASSERT_NE(found, nullptr);
    EXPECT_EQ(*found, location);
  }
  // Erase everything: nothing left to scan.
  for (const auto& [key, location] : model) ASSERT_TRUE(keydir.Erase(key).has_value());
  EXPECT_EQ(keydir.size(), 0u);
  keydir.Order();
  EXPECT_TRUE(ScanAll(keydir).empty());
}

}  // namespace
}  // namespace rkv::storage
