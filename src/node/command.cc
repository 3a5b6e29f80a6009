#include "node/command.h"

#include <fmt/format.h>

#include <utility>

#include "common/coding.h"

namespace rkv {

namespace {

// Flag bits of a compare-and-swap.
constexpr uint8_t kCasExpectedPresent = 1u << 0;

Status Bad(std::string_view what) { return Status::Corruption(fmt::format("command: {}", what)); }

bool GetU8(std::string_view* input, uint8_t* v) {
  if (input->empty()) return false;
  *v = static_cast<uint8_t>((*input)[0]);
  input->remove_prefix(1);
  return true;
}

bool GetString(std::string_view* input, std::string* out) {
  std::string_view v;
  if (!GetLengthPrefixed(input, &v)) return false;
  out->assign(v.data(), v.size());
  return true;
}

// count varint | op * count (batch and txn bodies).
void PutOps(const std::vector<BatchOp>& ops, std::string* out) {
  PutVarint64(out, ops.size());
  for (const BatchOp& op : ops) {
    out->push_back(static_cast<char>(op.type));
    PutLengthPrefixed(out, op.key);
    if (op.type == BatchOp::Type::kPut) {
      PutLengthPrefixed(out, op.value);
      PutVarint64(out, op.expiry_ms);
    }
  }
}

Status GetOps(std::string_view* data, std::vector<BatchOp>* ops) {
  uint64_t count = 0;
  if (!GetVarint64(data, &count)) return Bad("truncated batch");
  // Every op takes at least two bytes (type, key length): a count the
  // input cannot hold is refused before anything is allocated for it.
  if (count > data->size() / 2) return Bad("batch count exceeds its bytes");
  ops->reserve(count);
  for (uint64_t i = 0; i < count; ++i) {
    BatchOp op;
    uint8_t type = 0;
    if (!GetU8(data, &type)) return Bad("truncated batch op");
    if (type != static_cast<uint8_t>(BatchOp::Type::kPut) &&
        type != static_cast<uint8_t>(BatchOp::Type::kDelete)) {
      return Bad(fmt::format("unknown batch op type {}", type));
    }
    op.type = static_cast<BatchOp::Type>(type);
    if (!GetString(data, &op.key)) return Bad("truncated batch op");
    if (op.type == BatchOp::Type::kPut && (!GetString(data, &op.value) || !GetVarint64(data, &op.expiry_ms))) {
      return Bad("truncated batch op");
    }
    ops->push_back(std::move(op));
  }
  return Status::OK();
}

}  // namespace

Command Command::Put(std::string key, std::string value, uint64_t expiry_ms) {
  Command c;
  c.kind = Kind::kPut;
  c.key = std::move(key);
  c.value = std::move(value);
  c.expiry_ms = expiry_ms;
  return c;
}

Command Command::Delete(std::string key) {
  Command c;
  c.kind = Kind::kDelete;
  c.key = std::move(key);
  return c;
}

Command Command::Cas(std::string key, std::optional<std::string> expected, std::string value,
                     uint64_t expiry_ms) {
  Command c;
  c.kind = Kind::kCas;
  c.key = std::move(key);
  c.expected = std::move(expected);
  c.value = std::move(value);
  c.expiry_ms = expiry_ms;
  return c;
}

Command Command::Batch(std::vector<BatchOp> ops) {
  Command c;
  c.kind = Kind::kBatch;
  c.ops = std::move(ops);
  return c;
}

Command Command::Txn(std::vector<Compare> compares, std::vector<BatchOp> ops) {
  Command c;
  c.kind = Kind::kTxn;
  c.compares = std::move(compares);
  c.ops = std::move(ops);
  return c;
}

Command Command::SetMember(uint64_t id, MemberAddress address) {
  Command c;
  c.kind = Kind::kSetMember;
  c.member_id = id;
  c.member = std::move(address);
  return c;
}

Command Command::RemoveMember(uint64_t id) {
  Command c;
  c.kind = Kind::kRemoveMember;
  c.member_id = id;
  return c;
}

std::string EncodeMemberAddress(const MemberAddress& address) {
  std::string out(1, static_cast<char>(1));
  PutLengthPrefixed(&out, address.peer);
  PutLengthPrefixed(&out, address.http);
  return out;
}

Result<MemberAddress> DecodeMemberAddress(std::string_view data) {
  uint8_t version = 0;
  if (!GetU8(&data, &version) || version != 1) {
    return Status::Corruption("member address: empty or unknown version");
  }
  MemberAddress address;
  if (!GetString(&data, &address.peer) || !GetString(&data, &address.http) || !data.empty()) {
    return Status::Corruption("member address: malformed");
  }
  return address;
}

std::string_view CommandKindName(Command::Kind kind) {
  switch (kind) {
    case Command::Kind::kNoop: return "noop";
    case Command::Kind::kPut: return "put";
    case Command::Kind::kDelete: return "delete";
    case Command::Kind::kCas: return "cas";
    case Command::Kind::kBatch: return "batch";
    case Command::Kind::kSetMember: return "set_member";
    case Command::Kind::kRemoveMember: return "remove_member";
    case Command::Kind::kTxn: return "txn";
  }
  return "unknown";
}

std::string EncodeCommand(const Command& command) {
  std::string out;
  out.push_back(static_cast<char>(kCommandVersion));
  out.push_back(static_cast<char>(command.kind));
  PutVarint64(&out, command.client_id);
  PutVarint64(&out, command.sequence);
  PutVarint64(&out, command.timestamp_ms);
  switch (command.kind) {
    case Command::Kind::kNoop:
      break;
    case Command::Kind::kPut:
      PutLengthPrefixed(&out, command.key);
      PutLengthPrefixed(&out, command.value);
      PutVarint64(&out, command.expiry_ms);
      break;
    case Command::Kind::kDelete:
      PutLengthPrefixed(&out, command.key);
      break;
    case Command::Kind::kCas:
      PutLengthPrefixed(&out, command.key);
      out.push_back(static_cast<char>(command.expected ? kCasExpectedPresent : 0));
      if (command.expected) PutLengthPrefixed(&out, *command.expected);
      PutLengthPrefixed(&out, command.value);
      PutVarint64(&out, command.expiry_ms);
      break;
    case Command::Kind::kBatch:
      PutOps(command.ops, &out);
      break;
    case Command::Kind::kTxn:
      PutVarint64(&out, command.compares.size());
      for (const Compare& compare : command.compares) {
        out.push_back(static_cast<char>(compare.target));
        out.push_back(static_cast<char>(compare.op));
        PutLengthPrefixed(&out, compare.key);
        if (compare.target == Compare::Target::kRevision) {
          PutVarint64(&out, compare.revision);
        } else {
          PutLengthPrefixed(&out, compare.value);
        }
      }
      PutOps(command.ops, &out);
      break;
    case Command::Kind::kSetMember:
      PutVarint64(&out, command.member_id);
      PutLengthPrefixed(&out, command.member.peer);
      PutLengthPrefixed(&out, command.member.http);
      break;
    case Command::Kind::kRemoveMember:
      PutVarint64(&out, command.member_id);
      break;
  }
  return out;
}

Result<Command> DecodeCommand(std::string_view data) {
  uint8_t version = 0;
  if (!GetU8(&data, &version)) return Bad("empty");
  if (version != kCommandVersion) return Bad(fmt::format("unknown version {}", version));
  uint8_t kind = 0;
  if (!GetU8(&data, &kind)) return Bad("truncated kind");
  if (kind > static_cast<uint8_t>(Command::Kind::kTxn)) return Bad(fmt::format("unknown kind {}", kind));
  Command c;
  c.kind = static_cast<Command::Kind>(kind);
  if (!GetVarint64(&data, &c.client_id) || !GetVarint64(&data, &c.sequence) ||
      !GetVarint64(&data, &c.timestamp_ms)) {
    return Bad("truncated header");
  }
  switch (c.kind) {
    case Command::Kind::kNoop:
      break;
    case Command::Kind::kPut:
      if (!GetString(&data, &c.key) || !GetString(&data, &c.value) || !GetVarint64(&data, &c.expiry_ms)) {
        return Bad("truncated put");
      }
      break;
    case Command::Kind::kDelete:
      if (!GetString(&data, &c.key)) return Bad("truncated delete");
      break;
    case Command::Kind::kCas: {
      uint8_t flags = 0;
      if (!GetString(&data, &c.key) || !GetU8(&data, &flags)) return Bad("truncated cas");
      if ((flags & ~kCasExpectedPresent) != 0) return Bad(fmt::format("unknown cas flags {:#x}", flags));
      if ((flags & kCasExpectedPresent) != 0) {
        std::string expected;
        if (!GetString(&data, &expected)) return Bad("truncated cas");
        c.expected = std::move(expected);
      }
      if (!GetString(&data, &c.value) || !GetVarint64(&data, &c.expiry_ms)) return Bad("truncated cas");
      break;
    }
    case Command::Kind::kBatch:
      RKV_RETURN_IF_ERROR(GetOps(&data, &c.ops));
      break;
    case Command::Kind::kTxn: {
      uint64_t count = 0;
      if (!GetVarint64(&data, &count)) return Bad("truncated txn");
      // Every compare takes at least four bytes (target, op, key length,
      // operand): a count the input cannot hold is refused before anything
      // is allocated for it.
      if (count > data.size() / 4) return Bad("txn compare count exceeds its bytes");
      c.compares.reserve(count);
      for (uint64_t i = 0; i < count; ++i) {
        Compare compare;
        uint8_t target = 0;
        uint8_t op = 0;
        if (!GetU8(&data, &target) || !GetU8(&data, &op)) return Bad("truncated txn compare");
        if (target != static_cast<uint8_t>(Compare::Target::kRevision) &&
            target != static_cast<uint8_t>(Compare::Target::kValue)) {
          return Bad(fmt::format("unknown compare target {}", target));
        }
        if (op < static_cast<uint8_t>(Compare::Op::kEqual) || op > static_cast<uint8_t>(Compare::Op::kGreater)) {
          return Bad(fmt::format("unknown compare op {}", op));
        }
        compare.target = static_cast<Compare::Target>(target);
        compare.op = static_cast<Compare::Op>(op);
        if (!GetString(&data, &compare.key)) return Bad("truncated txn compare");
        const bool operand = compare.target == Compare::Target::kRevision
                                 ? GetVarint64(&data, &compare.revision)
                                 : GetString(&data, &compare.value);
        if (!operand) return Bad("truncated txn compare");
        c.compares.push_back(std::move(compare));
      }
      RKV_RETURN_IF_ERROR(GetOps(&data, &c.ops));
      break;
    }
    case Command::Kind::kSetMember:
      if (!GetVarint64(&data, &c.member_id) || !GetString(&data, &c.member.peer) ||
          !GetString(&data, &c.member.http)) {
        return Bad("truncated set_member");
      }
      if (c.member_id == 0) return Bad("set_member of member 0");
      break;
    case Command::Kind::kRemoveMember:
      if (!GetVarint64(&data, &c.member_id)) return Bad("truncated remove_member");
      if (c.member_id == 0) return Bad("remove_member of member 0");
      break;
  }
  if (!data.empty()) return Bad(fmt::format("{} trailing bytes", data.size()));
  return c;
}

std::string_view CommandResultCodeName(CommandResult::Code code) {
  switch (code) {
    case CommandResult::Code::kOk: return "ok";
    case CommandResult::Code::kCasFailed: return "cas_failed";
    case CommandResult::Code::kStaleSequence: return "stale_sequence";
    case CommandResult::Code::kRejected: return "rejected";
    case CommandResult::Code::kAlreadyApplied: return "already_applied";
    case CommandResult::Code::kCompareFailed: return "compare_failed";
  }
  return "unknown";
}

void AppendCommandResult(const CommandResult& result, std::string* dst) {
  dst->push_back(static_cast<char>(result.code));
  PutLengthPrefixed(dst, result.message);
  PutVarint64(dst, result.revision);
  PutVarint64(dst, result.failed_compare);
  PutVarint64(dst, result.compare_revisions.size());
  for (uint64_t revision : result.compare_revisions) PutVarint64(dst, revision);
}

std::string EncodeCommandResult(const CommandResult& result) {
  std::string out;
  AppendCommandResult(result, &out);
  return out;
}

Result<CommandResult> GetCommandResult(std::string_view* input, uint8_t version) {
  if (version == 0 || version > kCommandResultVersion) {
    return Status::Corruption(fmt::format("command result: unknown version {}", version));
  }
  uint8_t code = 0;
  if (!GetU8(input, &code)) return Status::Corruption("command result: empty");
  const auto last_code = version == 1 ? CommandResult::Code::kAlreadyApplied : CommandResult::Code::kCompareFailed;
  if (code > static_cast<uint8_t>(last_code)) {
    return Status::Corruption(fmt::format("command result: unknown code {}", code));
  }
  CommandResult r;
  r.code = static_cast<CommandResult::Code>(code);
  if (!GetString(input, &r.message)) return Status::Corruption("command result: truncated message");
  if (version == 1) return r;
  uint64_t count = 0;
  if (!GetVarint64(input, &r.revision) || !GetVarint64(input, &r.failed_compare) ||
      !GetVarint64(input, &count)) {
    return Status::Corruption("command result: truncated revisions");
  }
  if (count > input->size()) return Status::Corruption("command result: revision count exceeds its bytes");
  r.compare_revisions.resize(count);
  for (uint64_t& revision : r.compare_revisions) {
    if (!GetVarint64(input, &revision)) return Status::Corruption("command result: truncated revisions");
  }
  return r;
}

Result<CommandResult> DecodeCommandResult(std::string_view data, uint8_t version) {
  RKV_ASSIGN_OR_RETURN(CommandResult r, GetCommandResult(&data, version));
  if (!data.empty()) return Status::Corruption("command result: trailing bytes");
  return r;
}

}  // namespace rkv
