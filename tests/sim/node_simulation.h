// The node-level simulation behind `raft-kv-sim --server node`.
//
// Each simulated server is a real rkv::Node (src/node/node.h): its WAL,
// storage engine and replicated state machine live on the server's own
// FaultEnv, its messages go through a transport that hands them to the
// simulated network (delay, loss, duplication, partitions), and simulated
// time drives Node::Tick. Clients call Node::Write with an idempotency key
// and Node::Read (linearizable or lease) on any server, and retry a write
// that got no answer with the same key on another server.
//
// Faults besides the network: power losses at once, power losses armed at
// a random file operation (so they land in the middle of Node::Process: a
// WAL write, an engine write while applying, a compaction, a snapshot
// install), also during recovery, and I/O errors the node must stop on.
// After a stop the file system keeps a random prefix of the unsynced bytes
// and Node::Open recovers from what is left.
//
// Checks: at most one leader per term; every server applies the same entry
// at an index; at the end, with the faults healed, a new write commits and
// every server applies everything and holds the same data, which is what the
// committed log gives when each write takes effect once; the client history
// is linearizable.
#ifndef RKV_TESTS_SIM_NODE_SIMULATION_H_
#define RKV_TESTS_SIM_NODE_SIMULATION_H_

#include "sim/simulation.h"

namespace rkv::sim {

SimReport RunNodeSimulation(const SimOptions& options);

}  // namespace rkv::sim

#endif  // RKV_TESTS_SIM_NODE_SIMULATION_H_
