// FaultEnv: a MemEnv that simulates power loss and injects I/O errors, for
// crash and error-handling tests of the storage engine and the WAL.
//
// Durability model: what survives Crash() (a power loss followed by a reboot)
//
//  * File contents. Every file has a durable image. WritableFile::Sync (on
//    any handle of the file) makes the image equal to the file's current
//    contents. Appends are not durable until then. Crash() replaces each file
//    by its durable image, optionally plus a prefix of the bytes appended
//    since the last sync (a torn write; see CrashOptions).
//  * Truncation (TruncateFile, or NewWritableFile of an existing file) is
//    not durable either until the next Sync of the file: a crash before it
//    brings back the durable bytes that were cut, and drops whatever was
//    appended after the cut.
//  * Directory entries. Every directory has a durable set of entries (name ->
//    file or directory), replaced by the live set only by SyncDir(dir).
//    Creating, deleting, renaming or linking changes the live set at once and
//    the durable set not at all: after Crash() a file created since the last
//    SyncDir of its directory is gone, a deleted one is back (with its
//    durable contents), a rename is undone. Each directory is durable on its
//    own, so a rename across directories synced on one side only can leave
//    the file in both or in neither. A directory is an entry of its parent:
//    CreateDir needs SyncDir(parent) to survive. "/" and "." always exist.
//  * Directory entries and file contents are independent: a synced file whose
//    directory was not synced vanishes, and a durable entry of a file never
//    synced comes back empty.
//
// After Crash(), every handle (WritableFile, RandomAccessFile) opened before
// it is stale: each later call on it returns IOError("crashed"), so a test
// reopens everything, like a restarted process. Locks are released. The crash
// point is cleared. Fault rules and bit flips stay (they model the disk, not
// the process) until ClearFaults() / ClearBitFlips().
//
// Error injection. FailAfter(n, ops, error) lets the next n operations of the
// kinds in `ops` succeed, then fails every following one (FaultMode::
// kPersistent, e.g. a full disk) or only the (n+1)-th (FaultMode::kOneShot, a
// transient error) with `error`. A failed operation changes nothing (a failed
// Append writes no byte). Several rules may be active; each counts on its
// own. The crash point (SetCrashPoint) is a persistent failure of every
// mutating operation, meant to be followed by Crash().
//
// Crash at every step. OperationCount() counts the mutating operations
// (every kind but kRead) attempted so far, failed ones included, so a test
// can cut a workload at each of them in turn:
//
//   for (uint64_t k = 0;; ++k) {
//     FaultEnv env;
//     Setup(&env);                    // e.g. CreateDir + SyncDir
//     env.SetCrashPoint(k);           // operations k, k+1, ... fail
//     RunWorkload(&env);              // must cope with the IOErrors
//     const bool cut = env.CrashPointReached();
//     env.Crash();
//     CheckRecoveredState(&env);      // reopen, compare with a model
//     if (!cut) break;                // the workload ran to the end
//   }
//
// Bit flips: FlipBitOnRead(path, offset, bit) makes every read through a
// handle opened as `path` return that byte with the bit flipped; the stored
// byte does not change.
//
// Thread-safe, like MemEnv.
#ifndef RKV_ENV_FAULT_ENV_H_
#define RKV_ENV_FAULT_ENV_H_

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "env/mem_env.h"

