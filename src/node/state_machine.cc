#include "node/state_machine.h"

#include <fmt/format.h>

#include <algorithm>
#include <limits>

#include "common/assert.h"
#include "common/coding.h"
#include "storage/engine.h"
#include "storage/options.h"

namespace rkv {

namespace {

constexpr uint64_t kNoExpiry = std::numeric_limits<uint64_t>::max();

// Metadata records: applied index and term with the entry time; the
// cluster id; the member address table (kMemberPrefix + id, big-endian).
constexpr std::string_view kAppliedKey = "mapplied";
constexpr std::string_view kClusterKey = "mcluster";
constexpr std::string_view kMemberPrefix = "mmember";

// Flag bits of a stored user value's envelope.
constexpr uint8_t kValueHasExpiry = 1u << 0;
constexpr uint8_t kValueHasRevision = 1u << 1;

// Sessions are read back in pages of this many records at open.
constexpr size_t kLoadPage = 10'000;

// Big-endian, so the engine's byte order of keys is numeric order (sessions by
// client id, the expiry index by time).
void PutBigEndian64(std::string* dst, uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) dst->push_back(static_cast<char>((v >> shift) & 0xff));
}

uint64_t DecodeBigEndian64(std::string_view s) {
  uint64_t v = 0;
  for (size_t i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(s[i]);
  return v;
}

std::string UserKey(std::string_view key) {
  std::string k;
  k.reserve(key.size() + 1);
  k.push_back(StateMachine::kUserPrefix);
  k.append(key);
  return k;
}

std::string MemberKey(uint64_t id) {
  std::string k(kMemberPrefix);
  PutBigEndian64(&k, id);
  return k;
}

std::string SessionKey(uint64_t client_id) {
  std::string k(1, StateMachine::kSessionPrefix);
  PutBigEndian64(&k, client_id);
  return k;
}

// 'x' + expiry (big-endian) + user key: the expiry index, oldest first.
std::string ExpiryKey(uint64_t expiry_ms, std::string_view key) {
  std::string k(1, StateMachine::kExpiryPrefix);
  PutBigEndian64(&k, expiry_ms);
  k.append(key);
  return k;
}

std::string EncodeValue(std::string_view value, uint64_t expiry_ms, uint64_t revision) {
  std::string out;
  out.reserve(value.size() + StateMachine::kValueOverhead);
  out.push_back(static_cast<char>((expiry_ms != 0 ? kValueHasExpiry : 0) | kValueHasRevision));
  if (expiry_ms != 0) PutVarint64(&out, expiry_ms);
  PutVarint64(&out, revision);
  out.append(value);
  return out;
}

// A stored user value taken apart.
struct StoredValue {
  uint64_t expiry_ms = 0;  // 0: never
  uint64_t revision = 0;
  std::string_view value;
};

Status DecodeValue(std::string_view stored, StoredValue* out) {
  if (stored.empty()) return Status::Corruption("state machine: empty stored value");
  const auto flags = static_cast<uint8_t>(stored[0]);
  stored.remove_prefix(1);
  if ((flags & ~(kValueHasExpiry | kValueHasRevision)) != 0) {
    return Status::Corruption(fmt::format("state machine: unknown value flags {:#x}", flags));
  }
  out->expiry_ms = 0;
  if ((flags & kValueHasExpiry) != 0 && (!GetVarint64(&stored, &out->expiry_ms) || out->expiry_ms == 0)) {
    return Status::Corruption("state machine: bad value expiry");
  }
  // A value written before revisions were recorded reports revision 1: it
  // exists, and it is older than anything this build wrote.
  out->revision = 1;
  if ((flags & kValueHasRevision) != 0 && (!GetVarint64(&stored, &out->revision) || out->revision == 0)) {
    return Status::Corruption("state machine: bad value revision");
  }
  out->value = stored;
  return Status::OK();
}

// Whether `compare` holds for a key whose current state is `current`
// (nullopt: absent).
bool CompareHolds(const Compare& compare, const std::optional<KvEntry>& current) {
  const auto relate = [&](auto have, auto want) {
    switch (compare.op) {
      case Compare::Op::kEqual: return have == want;
      case Compare::Op::kNotEqual: return have != want;
      case Compare::Op::kLess: return have < want;
      case Compare::Op::kGreater: return have > want;
    }
    return false;
  };
  if (compare.target == Compare::Target::kRevision) {
    return relate(current ? current->revision : uint64_t{0}, compare.revision);
  }
  if (!current) return compare.op == Compare::Op::kNotEqual;
  return relate(std::string_view(current->value), std::string_view(compare.value));
}

std::string EncodeApplied(LogIndex index, Term term, uint64_t time_ms) {
  std::string out(1, static_cast<char>(StateMachine::kFormatVersion));
  PutFixed64(&out, index.value());
  PutFixed64(&out, term.value());
  PutFixed64(&out, time_ms);
  return out;
}

std::string EncodeSession(uint64_t last_sequence, uint64_t last_active_ms, const CommandResult& result) {
  std::string out(1, static_cast<char>(StateMachine::kFormatVersion));
  PutVarint64(&out, last_sequence);
  PutVarint64(&out, last_active_ms);
  AppendCommandResult(result, &out);
  return out;
}

// Takes the version byte off the front of *input; *version_out (when given)
// receives it.
Status CheckVersion(std::string_view* input, std::string_view what, uint8_t* version_out = nullptr) {
  if (input->empty()) return Status::Corruption(fmt::format("state machine: empty {}", what));
  const auto version = static_cast<uint8_t>((*input)[0]);
  input->remove_prefix(1);
  if (version_out != nullptr) *version_out = version;
  if (version > StateMachine::kFormatVersion) {
    return Status::NotSupported(fmt::format("state machine: {} has format version {}, this build reads {}",
                                            what, version, StateMachine::kFormatVersion));
  }
  if (version == 0) return Status::Corruption(fmt::format("state machine: {} has format version 0", what));
  return Status::OK();
}

}  // namespace

StateMachine::StateMachine(storage::Engine* engine, StateMachineOptions options)
    : engine_(engine), options_(options) {}

void StateMachine::FitEngineOptions(const StateMachineOptions& options, storage::Options* engine_options) {
  const auto key_max = static_cast<uint32_t>(options.max_key_size + kKeyOverhead);
  const auto value_max = static_cast<uint32_t>(options.max_value_size + kValueOverhead);
  engine_options->key_size_max = std::max(engine_options->key_size_max, key_max);
  engine_options->value_size_max = std::max(engine_options->value_size_max, value_max);
}

Result<std::unique_ptr<StateMachine>> StateMachine::Open(storage::Engine* engine,
                                                         StateMachineOptions options) {
  RKV_ASSERT(engine != nullptr);
  std::unique_ptr<StateMachine> sm(new StateMachine(engine, options));
  RKV_RETURN_IF_ERROR(sm->Load());
  // What the engine holds now may still be only in the page cache (a process
  // crash keeps it there); once synced, the applied index read is durable and
  // the WAL may be compacted up to it.
  RKV_RETURN_IF_ERROR(engine->Sync());
  sm->durable_applied_index_.store(sm->applied_index_.load());
  return sm;
}

Status StateMachine::Load() {
  std::string applied;
  Status s = engine_->Get(kAppliedKey, &applied);
  if (s.ok()) {
    std::string_view in = applied;
    RKV_RETURN_IF_ERROR(CheckVersion(&in, "applied index record"));
    uint64_t index = 0, term = 0, time = 0;
    if (!GetFixed64(&in, &index) || !GetFixed64(&in, &term) || !GetFixed64(&in, &time) || !in.empty()) {
      return Status::Corruption("state machine: malformed applied index record");
    }
    applied_index_.store(index);
    applied_term_.store(term);
    time_ms_.store(time);
  } else if (!s.IsNotFound()) {
    return s;
  }

  storage::ScanOptions scan;
  scan.prefix = std::string(1, kSessionPrefix);
  scan.start = scan.prefix;
  scan.limit = kLoadPage;
  for (;;) {
    RKV_ASSIGN_OR_RETURN(std::vector<storage::KeyValue> page, engine_->Scan(scan));
    for (const storage::KeyValue& kv : page) {
      if (kv.key.size() != 9) return Status::Corruption("state machine: malformed session key");
      const uint64_t client_id = DecodeBigEndian64(std::string_view(kv.key).substr(1));
      std::string_view in = kv.value;
      uint8_t version = 0;
      RKV_RETURN_IF_ERROR(CheckVersion(&in, "session record", &version));
      Session session;
      if (client_id == 0 || !GetVarint64(&in, &session.last_sequence) ||
          !GetVarint64(&in, &session.last_active_ms)) {
        return Status::Corruption(fmt::format("state machine: malformed session of client {}", client_id));
      }
      // Session records of version 1 hold results without revisions.
      RKV_ASSIGN_OR_RETURN(session.last_result, DecodeCommandResult(in, version == 1 ? 1 : kCommandResultVersion));
      by_activity_.emplace(session.last_active_ms, client_id);
      sessions_.emplace(client_id, std::move(session));
    }
    if (page.size() < scan.limit) break;
    scan.start = page.back().key + '\0';
  }

  std::string cluster;
  s = engine_->Get(kClusterKey, &cluster);
  if (s.ok()) {
    std::string_view in = cluster;
    RKV_RETURN_IF_ERROR(CheckVersion(&in, "cluster record"));
    if (!GetFixed64(&in, &cluster_id_) || !in.empty()) {
      return Status::Corruption("state machine: malformed cluster record");
    }
  } else if (!s.IsNotFound()) {
    return s;
  }

  storage::ScanOptions members;
  members.prefix = std::string(kMemberPrefix);
  members.start = members.prefix;
  members.limit = std::numeric_limits<size_t>::max();  // a handful of records
  RKV_ASSIGN_OR_RETURN(std::vector<storage::KeyValue> member_records, engine_->Scan(members));
  for (const storage::KeyValue& kv : member_records) {
    if (kv.key.size() != kMemberPrefix.size() + 8) {
      return Status::Corruption("state machine: malformed member key");
    }
    const uint64_t id = DecodeBigEndian64(std::string_view(kv.key).substr(kMemberPrefix.size()));
    RKV_ASSIGN_OR_RETURN(MemberAddress address, DecodeMemberAddress(kv.value));
    members_[id] = std::move(address);
  }

  storage::ScanOptions first_expiry;
  first_expiry.prefix = std::string(1, kExpiryPrefix);
  first_expiry.start = first_expiry.prefix;
  first_expiry.limit = 1;
  first_expiry.keys_only = true;
  RKV_ASSIGN_OR_RETURN(std::vector<storage::KeyValue> first, engine_->Scan(first_expiry));
  if (!first.empty()) {
    if (first[0].key.size() < 9) return Status::Corruption("state machine: malformed expiry index key");
    next_expiry_ms_ = DecodeBigEndian64(std::string_view(first[0].key).substr(1));
  }
  return Status::OK();
}

Result<std::optional<KvEntry>> StateMachine::ReadUser(std::string_view key, uint64_t now) const {
  std::string stored;
  Status s = engine_->Get(UserKey(key), &stored);
  if (s.IsNotFound()) return std::optional<KvEntry>();
  if (!s.ok()) return s;
  StoredValue decoded;
  RKV_RETURN_IF_ERROR(DecodeValue(stored, &decoded));
  if (decoded.expiry_ms != 0 && decoded.expiry_ms <= now) return std::optional<KvEntry>();
  return std::optional<KvEntry>(KvEntry{std::string(key), std::string(decoded.value), decoded.revision});
}

Status StateMachine::CheckUserKey(std::string_view key) const {
  if (key.empty() || key.size() > options_.max_key_size) {
    return Status::InvalidArgument(fmt::format("key of {} bytes (1 to {} allowed)", key.size(),
                                               options_.max_key_size));
  }
  return Status::OK();
}

Result<std::string> StateMachine::Get(std::string_view key, uint64_t now_ms) const {
  RKV_ASSIGN_OR_RETURN(KvEntry entry, GetEntry(key, now_ms));
  return std::move(entry.value);
}

Result<KvEntry> StateMachine::GetEntry(std::string_view key, uint64_t now_ms) const {
  RKV_RETURN_IF_ERROR(CheckUserKey(key));
  RKV_ASSIGN_OR_RETURN(std::optional<KvEntry> entry, ReadUser(key, std::max(now_ms, time_ms())));
  if (!entry) return Status::NotFound();
  return std::move(*entry);
}

Result<ScanResult> StateMachine::Scan(const ScanRequest& request, uint64_t now_ms) const {
  const uint64_t now = std::max(now_ms, time_ms());
  ScanResult out;
  out.applied_index = applied_index().value();
  // Keys first (cheap: the ordered keydir), then each value, so a page of
  // large values stops at max_bytes instead of being read whole.
  storage::ScanOptions scan;
  scan.prefix = UserKey(request.prefix);
  scan.start = UserKey(request.start);
  // Without an end the user namespace ends where the next prefix begins.
  scan.end = request.end.empty() ? std::string(1, static_cast<char>(kUserPrefix + 1)) : UserKey(request.end);
  scan.keys_only = true;
  const size_t limit = std::max<size_t>(request.limit, 1);
  size_t bytes = 0;
  for (;;) {
    // One more than needed, to know whether the range goes on; keys that
    // expired make a page come up short, so read on until it is full.
    scan.limit = std::min<size_t>(limit - out.entries.size() + 1, 100'000);
    RKV_ASSIGN_OR_RETURN(std::vector<storage::KeyValue> keys, engine_->Scan(scan));
    for (size_t i = 0; i < keys.size(); ++i) {
      const std::string_view key = std::string_view(keys[i].key).substr(1);
      if (out.entries.size() == limit) {
        out.more = true;
        out.next_key = std::string(key);
        return out;
      }
      RKV_ASSIGN_OR_RETURN(std::optional<KvEntry> entry, ReadUser(key, now));
      if (!entry) continue;  // expired (or deleted under a stale read)
      if (!out.entries.empty() && bytes + entry->value.size() > request.max_bytes) {
        out.more = true;
        out.next_key = std::string(key);
        return out;
      }
      bytes += entry->value.size();
      if (request.keys_only) entry->value.clear();
      out.entries.push_back(std::move(*entry));
    }
    if (keys.size() < scan.limit) break;  // the range is exhausted
    scan.start = keys.back().key + '\0';
  }
  return out;
}

Status StateMachine::SweepExpired(uint64_t now, storage::WriteBatch* batch, uint64_t* next_expiry) const {
  storage::ScanOptions scan;
  scan.prefix = std::string(1, kExpiryPrefix);
  scan.start = scan.prefix;
  scan.limit = options_.expiry_sweep_max + 1;
  scan.keys_only = true;
  RKV_ASSIGN_OR_RETURN(std::vector<storage::KeyValue> due, engine_->Scan(scan));
  size_t swept = 0;
  for (const storage::KeyValue& kv : due) {
    if (kv.key.size() < 9) return Status::Corruption("state machine: malformed expiry index key");
    const uint64_t expiry = DecodeBigEndian64(std::string_view(kv.key).substr(1));
    if (expiry > now || swept == options_.expiry_sweep_max) {
      *next_expiry = expiry;  // the first left in the index
      return Status::OK();
    }
    // The index is not updated when a key is overwritten or deleted (that
    // would cost a read per write); so the key goes only if it still carries
    // this expiry.
    const std::string_view key = std::string_view(kv.key).substr(9);
    std::string stored;
    Status s = engine_->Get(UserKey(key), &stored);
    if (s.ok()) {
      StoredValue decoded;
      RKV_RETURN_IF_ERROR(DecodeValue(stored, &decoded));
      if (decoded.expiry_ms == expiry) batch->Delete(UserKey(key));
    } else if (!s.IsNotFound()) {
      return s;
    }
    batch->Delete(kv.key);
    ++swept;
  }
  *next_expiry = kNoExpiry;  // the index is empty once this batch is written
  return Status::OK();
}

Result<CommandResult> StateMachine::ApplyCommand(const Command& command, LogIndex index, uint64_t now,
                                                 storage::WriteBatch* batch, uint64_t* next_expiry) const {
  const auto result = [](CommandResult::Code code, std::string message = {}) {
    CommandResult r;
    r.code = code;
    r.message = std::move(message);
    return r;
  };
  // A user write answers the index it was applied at: the revision of the
  // keys it put.
  const auto written = [&] {
    CommandResult r;
    r.revision = index.value();
    return r;
  };
  const auto check_key = [&](std::string_view key) -> std::optional<CommandResult> {
    if (key.empty()) return result(CommandResult::Code::kRejected, "empty key");
    if (key.size() > options_.max_key_size) {
      return result(CommandResult::Code::kRejected,
                    fmt::format("key of {} bytes exceeds {}", key.size(), options_.max_key_size));
    }
    return std::nullopt;
  };
  const auto check_value = [&](std::string_view value) -> std::optional<CommandResult> {
    if (value.size() > options_.max_value_size) {
      return result(CommandResult::Code::kRejected,
                    fmt::format("value of {} bytes exceeds {}", value.size(), options_.max_value_size));
    }
    return std::nullopt;
  };
  // All or nothing: one bad op refuses the whole batch.
  const auto check_ops = [&](const std::vector<BatchOp>& ops) -> std::optional<CommandResult> {
    for (const BatchOp& op : ops) {
      if (auto r = check_key(op.key)) return r;
      if (op.type == BatchOp::Type::kPut) {
        if (auto r = check_value(op.value)) return r;
      }
    }
    return std::nullopt;
  };
  const auto put = [&](std::string_view key, std::string_view value, uint64_t expiry_ms) {
    batch->Put(UserKey(key), EncodeValue(value, expiry_ms, index.value()));
    if (expiry_ms != 0) {
      batch->Put(ExpiryKey(expiry_ms, key), {});
      *next_expiry = std::min(*next_expiry, expiry_ms);
    }
  };
  const auto apply_ops = [&](const std::vector<BatchOp>& ops) {
    for (const BatchOp& op : ops) {
      if (op.type == BatchOp::Type::kPut) {
        put(op.key, op.value, op.expiry_ms);
      } else {
        batch->Delete(UserKey(op.key));
      }
    }
  };

  switch (command.kind) {
    case Command::Kind::kNoop:
      return CommandResult{};
    case Command::Kind::kPut:
      if (auto r = check_key(command.key)) return *r;
      if (auto r = check_value(command.value)) return *r;
      put(command.key, command.value, command.expiry_ms);
      return written();
    case Command::Kind::kDelete:
      if (auto r = check_key(command.key)) return *r;
      batch->Delete(UserKey(command.key));
      return written();
    case Command::Kind::kCas: {
      if (auto r = check_key(command.key)) return *r;
      if (auto r = check_value(command.value)) return *r;
      // Expiry is judged at the entry's time, so every server compares the
      // same thing however far its clock is from the leader's.
      RKV_ASSIGN_OR_RETURN(std::optional<KvEntry> current, ReadUser(command.key, now));
      const std::optional<std::string> value =
          current ? std::optional<std::string>(std::move(current->value)) : std::nullopt;
      if (value != command.expected) return result(CommandResult::Code::kCasFailed);
      put(command.key, command.value, command.expiry_ms);
      return written();
    }
    case Command::Kind::kBatch:
      if (auto r = check_ops(command.ops)) return *r;
      apply_ops(command.ops);
      return written();
    case Command::Kind::kTxn: {
      for (const Compare& compare : command.compares) {
        if (auto r = check_key(compare.key)) return *r;
      }
      if (auto r = check_ops(command.ops)) return *r;
      // Every compare is judged against the state before the ops, and every
      // compared key's revision goes into a failure's answer, so a client
      // can retry with what it learned.
      std::optional<size_t> failed;
      std::vector<uint64_t> revisions;
      revisions.reserve(command.compares.size());
      for (size_t i = 0; i < command.compares.size(); ++i) {
        const Compare& compare = command.compares[i];
        RKV_ASSIGN_OR_RETURN(std::optional<KvEntry> current, ReadUser(compare.key, now));
        revisions.push_back(current ? current->revision : 0);
        if (!failed && !CompareHolds(compare, current)) failed = i;
      }
      if (failed) {
        CommandResult r = result(CommandResult::Code::kCompareFailed);
        r.failed_compare = *failed;
        r.compare_revisions = std::move(revisions);
        return r;
      }
      apply_ops(command.ops);
      return written();
    }
    case Command::Kind::kSetMember:
      batch->Put(MemberKey(command.member_id), EncodeMemberAddress(command.member));
      return CommandResult{};
    case Command::Kind::kRemoveMember:
      batch->Delete(MemberKey(command.member_id));
      return CommandResult{};
  }
  return Status::Corruption("command: unknown kind");
}

Result<CommandResult> StateMachine::Apply(LogIndex index, Term term, std::string_view data) {
  const LogIndex applied = applied_index();
  if (index <= applied) {
    CommandResult already;
    already.code = CommandResult::Code::kAlreadyApplied;
    return already;
  }
  RKV_ASSERT_MSG(index == applied + 1,
                 fmt::format("applying index {} after {}", index.value(), applied.value()));

  storage::WriteBatch batch;
  uint64_t now = time_ms();
  uint64_t next_expiry = next_expiry_ms_;
  SessionChanges changes;
  CommandResult result;
  std::optional<Command> member_change;

  if (!data.empty()) {
    RKV_ASSIGN_OR_RETURN(Command command, DecodeCommand(data));
    // Leaders' clocks differ; time never goes back, so a session or a key
    // that expired stays expired.
    now = std::max(now, command.timestamp_ms);
    const auto idle = [&](uint64_t last_active_ms) { return now - last_active_ms > options_.session_ttl_ms; };

    // Sessions idle past the TTL go first, so a client whose session just
    // expired is treated as new below.
    auto oldest = by_activity_.begin();
    for (; oldest != by_activity_.end() && idle(oldest->first); ++oldest) {
      changes.removed.push_back(oldest->second);
    }

    if (next_expiry <= now) RKV_RETURN_IF_ERROR(SweepExpired(now, &batch, &next_expiry));

    const Session* session = nullptr;
    if (command.client_id != 0) {
      auto it = sessions_.find(command.client_id);
      if (it != sessions_.end() && !idle(it->second.last_active_ms)) session = &it->second;
    }
    bool apply = true;
    if (session != nullptr && command.sequence == session->last_sequence) {
      result = session->last_result;
      result.duplicate = true;
      apply = false;
    } else if (session != nullptr && command.sequence < session->last_sequence) {
      result = CommandResult{};
      result.code = CommandResult::Code::kStaleSequence;
      apply = false;
    }

    if (apply) {
      RKV_ASSIGN_OR_RETURN(result, ApplyCommand(command, index, now, &batch, &next_expiry));
      if (command.kind == Command::Kind::kSetMember || command.kind == Command::Kind::kRemoveMember) {
        member_change = command;
      }
      if (command.client_id != 0) {
        changes.upsert = true;
        changes.client_id = command.client_id;
        changes.session = Session{command.sequence, now, result};
        // Over the bound, the least recently active go (ties by client id:
        // the set's order), never the session being written.
        size_t count = sessions_.size() - changes.removed.size() + (session == nullptr ? 1 : 0);
        for (; count > options_.max_sessions && oldest != by_activity_.end(); ++oldest) {
          if (oldest->second == command.client_id) continue;
          changes.removed.push_back(oldest->second);
          --count;
        }
      }
    }
    result.client_id = command.client_id;
    result.sequence = command.sequence;
    // Deletions before the put: an expired session of this very client is
    // replaced, not deleted after being written.
    for (uint64_t client_id : changes.removed) batch.Delete(SessionKey(client_id));
    if (changes.upsert) {
      batch.Put(SessionKey(changes.client_id),
                EncodeSession(changes.session.last_sequence, changes.session.last_active_ms, result));
    }
  }
  batch.Put(kAppliedKey, EncodeApplied(index, term, now));

  // The write is all or nothing; only once it succeeded does memory follow.
  RKV_RETURN_IF_ERROR(engine_->Write(batch));
  CommitSessions(changes);
  if (member_change) CommitMembers(*member_change);
  next_expiry_ms_ = next_expiry;
  time_ms_.store(now, std::memory_order_release);
  applied_term_.store(term.value(), std::memory_order_release);
  applied_index_.store(index.value(), std::memory_order_release);
  return result;
}

void StateMachine::CommitSessions(const SessionChanges& changes) {
  for (uint64_t client_id : changes.removed) {
    auto it = sessions_.find(client_id);
    RKV_ASSERT(it != sessions_.end());
    by_activity_.erase({it->second.last_active_ms, client_id});
    sessions_.erase(it);
  }
  if (!changes.upsert) return;
  auto [it, inserted] = sessions_.try_emplace(changes.client_id);
  if (!inserted) by_activity_.erase({it->second.last_active_ms, changes.client_id});
  it->second = changes.session;
  it->second.last_result.duplicate = false;
  by_activity_.emplace(it->second.last_active_ms, changes.client_id);
}

void StateMachine::CommitMembers(const Command& command) {
  if (command.kind == Command::Kind::kSetMember) {
    members_[command.member_id] = command.member;
  } else {
    members_.erase(command.member_id);
  }
  ++members_version_;
}

Status StateMachine::Seed(uint64_t cluster_id, const std::map<uint64_t, MemberAddress>& members) {
  if (applied_index() != LogIndex{0}) {
    return Status::InvalidArgument("state machine: seeding after entries were applied");
  }
  return Reseed(cluster_id, members, /*drop_sessions=*/false);
}

Status StateMachine::Reseed(uint64_t cluster_id, const std::map<uint64_t, MemberAddress>& members,
                            bool drop_sessions) {
  storage::WriteBatch batch;
  if (drop_sessions) {
    for (const auto& [client_id, session] : sessions_) batch.Delete(SessionKey(client_id));
  }
  std::string cluster(1, static_cast<char>(kFormatVersion));
  PutFixed64(&cluster, cluster_id);
  batch.Put(kClusterKey, cluster);
  for (const auto& [id, address] : members_) {
    if (members.count(id) == 0) batch.Delete(MemberKey(id));
  }
  for (const auto& [id, address] : members) batch.Put(MemberKey(id), EncodeMemberAddress(address));
  RKV_RETURN_IF_ERROR(engine_->Write(batch));
  RKV_RETURN_IF_ERROR(engine_->Sync());
  cluster_id_ = cluster_id;
  members_ = members;
  ++members_version_;
  if (drop_sessions) {
    sessions_.clear();
    by_activity_.clear();
  }
  return Status::OK();
}

Status StateMachine::Checkpoint() {
  const uint64_t applied = applied_index_.load(std::memory_order_acquire);
  RKV_RETURN_IF_ERROR(engine_->Sync());
  durable_applied_index_.store(applied, std::memory_order_release);
  return Status::OK();
}

std::vector<SessionInfo> StateMachine::sessions() const {
  std::vector<SessionInfo> out;
  out.reserve(sessions_.size());
  for (const auto& [client_id, s] : sessions_) {
    out.push_back(SessionInfo{client_id, s.last_sequence, s.last_active_ms, s.last_result});
  }
  return out;
}

}  // namespace rkv
