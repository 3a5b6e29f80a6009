// A simulated server's disk when the simulator runs the real WAL: the Raft
// log in a wal::Wal on the server's own FaultEnv (so crashes tear unsynced
// bytes exactly as a power loss would), and the state machine's snapshots
// beside it.
//
// The snapshot data is kept by the simulator (SnapshotStore), standing for
// the snapshot files a node writes and syncs before the WAL records them; it
// survives crashes. GetSnapshot joins the WAL's snapshot metadata with it, so
// the Raft core can send it to followers.
#ifndef RKV_TESTS_SIM_WAL_DISK_H_
#define RKV_TESTS_SIM_WAL_DISK_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "env/fault_env.h"
#include "raft/log_storage.h"
#include "raft/ready.h"
#include "wal/wal.h"

namespace rkv::sim {

// Snapshot index -> state machine bytes.
using SnapshotStore = std::map<uint64_t, std::string>;

class WalDisk final : public raft::LogStorage {
 public:
  // Opens (recovers) the WAL in `env`, bootstrapping a fresh one with
  // `bootstrap`. `snapshots` must outlive the disk.
  static Result<std::unique_ptr<WalDisk>> Open(FaultEnv* env, const raft::Configuration& bootstrap,
                                               SnapshotStore* snapshots);

  raft::InitialState GetInitialState() const override { return wal_->GetInitialState(); }
  LogIndex FirstIndex() const override { return wal_->FirstIndex(); }
  LogIndex LastIndex() const override { return wal_->LastIndex(); }
  Result<Term> TermAt(LogIndex index) const override { return wal_->TermAt(index); }
  Result<std::vector<raft::Entry>> Entries(LogIndex lo, LogIndex hi, uint64_t max_bytes) const override {
    return wal_->Entries(lo, hi, max_bytes);
  }
  Result<raft::Snapshot> GetSnapshot() const override;

  // Step 2 of a Ready, up to the sync: the snapshot data is stored, the
  // snapshot metadata, hard state and entries are saved as one batch and
  // written to the file (unsynced: a crash now may tear it).
  Status Write(const raft::Ready& ready);
  // The fsync; afterwards, snapshot data the WAL no longer needs is dropped.
  Status Sync();
  Status SetConfiguration(const raft::Configuration& configuration) {
    return wal_->SetConfiguration(configuration);
  }
  // Log compaction at `index`: stores the state machine bytes, then has the
  // WAL drop the entries up to it.
  Status Compact(LogIndex index, const raft::Configuration& configuration, std::string data);

 private:
  WalDisk(std::unique_ptr<wal::Wal> wal, SnapshotStore* snapshots)
      : wal_(std::move(wal)), snapshots_(snapshots) {}
  void DropOldSnapshots();

  std::unique_ptr<wal::Wal> wal_;
  SnapshotStore* snapshots_;
};

}  // namespace rkv::sim

#endif  // RKV_TESTS_SIM_WAL_DISK_H_
