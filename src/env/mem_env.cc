#include "env/mem_env.h"

#include <algorithm>
#include <cstring>
#include <set>
#include <string_view>
#include <utility>

#include "common/assert.h"

namespace rkv {

// A file or a directory: the inode. Shared by every directory entry (hard
// links) and every open handle that refers to it.
struct MemEnv::Node {
  explicit Node(bool dir) : is_dir(dir) {}

  // Cuts the file to `size` bytes. The cut is not durable until the next
  // sync, so durable bytes it removes move to durable_tail.
  void Truncate(uint64_t size) {
    RKV_ASSERT(size <= contents.size());
    if (size < synced) {
      durable_tail.insert(0, contents, static_cast<size_t>(size),
                          static_cast<size_t>(synced - size));
      synced = size;
    }
    contents.resize(static_cast<size_t>(size));
  }

  void MarkSynced() {
    synced = contents.size();
    durable_tail.clear();
  }

  uint64_t DurableSize() const { return synced + durable_tail.size(); }

  const bool is_dir;

  // Files. The durable image of the file (what a power loss leaves) is
  // contents[0, synced) followed by durable_tail.
  std::string contents;
  uint64_t synced = 0;
  std::string durable_tail;

  // Directories: the live entries, and the entries as of the last SyncDir.
  std::map<std::string, NodePtr> entries;
  std::map<std::string, NodePtr> durable_entries;
};

struct MemEnv::Resolved {
  std::string path;  // normalized
  NodePtr parent;    // null when `path` is "/" or "."
  std::string name;  // the last component
  NodePtr node;      // null when there is no such entry
};

namespace {

std::vector<std::string> SplitPath(std::string_view path) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    if (end > start) parts.emplace_back(path.substr(start, end - start));
    start = end + 1;
  }
  return parts;
}

// The components of a normalized path; none for "/" and ".".
std::vector<std::string> Components(const std::string& normalized) {
  if (normalized == ".") return {};
  return SplitPath(normalized);
}

Status NoEntry(std::string_view op, const std::string& path) {
  return Status::NotFound(std::string(op) + " " + path + ": No such file or directory");
}

Status PathError(std::string_view op, const std::string& path, std::string_view why) {
  return Status::IOError(std::string(op) + " " + path + ": " + std::string(why));
}

Status Crashed() { return Status::IOError("crashed"); }

}  // namespace

class MemEnv::MemWritableFile final : public WritableFile {
 public:
  MemWritableFile(MemEnv* env, NodePtr node, std::string path, uint64_t epoch)
      : env_(env),
        node_(std::move(node)),
        path_(std::move(path)),
        epoch_(epoch),
        size_(node_->contents.size()) {}
  ~MemWritableFile() override { (void)Close(); }

  MemWritableFile(const MemWritableFile&) = delete;
  MemWritableFile& operator=(const MemWritableFile&) = delete;

  Status Append(std::string_view data) override {
    std::lock_guard<std::mutex> guard(env_->mu_);
    RKV_RETURN_IF_ERROR(CheckUsable("append"));
    RKV_RETURN_IF_ERROR(env_->BeforeOp(Op::kAppend, path_));
    node_->contents.append(data);
    size_ += data.size();
    return Status::OK();
  }

  Status Sync() override {
    std::lock_guard<std::mutex> guard(env_->mu_);
    RKV_RETURN_IF_ERROR(CheckUsable("sync"));
    RKV_RETURN_IF_ERROR(env_->BeforeOp(Op::kSync, path_));
    node_->MarkSynced();
    return Status::OK();
  }

  Status Preallocate(uint64_t /*size*/) override {
    std::lock_guard<std::mutex> guard(env_->mu_);
    RKV_RETURN_IF_ERROR(CheckUsable("preallocate"));
    return env_->BeforeOp(Op::kPreallocate, path_);
  }

  Status Close() override {
    std::lock_guard<std::mutex> guard(env_->mu_);
    if (closed_) return Status::OK();
    closed_ = true;
    return env_->CheckLive(epoch_);
  }

  uint64_t Size() const override { return size_; }

