// Pieces both simulated server kinds share: the core-level Simulation
// (simulation.cc) and the node-level NodeSimulation (node_simulation.cc).
//
// Only what means the same in both lives here: the event queue, the
// simulated network's delay / loss / duplication and its partitions, the
// weighted choice of a fault action, the swarm draws of the network rates,
// the clients' keys and operation mix, the event trace and hash, and the
// final check of the client history. Every helper draws from the seed's
// Random in exactly the order the code it replaced did, so a seed replays
// the same run (and trace hash) as before.
#ifndef RKV_TESTS_SIM_SIM_COMMON_H_
#define RKV_TESTS_SIM_SIM_COMMON_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "common/random.h"
#include "raft/message.h"
#include "sim/simulation.h"
#include "tools/lincheck/lincheck.h"

namespace rkv::sim {

// One Raft tick (Node::Tick with --server node) of simulated time.
constexpr int64_t kTickUs = 10'000;

// ---------------------------------------------------------------------------
// Events.

// A min-heap of events by (time, seq): seq is the order of scheduling, so
// events at the same time run in the order they were scheduled. E needs the
// fields `int64_t time` and `uint64_t seq`.
template <typename E>
class EventQueue {
 public:
  // Sets e.seq and queues e.
  void Push(E e) {
    e.seq = next_seq_++;
    events_.push_back(std::move(e));
    std::push_heap(events_.begin(), events_.end(), Later{});
  }
  E Pop() {
    std::pop_heap(events_.begin(), events_.end(), Later{});
    E e = std::move(events_.back());
    events_.pop_back();
    return e;
  }
  bool empty() const { return events_.empty(); }

 private:
  struct Later {
    bool operator()(const E& a, const E& b) const {
      return a.time != b.time ? a.time > b.time : a.seq > b.seq;
    }
  };
  uint64_t next_seq_ = 0;
  std::vector<E> events_;
};

// The trace hash: FNV-1a style over every event's time, kind and target.
constexpr uint64_t kTraceHashSeed = 1469598103934665603ULL;
constexpr uint64_t kTraceHashPrime = 1099511628211ULL;
inline uint64_t HashEvent(uint64_t hash, int64_t time, uint64_t kind, uint64_t target) {
  return (hash ^ (static_cast<uint64_t>(time) * 31 + kind * 7 + target)) * kTraceHashPrime;
}

// Prints one event (with --trace): time, kind, target and the Raft message
// it carries, if any.
void TraceEvent(int64_t now_us, int kind, uint64_t target, const raft::Message* message);

// "at 1.234 s: what": a failure, stamped with the simulated time.
std::string FailureAt(int64_t now_us, const std::string& what);

// ---------------------------------------------------------------------------
// The network.

// One message's delay, uniform in [min_delay_us, max_delay_us].
inline int64_t NetworkDelay(Random& random, const FaultRates& rates) {
  return static_cast<int64_t>(random.Range(static_cast<uint64_t>(rates.min_delay_us),
                                           static_cast<uint64_t>(rates.max_delay_us)));
}

// Whether a message is lost; nothing is lost once the faults are healed (and
// then no draw is made).
inline bool Lost(Random& random, const FaultRates& rates, bool healed) {
  return !healed && random.Chance(rates.message_loss);
}

// How many copies of a server-to-server message arrive: 0 (lost), 1, or 2
// (duplicated). Each copy then gets its own NetworkDelay.
inline int Copies(Random& random, const FaultRates& rates, bool healed) {
  if (Lost(random, rates, healed)) return 0;
  return !healed && random.Chance(rates.message_duplicate) ? 2 : 1;
}

// The directed links a partition cuts. Which shapes of partition a
// simulation draws, and among which servers, is its own choice; these build
// the shapes.
class Links {
 public:
  bool Blocked(uint64_t from, uint64_t to) const { return blocked_.count({from, to}) > 0; }
  void Clear() { blocked_.clear(); }
  // `lone` is cut off from every other server in `ids`, both ways.
  void Isolate(uint64_t lone, const std::vector<uint64_t>& ids);
  // Each server of `ids` falls on one of two sides (a coin each, in order);
  // links across the sides are cut both ways, except those of `bridge`
  // (0: none), which keeps talking to both sides.
  void SplitInTwo(Random& random, const std::vector<uint64_t>& ids, uint64_t bridge = 0);
  // Each directed link between two servers of `ids` is cut with chance 1/3.
  void CutOneWayAtRandom(Random& random, const std::vector<uint64_t>& ids);

