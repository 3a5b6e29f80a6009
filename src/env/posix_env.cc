// PosixEnv: the Env on the real file system, with plain POSIX calls.
//
// Nothing here buffers: a WritableFile::Append is one write(2) loop, so the
// bytes are visible to readers (and to a memory mapping of the file) as soon
// as it returns, and durability is exactly what Sync/SyncDir say.
#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <set>
#include <string>
#include <utility>

#include "common/assert.h"
#include "env/env.h"

namespace rkv {
namespace {

constexpr mode_t kFileMode = 0644;
constexpr mode_t kDirMode = 0755;

// ENOENT is a NotFound (callers test for it: a missing file is an expected
// outcome); every other errno goes through Status::FromErrno.
Status PosixError(int err, std::string_view op, const std::string& path) {
  std::string context(op);
  context += ' ';
  context += path;
  if (err == ENOENT) {
    context += ": ";
    context += std::strerror(err);
    return Status::NotFound(context);
  }
  return Status::FromErrno(err, context);
}

// Closes `fd`, retrying nothing: after EINTR the descriptor is gone on Linux.
Status CloseFd(int fd, const std::string& path) {
  if (::close(fd) != 0) return PosixError(errno, "close", path);
  return Status::OK();
}

class PosixWritableFile final : public WritableFile {
 public:
  PosixWritableFile(std::string path, int fd, uint64_t size)
      : path_(std::move(path)), fd_(fd), size_(size) {}
  ~PosixWritableFile() override { (void)Close(); }

  PosixWritableFile(const PosixWritableFile&) = delete;
  PosixWritableFile& operator=(const PosixWritableFile&) = delete;

  Status Append(std::string_view data) override {
    if (fd_ < 0) return Status::IOError("append " + path_ + ": file is closed");
    const char* p = data.data();
    size_t left = data.size();
    while (left > 0) {
      const ssize_t n = ::write(fd_, p, left);
      if (n < 0) {
        if (errno == EINTR) continue;
        return PosixError(errno, "write", path_);
      }
      // write(2) returns at most `left`, so the casts cannot lose anything.
      p += n;
      left -= static_cast<size_t>(n);
      size_ += static_cast<uint64_t>(n);
    }
    return Status::OK();
  }

  Status Sync() override {
    if (fd_ < 0) return Status::IOError("sync " + path_ + ": file is closed");
    if (::fdatasync(fd_) != 0) return PosixError(errno, "fdatasync", path_);
    return Status::OK();
  }

  Status StartWriteback(uint64_t offset, uint64_t length) override {
    if (fd_ < 0) return Status::IOError("writeback " + path_ + ": file is closed");
    if (::sync_file_range(fd_, static_cast<off_t>(offset), static_cast<off_t>(length),
                          SYNC_FILE_RANGE_WRITE) != 0 &&
        errno != ENOSYS && errno != EOPNOTSUPP) {
      return PosixError(errno, "sync_file_range", path_);
    }
    return Status::OK();
  }

  Status Preallocate(uint64_t size) override {
    if (fd_ < 0) return Status::IOError("preallocate " + path_ + ": file is closed");
    if (size == 0) return Status::OK();
    if (::fallocate(fd_, FALLOC_FL_KEEP_SIZE, 0, static_cast<off_t>(size)) != 0) {
      // Some file systems (tmpfs on old kernels, network file systems) cannot
      // reserve space; appends still work there, they just may allocate.
      if (errno == EOPNOTSUPP || errno == ENOSYS) return Status::OK();
      return PosixError(errno, "fallocate", path_);
    }
    return Status::OK();
  }

  Status Close() override {
    if (fd_ < 0) return Status::OK();
    const int fd = fd_;
    fd_ = -1;
    return CloseFd(fd, path_);
  }

  uint64_t Size() const override { return size_; }

 private:
  const std::string path_;
  int fd_;
  uint64_t size_;
};

class PosixRandomAccessFile final : public RandomAccessFile {
 public:
  // `map_base`/`map_size` describe a read-only mapping of the file's first
  // bytes, or nullptr/0 for none.
  PosixRandomAccessFile(std::string path, int fd, const char* map_base, uint64_t map_size)
      : path_(std::move(path)), fd_(fd), map_base_(map_base), map_size_(map_size) {}

