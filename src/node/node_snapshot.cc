// Node: snapshots of the state machine and WAL compaction.
#include "common/logging.h"
#include "env/env.h"
#include "node/node.h"
#include "wal/wal.h"

namespace rkv {

Status Node::OpenKvDir() {
  const std::string root = options_.data_dir + "/kv";
  Status s = env_->CreateDir(root);
  if (!s.ok() && !env_->FileExists(root)) return s;
  return OpenEngine(root + "/engine");
}

Result<raft::Snapshot> Node::CurrentSnapshot() const { return wal_->GetSnapshot(); }

Result<std::optional<raft::SnapshotMetadata>> Node::InstalledSnapshotMetadata() {
  return std::optional<raft::SnapshotMetadata>();
}

void Node::InstallSnapshot(const raft::Snapshot& /*snapshot*/) {
  Fail(Status::NotSupported("installing snapshots is not implemented yet"));
}

void Node::MaybeCompact() {}

}  // namespace rkv