 private:
  Status CheckUsable(std::string_view op) const {
    RKV_RETURN_IF_ERROR(env_->CheckLive(epoch_));
    if (closed_) return PathError(op, path_, "file is closed");
    return Status::OK();
  }

  MemEnv* const env_;
  const NodePtr node_;
  const std::string path_;
  const uint64_t epoch_;
  uint64_t size_;
  bool closed_ = false;
};

class MemEnv::MemRandomAccessFile final : public RandomAccessFile {
 public:
  MemRandomAccessFile(MemEnv* env, NodePtr node, std::string path, uint64_t epoch)
      : env_(env), node_(std::move(node)), path_(std::move(path)), epoch_(epoch) {}

  Status Read(uint64_t offset, size_t n, char* scratch, std::string_view* result) const override {
    std::lock_guard<std::mutex> guard(env_->mu_);
    RKV_RETURN_IF_ERROR(env_->CheckLive(epoch_));
    RKV_RETURN_IF_ERROR(env_->BeforeOp(Op::kRead, path_));
    const uint64_t size = node_->contents.size();
    if (offset > size || n > size - offset) {
      return Status::IOError("read " + path_ + ": short read at offset " + std::to_string(offset) +
                             ": wanted " + std::to_string(n) + " bytes, file has " +
                             std::to_string(offset > size ? 0 : size - offset) + " there");
    }
    if (n > 0) std::memcpy(scratch, node_->contents.data() + offset, n);
    env_->AfterRead(path_, offset, scratch, n);
    *result = std::string_view(scratch, n);
    return Status::OK();
  }

 private:
  MemEnv* const env_;
  const NodePtr node_;
  const std::string path_;
  const uint64_t epoch_;
};

class MemEnv::MemFileLock final : public FileLock {
 public:
  MemFileLock(MemEnv* env, std::string path, uint64_t id)
      : env_(env), path_(std::move(path)), id_(id) {}
  ~MemFileLock() override { env_->ReleaseLock(path_, id_); }

  MemFileLock(const MemFileLock&) = delete;
  MemFileLock& operator=(const MemFileLock&) = delete;

 private:
  MemEnv* const env_;
  const std::string path_;
  const uint64_t id_;
};

MemEnv::MemEnv() : root_(std::make_shared<Node>(true)), cwd_(std::make_shared<Node>(true)) {}

MemEnv::~MemEnv() = default;

std::string MemEnv::NormalizePath(const std::string& path) {
  const bool absolute = !path.empty() && path[0] == '/';
  std::vector<std::string> parts;
  for (std::string& part : SplitPath(path)) {
    if (part == ".") continue;
    if (part == "..") {
      if (!parts.empty() && parts.back() != "..") {
        parts.pop_back();
      } else if (!absolute) {
        parts.push_back(std::move(part));  // above ".": Resolve rejects it
      }
      continue;  // "/.." is "/"
    }
    parts.push_back(std::move(part));
  }
  std::string out = absolute ? "/" : "";
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) out += '/';
    out += parts[i];
  }
  if (out.empty()) out = ".";
  return out;
}

Result<MemEnv::Resolved> MemEnv::Resolve(const std::string& path, std::string_view op) {
  if (path.empty()) return Status::InvalidArgument(std::string(op) + ": empty path");
  Resolved r;
  r.path = NormalizePath(path);
  const std::vector<std::string> parts = Components(r.path);
  NodePtr dir = r.path[0] == '/' ? root_ : cwd_;
  if (parts.empty()) {
    r.node = dir;
    return r;
  }
  for (size_t i = 0; i < parts.size(); ++i) {
    if (parts[i] == "..") {
      return Status::InvalidArgument(std::string(op) + " " + path + ": leaves the root directory");
    }
    if (i + 1 == parts.size()) break;
    auto it = dir->entries.find(parts[i]);
    if (it == dir->entries.end()) return NoEntry(op, path);
    if (!it->second->is_dir) return PathError(op, path, "Not a directory");
    dir = it->second;
  }
  r.parent = dir;
  r.name = parts.back();
  auto it = dir->entries.find(r.name);
  if (it != dir->entries.end()) r.node = it->second;
  return r;
}

