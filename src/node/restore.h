// Restoring a backup (GET /v1/snapshot, `raft-kv-cli snapshot save`) into
// the data directory of a member of a new cluster.
//
// Every member of the new cluster is restored from the same backup with the
// same member list, then started with `raft-kv --data DIR` as usual. The
// restored data directory holds:
//   kv/   an engine with every record of the backup, whose member table and
//         cluster id are replaced by the new cluster's, and without the old
//         cluster's client sessions (a retry from before the backup is not
//         recognised by the new cluster);
//   wal/  a Raft log that starts right after the backup's index: a snapshot
//         marker at (index, term) of the backup with the new membership, and
//         a hard state at that term with that index committed.
// So the new cluster's first entry comes after the backup's last, and every
// revision keeps growing from where the old cluster left off.
#ifndef RKV_NODE_RESTORE_H_
#define RKV_NODE_RESTORE_H_

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "common/result.h"
#include "common/types.h"
#include "node/command.h"
#include "node/state_machine.h"
#include "storage/options.h"

namespace rkv {

class Env;

struct RestoreOptions {
  NodeId id;
  // Every voter of the new cluster with its addresses (this node's
  // included); one entry for a one-node cluster.
  std::map<uint64_t, MemberAddress> members;
  uint64_t cluster_id = 0;
  // The limits the node will run with (raft-kv's --max-key-bytes and
  // --max-value-bytes): the backup's records must fit them.
  StateMachineOptions state_machine;
  storage::Options engine;
  Env* env = nullptr;  // nullptr: Env::Posix()
};

struct RestoreSummary {
  uint64_t index = 0;  // the backup's applied index (the new log starts after it)
  uint64_t term = 0;
  uint64_t records = 0;  // engine records restored (user keys and metadata)
  uint64_t bytes = 0;    // of the backup
};

// Restores `backup` (a snapshot blob) into `data_dir`, which must not exist
// or be empty. The blob is checked whole first (Corruption, NotSupported:
// nothing written). InvalidArgument for a data directory that holds files,
// an id not among the members, or records that break the limits.
Result<RestoreSummary> RestoreBackup(std::string_view backup, const std::string& data_dir,
                                     const RestoreOptions& options);

}  // namespace rkv

#endif  // RKV_NODE_RESTORE_H_
