// ClusterProcess: a cluster of real raft-kv processes on 127.0.0.1 for
// integration tests.
//
// The HTTP and peer ports of every member are chosen up front (bound to
// port 0, read, released), since every member is started with the whole
// member list. Node i keeps its ready file and logs in ROOT/node<i> and its
// data in ROOT/node<i>/data, so a node restarted by the test finds its data
// and its ports again. The destructor resumes paused nodes, sends SIGTERM
// to every running node at once and then waits for each (SIGKILL after a
// bounded wait).
#ifndef RKV_TESTS_INTEGRATION_CLUSTER_PROCESS_H_
#define RKV_TESTS_INTEGRATION_CLUSTER_PROCESS_H_

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "client/http_client.h"
#include "common/result.h"
#include "common/status.h"
#include "integration/server_process.h"
#include "node/kv_service.h"

namespace rkv::test {

class ClusterProcess {
 public:
  // `extra_args` go to every member (e.g. --tick-ms, --compact-entries).
  ClusterProcess(std::string root, int nodes, std::vector<std::string> extra_args = {});
  ~ClusterProcess();
  ClusterProcess(const ClusterProcess&) = delete;
  ClusterProcess& operator=(const ClusterProcess&) = delete;

  // Starts every member and waits for their ready files. If a member of a
  // cluster that never ran cannot start (a port taken meanwhile by someone
  // else), starts over on fresh ports, a few times.
  Status StartAll();
  // Starts (or restarts) one member on its ports and data directory.
  Status Start(uint64_t id);
  // Adds member `id` on fresh ports and starts it with --join through
  // member `via`'s HTTP address (`extra` and the cluster's extra arguments
  // follow). Later Start(id) restarts it with the same arguments.
  Status StartJoining(uint64_t id, uint64_t via, std::vector<std::string> extra = {});
  // SIGKILL and reap.
  void Kill(uint64_t id);
  // SIGKILL to every running member first, then reaps them.
  void KillAll();
  // SIGTERM; the exit code, nullopt if it had to be killed.
  std::optional<int> Stop(uint64_t id);
  // SIGSTOP / SIGCONT.
  void Pause(uint64_t id);
  void Resume(uint64_t id);

  std::vector<uint64_t> ids() const;
  std::vector<uint64_t> running_ids() const;
  bool running(uint64_t id) const;
  uint16_t http_port(uint64_t id) const { return members_.at(id).http_port; }
  uint16_t peer_port(uint64_t id) const { return members_.at(id).peer_port; }
  std::string data_dir(uint64_t id) const;

  // A client of member `id`'s HTTP API.
  std::unique_ptr<client::HttpClient> Client(
      uint64_t id, std::chrono::milliseconds timeout = std::chrono::seconds(15)) const;
  // GET /v1/status of member `id`.
  Result<ServiceStatus> NodeStatus(
      uint64_t id, std::chrono::milliseconds timeout = std::chrono::seconds(2)) const;

  // Polls until one of `among` (default: the running members) is leader and
  // the others of `among` that answer name it as their leader; returns its
  // id, Timeout at the deadline.
  Result<uint64_t> WaitForLeader(std::chrono::milliseconds deadline,
                                 std::set<uint64_t> among = {}) const;
  // Polls until member `id` has applied at least `index`.
  Status WaitForApplied(uint64_t id, uint64_t index, std::chrono::milliseconds deadline) const;

  // Everything member `id` logged, over all its restarts.
  std::string Logs(uint64_t id) const;
  // The last `bytes` of each member's logs, for failure messages.
  std::string LogTails(size_t bytes = 4000) const;

 private:
  struct Member {
    uint16_t http_port = 0;
    uint16_t peer_port = 0;
    std::unique_ptr<ServerProcess> process;
    bool paused = false;
    int starts = 0;
    std::vector<std::string> args;  // when set, instead of the initial-cluster arguments
  };

  void PickPorts();
  std::vector<std::string> ArgsFor(uint64_t id) const;
  std::string WorkDir(uint64_t id) const;

  std::string root_;
  int nodes_;
  std::vector<std::string> extra_args_;
  std::map<uint64_t, Member> members_;
};

}  // namespace rkv::test

#endif  // RKV_TESTS_INTEGRATION_CLUSTER_PROCESS_H_