Status MemEnv::CheckLive(uint64_t epoch) const {
  return epoch == epoch_ ? Status::OK() : Crashed();
}

Status MemEnv::BeforeOp(Op /*op*/, const std::string& /*path*/) { return Status::OK(); }

void MemEnv::AfterRead(const std::string& /*path*/, uint64_t /*offset*/, char* /*data*/,
                       size_t /*n*/) {}

Result<std::unique_ptr<WritableFile>> MemEnv::OpenWritable(const std::string& path, bool truncate) {
  std::lock_guard<std::mutex> guard(mu_);
  RKV_RETURN_IF_ERROR(BeforeOp(Op::kCreate, NormalizePath(path)));
  RKV_ASSIGN_OR_RETURN(Resolved r, Resolve(path, "open"));
  if (r.node == nullptr) {
    r.node = std::make_shared<Node>(false);
    r.parent->entries.emplace(r.name, r.node);
  } else if (r.node->is_dir) {
    return PathError("open", path, "Is a directory");
  } else if (truncate) {
    r.node->Truncate(0);
  }
  return std::unique_ptr<WritableFile>(
      std::make_unique<MemWritableFile>(this, r.node, r.path, epoch_));
}

Result<std::unique_ptr<WritableFile>> MemEnv::NewWritableFile(const std::string& path) {
  return OpenWritable(path, /*truncate=*/true);
}

Result<std::unique_ptr<WritableFile>> MemEnv::NewAppendableFile(const std::string& path) {
  return OpenWritable(path, /*truncate=*/false);
}

Result<std::unique_ptr<RandomAccessFile>> MemEnv::NewRandomAccessFile(
    const std::string& path, const RandomAccessOptions& /*options*/) {
  std::lock_guard<std::mutex> guard(mu_);
  RKV_ASSIGN_OR_RETURN(Resolved r, Resolve(path, "open"));
  if (r.node == nullptr) return NoEntry("open", path);
  if (r.node->is_dir) return PathError("open", path, "Is a directory");
  return std::unique_ptr<RandomAccessFile>(
      std::make_unique<MemRandomAccessFile>(this, r.node, r.path, epoch_));
}

bool MemEnv::FileExists(const std::string& path) {
  std::lock_guard<std::mutex> guard(mu_);
  Result<Resolved> r = Resolve(path, "access");
  return r.ok() && r->node != nullptr;
}

Result<std::vector<std::string>> MemEnv::GetChildren(const std::string& dir) {
  std::lock_guard<std::mutex> guard(mu_);
  RKV_ASSIGN_OR_RETURN(Resolved r, Resolve(dir, "opendir"));
  if (r.node == nullptr) return NoEntry("opendir", dir);
  if (!r.node->is_dir) return PathError("opendir", dir, "Not a directory");
  std::vector<std::string> names;
  names.reserve(r.node->entries.size());
  for (const auto& [name, node] : r.node->entries) names.push_back(name);
  return names;  // std::map keeps them sorted
}

Result<uint64_t> MemEnv::GetFileSize(const std::string& path) {
  std::lock_guard<std::mutex> guard(mu_);
  RKV_ASSIGN_OR_RETURN(Resolved r, Resolve(path, "stat"));
  if (r.node == nullptr) return NoEntry("stat", path);
  if (r.node->is_dir) return PathError("stat", path, "Is a directory");
  return static_cast<uint64_t>(r.node->contents.size());
}

Status MemEnv::DeleteFile(const std::string& path) {
  std::lock_guard<std::mutex> guard(mu_);
  RKV_RETURN_IF_ERROR(BeforeOp(Op::kDelete, NormalizePath(path)));
  RKV_ASSIGN_OR_RETURN(Resolved r, Resolve(path, "unlink"));
  if (r.node == nullptr) return NoEntry("unlink", path);
  if (r.node->is_dir) return PathError("unlink", path, "Is a directory");
  r.parent->entries.erase(r.name);
  return Status::OK();
}

