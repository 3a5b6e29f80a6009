// KvDir: where the node's engine lives inside its data directory, and the
// atomic switch to a new engine directory that installing a snapshot needs
// (docs/formats/snapshot.md).
//
//   <data>/kv/LOCK            held by the KvDir (one process per directory)
//   <data>/kv/CURRENT         the name of the live engine directory, e.g.
//                             "engine-000001" and a newline
//   <data>/kv/engine-000001/  a storage engine directory
//
// Installing a snapshot builds a complete engine in a fresh directory
// (engine-<n+1>), makes it durable, then replaces CURRENT through a synced
// temporary file and a rename, and syncs kv/. That rename is the commit
// point: a crash before it leaves the old engine live, a crash after it the
// new one, both complete. Directories that CURRENT does not name are
// leftovers (an install cut short, an old engine not yet deleted) and are
// removed at Open and by RemoveStale.
//
// Every file operation goes through the Env. Not thread-safe: the node calls
// it from one thread (its apply thread).
#ifndef RKV_NODE_KV_DIR_H_
#define RKV_NODE_KV_DIR_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/result.h"
#include "common/status.h"
#include "env/env.h"

namespace rkv {

namespace storage {
struct Options;
}  // namespace storage

struct SnapshotSummary;

class KvDir {
 public:
  static constexpr std::string_view kCurrentName = "CURRENT";
  static constexpr std::string_view kLockName = "LOCK";
  static constexpr std::string_view kEnginePrefix = "engine-";

  // Opens `kv_root` (e.g. "<data>/kv"; its parent must exist), creating it
  // with a first, empty engine directory and CURRENT when it is missing.
  // Takes kv/LOCK (Busy if another KvDir holds it) for the KvDir's lifetime.
  // When CURRENT exists, removes every other engine directory (with a log
  // line). `env` nullptr means Env::Posix().
  //
  // Corruption if CURRENT is malformed or names a missing directory, or if
  // CURRENT is missing while an engine directory holds files (nothing this
  // code writes can leave that; it refuses to guess which engine is live).
  static Result<KvDir> Open(Env* env, std::string kv_root);

  KvDir(KvDir&&) = default;
  KvDir& operator=(KvDir&&) = default;
  ~KvDir() = default;

  const std::string& root() const { return root_; }
  // "engine-000001".
  std::string current_name() const;
  // The live engine directory: open the engine there.
  std::string current_path() const;
  // OK, or the error of a switch that failed halfway, after which this KvDir
  // refuses every change (see InstallSnapshot).
  const Status& error() const { return failed_; }

  // Makes the snapshot `data` the live engine: checks the whole blob (Corruption
  // or NotSupported: nothing changed), checks its keys and values fit
  // `engine_options` (InvalidArgument: nothing changed), writes every record
  // into an engine opened in a fresh directory with `engine_options` (its env
  // must be this KvDir's or nullptr; sync mode and background merge are
  // overridden: the copy syncs once at the end), syncs and closes it, then
  // switches CURRENT. Returns the new current_path(). `summary`, if not null,
  // receives what the blob held.
  //
  // The engine in the old directory may be open or closed meanwhile: it is
  // not touched. After the switch the old directory is deleted if no engine
  // holds it, else left for RemoveStale (or the next Open). So the node may
  // install with its old engine still serving reads, then close it, open the
  // new one and call RemoveStale.
  //
  // An error before the switch removes the new directory (best effort) and
  // leaves the old engine live. An error during the switch (the rename or the
  // directory sync) leaves it unknown which one a crash would keep: the KvDir
  // then refuses every later change with that error, and the node must
  // restart (both directories are complete; Open sorts it out).
  Result<std::string> InstallSnapshot(std::string_view data, const storage::Options& engine_options,
                                      SnapshotSummary* summary = nullptr);

  // Deletes every engine directory but the current one whose engine is not
  // open (its LOCK can be taken), then syncs kv/. Returns the first error; the
  // rest is still tried.
  Status RemoveStale();

 private:
  KvDir(Env* env, std::string root, std::unique_ptr<FileLock> lock)
      : env_(env), root_(std::move(root)), lock_(std::move(lock)) {}

  std::string EnginePath(uint64_t number) const;
  // Deletes one engine directory and what it holds; Busy if its engine is open.
  Status RemoveEngineDir(const std::string& name);
  // Points CURRENT at engine `number`: a synced temporary file, a rename, a
  // sync of kv/. *renamed tells whether the rename happened (after it, a
  // failure leaves unknown which name a crash keeps).
  Status WriteCurrent(uint64_t number, bool* renamed);
  // Removes a new directory whose install failed (best effort, logged).
  void DiscardNew(const std::string& name);
  // Writes every record of a verified blob into a new engine at `path`.
  Status FillEngine(std::string_view data, const storage::Options& options, const std::string& path,
                    uint64_t records);

  Env* env_ = nullptr;
  std::string root_;
  uint64_t current_ = 0;
  std::unique_ptr<FileLock> lock_;
  // Set when a switch failed halfway: nothing more may change here.
  Status failed_;
};

// "engine-000042" for 42; the name of an engine directory.
std::string EngineDirName(uint64_t number);
// The number in an engine directory's name, or 0 if `name` is not exactly
// what EngineDirName makes.
uint64_t ParseEngineDirName(std::string_view name);

}  // namespace rkv

#endif  // RKV_NODE_KV_DIR_H_
