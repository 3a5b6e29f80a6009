// Snapshot blobs: round trips through a KvDir install with a state machine
// (same applied index, sessions, data, and the same results for the entries
// after), determinism, empty and large engines, records larger than a block
// or a batch, and refusal of every truncation, every flipped bit, and of
// blobs whose checksums were recomputed over damage (the structure checks
// behind the checksums).
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "common/coding.h"
#include "common/logging.h"
#include "common/random.h"
#include "env/mem_env.h"
#include "node/kv_dir.h"
#include "node/snapshot.h"
#include "node/state_machine.h"
#include "snapshot_test_util.h"
#include "state_machine_model.h"
#include "storage/engine.h"
#include "support/test_util.h"

namespace rkv {
namespace {

using test::LogEntry;
using test::Replica;

constexpr size_t kHeaderSize = 44;
constexpr size_t kTrailerSize = 21;

class SnapshotTest : public ::testing::Test {
 protected:
  void SetUp() override {
    log::SetLevel(log::Level::kWarn);
    ASSERT_OK(env_.CreateDir("/src"));
    ASSERT_OK(env_.CreateDir("/data"));
    options_ = test::SmallSessionOptions();
  }
  void TearDown() override { log::SetLevel(log::Level::kInfo); }

  // A source replica in /src that applied `log`.
  void MakeSource(const std::vector<LogEntry>& log, Replica* source) {
    ASSERT_OK(source->Open(&env_, "/src", options_));
    ASSERT_OK(source->Apply(log));
  }

  // The blob of a replica that applied RandomLog and a BulkLog of `bulk` keys.
  std::string SmallBlob(size_t bulk = 20) {
    Replica source;
    std::vector<LogEntry> log = test::RandomLog(test::TestSeed(11), 120);
    const std::vector<LogEntry> more = test::BulkLog(log.size() + 1, bulk, 12);
    log.insert(log.end(), more.begin(), more.end());
    MakeSource(log, &source);
    auto blob = BuildSnapshot(source.engine.get(), source.meta());
    EXPECT_OK(blob);
    return blob.ok() ? *blob : std::string();
  }