Status MemEnv::CreateDir(const std::string& dir) {
  std::lock_guard<std::mutex> guard(mu_);
  RKV_RETURN_IF_ERROR(BeforeOp(Op::kCreate, NormalizePath(dir)));
  RKV_ASSIGN_OR_RETURN(Resolved r, Resolve(dir, "mkdir"));
  if (r.node != nullptr) {
    return r.node->is_dir ? Status::OK() : PathError("mkdir", dir, "File exists");
  }
  r.parent->entries.emplace(r.name, std::make_shared<Node>(true));
  return Status::OK();
}

Status MemEnv::DeleteDir(const std::string& dir) {
  std::lock_guard<std::mutex> guard(mu_);
  RKV_RETURN_IF_ERROR(BeforeOp(Op::kDelete, NormalizePath(dir)));
  RKV_ASSIGN_OR_RETURN(Resolved r, Resolve(dir, "rmdir"));
  if (r.node == nullptr) return NoEntry("rmdir", dir);
  if (r.parent == nullptr) return PathError("rmdir", dir, "Device or resource busy");
  if (!r.node->is_dir) return PathError("rmdir", dir, "Not a directory");
  if (!r.node->entries.empty()) return PathError("rmdir", dir, "Directory not empty");
  r.parent->entries.erase(r.name);
  return Status::OK();
}

Status MemEnv::RenameFile(const std::string& from, const std::string& to) {
  std::lock_guard<std::mutex> guard(mu_);
  RKV_RETURN_IF_ERROR(BeforeOp(Op::kRename, NormalizePath(from)));
  const std::string what = from + " " + to;
  RKV_ASSIGN_OR_RETURN(Resolved src, Resolve(from, "rename"));
  RKV_ASSIGN_OR_RETURN(Resolved dst, Resolve(to, "rename"));
  if (src.node == nullptr) return NoEntry("rename", what);
  if (src.parent == nullptr || dst.parent == nullptr) {
    return PathError("rename", what, "Device or resource busy");
  }
  if (src.node == dst.node) return Status::OK();  // POSIX: links to one file, nothing to do
  if (src.node->is_dir) {
    if (dst.path.starts_with(src.path + "/")) return PathError("rename", what, "Invalid argument");
    if (dst.node != nullptr && !dst.node->is_dir)
      return PathError("rename", what, "Not a directory");
    if (dst.node != nullptr && !dst.node->entries.empty()) {
      return PathError("rename", what, "Directory not empty");
    }
  } else if (dst.node != nullptr && dst.node->is_dir) {
    return PathError("rename", what, "Is a directory");
  }
  NodePtr node = src.node;
  src.parent->entries.erase(src.name);
  dst.parent->entries[dst.name] = std::move(node);
  return Status::OK();
}

Status MemEnv::LinkFile(const std::string& from, const std::string& to) {
  std::lock_guard<std::mutex> guard(mu_);
  RKV_RETURN_IF_ERROR(BeforeOp(Op::kLink, NormalizePath(to)));
  const std::string what = from + " " + to;
  RKV_ASSIGN_OR_RETURN(Resolved src, Resolve(from, "link"));
  RKV_ASSIGN_OR_RETURN(Resolved dst, Resolve(to, "link"));
  if (src.node == nullptr) return NoEntry("link", what);
  if (src.node->is_dir) return PathError("link", what, "Operation not permitted");
  if (dst.node != nullptr) return PathError("link", what, "File exists");
  dst.parent->entries.emplace(dst.name, src.node);
  return Status::OK();
}

Status MemEnv::TruncateFile(const std::string& path, uint64_t size) {
  std::lock_guard<std::mutex> guard(mu_);
  RKV_RETURN_IF_ERROR(BeforeOp(Op::kTruncate, NormalizePath(path)));
  RKV_ASSIGN_OR_RETURN(Resolved r, Resolve(path, "truncate"));
  if (r.node == nullptr) return NoEntry("truncate", path);
  if (r.node->is_dir) return PathError("truncate", path, "Is a directory");
  if (size > r.node->contents.size()) {
    return Status::InvalidArgument("truncate " + path + ": size " + std::to_string(size) +
                                   " exceeds file size " + std::to_string(r.node->contents.size()));
  }
  r.node->Truncate(size);
  return Status::OK();
}

