// Node: snapshots of the state machine and compaction of the WAL.
//
// Sending. The core asks its LogStorage for a snapshot when a follower needs
// entries the WAL dropped. The node then serializes the state machine as it
// is (docs/formats/snapshot.md): at the applied index, which is at or past
// every compaction point, so it covers whatever the follower lacks. The
// bytes are kept while followers fetch them in chunks and rebuilt once a
// newer compaction makes them too old.
//
// Installing. A received snapshot goes into a fresh engine directory that
// KvDir switches to atomically; only then is the snapshot recorded in the
// WAL. A crash in between leaves the engine ahead of its log, which is safe:
// at open the core is told the lower of the two (Open), the log catches up
// from the leader, and the state machine answers kAlreadyApplied for every
// entry at or below what it holds. The other order would not be: a WAL that
// says "the log starts after N" over an engine that never got the data up to
// N cannot recover.
//
// Compacting. Every compact_every_entries applied entries: sync the engine
// (Checkpoint), then tell the WAL that everything up to the durable applied
// index is covered, which drops those entries and deletes whole segments.
#include <algorithm>
#include <mutex>
#include <utility>

#include "common/logging.h"
#include "env/env.h"
#include "node/kv_dir.h"
#include "node/node.h"
#include "node/snapshot.h"
#include "storage/engine.h"
#include "wal/wal.h"

namespace rkv {

Status Node::OpenKvDir() {
  RKV_ASSIGN_OR_RETURN(KvDir dir, KvDir::Open(env_, options_.data_dir + "/kv"));
  kv_dir_ = std::make_unique<KvDir>(std::move(dir));
  return OpenEngine(kv_dir_->current_path());
}

Status Node::PrepareSnapshot() const {
  const LogIndex applied = state_machine_->applied_index();
  if (raft_ == nullptr || raft_->applied_index() != applied) {
    // After a restart the engine may be ahead of the core until the log
    // catches up; the configuration at `applied` is not known before that.
    return Status::Busy("the state machine is ahead of the log; snapshot later");
  }
  const LogIndex needed = wal_->FirstIndex() - 1;
  if (!snapshot_cache_ || snapshot_cache_->metadata.last_index < needed) {
    const Term term = state_machine_->applied_term();
    const uint64_t start = options_.metrics_clock_ns ? options_.metrics_clock_ns() : 0;
    RKV_ASSIGN_OR_RETURN(std::string data, BuildSnapshot(engine_.get(), SnapshotMeta{applied, term}));
    metrics_.snapshots_built.Inc();
    if (start != 0) {
      metrics_.snapshot_build_seconds.Observe(static_cast<double>(options_.metrics_clock_ns() - start) * 1e-9);
    }
    RKV_LOG_INFO("event=snapshot_built index={} term={} bytes={}", applied.value(), term.value(),
                 data.size());
    snapshot_cache_ = raft::Snapshot{raft::SnapshotMetadata{applied, term, raft_->configuration()},
                                     std::move(data)};
  }
  return Status::OK();
}

void Node::InstallSnapshot(const raft::Snapshot& snapshot) {
  const raft::SnapshotMetadata& meta = snapshot.metadata;
  const uint64_t start = options_.metrics_clock_ns ? options_.metrics_clock_ns() : 0;
  SnapshotSummary summary;
  Result<std::string> path = kv_dir_->InstallSnapshot(snapshot.data, EngineOptions(), &summary);
  if (path.ok() && summary.meta.applied_index != meta.last_index) {
    path = Status::Corruption(fmt::format("snapshot data is at index {} but its metadata says {}",
                                          summary.meta.applied_index.value(),
                                          meta.last_index.value()));
  }
  if (!path.ok()) {
    RKV_LOG_ERROR("event=snapshot_install_failed index={} error=\"{}\"", meta.last_index.value(),
                  path.status().ToString());
    Fail(path.status());
    return;
  }
  // A backup still reading the old engine's view finishes first.
  FinishBackup(/*wait=*/true);
  // The new engine goes live first; stale reads on other threads move from
  // the old one to it under the lock, and the old one closes after.
  Status s = OpenEngine(*path);
  if (s.ok()) {
    retired_state_machine_.reset();
    s = retired_engine_->Close();
    retired_engine_.reset();
    if (!s.ok()) RKV_LOG_WARN("event=engine_close_failed error=\"{}\"", s.ToString());
    s = kv_dir_->RemoveStale();
  }
  if (!s.ok()) {
    Fail(s);
    return;
  }
  snapshot_cache_.reset();
  metrics_.snapshots_installed.Inc();
  if (start != 0) {
    metrics_.snapshot_install_seconds.Observe(static_cast<double>(options_.metrics_clock_ns() - start) * 1e-9);
  }
  RKV_LOG_INFO("event=snapshot_installed index={} term={} keys={} bytes={} dir={}",
               meta.last_index.value(), meta.last_term.value(), summary.records,
               snapshot.data.size(), *path);
}

void Node::MaybeCompact() {
  const LogIndex applied = state_machine_->applied_index();
  // An installed snapshot moved the log's start too.
  compacted_index_ = std::max(compacted_index_, wal_->FirstIndex() - 1);
  if (applied.value() < compacted_index_.value() + options_.compact_every_entries) return;
  // The configuration at `applied` is the core's only once the core has
  // caught up with the engine (see PrepareSnapshot).
  if (raft_->applied_index() != applied) return;
  Status s = state_machine_->Checkpoint();
  const LogIndex index = state_machine_->durable_applied_index();
  if (s.ok()) s = wal_->Compact(index, raft_->configuration());
  if (!s.ok()) {
    Fail(s);
    return;
  }
  compacted_index_ = index;
  RKV_LOG_INFO("event=wal_compacted index={} first_index={}", index.value(),
               wal_->FirstIndex().value());
}

}  // namespace rkv
