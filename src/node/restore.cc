#include "node/restore.h"

#include <fmt/format.h>

#include <memory>
#include <vector>

#include "common/logging.h"
#include "env/env.h"
#include "node/kv_dir.h"
#include "node/snapshot.h"
#include "raft/message.h"
#include "storage/engine.h"
#include "wal/wal.h"

namespace rkv {

Result<RestoreSummary> RestoreBackup(std::string_view backup, const std::string& data_dir,
                                     const RestoreOptions& options) {
  Env* env = options.env != nullptr ? options.env : Env::Posix();
  if (options.members.count(options.id.value()) == 0) {
    return Status::InvalidArgument(
        fmt::format("member {} is not in the new cluster's member list", options.id.value()));
  }
  if (env->FileExists(data_dir)) {
    RKV_ASSIGN_OR_RETURN(std::vector<std::string> children, env->GetChildren(data_dir));
    if (!children.empty()) {
      return Status::InvalidArgument(data_dir + " is not empty: restore into a new, empty data directory");
    }
  } else {
    RKV_RETURN_IF_ERROR(env->CreateDir(data_dir));
  }
  RKV_ASSIGN_OR_RETURN(SnapshotSummary summary, VerifySnapshot(backup));

  // The engine, exactly as a node would install a snapshot from its leader.
  storage::Options engine_options = options.engine;
  engine_options.env = env;
  engine_options.sync_mode = storage::SyncMode::kNone;
  StateMachine::FitEngineOptions(options.state_machine, &engine_options);
  RKV_ASSIGN_OR_RETURN(KvDir kv_dir, KvDir::Open(env, data_dir + "/kv"));
  RKV_ASSIGN_OR_RETURN(std::string engine_path, kv_dir.InstallSnapshot(backup, engine_options));
  {
    RKV_ASSIGN_OR_RETURN(std::unique_ptr<storage::Engine> engine, storage::Engine::Open(engine_options, engine_path));
    RKV_ASSIGN_OR_RETURN(std::unique_ptr<StateMachine> sm, StateMachine::Open(engine.get(), options.state_machine));
    if (sm->applied_index() != summary.meta.applied_index) {
      return Status::Corruption(fmt::format("backup header says index {} but its data says {}",
                                            summary.meta.applied_index.value(), sm->applied_index().value()));
    }
    // The old cluster's member table, id and sessions go; the new
    // cluster's table and id come.
    RKV_RETURN_IF_ERROR(sm->Reseed(options.cluster_id, options.members, /*drop_sessions=*/true));
    sm.reset();
    RKV_RETURN_IF_ERROR(engine->Close());
  }

  // A Raft log that starts after the backup: its snapshot marker, and a
  // hard state at the backup's term (so new entries never carry a lower
  // term than the log before them) with the backup committed.
  raft::Configuration configuration;
  for (const auto& [id, address] : options.members) configuration.voters.push_back(NodeId{id});
  wal::WalOptions wal_options;
  wal_options.bootstrap = configuration;
  RKV_ASSIGN_OR_RETURN(std::unique_ptr<wal::Wal> wal, wal::Wal::Open(env, data_dir + "/wal", wal_options));
  const raft::SnapshotMetadata marker{summary.meta.applied_index, summary.meta.applied_term, configuration};
  const raft::HardState hard_state{summary.meta.applied_term, kNoNode, summary.meta.applied_index};
  RKV_RETURN_IF_ERROR(wal->Save(marker, {}, hard_state));
  RKV_RETURN_IF_ERROR(wal->SetConfiguration(configuration));
  RKV_RETURN_IF_ERROR(wal->Sync());
  RKV_RETURN_IF_ERROR(wal->Close());
  RKV_RETURN_IF_ERROR(env->SyncDir(data_dir));

  RKV_LOG_INFO("event=backup_restored dir={} id={} index={} term={} records={} bytes={}", data_dir,
               options.id.value(), summary.meta.applied_index.value(), summary.meta.applied_term.value(),
               summary.records, backup.size());
  return RestoreSummary{summary.meta.applied_index.value(), summary.meta.applied_term.value(), summary.records,
                        backup.size()};
}

}  // namespace rkv
