// Shared by the snapshot and kv/ directory tests: a replica (engine and state
// machine in one directory), logs that leave sessions, TTL'd keys and the
// expiry index in the engine, and blob surgery that keeps the checksums
// right (to reach the checks behind them).
#ifndef RKV_TESTS_UNIT_NODE_SNAPSHOT_TEST_UTIL_H_
#define RKV_TESTS_UNIT_NODE_SNAPSHOT_TEST_UTIL_H_

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/coding.h"
#include "common/crc32c.h"
#include "common/random.h"
#include "node/command.h"
#include "node/snapshot.h"
#include "node/state_machine.h"
#include "state_machine_model.h"
#include "storage/engine.h"

namespace rkv::test {

// An engine and the state machine over it. The state machine goes first on
// destruction (it points at the engine).
struct Replica {
  std::unique_ptr<storage::Engine> engine;
  std::unique_ptr<StateMachine> sm;

  Status Open(Env* env, const std::string& dir, const StateMachineOptions& options) {
    RKV_ASSIGN_OR_RETURN(engine, storage::Engine::Open(NodeEngineOptions(env), dir));
    RKV_ASSIGN_OR_RETURN(sm, StateMachine::Open(engine.get(), options));
    return Status::OK();
  }
  Status Apply(const std::vector<LogEntry>& log) {
    for (const LogEntry& e : log) RKV_RETURN_IF_ERROR(sm->Apply(e.index, e.term, e.data).status());
    return Status::OK();
  }
  Status Close() {
    sm.reset();
    Status s = engine->Close();
    engine.reset();
    return s;
  }
  SnapshotMeta meta() const { return SnapshotMeta{sm->applied_index(), sm->applied_term()}; }
};

inline constexpr uint64_t kBulkTime = 1'700'000'000'000 + 600'000;

// Entries first_index.. : puts of `count` distinct keys "bulk<i>" from three
// clients, a third with a TTL far ahead, some with one about to pass (so the
// expiry index holds both kinds), then deletes and CASes over some of them.
inline std::vector<LogEntry> BulkLog(uint64_t first_index, size_t count, uint64_t seed, size_t value_size = 24) {
  Random rnd(seed);
  std::vector<LogEntry> log;
  uint64_t seq[4] = {0, 100, 100, 100};  // above RandomLog's sequences
  uint64_t now = kBulkTime;
  const auto add = [&](Command c) {
    const uint64_t client = rnd.Range(1, 3);
    now += rnd.Uniform(3);
    c.WithSession(client, ++seq[client], now);
    log.push_back(LogEntry{LogIndex{first_index + log.size()}, Term{7}, EncodeCommand(c)});
  };
  for (size_t i = 0; i < count; ++i) {
    uint64_t expiry = 0;
    if (i % 3 == 0) expiry = now + 3'600'000;
    if (i % 7 == 0) expiry = now + 50;
    const std::string value(rnd.Uniform(value_size + 1), static_cast<char>('a' + i % 26));
    add(Command::Put("bulk" + std::to_string(i), value, expiry));
  }
  for (size_t i = 0; i < count / 10; ++i) add(Command::Delete("bulk" + std::to_string(rnd.Uniform(count))));
  for (size_t i = 0; i < count / 10; ++i) {
    add(Command::Cas("bulk" + std::to_string(rnd.Uniform(count)), std::nullopt, "cas", 0));
  }
  return log;
}

// RandomLog renumbered to start at `first_index`, its times and expiries
// moved past BulkLog's, so entries after a snapshot keep exercising every
// kind (TTLs included).
inline std::vector<LogEntry> TailLog(uint64_t first_index, size_t count, uint64_t seed) {
  constexpr uint64_t kShift = kBulkTime + 600'000 - 1'700'000'000'000;
  std::vector<LogEntry> log = RandomLog(seed, count);
  for (size_t i = 0; i < log.size(); ++i) {
    log[i].index = LogIndex{first_index + i};
    if (log[i].data.empty()) continue;
    auto c = DecodeCommand(log[i].data);
    EXPECT_TRUE(c.ok());
    if (!c.ok()) continue;
    c->timestamp_ms += kShift;
    if (c->expiry_ms != 0) c->expiry_ms += kShift;
    for (BatchOp& op : c->ops) {
      if (op.expiry_ms != 0) op.expiry_ms += kShift;
    }
    log[i].data = EncodeCommand(*c);
  }
  return log;
}

// Rewrites the trailing whole-blob checksum of `blob` to match its bytes.
inline void FixWholeCrc(std::string* blob) {
  const size_t at = blob->size() - 4;
  EncodeFixed32(blob->data() + at, crc32c::Value(blob->data(), at));
}

// Rewrites the header checksum (the 4 bytes at offset 40) to match.
inline void FixHeaderCrc(std::string* blob) { EncodeFixed32(blob->data() + 40, crc32c::Value(blob->data(), 40)); }

// Offsets of the blocks of a well-formed blob (after the 44-byte header, each
// a 13-byte header and its payload) and where the trailer starts.
inline std::vector<size_t> BlockOffsets(const std::string& blob, size_t* trailer) {
  std::vector<size_t> out;
  size_t pos = 44;
  while (blob[pos] == 1) {
    out.push_back(pos);
    pos += 13 + DecodeFixed32(blob.data() + pos + 5);
  }
  *trailer = pos;
  return out;
}

}  // namespace rkv::test

#endif  // RKV_TESTS_UNIT_NODE_SNAPSHOT_TEST_UTIL_H_
