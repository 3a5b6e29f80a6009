// KvService: what a front end (HTTP now, Redis protocol later) asks of a node.
//
// NodeHost (node_host.h) implements it for a member of a Raft cluster; the
// front ends know nothing else of the node.
//
// Calls are asynchronous: `done` runs exactly once, on any thread, possibly
// before the call returns. Implementations bound their queues and answer
// Status::Busy when full, never queue without limit.
#ifndef RKV_NODE_KV_SERVICE_H_
#define RKV_NODE_KV_SERVICE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/status.h"

namespace rkv {

enum class ReadConsistency { kLinearizable, kLease, kStale };

struct ServiceReadOptions {
  ReadConsistency consistency = ReadConsistency::kLinearizable;
};

struct ServiceWriteOptions {
  // Identifies a client's retried write (the HTTP Idempotency-Key header);
  // empty when the client sent none. Used by the replicated node.
  std::string idempotency_key;
};

// One node's view of itself (GET /v1/status).
struct ServiceStatus {
  uint64_t id = 0;
  std::string role;  // "leader", "follower", "candidate", "pre-candidate"
  uint64_t leader = 0;  // 0: none known
  uint64_t term = 0;
  uint64_t commit_index = 0;
  uint64_t applied_index = 0;
  uint64_t first_index = 0;  // of the Raft log this node still holds
  uint64_t last_index = 0;
  std::vector<uint64_t> voters;
  std::vector<uint64_t> learners;
  // Known on the leader only: each member's highest replicated index.
  std::map<uint64_t, uint64_t> match_index;
};

// A member as one node sees it (GET /v1/cluster).
struct MemberInfo {
  uint64_t id = 0;
  bool voter = true;
  std::string peer_address;
  std::string http_address;  // empty when not configured
  // The member's own status when it answered; error says why not.
  std::optional<ServiceStatus> status;
  std::string error;
};

struct ClusterInfo {
  uint64_t cluster_id = 0;
  ServiceStatus self;
  std::vector<MemberInfo> members;
};

class KvService {
 public:
  using GetCallback = std::function<void(Result<std::string>)>;
  using WriteCallback = std::function<void(Status)>;

  virtual ~KvService() = default;

  // NotFound when the key is absent.
  virtual void Get(std::string key, const ServiceReadOptions& options, GetCallback done) = 0;
  // Answers ok only once the write is as durable as the node promises.
  virtual void Put(std::string key, std::string value, const ServiceWriteOptions& options,
                   WriteCallback done) = 0;
  // Deleting an absent key succeeds.
  virtual void Delete(std::string key, const ServiceWriteOptions& options, WriteCallback done) = 0;

  // True when the service can take requests (used by health checks).
  virtual bool Healthy() const = 0;

  // This node's status; cheap (no I/O).
  virtual ServiceStatus NodeStatus() const = 0;
  // The cluster as this node sees it, with each reachable member's own
  // status. May ask the other members over the network: `done` runs once,
  // on any thread.
  virtual void Cluster(std::function<void(ClusterInfo)> done) = 0;
};

}  // namespace rkv

#endif  // RKV_NODE_KV_SERVICE_H_
