// Shared by the state machine tests: engine options, a reference model of
// the state machine's semantics (plain maps, written independently of the
// implementation), a random workload of entries, and a dump of an engine.
#ifndef RKV_TESTS_UNIT_NODE_STATE_MACHINE_MODEL_H_
#define RKV_TESTS_UNIT_NODE_STATE_MACHINE_MODEL_H_

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/random.h"
#include "common/types.h"
#include "node/command.h"
#include "node/state_machine.h"
#include "storage/engine.h"

namespace rkv::test {

// A result with a code and message and nothing else set.
inline CommandResult Failure(CommandResult::Code code, std::string message) {
  CommandResult r;
  r.code = code;
  r.message = std::move(message);
  return r;
}

// An engine as the node opens one: sync mode none, limits fitted to the
// state machine's records. Small files and buffer, so a short workload rolls
// files and flushes often (many crash points).
inline storage::Options NodeEngineOptions(Env* env) {
  storage::Options o;
  o.env = env;
  o.sync_mode = storage::SyncMode::kNone;
  StateMachine::FitEngineOptions(StateMachineOptions{}, &o);
  o.data_file_size_max = 4096;
  o.write_buffer_size = 4096;  // the smallest the engine takes
  o.background_merge = false;
  return o;
}

// Every record of the engine, internal ones included.
inline std::map<std::string, std::string> DumpEngine(storage::Engine* engine) {
  storage::ScanOptions scan;
  scan.limit = 100'000;
  auto all = engine->Scan(scan);
  EXPECT_TRUE(all.ok()) << all.status().ToString();
  std::map<std::string, std::string> out;
  if (all.ok()) {
    for (auto& kv : *all) out[kv.key] = kv.value;
  }
  return out;
}

struct LogEntry {
  LogIndex index;
  Term term;
  std::string data;
};

// The state machine's semantics, spelled out the plain way.
class Model {
 public:
  explicit Model(StateMachineOptions options) : options_(options) {}

  CommandResult Apply(const LogEntry& entry) {
    EXPECT_EQ(entry.index, applied_ + 1);
    applied_ = entry.index;
    if (entry.data.empty()) return {};
    auto decoded = DecodeCommand(entry.data);
    EXPECT_TRUE(decoded.ok());
    const Command& c = *decoded;
    time_ = std::max(time_, c.timestamp_ms);
    for (auto it = sessions_.begin(); it != sessions_.end();) {
      if (time_ - it->second.last_active_ms > options_.session_ttl_ms) {
        it = sessions_.erase(it);
      } else {
        ++it;
      }
    }
    if (c.client_id != 0) {
      auto it = sessions_.find(c.client_id);
      if (it != sessions_.end() && c.sequence == it->second.last_sequence) {
        CommandResult r = it->second.last_result;
        r.duplicate = true;
        return r;
      }
      if (it != sessions_.end() && c.sequence < it->second.last_sequence) {
        return Failure(CommandResult::Code::kStaleSequence, "");
      }
    }
    CommandResult r = Execute(c, entry.index);
    if (c.client_id != 0) {
      sessions_[c.client_id] = SessionInfo{c.client_id, c.sequence, time_, r};
      while (sessions_.size() > options_.max_sessions) {
        // The least recently active other client; ties by client id.
        std::optional<std::pair<uint64_t, uint64_t>> victim;
        for (const auto& [id, s] : sessions_) {
          if (id == c.client_id) continue;
          std::pair<uint64_t, uint64_t> rank{s.last_active_ms, id};
          if (!victim || rank < *victim) victim = rank;
        }
        if (!victim) break;
        sessions_.erase(victim->second);
      }
    }
    return r;
  }

  // The live value of `key` at the model's time.
  std::optional<std::string> Get(const std::string& key) const {
    const Stored* s = Live(key);
    return s ? std::optional<std::string>(s->value) : std::nullopt;
  }
  // Its revision at the model's time (0: absent).
  uint64_t Revision(const std::string& key) const {
    const Stored* s = Live(key);
    return s ? s->revision : 0;
  }

  std::vector<SessionInfo> sessions() const {
    std::vector<SessionInfo> out;
    for (const auto& [id, s] : sessions_) out.push_back(s);
    return out;
  }
  LogIndex applied_index() const { return applied_; }
  uint64_t time_ms() const { return time_; }

 private:
  struct Stored {
    std::string value;
    uint64_t expiry_ms = 0;
    uint64_t revision = 0;
  };
  const Stored* Live(const std::string& key) const {
    auto it = data_.find(key);
    if (it == data_.end()) return nullptr;
    if (it->second.expiry_ms != 0 && it->second.expiry_ms <= time_) return nullptr;
    return &it->second;
  }
  static bool Relate(Compare::Op op, auto have, auto want) {
    switch (op) {
      case Compare::Op::kEqual: return have == want;
      case Compare::Op::kNotEqual: return have != want;
      case Compare::Op::kLess: return have < want;
      case Compare::Op::kGreater: return have > want;
    }
    return false;
  }
  bool Holds(const Compare& c) const {
    if (c.target == Compare::Target::kRevision) return Relate(c.op, Revision(c.key), c.revision);
    const std::optional<std::string> v = Get(c.key);
    if (!v) return c.op == Compare::Op::kNotEqual;
    return Relate(c.op, std::string_view(*v), std::string_view(c.value));
  }