 private:
  std::set<std::pair<uint64_t, uint64_t>> blocked_;
};

// ---------------------------------------------------------------------------
// Faults.

// The index of the action drawn with these relative weights; nullopt when
// every weight is 0.
std::optional<size_t> PickWeighted(Random& random, std::span<const uint32_t> weights);

// Time to the next fault action: uniform in [1, 2 * nemesis_interval_us].
inline int64_t NextNemesisDelay(Random& random, const FaultRates& rates) {
  return static_cast<int64_t>(random.Range(1, static_cast<uint64_t>(2 * rates.nemesis_interval_us)));
}

// With --swarm, a fault action's weight: often 0, so some seeds see only one
// kind of fault, at a high rate.
inline uint32_t SwarmWeight(Random& random) {
  static constexpr uint32_t kChoices[] = {0, 1, 3, 10};
  return kChoices[random.Uniform(4)];
}

// With --swarm: message loss, duplication and the delay range.
void DrawSwarmNetworkRates(Random& random, FaultRates& rates);

// ---------------------------------------------------------------------------
// Clients.

// 2 to 5 clients with ids 1..n, each first talking to a random voter of
// 1..voters. C needs the fields `uint64_t id` and `uint64_t target`.
template <typename C>
void AddClients(Random& random, uint64_t voters, std::vector<C>& clients) {
  const uint64_t count = random.Range(2, 5);
  for (uint64_t i = 1; i <= count; ++i) {
    C client;
    client.id = i;
    client.target = random.Range(1, voters);
    clients.push_back(std::move(client));
  }
}

// The key epoch (keys are renamed every epoch, so each key's history stays
// short enough to check exactly) and 1 to 4 key names "a".."d".
void ChooseKeys(Random& random, int64_t& key_epoch_us, std::vector<std::string>& keys);

// The key of an operation started at now_us: one of `keys`, in this epoch.
inline std::string DrawKey(Random& random, const std::vector<std::string>& keys, int64_t now_us,
                           int64_t key_epoch_us) {
  return keys[random.Uniform(keys.size())] + std::to_string(now_us / key_epoch_us);
}

// The operation mix: 40% get, 30% put, 10% delete, 20% compare-and-swap.
enum class OpKind : uint8_t { kGet, kPut, kDelete, kCas };
inline OpKind DrawOpKind(Random& random) {
  const uint64_t kind = random.Uniform(100);
  if (kind < 40) return OpKind::kGet;
  if (kind < 70) return OpKind::kPut;
  if (kind < 80) return OpKind::kDelete;
  return OpKind::kCas;
}

// A cas expects the value the client last saw for the key (3 times in 4, so
// it often matches), else absence.
std::optional<std::string> DrawCasExpected(
    Random& random, const std::map<std::string, std::optional<std::string>>& seen, const std::string& key);

// At the end of a run: counts the operations' outcomes into `report`, writes
// the history to options.history_path (if set) and, unless the run already
// failed, checks linearizability (an exhausted budget sets
// report.inconclusive). Returns the violation, or "" if none; the caller
// fails the run with it.
std::string CheckClientHistory(const lincheck::Recorder& recorder, const SimOptions& options,
                               SimReport& report);

}  // namespace rkv::sim

#endif  // RKV_TESTS_SIM_SIM_COMMON_H_