  ~PosixRandomAccessFile() override {
    if (map_base_ != nullptr) {
      ::munmap(const_cast<char*>(map_base_), static_cast<size_t>(map_size_));
    }
    ::close(fd_);
  }

  PosixRandomAccessFile(const PosixRandomAccessFile&) = delete;
  PosixRandomAccessFile& operator=(const PosixRandomAccessFile&) = delete;

  Status Read(uint64_t offset, size_t n, char* scratch, std::string_view* result) const override {
    // The hot path of the engine: a mapped range costs a bounds check and an
    // addition. Written so that offset + n cannot overflow.
    if (n <= map_size_ && offset <= map_size_ - n) {
      *result = std::string_view(map_base_ + offset, n);
      return Status::OK();
    }
    return PRead(offset, n, scratch, result);
  }

 private:
  Status PRead(uint64_t offset, size_t n, char* scratch, std::string_view* result) const {
    size_t done = 0;
    while (done < n) {
      const ssize_t got = ::pread(fd_, scratch + done, n - done, static_cast<off_t>(offset + done));
      if (got < 0) {
        if (errno == EINTR) continue;
        return PosixError(errno, "pread", path_);
      }
      if (got == 0) {
        return Status::IOError("read " + path_ + ": short read at offset " +
                               std::to_string(offset) + ": wanted " + std::to_string(n) +
                               " bytes, file has " + std::to_string(done) + " there");
      }
      done += static_cast<size_t>(got);
    }
    *result = std::string_view(scratch, n);
    return Status::OK();
  }

  const std::string path_;
  const int fd_;
  const char* const map_base_;
  const uint64_t map_size_;
};

// The inodes this process holds a LockFile on. flock(2) already makes a
// second lock through a new open file description fail, but this set makes
// the in-process case explicit and independent of the lock flavour.
struct LockedFiles {
  std::mutex mu;
  std::set<std::pair<dev_t, ino_t>> held;
};

LockedFiles& ProcessLocks() {
  static LockedFiles* locks = new LockedFiles;  // never destroyed: locks may outlive main's statics
  return *locks;
}

class PosixFileLock final : public FileLock {
 public:
  PosixFileLock(int fd, std::pair<dev_t, ino_t> id) : fd_(fd), id_(id) {}
  ~PosixFileLock() override {
    ::flock(fd_, LOCK_UN);
    ::close(fd_);
    LockedFiles& locks = ProcessLocks();
    std::lock_guard<std::mutex> guard(locks.mu);
    locks.held.erase(id_);
  }

  PosixFileLock(const PosixFileLock&) = delete;
  PosixFileLock& operator=(const PosixFileLock&) = delete;

 private:
  const int fd_;
  const std::pair<dev_t, ino_t> id_;
};

Status BusyLock(const std::string& path, std::string_view why) {
  return Status::Busy("lock " + path + ": " + std::string(why) +
                      "; is the directory in use by another raft-kv process?");
}

class PosixEnv final : public Env {
 public:
  Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override {
    return OpenWritable(path, O_TRUNC);
  }

  Result<std::unique_ptr<WritableFile>> NewAppendableFile(const std::string& path) override {
    return OpenWritable(path, 0);
  }

  Result<std::unique_ptr<RandomAccessFile>> NewRandomAccessFile(
      const std::string& path, const RandomAccessOptions& options) override {
    const int fd = OpenRetry(path, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0) return PosixError(errno, "open", path);
    const char* base = nullptr;
    if (options.map_bytes > 0) {
      // The file may be shorter than the mapping (it is still growing): that
      // is allowed, and pages fill in as the file is appended to.
      void* map =
          ::mmap(nullptr, static_cast<size_t>(options.map_bytes), PROT_READ, MAP_SHARED, fd, 0);
      if (map == MAP_FAILED) {
        const int err = errno;
        ::close(fd);
        return PosixError(err, "mmap", path);
      }
      // Reads hit single records at random offsets: readahead would only
      // pollute the page cache.
      (void)::madvise(map, static_cast<size_t>(options.map_bytes), MADV_RANDOM);
      base = static_cast<const char*>(map);
    }
    return std::unique_ptr<RandomAccessFile>(std::make_unique<PosixRandomAccessFile>(
        path, fd, base, base == nullptr ? 0 : options.map_bytes));
  }

  bool FileExists(const std::string& path) override { return ::access(path.c_str(), F_OK) == 0; }