  bool BadKey(const std::string& key) const { return key.empty() || key.size() > options_.max_key_size; }
  bool BadValue(const std::string& value) const { return value.size() > options_.max_value_size; }

  CommandResult Execute(const Command& c, LogIndex index) {
    // A user write that is applied answers its index: its revision.
    CommandResult written;
    written.revision = index.value();
    switch (c.kind) {
      case Command::Kind::kNoop:
        return {};
      case Command::Kind::kPut:
        if (BadKey(c.key) || BadValue(c.value)) return Rejected(c);
        data_[c.key] = {c.value, c.expiry_ms, index.value()};
        return written;
      case Command::Kind::kDelete:
        if (BadKey(c.key)) return Rejected(c);
        data_.erase(c.key);
        return written;
      case Command::Kind::kCas:
        if (BadKey(c.key) || BadValue(c.value)) return Rejected(c);
        if (Get(c.key) != c.expected) return Failure(CommandResult::Code::kCasFailed, "");
        data_[c.key] = {c.value, c.expiry_ms, index.value()};
        return written;
      case Command::Kind::kBatch:
        for (const BatchOp& op : c.ops) {
          if (BadKey(op.key) || (op.type == BatchOp::Type::kPut && BadValue(op.value))) return Rejected(c);
        }
        for (const BatchOp& op : c.ops) {
          if (op.type == BatchOp::Type::kPut) {
            data_[op.key] = {op.value, op.expiry_ms, index.value()};
          } else {
            data_.erase(op.key);
          }
        }
        return written;
      case Command::Kind::kTxn: {
        for (const Compare& cmp : c.compares) {
          if (BadKey(cmp.key)) return Rejected(c);
        }
        for (const BatchOp& op : c.ops) {
          if (BadKey(op.key) || (op.type == BatchOp::Type::kPut && BadValue(op.value))) return Rejected(c);
        }
        CommandResult failed;
        failed.code = CommandResult::Code::kCompareFailed;
        bool ok = true;
        for (size_t i = 0; i < c.compares.size(); ++i) {
          failed.compare_revisions.push_back(Revision(c.compares[i].key));
          if (ok && !Holds(c.compares[i])) {
            ok = false;
            failed.failed_compare = i;
          }
        }
        if (!ok) return failed;
        for (const BatchOp& op : c.ops) {
          if (op.type == BatchOp::Type::kPut) {
            data_[op.key] = {op.value, op.expiry_ms, index.value()};
          } else {
            data_.erase(op.key);
          }
        }
        return written;
      }
      case Command::Kind::kSetMember:
      case Command::Kind::kRemoveMember:
        return {};  // the member table is not modelled
    }
    return {};
  }

  // The model does not spell the state machine's messages; it takes the one
  // the state machine gives (tests compare codes, and messages through
  // sessions, where both sides then agree). Rejections here only come from
  // empty keys, whose message is fixed.
  static CommandResult Rejected(const Command&) {
    return Failure(CommandResult::Code::kRejected, "empty key");
  }

