// `raft-kv-cli local-cluster`: N raft-kv processes on 127.0.0.1, supervised
// in the foreground until Ctrl-C, for trying a cluster on one machine.
//
// Node i (1-based) serves HTTP on 127.0.0.1:<base+i> and talks to its peers
// on 127.0.0.1:<base+100+i>; its data and its log (DATA/node<i>/log) live in
// DATA/node<i>. DATA/cluster.conf records the node count and base port, so
// a later run restarts the same cluster from its data, and so --fresh only
// ever deletes a directory this command made.
#ifndef RKV_APPS_RAFT_KV_CLI_LOCAL_CLUSTER_H_
#define RKV_APPS_RAFT_KV_CLI_LOCAL_CLUSTER_H_

#include <string>
#include <vector>

namespace rkv::cli {

struct LocalClusterOptions {
  int nodes = 3;  // 1..9
  int base_port = 7000;
  std::string data_dir = "./local-cluster";
  // The raft-kv binary; empty means the one beside this executable.
  std::string server;
  // Delete the data directory first (only if local-cluster made it).
  bool fresh = false;
  // Appended to every node's command line, after the cluster flags.
  std::vector<std::string> server_args;
};

// Runs until SIGINT or SIGTERM, then stops every node (SIGTERM, SIGKILL
// after 10 s) and returns 0. Returns 2 with a message on stderr if the
// options are invalid or a node does not come up (naming it, with the tail
// of its log).
int RunLocalCluster(const LocalClusterOptions& options);

}  // namespace rkv::cli

#endif  // RKV_APPS_RAFT_KV_CLI_LOCAL_CLUSTER_H_
