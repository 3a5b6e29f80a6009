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
#include "node/kv_types.h"

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
  std::string leader_http;  // the leader's HTTP address, where known
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

// The members of the cluster with their addresses, as of a node's applied
// index (GET /v1/cluster/members and the answer to a membership change).
struct MembershipInfo {
  uint64_t cluster_id = 0;
  std::vector<MemberInfo> members;  // by id; `status` and `error` unused
};

// A membership change a client asks for (POST /v1/cluster/members).
struct MemberRequest {
  uint64_t id = 0;
  std::string peer_address;
  std::string http_address;
  bool learner = true;  // false: join as a voter at once
};

// Who leads after a leadership transfer.
struct LeaderInfo {
  uint64_t leader = 0;
  uint64_t term = 0;
};

// Whether this node should get client traffic (GET /readyz).
struct Readiness {
  bool ready = false;
  std::string reason;  // why not, when not ready
};

// A consistent copy of the whole state (GET /v1/snapshot): a snapshot blob
// (docs/formats/snapshot.md) at applied_index.
struct Backup {
  std::string data;
  uint64_t applied_index = 0;
  uint64_t applied_term = 0;
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

  // ---- The v1 API. Defaults: NotSupported. ----

  // A key with its revision; NotFound when absent.
  using EntryCallback = std::function<void(Result<KvEntry>)>;
  virtual void GetEntry(std::string /*key*/, const ServiceReadOptions& /*options*/, EntryCallback done) {
    done(Unsupported());
  }
  // All or nothing (kv_types.h). A failed compare is a result
  // (succeeded = false), not an error; errors mean nothing was decided
  // (or, for Timeout, that it may still take effect).
  using TxnCallback = std::function<void(Result<TxnResult>)>;
  virtual void Txn(TxnRequest /*request*/, const ServiceWriteOptions& /*options*/, TxnCallback done) {
    done(Unsupported());
  }
  using ScanCallback = std::function<void(Result<ScanResult>)>;
  virtual void Scan(ScanRequest /*request*/, const ServiceReadOptions& /*options*/, ScanCallback done) {
    done(Unsupported());
  }
  // On the leader: hands leadership to voter `id` (0: the most caught-up
  // other voter) and answers once it leads. NotLeader elsewhere.
  using LeaderCallback = std::function<void(Result<LeaderInfo>)>;
  virtual void TransferLeader(uint64_t /*id*/, LeaderCallback done) { done(Unsupported()); }
  virtual Readiness Ready() const { return Readiness{Healthy(), Healthy() ? "" : "not running"}; }
  // A consistent backup, including every write acknowledged before the
  // call (a linearizable read of the whole state).
  using BackupCallback = std::function<void(Result<Backup>)>;
  virtual void TakeBackup(BackupCallback done) { done(Unsupported()); }

  // This node's status; cheap (no I/O).
  virtual ServiceStatus NodeStatus() const = 0;
  // The cluster as this node sees it, with each reachable member's own
  // status. May ask the other members over the network: `done` runs once,
  // on any thread.
  virtual void Cluster(std::function<void(ClusterInfo)> done) = 0;

  // Membership. Changes are made by the leader: elsewhere they fail with
  // NotLeader (ServiceStatus::leader_http says where to go). Each answers
  // the membership once the change is applied; a change already in effect
  // (a retry) answers it at once.
  // A service without membership keeps the defaults (no members, every
  // change NotSupported).
  using MembershipCallback = std::function<void(Result<MembershipInfo>)>;
  virtual MembershipInfo Members() const { return {}; }
  // Adds a member (as a learner unless request.learner is false).
  virtual void AddMember(MemberRequest /*request*/, MembershipCallback done) { done(NoMembership()); }
  // Makes a learner a voter once it has caught up with the leader's log
  // (waits for that, up to the request timeout).
  virtual void PromoteMember(uint64_t /*id*/, MembershipCallback done) { done(NoMembership()); }
  virtual void RemoveMember(uint64_t /*id*/, MembershipCallback done) { done(NoMembership()); }

 private:
  static Status NoMembership() { return Status::NotSupported("this service has no membership"); }
  static Status Unsupported() { return Status::NotSupported("this service does not serve that"); }
};

}  // namespace rkv

#endif  // RKV_NODE_KV_SERVICE_H_
