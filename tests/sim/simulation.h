// The deterministic cluster simulator behind raft-kv-sim.
//
// One run puts a whole cluster (3 or 5 voters, sometimes a learner, and
// spare servers that join later) in one process, on simulated time, with
// every choice drawn from one seed: message delay, loss, duplication and
// reordering; partitions; crashes and restarts that lose what was not yet
// durable; slow disks; membership changes, leadership transfers and log
// compaction. Clients run put / get / delete / compare-and-swap against the
// cluster and their history is checked for linearizability at the end.
//
// Each server runs the node loop the real server will run: inputs (ticks,
// messages, client requests) are fed to the Raft core; a Ready is handled in
// the order ready.h prescribes, with the write to its simulated disk taking
// simulated time (inputs arriving meanwhile wait, as they do in a node loop
// blocked on fdatasync). The disk keeps exactly what the Ready contract makes
// durable: a crash while a write is in flight keeps nothing of it, or its
// term and vote plus a prefix of its entries (a torn write); a commit index
// written without a sync is lost.
//
// After every event the simulator checks the safety properties of Raft
// (Figure 3 of the paper) plus each core's own invariants; at the end it
// heals every fault and requires the cluster to elect a leader, commit and
// converge within a bound (liveness), then checks the client history.
#ifndef RKV_TESTS_SIM_SIMULATION_H_
#define RKV_TESTS_SIM_SIMULATION_H_

#include <cstdint>
#include <string>

namespace rkv::sim {

// How often each kind of fault happens. Fixed for a normal run; drawn per
// seed with --swarm (swarm testing: some seeds see many crashes and no
// loss, others heavy loss and no partitions, ...).
struct FaultRates {
  double message_loss = 0.03;       // per message
  double message_duplicate = 0.02;  // per message
  int64_t min_delay_us = 100;       // network delay, uniform in [min, max]
  int64_t max_delay_us = 4'000;
  int64_t disk_sync_us = 300;       // one fdatasync
  double slow_disk = 0.2;           // chance a server's disk is 30x slower
  int64_t nemesis_interval_us = 150'000;  // mean time between fault actions
  // Relative weights of the fault actions.
  uint32_t partition = 4;
  uint32_t heal = 4;
  uint32_t crash = 3;
  uint32_t membership = 2;
  uint32_t transfer = 2;
  uint32_t compact = 3;
  uint32_t disk_stall = 1;
  // A server compacts its log on its own once it holds this many entries.
  uint64_t compact_threshold = 64;
};

// What a simulated server is: the Raft core in the simulator's own node
// loop, or a real rkv::Node (node_simulation.h).
enum class ServerKind : uint8_t { kCore, kNode };

struct SimOptions {
  uint64_t seed = 1;
  ServerKind server = ServerKind::kCore;
  bool swarm = false;
  // Simulated time with faults, then the bound for recovery once healed.
  int64_t fault_phase_us = 3'000'000;
  int64_t liveness_bound_us = 6'000'000;
  // Prints every event to stderr (for studying one seed).
  bool trace = false;
  // Writes the client history here (docs/formats/history.md) if not empty.
  std::string history_path;
  // Each server keeps its Raft log in the real WAL (src/wal) on a simulated
  // file system whose crashes tear unsynced bytes; false: in a model of the
  // Ready contract (MemoryLogStorage plus a durable commit index), which is
  // faster and is where the torn-commit bug can be planted.
  bool real_wal = true;

  // Deliberate harness bugs, to show the checks catch them (tests only):
  // send every message before the disk write (an acknowledgement that
  // promises an unsynced write) ...
  bool unsafe_ack_before_persist = false;
  // ... answer gets from local state, without ReadIndex ...
  bool unsafe_local_reads = false;
  // ... or lose commit indexes: a log that writes the hard state after the
  // entries (a torn write keeps entries without the commit index of their
  // Ready) and writes a commit-index-only change only with the next Ready
  // that carries a hard state.
  bool unsafe_torn_commit = false;

  // --server node only.
  // NodeOptions::compact_every_entries of every node; 0: drawn from the seed
  // (10 to 100, so compaction and snapshot installs happen in every run).
  uint64_t compact_every_entries = 0;
  // Planted harness bugs: serve linearizable and lease reads with StaleGet
  // ...
  bool unsafe_node_stale_reads = false;
  // ... or retry a write with a new idempotency key (so a write whose first
  // attempt took effect unseen takes effect twice).
  bool unsafe_node_fresh_key_on_retry = false;
};

struct SimReport {
  uint64_t seed = 0;
  bool passed = false;
  // The lincheck budget ran out: neither pass nor fail (counted apart).
  bool inconclusive = false;
  // First violated property, with detail; empty when passed.
  std::string failure;
  // One line: cluster shape and fault rates.
  std::string setup;

  uint64_t events = 0;
  uint64_t terms = 0;        // highest term reached
  uint64_t crashes = 0;
  uint64_t partitions = 0;
  uint64_t snapshots_installed = 0;
  uint64_t membership_changes = 0;  // applied on the leader's side
  uint64_t transfers = 0;
  uint64_t compactions = 0;
  uint64_t ops_ok = 0;
  uint64_t ops_failed = 0;   // cas that did not match
  uint64_t ops_unknown = 0;  // timed out, or never completed
  int64_t recovery_us = 0;   // heal -> a committed write of the new term
  // --server node only.
  uint64_t crash_points_hit = 0;   // power losses in the middle of the node's work
  uint64_t io_errors_hit = 0;      // injected I/O errors that stopped a node
  uint64_t recovery_crashes = 0;   // power losses during Node::Open
  uint64_t client_retries = 0;     // attempts after an operation's first
  uint64_t write_retries = 0;      // writes answered with an error (retried)
  uint64_t model_checks = 0;       // final states compared with the exactly-once model
  uint64_t model_gaps = 0;         // ... not compared: a committed entry was never seen
  int64_t simulated_us = 0;
  // Hash of every event in order: equal for equal seeds (determinism).
  uint64_t trace_hash = 0;
};

// Runs one seed with the server kind options.server names.
SimReport RunSimulation(const SimOptions& options);

}  // namespace rkv::sim

#endif  // RKV_TESTS_SIM_SIMULATION_H_
