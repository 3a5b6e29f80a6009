// MemEnv: an in-memory file system behind the Env interface, for tests.
//
// It behaves like a POSIX file system on the points raft-kv relies on:
//  - Directories are explicit: a file can only be created in an existing
//    directory (else NotFound), CreateDir is not recursive, DeleteDir needs an
//    empty directory. "/" and "." (the root of relative paths) always exist.
//  - A file is an inode shared by name: hard links share contents, open
//    handles keep working after the file is renamed, and a file deleted while
//    open stays readable (and writable) through its handles.
//  - Opening a missing file for reading, and any operation on a missing path,
//    is NotFound.
//  - Paths are normalized: repeated and trailing slashes and "." components
//    are ignored, ".." is resolved lexically.
//
// All methods are thread-safe (one mutex). RandomAccessFile::Read copies into
// the caller's scratch buffer, and reads past the end are IOError ("short
// read"); RandomAccessOptions::map_bytes is ignored. The MemEnv must outlive
// every file, lock and handle it returns.
//
// MemEnv also keeps the bookkeeping of what is durable (synced bytes per
// file, synced entries per directory). Only FaultEnv (fault_env.h) uses it.
#ifndef RKV_ENV_MEM_ENV_H_
#define RKV_ENV_MEM_ENV_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "env/env.h"

namespace rkv {

class MemEnv : public Env {
 public:
  MemEnv();
  ~MemEnv() override;

  MemEnv(const MemEnv&) = delete;
  MemEnv& operator=(const MemEnv&) = delete;

  Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override;
  Result<std::unique_ptr<WritableFile>> NewAppendableFile(const std::string& path) override;
  Result<std::unique_ptr<RandomAccessFile>> NewRandomAccessFile(
      const std::string& path, const RandomAccessOptions& options = {}) override;

  bool FileExists(const std::string& path) override;
  Result<std::vector<std::string>> GetChildren(const std::string& dir) override;
  Result<uint64_t> GetFileSize(const std::string& path) override;

  Status DeleteFile(const std::string& path) override;
  Status CreateDir(const std::string& dir) override;
  Status DeleteDir(const std::string& dir) override;
  Status RenameFile(const std::string& from, const std::string& to) override;
  Status LinkFile(const std::string& from, const std::string& to) override;
  Status TruncateFile(const std::string& path, uint64_t size) override;
  Status SyncDir(const std::string& dir) override;

  Result<std::unique_ptr<FileLock>> LockFile(const std::string& path) override;

  // `path` with repeated and trailing slashes and "." removed and ".."
  // resolved: "/a//b/./c/" -> "/a/b/c", "x/../y" -> "y", "./" -> ".".
  static std::string NormalizePath(const std::string& path);

 protected:
  // The operations a subclass can observe and fail through BeforeOp.
  enum class Op : uint8_t {
    kAppend,       // WritableFile::Append
    kSync,         // WritableFile::Sync
    kPreallocate,  // WritableFile::Preallocate
    kSyncDir,      // SyncDir
    kRename,       // RenameFile
    kLink,         // LinkFile
    kCreate,       // NewWritableFile, NewAppendableFile, CreateDir
    kDelete,       // DeleteFile, DeleteDir
    kTruncate,     // TruncateFile
    kRead,         // RandomAccessFile::Read
  };

  // Called with the env's mutex held before each operation of the kinds
  // above: after a stale or closed handle is rejected, before the path is
  // resolved or anything is changed (so an operation that then fails, e.g.
  // on a missing file, was still seen). A non-ok result fails the operation,
  // which then changes nothing. `path` is normalized (for LinkFile the new
  // name, for RenameFile the old one). Must not call back into the env.
  virtual Status BeforeOp(Op op, const std::string& path);

  // Called with the env's mutex held after a successful Read of `n` bytes at
  // `offset` of the file opened as `path` (normalized) has copied them into
  // `data`; may alter them. Must not call back into the env.
  virtual void AfterRead(const std::string& path, uint64_t offset, char* data, size_t n);

  // Simulates a power loss: every directory reverts to its durable entries,
  // every file reachable from them to its durable contents plus the first
  // keep_unsynced(file_path, unsynced_bytes) of the bytes appended since its
  // last sync (clamped). Files are visited once each, in a deterministic
  // order (directories depth first, names sorted). Every handle opened before
  // becomes stale (each later call fails with IOError "crashed") and every
  // lock is released.
  void ResetToDurableState(
      const std::function<uint64_t(const std::string& path, uint64_t unsynced)>& keep_unsynced);

  // The size `path` would have after a power loss that keeps no unsynced
  // byte. NotFound if `path` is not a file.
  Result<uint64_t> DurableFileSize(const std::string& path);

  // Whether the directory entry `path` (file or directory) would survive a
  // power loss with the same target as now, and so would every directory on
  // the way to it.
  bool EntryIsDurable(const std::string& path);

 private:
  struct Node;
  struct Resolved;
  class MemWritableFile;
  class MemRandomAccessFile;
  class MemFileLock;
  using NodePtr = std::shared_ptr<Node>;

  // Finds the parent directory of `path` and the entry there, if any.
  Result<Resolved> Resolve(const std::string& normalized, std::string_view op);
  Result<std::unique_ptr<WritableFile>> OpenWritable(const std::string& path, bool truncate);
  Status CheckLive(uint64_t epoch) const;
  void ReleaseLock(const std::string& path, uint64_t id);

  mutable std::mutex mu_;
  NodePtr root_;        // "/"
  NodePtr cwd_;         // "." : the root of relative paths
  uint64_t epoch_ = 0;  // bumped by ResetToDurableState; handles remember theirs
  uint64_t next_lock_id_ = 1;
  std::map<std::string, uint64_t> locks_;  // normalized path -> holder id
};

}  // namespace rkv

#endif  // RKV_ENV_MEM_ENV_H_
