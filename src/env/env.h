// Env: every file-system operation raft-kv performs goes through this
// interface, so tests can run the same code on an in-memory file system that
// injects crashes and I/O errors (mem_env.h, fault_env.h).
//
// Paths are plain strings joined with '/'. All methods are thread-safe unless
// a class says otherwise.
#ifndef RKV_ENV_ENV_H_
#define RKV_ENV_ENV_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "common/status.h"

namespace rkv {

// A file opened for appending. Not thread-safe: one writer at a time.
class WritableFile {
 public:
  virtual ~WritableFile() = default;

  // Appends `data` at the end of the file (one write(2) on PosixEnv; no
  // buffering, so readers of the file see the bytes once this returns). On
  // error a prefix of `data` may have reached the file.
  virtual Status Append(std::string_view data) = 0;

  // Makes every byte appended so far durable (fdatasync). It does not make
  // the file's directory entry durable: call Env::SyncDir for a new file.
  virtual Status Sync() = 0;

  // Reserves disk space up to `size` bytes without changing the file's size
  // (fallocate KEEP_SIZE), so later appends do not allocate blocks and cannot
  // fail with ENOSPC for lack of space. Best effort where not supported.
  virtual Status Preallocate(uint64_t size) = 0;

  // Asks the OS to start writing bytes [offset, offset + length) to disk now,
  // without waiting (sync_file_range WRITE), so a later Sync has little left
  // to do. Makes nothing durable. A no-op where not supported.
  virtual Status StartWriteback(uint64_t /*offset*/, uint64_t /*length*/) { return Status::OK(); }

  // Closes the file. Does not sync. Idempotent; the destructor closes too.
  virtual Status Close() = 0;

  // The file's size: its size when opened plus every byte appended since.
  virtual uint64_t Size() const = 0;
};

// A file read at arbitrary offsets. Thread-safe.
class RandomAccessFile {
 public:
  virtual ~RandomAccessFile() = default;

  // Reads exactly `n` bytes at `offset`. On success `*result` points either
  // into `scratch` (which must hold n bytes) or into memory the file owns and
  // keeps valid as long as the file object lives (a memory mapping). A read
  // past the end of the file is IOError ("short read").
  virtual Status Read(uint64_t offset, size_t n, char* scratch, std::string_view* result) const = 0;
};

struct RandomAccessOptions {
  // If non-zero, PosixEnv maps this many bytes of the file (which may exceed
  // its current size, for a file still being appended to) and serves reads
  // of mapped ranges from memory without a system call. The caller must not
  // read mapped bytes beyond the file's current end (SIGBUS). Other Envs may
  // ignore it.
  uint64_t map_bytes = 0;
};

// An advisory lock held on a file; released when destroyed.
class FileLock {
 public:
  virtual ~FileLock() = default;
};

class Env {
 public:
  virtual ~Env() = default;

  // The real file system. Never destroyed.
  static Env* Posix();

  // Creates `path`, truncating an existing file.
  virtual Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) = 0;
  // Opens `path` for appending at its end, creating it if absent.
  virtual Result<std::unique_ptr<WritableFile>> NewAppendableFile(const std::string& path) = 0;
  // Opens an existing file for reading. NotFound if absent.
  virtual Result<std::unique_ptr<RandomAccessFile>> NewRandomAccessFile(
      const std::string& path, const RandomAccessOptions& options = {}) = 0;

  virtual bool FileExists(const std::string& path) = 0;
  // Names (not paths) of the entries of `dir`, sorted, without "." and "..".
  virtual Result<std::vector<std::string>> GetChildren(const std::string& dir) = 0;
  virtual Result<uint64_t> GetFileSize(const std::string& path) = 0;

  virtual Status DeleteFile(const std::string& path) = 0;
  // Creates `dir`; ok if it already exists as a directory. Not recursive.
  virtual Status CreateDir(const std::string& dir) = 0;
  // Removes an empty directory.
  virtual Status DeleteDir(const std::string& dir) = 0;
  // Atomically replaces `to` with `from` (rename(2)). Durable after SyncDir.
  virtual Status RenameFile(const std::string& from, const std::string& to) = 0;
  // Creates `to` as a hard link of `from`.
  virtual Status LinkFile(const std::string& from, const std::string& to) = 0;
  // Cuts `path` to `size` bytes (which must not exceed its size).
  virtual Status TruncateFile(const std::string& path, uint64_t size) = 0;
  // Makes the entries of `dir` (creations, deletions, renames) durable.
  virtual Status SyncDir(const std::string& dir) = 0;

  // Takes an exclusive lock on `path` (created if absent). Busy if another
  // process, or another LockFile call on this Env, holds it.
  virtual Result<std::unique_ptr<FileLock>> LockFile(const std::string& path) = 0;
};

// Helpers built on the interface (env.cc).
std::string JoinPath(std::string_view dir, std::string_view name);
Result<std::string> ReadFileToString(Env* env, const std::string& path);
// Writes `data` to `path` via a temporary file and a rename, syncing the file
// and the directory when `sync` is set: readers see the old or the new
// contents, never a mix.
Status WriteFileAtomically(Env* env, const std::string& path, std::string_view data, bool sync);

// The directory holding `path`, ignoring one trailing slash: "/a/b" and
// "/a/b/" -> "/a", "b" -> ".", "/a" -> "/". Creating a directory is durable
// only once its parent is synced.
std::string ParentDir(const std::string& path);

}  // namespace rkv

#endif  // RKV_ENV_ENV_H_