  Result<std::vector<std::string>> GetChildren(const std::string& dir) override {
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) return PosixError(errno, "opendir", dir);
    std::vector<std::string> names;
    for (;;) {
      errno = 0;
      const dirent* entry = ::readdir(d);
      if (entry == nullptr) break;
      const std::string_view name(entry->d_name);
      if (name == "." || name == "..") continue;
      names.emplace_back(name);
    }
    const int err = errno;
    ::closedir(d);
    if (err != 0) return PosixError(err, "readdir", dir);
    std::sort(names.begin(), names.end());
    return names;
  }

  Result<uint64_t> GetFileSize(const std::string& path) override {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return PosixError(errno, "stat", path);
    return static_cast<uint64_t>(st.st_size);
  }

  Status DeleteFile(const std::string& path) override {
    if (::unlink(path.c_str()) != 0) return PosixError(errno, "unlink", path);
    return Status::OK();
  }

  Status CreateDir(const std::string& dir) override {
    if (::mkdir(dir.c_str(), kDirMode) == 0) return Status::OK();
    const int err = errno;
    if (err == EEXIST) {
      struct stat st {};
      if (::stat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return Status::OK();
    }
    return PosixError(err, "mkdir", dir);
  }

  Status DeleteDir(const std::string& dir) override {
    if (::rmdir(dir.c_str()) != 0) return PosixError(errno, "rmdir", dir);
    return Status::OK();
  }

  Status RenameFile(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0)
      return PosixError(errno, "rename", from + " " + to);
    return Status::OK();
  }

  Status LinkFile(const std::string& from, const std::string& to) override {
    if (::link(from.c_str(), to.c_str()) != 0) return PosixError(errno, "link", from + " " + to);
    return Status::OK();
  }

  Status TruncateFile(const std::string& path, uint64_t size) override {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return PosixError(errno, "stat", path);
    if (size > static_cast<uint64_t>(st.st_size)) {
      return Status::InvalidArgument("truncate " + path + ": size " + std::to_string(size) +
                                     " exceeds file size " + std::to_string(st.st_size));
    }
    if (::truncate(path.c_str(), static_cast<off_t>(size)) != 0) {
      return PosixError(errno, "truncate", path);
    }
    return Status::OK();
  }

  Status SyncDir(const std::string& dir) override {
    const int fd = OpenRetry(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
    if (fd < 0) return PosixError(errno, "open", dir);
    Status s;
    if (::fsync(fd) != 0) s = PosixError(errno, "fsync", dir);
    ::close(fd);
    return s;
  }

  Result<std::unique_ptr<FileLock>> LockFile(const std::string& path) override {
    const int fd = OpenRetry(path, O_RDWR | O_CREAT | O_CLOEXEC, kFileMode);
    if (fd < 0) return PosixError(errno, "open", path);
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      const int err = errno;
      ::close(fd);
      return PosixError(err, "fstat", path);
    }
    const std::pair<dev_t, ino_t> id(st.st_dev, st.st_ino);
    LockedFiles& locks = ProcessLocks();
    std::lock_guard<std::mutex> guard(locks.mu);
    if (locks.held.contains(id)) {
      ::close(fd);  // safe with flock: only this descriptor's own lock would go
      return BusyLock(path, "already locked by this process");
    }
    while (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      if (err == EWOULDBLOCK) return BusyLock(path, "held by another process");
      return PosixError(err, "flock", path);
    }
    locks.held.insert(id);
    return std::unique_ptr<FileLock>(std::make_unique<PosixFileLock>(fd, id));
  }

 private:
  static int OpenRetry(const std::string& path, int flags, mode_t mode) {
    for (;;) {
      const int fd = ::open(path.c_str(), flags, mode);
      if (fd >= 0 || errno != EINTR) return fd;
    }
  }

  static Result<std::unique_ptr<WritableFile>> OpenWritable(const std::string& path, int extra) {
    const int fd = OpenRetry(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | extra, kFileMode);
    if (fd < 0) return PosixError(errno, "open", path);
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      const int err = errno;
      ::close(fd);
      return PosixError(err, "fstat", path);
    }
    return std::unique_ptr<WritableFile>(
        std::make_unique<PosixWritableFile>(path, fd, static_cast<uint64_t>(st.st_size)));
  }
};

}  // namespace

Env* Env::Posix() {
  static Env* env = new PosixEnv;  // never destroyed: files may be closed during exit
  return env;
}

}  // namespace rkv
