#include "node/kv_dir.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <vector>

#include "common/assert.h"
#include "common/logging.h"
#include "node/snapshot.h"
#include "storage/engine.h"
#include "storage/options.h"

namespace rkv {

namespace {

// Records are written into the new engine in batches of at most this many
// bytes (or half a data file, whichever is smaller: a batch must fit in one
// data file) and this many records. Batches only save locking; the install is
// made atomic by the switch of CURRENT, not by them.
constexpr size_t kInstallBatchBytes = 1 << 20;
constexpr size_t kInstallBatchRecords = 4096;
// What a record costs in a data file beyond its key and value, rounded up: a
// 20-byte header (28 with an expiry, which snapshots never carry).
constexpr size_t kRecordOverhead = 32;

constexpr std::string_view kCurrentTmpSuffix = ".tmp";


}  // namespace

std::string EngineDirName(uint64_t number) { return fmt::format("{}{:06}", KvDir::kEnginePrefix, number); }

uint64_t ParseEngineDirName(std::string_view name) {
  if (!name.starts_with(KvDir::kEnginePrefix)) return 0;
  const std::string_view digits = name.substr(KvDir::kEnginePrefix.size());
  if (digits.empty() || !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return 0;
  }
  uint64_t number = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), number);
  if (ec != std::errc() || end != digits.data() + digits.size() || number == 0) return 0;
  // Exactly the canonical spelling: "engine-1" or "engine-0000001" are not ours.
  return EngineDirName(number) == name ? number : 0;
}

std::string KvDir::EnginePath(uint64_t number) const { return JoinPath(root_, EngineDirName(number)); }
std::string KvDir::current_name() const { return EngineDirName(current_); }
std::string KvDir::current_path() const { return EnginePath(current_); }

Result<KvDir> KvDir::Open(Env* env, std::string kv_root) {
  if (env == nullptr) env = Env::Posix();
  while (kv_root.size() > 1 && kv_root.back() == '/') kv_root.pop_back();
  if (!env->FileExists(kv_root)) {
    RKV_RETURN_IF_ERROR(env->CreateDir(kv_root));
    // kv/ must survive a crash with everything that will be synced inside it.
    RKV_RETURN_IF_ERROR(env->SyncDir(ParentDir(kv_root)));
  }
  RKV_ASSIGN_OR_RETURN(std::unique_ptr<FileLock> lock, env->LockFile(JoinPath(kv_root, kLockName)));
  KvDir dir(env, std::move(kv_root), std::move(lock));

  RKV_ASSIGN_OR_RETURN(std::vector<std::string> names, env->GetChildren(dir.root_));
  const std::string current_file = JoinPath(dir.root_, kCurrentName);
  const std::string tmp_file = current_file + std::string(kCurrentTmpSuffix);
  const auto has = [&](std::string_view name) { return std::binary_search(names.begin(), names.end(), name); };

  // A switch cut short before its rename: CURRENT still names the old engine.
  if (has(std::string(kCurrentName) + std::string(kCurrentTmpSuffix))) {
    RKV_LOG_INFO("event=kv_remove_tmp file={}", tmp_file);
    RKV_RETURN_IF_ERROR(env->DeleteFile(tmp_file));
  }

  if (has(kCurrentName)) {
    RKV_ASSIGN_OR_RETURN(std::string contents, ReadFileToString(env, current_file));
    // Written whole through a synced temporary file and a rename, so anything
    // but one canonical name and a newline is damage, not a torn write.
    const uint64_t number = contents.ends_with('\n')
                                ? ParseEngineDirName(std::string_view(contents).substr(0, contents.size() - 1))
                                : 0;
    if (number == 0) {
      return Status::Corruption(fmt::format("{}: not an engine directory name ({} bytes)", current_file,
                                            contents.size()));
    }
    if (!env->FileExists(dir.EnginePath(number))) {
      return Status::Corruption(fmt::format("{} names {}, which does not exist", current_file,
                                            EngineDirName(number)));
    }
    dir.current_ = number;
    // Leftovers of an install cut short, or an old engine not yet deleted.
    // Failing to delete them costs only space; the next Open tries again.
    Status s = dir.RemoveStale();
    if (!s.ok()) RKV_LOG_WARN("event=kv_remove_stale_failed dir={} error=\"{}\"", dir.root_, s.ToString());
    RKV_LOG_INFO("event=kv_open dir={} current={}", dir.root_, dir.current_name());
    return dir;
  }

  // No CURRENT: a new directory, or a first Open that crashed before CURRENT
  // was durable. Then any engine directory is one that Open created and
  // nothing wrote into (no engine opens before CURRENT exists). One holding
  // files means CURRENT was lost some other way: refuse rather than guess.
  for (const std::string& name : names) {
    if (ParseEngineDirName(name) == 0) continue;
    const std::string path = JoinPath(dir.root_, name);
    RKV_ASSIGN_OR_RETURN(std::vector<std::string> inside, env->GetChildren(path));
    if (!inside.empty()) {
      return Status::Corruption(
          fmt::format("{} is missing but {} holds {} entries; refusing to guess the live engine", current_file,
                      path, inside.size()));
    }
    RKV_LOG_INFO("event=kv_remove_stale dir={} files=0", path);
    RKV_RETURN_IF_ERROR(env->DeleteDir(path));
  }
  RKV_RETURN_IF_ERROR(env->CreateDir(dir.EnginePath(1)));
  RKV_RETURN_IF_ERROR(env->SyncDir(dir.root_));
  bool renamed = false;
  RKV_RETURN_IF_ERROR(dir.WriteCurrent(1, &renamed));
  dir.current_ = 1;
  RKV_LOG_INFO("event=kv_create dir={} current={}", dir.root_, dir.current_name());
  return dir;
}

