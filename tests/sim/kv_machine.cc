#include "sim/kv_machine.h"

#include "common/coding.h"

namespace rkv::sim {

// Layout: type (1 byte), client (varint), op (varint), key, value (length
// prefixed), then for cas: has_expected (1 byte) and expected.
std::string EncodeCommand(const KvCommand& command) {
  std::string out;
  out.push_back(static_cast<char>(command.type));
  PutVarint64(&out, command.client);
  PutVarint64(&out, command.op);
  PutLengthPrefixed(&out, command.key);
  PutLengthPrefixed(&out, command.value);
  if (command.type == CommandType::kCas) {
    out.push_back(command.expected.has_value() ? 1 : 0);
    PutLengthPrefixed(&out, command.expected.value_or(""));
  }
  return out;
}

std::optional<KvCommand> DecodeCommand(std::string_view data) {
  if (data.empty()) return std::nullopt;
  KvCommand c;
  const auto type = static_cast<uint8_t>(data[0]);
  if (type < 1 || type > 3) return std::nullopt;
  c.type = static_cast<CommandType>(type);
  data.remove_prefix(1);
  std::string_view key;
  std::string_view value;
  if (!GetVarint64(&data, &c.client) || !GetVarint64(&data, &c.op) ||
      !GetLengthPrefixed(&data, &key) || !GetLengthPrefixed(&data, &value)) {
    return std::nullopt;
  }
  c.key = key;
  c.value = value;
  if (c.type == CommandType::kCas) {
    std::string_view expected;
    if (data.empty()) return std::nullopt;
    const bool has_expected = data[0] != 0;
    data.remove_prefix(1);
    if (!GetLengthPrefixed(&data, &expected)) return std::nullopt;
    if (has_expected) c.expected = std::string(expected);
  }
  if (!data.empty()) return std::nullopt;
  return c;
}

bool KvMachine::Apply(const KvCommand& command) {
  switch (command.type) {
    case CommandType::kPut:
      data_[command.key] = command.value;
      return true;
    case CommandType::kDelete:
      data_.erase(command.key);
      return true;
    case CommandType::kCas: {
      if (Get(command.key) != command.expected) return false;
      data_[command.key] = command.value;
      return true;
    }
  }
  return false;
}

std::optional<std::string> KvMachine::Get(const std::string& key) const {
  auto it = data_.find(key);
  if (it == data_.end()) return std::nullopt;
  return it->second;
}

std::string KvMachine::Encode() const {
  std::string out;
  PutVarint64(&out, data_.size());
  for (const auto& [key, value] : data_) {
    PutLengthPrefixed(&out, key);
    PutLengthPrefixed(&out, value);
  }
  return out;
}

bool KvMachine::Decode(std::string_view data) {
  std::map<std::string, std::string> decoded;
  if (data.empty()) {  // the empty snapshot a new cluster starts from
    data_.clear();
    return true;
  }
  uint64_t count = 0;
  if (!GetVarint64(&data, &count)) return false;
  for (uint64_t i = 0; i < count; ++i) {
    std::string_view key;
    std::string_view value;
    if (!GetLengthPrefixed(&data, &key) || !GetLengthPrefixed(&data, &value)) return false;
    decoded.emplace(key, value);
  }
  if (!data.empty()) return false;
  data_ = std::move(decoded);
  return true;
}

}  // namespace rkv::sim