Status MemEnv::SyncDir(const std::string& dir) {
  std::lock_guard<std::mutex> guard(mu_);
  RKV_RETURN_IF_ERROR(BeforeOp(Op::kSyncDir, NormalizePath(dir)));
  RKV_ASSIGN_OR_RETURN(Resolved r, Resolve(dir, "open"));
  if (r.node == nullptr) return NoEntry("open", dir);
  if (!r.node->is_dir) return PathError("open", dir, "Not a directory");
  r.node->durable_entries = r.node->entries;
  return Status::OK();
}

Result<std::unique_ptr<FileLock>> MemEnv::LockFile(const std::string& path) {
  std::lock_guard<std::mutex> guard(mu_);
  RKV_ASSIGN_OR_RETURN(Resolved r, Resolve(path, "open"));
  if (r.node != nullptr && r.node->is_dir) return PathError("open", path, "Is a directory");
  if (locks_.contains(r.path)) {
    return Status::Busy("lock " + path +
                        ": already locked; is the directory in use by another raft-kv process?");
  }
  if (r.node == nullptr) r.parent->entries.emplace(r.name, std::make_shared<Node>(false));
  const uint64_t id = next_lock_id_++;
  locks_.emplace(r.path, id);
  return std::unique_ptr<FileLock>(std::make_unique<MemFileLock>(this, r.path, id));
}

void MemEnv::ReleaseLock(const std::string& path, uint64_t id) {
  std::lock_guard<std::mutex> guard(mu_);
  // A lock from before ResetToDurableState may be released after someone
  // else took the path again: only the holder's own entry goes.
  auto it = locks_.find(path);
  if (it != locks_.end() && it->second == id) locks_.erase(it);
}

void MemEnv::ResetToDurableState(
    const std::function<uint64_t(const std::string& path, uint64_t unsynced)>& keep_unsynced) {
  std::lock_guard<std::mutex> guard(mu_);
  ++epoch_;
  locks_.clear();
  std::set<const Node*> seen;  // hard links: each file is cut once
  std::function<void(const NodePtr&, const std::string&)> visit = [&](const NodePtr& node,
                                                                      const std::string& path) {
    if (!seen.insert(node.get()).second) return;
    if (node->is_dir) {
      node->entries = node->durable_entries;
      for (const auto& [name, child] : node->entries) {
        visit(child, path.empty() ? name : path == "/" ? "/" + name : path + "/" + name);
      }
      return;
    }
    if (!node->durable_tail.empty()) {
      // Truncated since the last sync: the truncation and everything written
      // after it are lost together.
      node->contents.resize(static_cast<size_t>(node->synced));
      node->contents += node->durable_tail;
    } else {
      const uint64_t unsynced = node->contents.size() - node->synced;
      const uint64_t keep = unsynced == 0 ? 0 : std::min(keep_unsynced(path, unsynced), unsynced);
      node->contents.resize(static_cast<size_t>(node->synced + keep));
    }
    node->MarkSynced();  // what the disk holds after the reboot is durable
  };
  visit(root_, "/");
  visit(cwd_, "");
}

Result<uint64_t> MemEnv::DurableFileSize(const std::string& path) {
  std::lock_guard<std::mutex> guard(mu_);
  RKV_ASSIGN_OR_RETURN(Resolved r, Resolve(path, "stat"));
  if (r.node == nullptr) return NoEntry("stat", path);
  if (r.node->is_dir) return PathError("stat", path, "Is a directory");
  return r.node->DurableSize();
}

bool MemEnv::EntryIsDurable(const std::string& path) {
  std::lock_guard<std::mutex> guard(mu_);
  if (path.empty()) return false;
  const std::string normalized = NormalizePath(path);
  NodePtr dir = normalized[0] == '/' ? root_ : cwd_;
  for (const std::string& part : Components(normalized)) {
    if (dir == nullptr || !dir->is_dir) return false;
    auto live = dir->entries.find(part);
    auto durable = dir->durable_entries.find(part);
    if (live == dir->entries.end() || durable == dir->durable_entries.end() ||
        live->second != durable->second) {
      return false;
    }
    dir = live->second;
  }
  return true;
}

}  // namespace rkv