Status KvDir::WriteCurrent(uint64_t number, bool* renamed) {
  *renamed = false;
  const std::string path = JoinPath(root_, kCurrentName);
  const std::string tmp = path + std::string(kCurrentTmpSuffix);
  {
    RKV_ASSIGN_OR_RETURN(std::unique_ptr<WritableFile> file, env_->NewWritableFile(tmp));
    RKV_RETURN_IF_ERROR(file->Append(EngineDirName(number) + "\n"));
    // Synced before the rename, so the name CURRENT gets after a crash is
    // never an empty or partial file.
    RKV_RETURN_IF_ERROR(file->Sync());
    RKV_RETURN_IF_ERROR(file->Close());
  }
  // A failed rename changed nothing.
  RKV_RETURN_IF_ERROR(env_->RenameFile(tmp, path));
  *renamed = true;
  return env_->SyncDir(root_);
}

Status KvDir::RemoveEngineDir(const std::string& name) {
  const std::string path = JoinPath(root_, name);
  // An engine holds LOCK while open: an old engine the node has not closed
  // yet is left alone.
  RKV_ASSIGN_OR_RETURN(std::unique_ptr<FileLock> lock, env_->LockFile(JoinPath(path, kLockName)));
  RKV_ASSIGN_OR_RETURN(std::vector<std::string> names, env_->GetChildren(path));
  // The order of the deletions does not matter: CURRENT does not name this
  // directory, so whatever a crash leaves of it is removed at the next Open.
  for (const std::string& file : names) RKV_RETURN_IF_ERROR(env_->DeleteFile(JoinPath(path, file)));
  RKV_RETURN_IF_ERROR(env_->DeleteDir(path));
  RKV_LOG_INFO("event=kv_remove_stale dir={} files={}", path, names.size());
  return Status::OK();
}

void KvDir::DiscardNew(const std::string& name) {
  const std::string path = JoinPath(root_, name);
  if (!env_->FileExists(path)) return;
  Status s = RemoveEngineDir(name);
  if (s.ok()) s = env_->SyncDir(root_);
  if (!s.ok()) RKV_LOG_WARN("event=kv_remove_stale_failed dir={} error=\"{}\"", path, s.ToString());
}

Status KvDir::RemoveStale() {
  if (!failed_.ok()) return failed_;
  RKV_ASSIGN_OR_RETURN(std::vector<std::string> names, env_->GetChildren(root_));
  Status first;
  bool removed = false;
  for (const std::string& name : names) {
    const uint64_t number = ParseEngineDirName(name);
    if (number == 0 || number == current_) continue;
    Status s = RemoveEngineDir(name);
    if (s.IsBusy()) {
      RKV_LOG_INFO("event=kv_stale_in_use dir={}", JoinPath(root_, name));
      continue;
    }
    if (!s.ok()) {
      if (first.ok()) first = s;
      continue;
    }
    removed = true;
  }
  if (removed) {
    Status s = env_->SyncDir(root_);
    if (first.ok()) first = s;
  }
  return first;
}

