// The simulator's replicated state machine: a key-value map driven by
// commands carried in Raft entries.
//
// This is a stand-in for the node's real state machine (the Bitcask engine
// behind src/node): small, in memory, and easy to compare between servers.
// A command carries the client and operation it came from, so the server
// that proposed it can answer the right client when it is applied.
#ifndef RKV_TESTS_SIM_KV_MACHINE_H_
#define RKV_TESTS_SIM_KV_MACHINE_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace rkv::sim {

enum class CommandType : uint8_t { kPut = 1, kDelete = 2, kCas = 3 };

struct KvCommand {
  CommandType type = CommandType::kPut;
  std::string key;
  // put: the value. cas: the new value.
  std::string value;
  // cas: the value expected (nullopt = the key must be absent).
  std::optional<std::string> expected;
  // Who asked: for answering, and to tell entries apart in traces.
  uint64_t client = 0;
  uint64_t op = 0;

  friend bool operator==(const KvCommand&, const KvCommand&) = default;
};

std::string EncodeCommand(const KvCommand& command);
// nullopt if `data` is not a command this encoding produced.
std::optional<KvCommand> DecodeCommand(std::string_view data);

class KvMachine {
 public:
  // Applies a command; true if it took effect (false only for a cas whose
  // comparison failed).
  bool Apply(const KvCommand& command);
  std::optional<std::string> Get(const std::string& key) const;

  // Snapshot encoding of the whole map.
  std::string Encode() const;
  // False on malformed data (the map is then unchanged).
  bool Decode(std::string_view data);

  const std::map<std::string, std::string>& data() const { return data_; }
  friend bool operator==(const KvMachine&, const KvMachine&) = default;

 private:
  std::map<std::string, std::string> data_;
};

}  // namespace rkv::sim

#endif  // RKV_TESTS_SIM_KV_MACHINE_H_