  MemEnv env_;
  StateMachineOptions options_;
};

TEST_F(SnapshotTest, RoundTripThroughInstall) {
  std::vector<LogEntry> log = test::RandomLog(test::TestSeed(1), 300);
  const std::vector<LogEntry> bulk = test::BulkLog(301, 200, 2);
  log.insert(log.end(), bulk.begin(), bulk.end());
  const std::vector<LogEntry> tail = test::TailLog(log.size() + 1, 200, 3);

  Replica source;
  MakeSource(log, &source);
  ASSERT_FALSE(source.sm->sessions().empty());
  auto blob = BuildSnapshot(source.engine.get(), source.meta());
  ASSERT_OK(blob);

  auto summary = VerifySnapshot(*blob);
  ASSERT_OK(summary);
  EXPECT_EQ(summary->format_version, kSnapshotFormatVersion);
  EXPECT_EQ(summary->meta.applied_index, LogIndex{log.size()});
  EXPECT_EQ(summary->meta.applied_term, Term{7});
  const auto source_dump = test::DumpEngine(source.engine.get());
  EXPECT_EQ(summary->records, source_dump.size());
  EXPECT_EQ(summary->total_bytes, blob->size());
  // Every kind of record travels: user data, sessions, the applied record,
  // the expiry index.
  for (char prefix : {StateMachine::kUserPrefix, StateMachine::kSessionPrefix, StateMachine::kMetaPrefix,
                      StateMachine::kExpiryPrefix}) {
    EXPECT_TRUE(std::any_of(source_dump.begin(), source_dump.end(),
                            [&](const auto& kv) { return kv.first[0] == prefix; }))
        << "no record with prefix " << prefix;
  }

  auto dir = KvDir::Open(&env_, "/data/kv");
  ASSERT_OK(dir);
  SnapshotSummary installed;
  auto path = dir->InstallSnapshot(*blob, test::NodeEngineOptions(&env_), &installed);
  ASSERT_OK(path);
  EXPECT_EQ(*path, "/data/kv/engine-000002");
  EXPECT_EQ(dir->current_path(), *path);
  EXPECT_EQ(installed.records, summary->records);

  Replica copy;
  ASSERT_OK(copy.Open(&env_, *path, options_));
  EXPECT_EQ(copy.sm->applied_index(), source.sm->applied_index());
  EXPECT_EQ(copy.sm->applied_term(), source.sm->applied_term());
  EXPECT_EQ(copy.sm->time_ms(), source.sm->time_ms());
  EXPECT_EQ(copy.sm->sessions(), source.sm->sessions());
  EXPECT_EQ(test::DumpEngine(copy.engine.get()), source_dump);
  for (size_t i = 0; i < 200; ++i) {
    const std::string key = "bulk" + std::to_string(i);
    auto a = source.sm->Get(key);
    auto b = copy.sm->Get(key);
    ASSERT_EQ(a.status().code(), b.status().code()) << key;
    if (a.ok()) {
      EXPECT_EQ(*a, *b) << key;
    }
  }
  // A snapshot of the copy is the same blob: nothing was lost or added.
  auto again = BuildSnapshot(copy.engine.get(), copy.meta());
  ASSERT_OK(again);
  EXPECT_EQ(*again, *blob);

  // The copy goes on exactly like the source.
  for (const LogEntry& e : tail) {
    auto a = source.sm->Apply(e.index, e.term, e.data);
    auto b = copy.sm->Apply(e.index, e.term, e.data);
    ASSERT_OK(a);
    ASSERT_OK(b);
    EXPECT_EQ(*a, *b) << "entry " << e.index;
  }
  EXPECT_EQ(copy.sm->sessions(), source.sm->sessions());
  EXPECT_EQ(test::DumpEngine(copy.engine.get()), test::DumpEngine(source.engine.get()));
  // And replays of entries the snapshot covers are skipped.
  auto replay = copy.sm->Apply(log.back().index, log.back().term, log.back().data);
  ASSERT_OK(replay);
  EXPECT_EQ(replay->code, CommandResult::Code::kAlreadyApplied);
}

TEST_F(SnapshotTest, SameStateSameBytes) {
  Replica source;
  MakeSource(test::RandomLog(test::TestSeed(5), 100), &source);
  auto a = BuildSnapshot(source.engine.get(), source.meta());
  ASSERT_OK(a);
  // A view taken first and serialized after later writes still shows the
  // state of its moment.
  auto view = source.engine->CreateView();
  ASSERT_OK(view);
  ASSERT_OK(source.engine->Put("zzz-later", "x"));
  auto b = BuildSnapshot(view->get(), source.meta());
  view->reset();
  ASSERT_OK(b);
  EXPECT_EQ(*a, *b);
  auto c = BuildSnapshot(source.engine.get(), source.meta());
  ASSERT_OK(c);
  EXPECT_NE(*a, *c);
}

TEST_F(SnapshotTest, EmptyEngine) {
  auto engine = storage::Engine::Open(test::NodeEngineOptions(&env_), "/src");
  ASSERT_OK(engine);
  auto blob = BuildSnapshot(engine->get());
  ASSERT_OK(blob);
  EXPECT_EQ(blob->size(), kHeaderSize + kTrailerSize);
  auto summary = VerifySnapshot(*blob);
  ASSERT_OK(summary);
  EXPECT_EQ(summary->records, 0u);
  EXPECT_EQ(summary->blocks, 0u);
  EXPECT_EQ(summary->meta, SnapshotMeta{});

  // Installing it over a non-empty state empties it.
  auto dir = KvDir::Open(&env_, "/data/kv");
  ASSERT_OK(dir);
  {
    Replica old;
    ASSERT_OK(old.Open(&env_, dir->current_path(), options_));
    ASSERT_OK(old.Apply(test::RandomLog(1, 20)));
    ASSERT_OK(old.Close());
  }
  auto path = dir->InstallSnapshot(*blob, test::NodeEngineOptions(&env_));
  ASSERT_OK(path);
  Replica copy;
  ASSERT_OK(copy.Open(&env_, *path, options_));
  EXPECT_EQ(copy.sm->applied_index(), LogIndex{0});
  EXPECT_TRUE(copy.sm->sessions().empty());
  EXPECT_TRUE(test::DumpEngine(copy.engine.get()).empty());
}

TEST_F(SnapshotTest, TwentyThousandKeys) {
  constexpr size_t kKeys = 20'000;
  Replica source;
  MakeSource(test::BulkLog(1, kKeys, 21, 64), &source);
  auto blob = BuildSnapshot(source.engine.get(), source.meta());
  ASSERT_OK(blob);
  auto summary = VerifySnapshot(*blob);
  ASSERT_OK(summary);
  const auto dump = test::DumpEngine(source.engine.get());
  EXPECT_EQ(summary->records, dump.size());
  EXPECT_GT(summary->records, kKeys);  // plus sessions, expiry index, applied record
  EXPECT_GT(summary->blocks, 10u);
  uint64_t key_bytes = 0, value_bytes = 0;
  for (const auto& [k, v] : dump) {
    key_bytes += k.size();
    value_bytes += v.size();
  }
  EXPECT_EQ(summary->key_bytes, key_bytes);
  EXPECT_EQ(summary->value_bytes, value_bytes);

  auto dir = KvDir::Open(&env_, "/data/kv");
  ASSERT_OK(dir);
  storage::Options options = test::NodeEngineOptions(&env_);
  options.data_file_size_max = 1 << 20;
  auto path = dir->InstallSnapshot(*blob, options);
  ASSERT_OK(path);
  Replica copy;
  ASSERT_OK(copy.Open(&env_, *path, options_));
  EXPECT_EQ(test::DumpEngine(copy.engine.get()), dump);
  EXPECT_EQ(copy.sm->applied_index(), source.sm->applied_index());
}

// A value larger than a block and than a batch may be (half of a 4 KiB data
// file here) gets a block of its own and is written on its own.
TEST_F(SnapshotTest, RecordsLargerThanABlockAndABatch) {
  auto engine = storage::Engine::Open(test::NodeEngineOptions(&env_), "/src");
  ASSERT_OK(engine);
  const std::string big(kSnapshotBlockBytes * 2 + 17, 'b');
  ASSERT_OK((*engine)->Put("a", "small"));
  ASSERT_OK((*engine)->Put("b", big));
  ASSERT_OK((*engine)->Put("c", std::string(3000, 'c')));
  ASSERT_OK((*engine)->Put("d", ""));
  auto blob = BuildSnapshot(engine->get(), SnapshotMeta{LogIndex{9}, Term{2}});
  ASSERT_OK(blob);
  auto summary = VerifySnapshot(*blob);
  ASSERT_OK(summary);
  EXPECT_EQ(summary->records, 4u);
  EXPECT_EQ(summary->blocks, 2u);  // "a" and "b" close the first; "c" and "d"
  EXPECT_EQ(summary->max_value_size, big.size());
  EXPECT_EQ(summary->meta, (SnapshotMeta{LogIndex{9}, Term{2}}));

  auto dir = KvDir::Open(&env_, "/data/kv");
  ASSERT_OK(dir);
  auto path = dir->InstallSnapshot(*blob, test::NodeEngineOptions(&env_));
  ASSERT_OK(path);
  auto copy = storage::Engine::Open(test::NodeEngineOptions(&env_), *path);
  ASSERT_OK(copy);
  EXPECT_EQ(test::DumpEngine(copy->get()), test::DumpEngine(engine->get()));
}

TEST_F(SnapshotTest, EveryTruncationIsRefused) {
  const std::string blob = SmallBlob(40);
  ASSERT_GT(blob.size(), 1000u);
  for (size_t n = 0; n < blob.size(); ++n) {
    auto r = VerifySnapshot(std::string_view(blob).substr(0, n));
    ASSERT_FALSE(r.ok()) << "prefix of " << n << " bytes accepted";
    ASSERT_TRUE(r.status().IsCorruption()) << n << ": " << r.status().ToString();
  }
  // Bytes after the trailer too.
  EXPECT_TRUE(VerifySnapshot(blob + '\0').status().IsCorruption());
  EXPECT_TRUE(VerifySnapshot(blob + blob).status().IsCorruption());
  EXPECT_OK(VerifySnapshot(blob));
}

// Cuts at and around every block boundary of a many-block blob, where a
// truncated transfer would most likely stop.
TEST_F(SnapshotTest, TruncationAtBlockBoundariesIsRefused) {
  Replica source;
  MakeSource(test::BulkLog(1, 5000, 31, 64), &source);
  auto blob = BuildSnapshot(source.engine.get(), source.meta());
  ASSERT_OK(blob);
  size_t trailer = 0;
  const std::vector<size_t> blocks = test::BlockOffsets(*blob, &trailer);
  ASSERT_GT(blocks.size(), 3u);
  std::vector<size_t> cuts = {trailer, trailer + 1, blob->size() - 1};
  for (size_t b : blocks) {
    for (size_t d : {size_t{0}, size_t{1}, size_t{12}, size_t{13}, size_t{14}}) cuts.push_back(b + d);
    cuts.push_back(b - 1);
  }
  for (size_t n : cuts) {
    EXPECT_TRUE(VerifySnapshot(std::string_view(*blob).substr(0, n)).status().IsCorruption()) << n;
    // Even with the checksum at the end made to match.
    std::string cut = blob->substr(0, n);
    if (cut.size() < kHeaderSize + kTrailerSize) continue;
    test::FixWholeCrc(&cut);
    EXPECT_TRUE(VerifySnapshot(cut).status().IsCorruption()) << n;
  }
}

TEST_F(SnapshotTest, EveryBitFlipIsRefused) {
  const std::string blob = SmallBlob(5);
  ASSERT_OK(VerifySnapshot(blob));
  std::string damaged = blob;
  for (size_t i = 0; i < blob.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      damaged[i] = static_cast<char>(blob[i] ^ (1 << bit));
      auto r = VerifySnapshot(damaged);
      ASSERT_TRUE(r.status().IsCorruption()) << "byte " << i << " bit " << bit << ": " << r.status().ToString();
      damaged[i] = blob[i];
    }
  }
}

// With the whole-blob checksum recomputed over the damage, the checks behind
// it still refuse: block checksums, header checksum, counts, key order.
TEST_F(SnapshotTest, DamageBehindAMatchingWholeChecksumIsRefused) {
  Replica source;
  MakeSource(test::BulkLog(1, 8000, 41, 64), &source);
  auto built = BuildSnapshot(source.engine.get(), source.meta());
  ASSERT_OK(built);
  const std::string blob = *built;
  size_t trailer = 0;
  const std::vector<size_t> blocks = test::BlockOffsets(blob, &trailer);
  ASSERT_GE(blocks.size(), 3u);
  const auto refused = [](std::string b, std::string_view what) {
    test::FixWholeCrc(&b);
    auto r = VerifySnapshot(b);
    EXPECT_TRUE(r.status().IsCorruption()) << what << ": " << r.status().ToString();
  };

  Random rnd(test::TestSeed(43));
  for (int i = 0; i < 200; ++i) {
    std::string b = blob;
    const size_t at = rnd.Uniform(blob.size() - 4);
    b[at] = static_cast<char>(b[at] ^ (1 << rnd.Uniform(8)));
    refused(b, "flip at " + std::to_string(at));
  }
  // A block dropped, repeated, or two swapped.
  const std::string block1 = blob.substr(blocks[1], blocks[2] - blocks[1]);
  refused(blob.substr(0, blocks[1]) + blob.substr(blocks[2]), "block dropped");
  refused(blob.substr(0, blocks[2]) + block1 + blob.substr(blocks[2]), "block repeated");
  const std::string block2 = blob.substr(blocks[2], blocks[3] - blocks[2]);
  refused(blob.substr(0, blocks[1]) + block2 + block1 + blob.substr(blocks[3]), "blocks swapped");
  // A block dropped and both counts adjusted: the key order still holds, so
  // this one is a valid blob of fewer records; but a repeated block with the
  // counts adjusted breaks the order.
  {
    std::string b = blob.substr(0, blocks[2]) + block1 + blob.substr(blocks[2]);
    const uint32_t n = DecodeFixed32(block1.data() + 1);
    const uint64_t records = DecodeFixed64(blob.data() + 32) + n;
    EncodeFixed64(b.data() + 32, records);
    test::FixHeaderCrc(&b);
    EncodeFixed64(b.data() + b.size() - kTrailerSize + 1, records);
    refused(b, "block repeated, counts adjusted");
  }
  // Counts that disagree.
  {
    std::string b = blob;
    EncodeFixed64(b.data() + 32, DecodeFixed64(blob.data() + 32) + 1);
    test::FixHeaderCrc(&b);
    refused(b, "header count");
    b = blob;
    EncodeFixed64(b.data() + trailer + 1, DecodeFixed64(blob.data() + trailer + 1) - 1);
    refused(b, "trailer count");
  }
  // Unknown header flags, version 0, trailer magic, an unknown block tag.
  {
    std::string b = blob;
    b[12] = 1;
    test::FixHeaderCrc(&b);
    refused(b, "flags");
    b = blob;
    EncodeFixed32(b.data() + 8, 0);
    test::FixHeaderCrc(&b);
    refused(b, "version 0");
    b = blob;
    b[trailer + 9] = 'X';
    refused(b, "trailer magic");
    b = blob;
    b[blocks[1]] = 3;
    refused(b, "block tag");
  }
}

TEST_F(SnapshotTest, NewerVersionIsNotSupported) {
  std::string blob = SmallBlob(3);
  EncodeFixed32(blob.data() + 8, kSnapshotFormatVersion + 1);
  test::FixHeaderCrc(&blob);
  test::FixWholeCrc(&blob);
  auto r = VerifySnapshot(blob);
  EXPECT_EQ(r.status().code(), StatusCode::kNotSupported) << r.status().ToString();
}

TEST_F(SnapshotTest, GarbageIsRefused) {
  EXPECT_TRUE(VerifySnapshot("").status().IsCorruption());
  EXPECT_TRUE(VerifySnapshot("rkv-snap").status().IsCorruption());
  Random rnd(test::TestSeed(7));
  for (int i = 0; i < 200; ++i) {
    std::string junk(rnd.Uniform(300), '\0');
    for (char& c : junk) c = static_cast<char>(rnd.Uniform(256));
    if (i % 2 == 0 && junk.size() >= 8) junk.replace(0, 8, "rkv-snap");
    EXPECT_TRUE(VerifySnapshot(junk).status().IsCorruption());
  }
}

}  // namespace
}  // namespace rkv
