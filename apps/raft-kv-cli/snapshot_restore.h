// raft-kv-cli snapshot restore: seeds the data directory of one member of a
// new cluster from a backup (raft-kv-cli snapshot save, GET /v1/snapshot).
#ifndef RKV_APPS_RAFT_KV_CLI_SNAPSHOT_RESTORE_H_
#define RKV_APPS_RAFT_KV_CLI_SNAPSHOT_RESTORE_H_

#include <cstdint>
#include <string>

namespace rkv::cli {

struct RestoreArgs {
  std::string file;      // the backup
  std::string data_dir;  // new, or empty
  uint64_t id = 1;
  // As raft-kv takes them: the new cluster's members ("1=host:port,..."),
  // their HTTP addresses, the cluster token. An empty member list restores
  // a one-node cluster.
  std::string initial_cluster;
  std::string cluster_http;
  std::string cluster_token;
  uint32_t max_key_bytes = 4096;
  uint32_t max_value_bytes = 16u << 20;
  bool json = false;
};

// Restores and prints what it did (or, with json, one JSON object).
// Returns the process exit code: 0 done, 2 bad arguments or a backup that
// fails its checks, 4 an I/O error; the message says what to do.
int RunSnapshotRestore(const RestoreArgs& args);

}  // namespace rkv::cli

#endif  // RKV_APPS_RAFT_KV_CLI_SNAPSHOT_RESTORE_H_