namespace rkv {

// Kinds of operations, as a bit mask.
enum class FaultOp : uint32_t {
  kNone = 0,
  kAppend = 1u << 0,       // WritableFile::Append
  kSync = 1u << 1,         // WritableFile::Sync
  kSyncDir = 1u << 2,      // Env::SyncDir
  kRename = 1u << 3,       // Env::RenameFile
  kCreate = 1u << 4,       // Env::NewWritableFile, NewAppendableFile, CreateDir
  kDelete = 1u << 5,       // Env::DeleteFile, DeleteDir
  kTruncate = 1u << 6,     // Env::TruncateFile
  kRead = 1u << 7,         // RandomAccessFile::Read
  kLink = 1u << 8,         // Env::LinkFile
  kPreallocate = 1u << 9,  // WritableFile::Preallocate
  // Everything that changes the file system (all but kRead); what
  // OperationCount and SetCrashPoint count.
  kMutating =
      kAppend | kSync | kSyncDir | kRename | kCreate | kDelete | kTruncate | kLink | kPreallocate,
  kAll = kMutating | kRead,
};

constexpr FaultOp operator|(FaultOp a, FaultOp b) {
  return static_cast<FaultOp>(static_cast<uint32_t>(a) | static_cast<uint32_t>(b));
}
constexpr FaultOp operator&(FaultOp a, FaultOp b) {
  return static_cast<FaultOp>(static_cast<uint32_t>(a) & static_cast<uint32_t>(b));
}

enum class FaultMode : uint8_t {
  kPersistent,  // every matching operation fails until ClearFaults()
  kOneShot,     // only the first matching operation after the n successes fails
};

struct CrashOptions {
  // Keep up to this many unsynced bytes at the end of every file (a torn
  // write).
  uint64_t keep_unsynced_bytes = 0;
  // Keep every unsynced byte (as if the page cache reached the disk just in
  // time; directory entries still revert).
  bool keep_all_unsynced = false;
  // If non-zero, keep for each file a random prefix (0 to all) of its
  // unsynced bytes, drawn from rkv::Random seeded with this value; files are
  // visited in a fixed order, so a seed replays. keep_all_unsynced wins over
  // seed, and seed over keep_unsynced_bytes.
  uint64_t seed = 0;
};

class FaultEnv : public MemEnv {
 public:
  FaultEnv();
  ~FaultEnv() override;

  // Simulates a power loss and reboot (see the top of this file).
  void Crash(const CrashOptions& options = {});

  // After `n` more operations of the kinds in `ops` succeed, fails the
  // following one (kOneShot) or all following ones (kPersistent) with
  // `error`, which is returned as given. With a `path_prefix`, the rule sees
  // (counts and fails) only operations on paths starting with it, e.g.
  // "/node1/wal/" (both normalized; a trailing '/' is kept). REQUIRES:
  // !error.ok().
  void FailAfter(uint64_t n, FaultOp ops, Status error, FaultMode mode = FaultMode::kPersistent,
                 const std::string& path_prefix = {});
  // Removes every FailAfter rule (not the crash point).
  void ClearFaults();
  // How many operations failed because of FailAfter rules or the crash point.
  uint64_t InjectedFailureCount() const;

  // The first `k` mutating operations from now succeed; every later one does
  // nothing and returns IOError("crash point: ..."), until Crash().
  void SetCrashPoint(uint64_t k);
  // Whether an operation has been refused by the crash point.
  bool CrashPointReached() const;
  // Mutating operations attempted since construction (see above).
  uint64_t OperationCount() const;

  // Reads of byte `offset` through handles opened as `path` return it with
  // bit `bit` (0 = least significant) flipped. REQUIRES: 0 <= bit < 8.
  void FlipBitOnRead(const std::string& path, uint64_t offset, int bit);
  void ClearBitFlips();

  // The size `path` has after Crash() with default options, if its entry
  // survives: its durable image. 0 if `path` is not a file.
  uint64_t SyncedSize(const std::string& path);
  // Whether the entry `path` would survive Crash() as it is now (its own
  // entry and those of every directory on the way are durable).
  bool IsDurable(const std::string& path);

 protected:
  Status BeforeOp(Op op, const std::string& path) override;
  void AfterRead(const std::string& path, uint64_t offset, char* data, size_t n) override;

 private:
  struct Rule {
    uint64_t successes_left;
    FaultOp ops;
    Status error;
    FaultMode mode;
    std::string path_prefix;
    bool active;
  };

  // Lock order: MemEnv's mutex (held around BeforeOp/AfterRead), then fault_mu_.
  mutable std::mutex fault_mu_;
  std::vector<Rule> rules_;
  uint64_t operation_count_ = 0;
  uint64_t injected_failures_ = 0;
  std::optional<uint64_t> crash_point_;  // operation index refused first
  bool crash_point_reached_ = false;
  std::map<std::string, std::map<uint64_t, uint8_t>> bit_flips_;  // path -> offset -> mask
};

}  // namespace rkv

#endif  // RKV_ENV_FAULT_ENV_H_
