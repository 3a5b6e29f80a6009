#include "sim/wal_disk.h"

#include <utility>

namespace rkv::sim {

Result<std::unique_ptr<WalDisk>> WalDisk::Open(FaultEnv* env, const raft::Configuration& bootstrap,
                                               SnapshotStore* snapshots) {
  wal::WalOptions options;
  // Small segments, so rolls and whole-segment compaction happen in every run.
  options.segment_size = 16 << 10;
  options.write_buffer_size = 4 << 10;
  options.bootstrap = bootstrap;
  RKV_ASSIGN_OR_RETURN(std::unique_ptr<wal::Wal> wal, wal::Wal::Open(env, "/wal", options));
  return std::unique_ptr<WalDisk>(new WalDisk(std::move(wal), snapshots));
}

Result<raft::Snapshot> WalDisk::GetSnapshot() const {
  RKV_ASSIGN_OR_RETURN(raft::Snapshot snapshot, wal_->GetSnapshot());
  const uint64_t index = snapshot.metadata.last_index.value();
  if (index == 0) return snapshot;  // the empty start of a new cluster
  auto it = snapshots_->find(index);
  if (it == snapshots_->end()) {
    return Status::Corruption("no state machine snapshot at index " + std::to_string(index));
  }
  snapshot.data = it->second;
  return snapshot;
}

Status WalDisk::Write(const raft::Ready& ready) {
  std::optional<raft::SnapshotMetadata> metadata;
  if (ready.snapshot) {
    // The snapshot file is written and synced before the WAL records it.
    (*snapshots_)[ready.snapshot->metadata.last_index.value()] = ready.snapshot->data;
    metadata = ready.snapshot->metadata;
  }
  if (!metadata && ready.entries.empty() && !ready.hard_state) return Status::OK();
  RKV_RETURN_IF_ERROR(wal_->Save(metadata, ready.entries, ready.hard_state));
  return wal_->Flush();
}

Status WalDisk::Sync() {
  RKV_RETURN_IF_ERROR(wal_->Sync());
  DropOldSnapshots();
  return Status::OK();
}

Status WalDisk::Compact(LogIndex index, const raft::Configuration& configuration, std::string data) {
  (*snapshots_)[index.value()] = std::move(data);
  RKV_RETURN_IF_ERROR(wal_->Compact(index, configuration));
  DropOldSnapshots();
  return Status::OK();
}

// Snapshots older than the one the durable WAL starts from are never read
// again.
void WalDisk::DropOldSnapshots() {
  Result<raft::Snapshot> current = wal_->GetSnapshot();
  if (!current.ok()) return;
  snapshots_->erase(snapshots_->begin(), snapshots_->lower_bound(current->metadata.last_index.value()));
}

}  // namespace rkv::sim