  StateMachineOptions options_;
  std::map<std::string, Stored> data_;
  std::map<uint64_t, SessionInfo> sessions_;
  uint64_t time_ = 0;
  LogIndex applied_;
};

// Options that make sessions expire and get evicted within a short workload.
inline StateMachineOptions SmallSessionOptions() {
  StateMachineOptions o;
  o.session_ttl_ms = 2'000;
  o.max_sessions = 3;
  o.expiry_sweep_max = 2;
  return o;
}

inline constexpr int kWorkloadKeys = 8;
inline std::string WorkloadKey(uint64_t i) { return "k" + std::to_string(i); }

// A random log: puts, deletes, CASes (some that hold), batches, transactions
// (compares on revisions and values, some that hold), no-ops and
// empty entries, from six clients and sessionless writes, with retries of
// the last write, stale sequences, TTLs, and leader time that jumps ahead and
// sometimes back (a new leader with a slower clock). Invalid commands only
// with empty keys (so their rejection message is known to the model).
inline std::vector<LogEntry> RandomLog(uint64_t seed, size_t n) {
  Random rnd(seed);
  std::vector<LogEntry> log;
  std::map<uint64_t, uint64_t> next_seq;
  std::map<uint64_t, std::string> last_write;  // client -> its last encoded write
  uint64_t now = 1'700'000'000'000;
  uint64_t term = 1;
  const auto value = [&](size_t i) {
    return "v" + std::to_string(i) + std::string(rnd.OneIn(2) ? 0 : rnd.Uniform(24), 'x');
  };
  for (size_t i = 0; i < n; ++i) {
    if (rnd.OneIn(15)) ++term;
    now += rnd.Uniform(700);
    if (rnd.OneIn(12)) now -= std::min<uint64_t>(now, 900);
    LogEntry e{LogIndex{i + 1}, Term{term}, {}};
    if (rnd.OneIn(12)) {  // a leader's no-op
      log.push_back(e);
      continue;
    }
    const uint64_t client = rnd.OneIn(6) ? 0 : rnd.Range(1, 6);
    if (client != 0 && last_write.count(client) != 0 && rnd.OneIn(5)) {
      e.data = last_write[client];  // a retry: the same bytes again
      log.push_back(e);
      continue;
    }
    Command c;
    const std::string key = rnd.OneIn(40) ? std::string() : WorkloadKey(rnd.Uniform(kWorkloadKeys));
    const uint64_t ttl = rnd.OneIn(4) ? now + rnd.Range(1, 3'000) : 0;
    switch (rnd.Uniform(7)) {
      case 0:
      case 1:
        c = Command::Put(key, value(i), ttl);
        break;
      case 2:
        c = Command::Delete(key);
        break;
      case 3: {
        std::optional<std::string> expected;
        if (!rnd.OneIn(3)) expected = "v" + std::to_string(rnd.Uniform(i + 1));
        c = Command::Cas(key, expected, value(i), ttl);
        break;
      }
      case 4: {
        std::vector<BatchOp> ops;
        const uint64_t count = rnd.Uniform(4);
        for (uint64_t j = 0; j < count; ++j) {
          BatchOp op;
          op.key = WorkloadKey(rnd.Uniform(kWorkloadKeys));
          if (rnd.OneIn(3)) {
            op.type = BatchOp::Type::kDelete;
          } else {
            op.value = value(i);
            op.expiry_ms = rnd.OneIn(4) ? now + rnd.Range(1, 3'000) : 0;
          }
          ops.push_back(std::move(op));
        }
        c = Command::Batch(std::move(ops));
        break;
      }
      case 5: {  // a transaction whose compares hold about half the time
        std::vector<Compare> compares;
        const uint64_t count = rnd.Uniform(3);
        for (uint64_t j = 0; j < count; ++j) {
          Compare cmp;
          cmp.key = WorkloadKey(rnd.Uniform(kWorkloadKeys));
          cmp.op = static_cast<Compare::Op>(rnd.Range(1, 4));
          if (rnd.OneIn(2)) {
            cmp.target = Compare::Target::kRevision;
            cmp.revision = rnd.OneIn(2) ? 0 : rnd.Uniform(i + 1);
          } else {
            cmp.target = Compare::Target::kValue;
            cmp.value = "v" + std::to_string(rnd.Uniform(i + 1));
          }
          compares.push_back(std::move(cmp));
        }
        std::vector<BatchOp> ops;
        const uint64_t nops = rnd.Uniform(3);
        for (uint64_t j = 0; j < nops; ++j) {
          BatchOp op;
          op.key = rnd.OneIn(40) ? std::string() : WorkloadKey(rnd.Uniform(kWorkloadKeys));
          if (rnd.OneIn(3)) {
            op.type = BatchOp::Type::kDelete;
          } else {
            op.value = value(i);
          }
          ops.push_back(std::move(op));
        }
        c = Command::Txn(std::move(compares), std::move(ops));
        break;
      }
      default:
        c = Command::Noop();
        break;
    }
    uint64_t seq = 0;
    if (client != 0) {
      seq = ++next_seq[client];
      if (seq > 2 && rnd.OneIn(10)) seq -= rnd.Range(2, seq - 1);  // a stale duplicate
    }
    c.WithSession(client, seq, now);
    e.data = EncodeCommand(c);
    if (client != 0) last_write[client] = e.data;
    log.push_back(std::move(e));
  }
  return log;
}

// Expects the state machine's user data (over the workload's keys), sessions,
// applied index and time to equal the model's.
inline void ExpectMatchesModel(const StateMachine& sm, const Model& model) {
  EXPECT_EQ(sm.applied_index(), model.applied_index());
  EXPECT_EQ(sm.time_ms(), model.time_ms());
  for (int i = 0; i < kWorkloadKeys; ++i) {
    const std::string key = WorkloadKey(static_cast<uint64_t>(i));
    auto got = sm.Get(key);
    const std::optional<std::string> want = model.Get(key);
    if (want) {
      EXPECT_TRUE(got.ok() && *got == *want) << key << ": got " << (got.ok() ? *got : got.status().ToString())
                                             << ", model " << *want;
    } else {
      EXPECT_TRUE(got.status().IsNotFound()) << key << ": got " << (got.ok() ? *got : got.status().ToString())
                                             << ", model absent";
    }
  }
  EXPECT_EQ(sm.sessions(), model.sessions());
}

}  // namespace rkv::test

#endif  // RKV_TESTS_UNIT_NODE_STATE_MACHINE_MODEL_H_