Status KvDir::FillEngine(std::string_view data, const storage::Options& options, const std::string& path,
                         uint64_t records) {
  RKV_ASSIGN_OR_RETURN(std::unique_ptr<storage::Engine> engine, storage::Engine::Open(options, path));
  RKV_ASSIGN_OR_RETURN(SnapshotReader reader, SnapshotReader::Open(data));
  const size_t batch_bytes_max =
      std::min<uint64_t>(kInstallBatchBytes, options.data_file_size_max / 2);
  storage::WriteBatch batch;
  size_t batch_bytes = 0;
  std::string_view key, value;
  for (;;) {
    RKV_ASSIGN_OR_RETURN(bool more, reader.Next(&key, &value));
    const size_t cost = more ? key.size() + value.size() + kRecordOverhead : 0;
    if (batch.count() > 0 &&
        (!more || batch_bytes + cost > batch_bytes_max || batch.count() == kInstallBatchRecords)) {
      RKV_RETURN_IF_ERROR(engine->Write(batch));
      batch.Clear();
      batch_bytes = 0;
    }
    if (!more) break;
    if (cost > batch_bytes_max) {
      // Too large for a batch (which must fit one data file); the engine
      // takes a single record of any allowed size.
      RKV_RETURN_IF_ERROR(engine->Put(key, value));
      continue;
    }
    batch.Put(key, value);
    batch_bytes += cost;
  }
  RKV_RETURN_IF_ERROR(engine->Sync());
  // Keys are distinct (the reader insists on increasing order), so the engine
  // must hold exactly one key per record.
  const uint64_t keys = engine->GetStats().keys;
  if (keys != records) {
    return Status::Corruption(fmt::format("{}: holds {} keys after installing a snapshot of {} records", path,
                                          keys, records));
  }
  return engine->Close();
}

Result<std::string> KvDir::InstallSnapshot(std::string_view data, const storage::Options& engine_options,
                                           SnapshotSummary* summary) {
  if (!failed_.ok()) return failed_;
  Env* const options_env = engine_options.env != nullptr ? engine_options.env : Env::Posix();
  RKV_ASSERT_MSG(options_env == env_, "InstallSnapshot: engine options name another Env than the KvDir's");

  // The whole blob is checked before anything is written: a corrupt or
  // truncated one changes nothing.
  RKV_ASSIGN_OR_RETURN(SnapshotSummary found, VerifySnapshot(data));
  if (found.max_key_size > engine_options.key_size_max || found.max_value_size > engine_options.value_size_max) {
    return Status::InvalidArgument(fmt::format(
        "snapshot holds a key of {} and a value of {} bytes; the engine takes {} and {} "
        "(open it with StateMachine::FitEngineOptions)",
        found.max_key_size, found.max_value_size, engine_options.key_size_max, engine_options.value_size_max));
  }

  // A number above every directory present, so the new directory is fresh
  // even when a failed install left one behind.
  RKV_ASSIGN_OR_RETURN(std::vector<std::string> names, env_->GetChildren(root_));
  uint64_t number = current_;
  for (const std::string& name : names) number = std::max(number, ParseEngineDirName(name));
  ++number;
  const std::string name = EngineDirName(number);
  const std::string path = EnginePath(number);
  RKV_LOG_INFO("event=kv_install_start dir={} records={} bytes={} applied_index={}", path, found.records,
               data.size(), found.meta.applied_index.value());

  storage::Options options = engine_options;
  options.env = env_;
  options.create_if_missing = true;
  // The copy is made durable by one Sync at the end; syncing along the way, or
  // merging files that hold no dead records, would only slow it down.
  options.sync_mode = storage::SyncMode::kNone;
  options.background_merge = false;
  Status s = FillEngine(data, options, path, found.records);
  if (!s.ok()) {
    // The old engine is still the live one; the partial new one is removed
    // here or, failing that, by the next RemoveStale or Open.
    DiscardNew(name);
    return s;
  }
  // The engine made its directory's entry in kv/ durable when it created it;
  // once more, so the switch below cannot outlive it whatever the engine does.
  RKV_RETURN_IF_ERROR(env_->SyncDir(root_));

  // The commit point.
  bool renamed = false;
  s = WriteCurrent(number, &renamed);
  if (!s.ok() && !renamed) {
    DiscardNew(name);
    return s;
  }
  const std::string old_path = current_path();
  current_ = number;
  if (!s.ok()) {
    // CURRENT names the new engine now, but a crash may bring the old name
    // back: keep both complete directories and change nothing more.
    failed_ = s;
    RKV_LOG_ERROR("event=kv_switch_failed dir={} current={} error=\"{}\"", root_, name, s.ToString());
    return s;
  }
  RKV_LOG_INFO("event=kv_switch dir={} current={} old={}", root_, name, old_path);
  if (summary != nullptr) *summary = found;

  // The old directory (unless its engine is still open) and any leftovers.
  Status rs = RemoveStale();
  if (!rs.ok()) RKV_LOG_WARN("event=kv_remove_stale_failed dir={} error=\"{}\"", root_, rs.ToString());
  return current_path();
}

}  // namespace rkv
