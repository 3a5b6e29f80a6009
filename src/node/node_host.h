// NodeHost: runs a Node (node.h) on a thread of its own, with a real clock
// and the TCP transport, and serves it to the front ends as a KvService.
//
// One loop thread owns the Node. Every other thread talks to it through an
// input queue: the transport's thread pushes peer messages, HTTP threads
// push requests. Each turn of the loop takes everything queued, steps the
// messages, ticks the Raft timer for the time that passed (all of it, up to
// a bound, so a process that was paused (SIGSTOP, a VM freeze) notices that
// its leadership and lease are gone before it serves anything), submits the
// requests, and lets the Node persist, send and apply (Node::Process: one
// WAL fdatasync covers every write queued meanwhile).
//
// Stale reads do not enter the queue: they read the state machine on the
// caller's thread.
#ifndef RKV_NODE_NODE_HOST_H_
#define RKV_NODE_NODE_HOST_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "node/kv_service.h"
#include "node/node.h"

namespace rkv {

namespace transport {
class TcpTransport;
}  // namespace transport

struct NodeHostOptions {
  NodeOptions node;
  // Every member's peer address ("host:port"), this node's included.
  std::map<uint64_t, std::string> peer_addresses;
  // Every member's HTTP address, where known (for GET /v1/cluster).
  std::map<uint64_t, std::string> http_addresses;
  // Where this node listens for peers; empty: its own entry of
  // peer_addresses. Unused by a one-member cluster.
  std::string peer_listen;
  // Frames carry it; nodes of other clusters are refused. A node that has
  // recorded one in its data (every node created by this version) uses
  // that instead.
  uint64_t cluster_id = 0;
  std::chrono::milliseconds tick{50};
  // Requests waiting to enter the loop; more are answered Busy.
  size_t max_queued_requests = 16384;
  // Asks a member at an HTTP address for its status (GET /v1/status).
  // Optional; without it GET /v1/cluster shows only what this node knows.
  std::function<Result<ServiceStatus>(const std::string& http_address)> fetch_status;
  // Where the node's metrics go (collectors added at Start, removed at
  // Stop); nullptr: none. Must outlive the host.
  metrics::Registry* metrics = nullptr;
  // GET /readyz: a follower more than this many entries behind what it
  // knows is committed is not ready.
  uint64_t ready_max_lag = 1000;
};

class NodeHost final : public KvService {
 public:
  // Opens the node, starts the transport and the loop.
  static Result<std::unique_ptr<NodeHost>> Start(NodeHostOptions options);
  ~NodeHost() override;  // Stop()s.
  NodeHost(const NodeHost&) = delete;
  NodeHost& operator=(const NodeHost&) = delete;

  void Get(std::string key, const ServiceReadOptions& options, GetCallback done) override;
  void Put(std::string key, std::string value, const ServiceWriteOptions& options,
           WriteCallback done) override;
  void Delete(std::string key, const ServiceWriteOptions& options, WriteCallback done) override;
  bool Healthy() const override;
  void GetEntry(std::string key, const ServiceReadOptions& options, EntryCallback done) override;
  void Txn(TxnRequest request, const ServiceWriteOptions& options, TxnCallback done) override;
  void Scan(ScanRequest request, const ServiceReadOptions& options, ScanCallback done) override;
  void TransferLeader(uint64_t id, LeaderCallback done) override;
  Readiness Ready() const override;
  void TakeBackup(BackupCallback done) override;
  ServiceStatus NodeStatus() const override;
  void Cluster(std::function<void(ClusterInfo)> done) override;
  MembershipInfo Members() const override;
  void AddMember(MemberRequest request, MembershipCallback done) override;
  void PromoteMember(uint64_t id, MembershipCallback done) override;
  void RemoveMember(uint64_t id, MembershipCallback done) override;

  // Answers what is pending with ShuttingDown, stops the loop and the
  // transport, closes the node (checkpoint, WAL and engine closed). Returns
  // the first error of closing. Idempotent.
  Status Stop();

  uint16_t peer_port() const;

 private:
  using Task = std::function<void(Node&)>;

  explicit NodeHost(NodeHostOptions options);
  void Submit(Task task, const std::function<void(Status)>& refuse);
  void Write(Command command, const ServiceWriteOptions& options, WriteCallback done);
  void ChangeMembership(MembershipChange change, MembershipCallback done);
  // Fills addresses the member table lacks from the flags (a cluster
  // created before the table existed).
  void FillAddresses(MemberInfo* member) const;
  void Loop();
  void Publish();
  void Collect(metrics::Registry::Collector& out) const;
  uint64_t NowMs() const;

  NodeHostOptions options_;
  std::unique_ptr<transport::TcpTransport> transport_;
  std::unique_ptr<Node> node_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<raft::Message> inbox_messages_;
  std::vector<Task> inbox_tasks_;
  bool stopping_ = false;
  std::atomic<bool> running_{false};
  std::thread loop_;
  Status close_status_;
  bool closed_ = false;

  uint64_t cluster_id_ = 0;
  bool peer_listener_ = false;  // the transport listens: others can reach us

  mutable std::mutex status_mu_;
  ServiceStatus status_;
  MembershipInfo membership_;
  bool removed_ = false;
  uint64_t pending_writes_ = 0;
  uint64_t pending_reads_ = 0;
  uint64_t collector_id_ = 0;

  // Cluster() requests asking other members on threads of their own. Stop()
  // waits until none runs; shared, since a thread still touches it right
  // after it counted itself out.
  struct ClusterFetches {
    std::mutex mu;
    std::condition_variable idle;
    int running = 0;
  };
  std::shared_ptr<ClusterFetches> cluster_fetches_ = std::make_shared<ClusterFetches>();
};

}  // namespace rkv

#endif  // RKV_NODE_NODE_HOST_H_
