#include "storage/engine_impl.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <set>

#include "common/assert.h"
#include "common/clock.h"
#include "common/coding.h"
#include "common/logging.h"
#include "storage/hint_file.h"
#include "storage/record_scanner.h"

namespace rkv::storage {

namespace {

constexpr uint64_t kIdStep = uint64_t{1} << 20;  // spacing of active file ids
constexpr size_t kScanLimitMax = 100'000;
constexpr size_t kBatchCommitSize = kRecordHeaderSize + 4;

uint64_t RoundUp(uint64_t n, uint64_t to) { return (n + to - 1) / to * to; }

uint32_t LocationSize(const RecordHeader& header) {
  auto size = static_cast<uint32_t>(header.record_size());
  return header.has_expiry() ? size | Location::kExpiryFlag : size;
}

}  // namespace

std::string_view SyncModeName(SyncMode mode) {
  switch (mode) {
    case SyncMode::kAlways: return "always";
    case SyncMode::kGroup: return "group";
    case SyncMode::kInterval: return "interval";
    case SyncMode::kNone: return "none";
  }
  return "group";
}

bool ParseSyncMode(std::string_view name, SyncMode* mode) {
  for (SyncMode m : {SyncMode::kAlways, SyncMode::kGroup, SyncMode::kInterval, SyncMode::kNone}) {
    if (name == SyncModeName(m)) {
      *mode = m;
      return true;
    }
  }
  return false;
}

// ---------------------------------------------------------------------------
// View

class ViewImpl final : public View {
 public:
  ViewImpl(EngineImpl* engine, std::vector<File> files, std::vector<std::shared_ptr<DataFile>> pinned)
      : engine_(engine), files_(std::move(files)), pinned_(std::move(pinned)) {}
  ~ViewImpl() override {
    pinned_.clear();
    engine_->ReleaseView();
  }

  const std::vector<File>& files() const override { return files_; }

  Status ForEach(const std::function<bool(std::string_view, std::string_view)>& fn) override {
    struct Where {
      size_t file;
      uint64_t offset;
      RecordHeader header;
    };
    std::map<std::string, Where, std::less<>> index;
    for (size_t i = 0; i < files_.size(); ++i) {
      ScanResult result;
      RKV_RETURN_IF_ERROR(ScanRecords(
          *pinned_[i]->reader, kFileHeaderSize, files_[i].data_size,
          [&](const ScannedRecord& r) {
            if (r.header.type == RecordType::kPut) {
              index.insert_or_assign(std::string(r.key), Where{i, r.offset, r.header});
            } else {
              auto it = index.find(r.key);
              if (it != index.end()) index.erase(it);
            }
            return Status::OK();
          },
          &result));
    }
    const auto now = static_cast<uint64_t>(engine_->clock()->WallMillis());
    std::string scratch;
    for (const auto& [key, where] : index) {
      if (where.header.has_expiry() && where.header.expiry_ms <= now) continue;
      const size_t size = where.header.record_size();
      scratch.resize(size);
      std::string_view record, k, v;
      RKV_RETURN_IF_ERROR(pinned_[where.file]->reader->Read(where.offset, size, scratch.data(), &record));
      if (VerifyRecord(record, where.header, &k, &v) != DecodeOutcome::kOk || k != key) {
        return Status::Corruption(fmt::format("{}: record at offset {} changed under a view",
                                              files_[where.file].data_path, where.offset));
      }
      if (!fn(key, v)) break;
    }
    return Status::OK();
  }

 private:
  EngineImpl* engine_;
  std::vector<File> files_;
  std::vector<std::shared_ptr<DataFile>> pinned_;
};

// ---------------------------------------------------------------------------
// Open and recovery

Result<std::unique_ptr<Engine>> Engine::Open(const Options& options, const std::string& dir) {
  auto engine = std::make_unique<EngineImpl>(options, dir);
  RKV_RETURN_IF_ERROR(engine->Open());
  return std::unique_ptr<Engine>(std::move(engine));
}

EngineImpl::EngineImpl(const Options& options, std::string dir)
    : options_(options),
      env_(options.env != nullptr ? options.env : Env::Posix()),
      clock_(options.clock != nullptr ? options.clock : Clock::Real()),
      dir_(std::move(dir)) {}

EngineImpl::~EngineImpl() {
  Status s = Close();
  if (!s.ok()) RKV_LOG_ERROR("event=engine_close_failed dir={} error=\"{}\"", dir_, s.ToString());
  RKV_ASSERT_MSG(views_.load() == 0, "a storage View outlived its engine");
}

Status EngineImpl::Open() {
  if (options_.data_file_size_max < 256 || options_.data_file_size_max > (uint64_t{1} << 30)) {
    return Status::InvalidArgument("data_file_size_max must be between 256 bytes and 1 GiB");
  }
  if (options_.key_size_max == 0 || options_.key_size_max > kKeySizeLimit) {
    return Status::InvalidArgument(fmt::format("key_size_max must be 1..{}", kKeySizeLimit));
  }
  if (options_.value_size_max > kValueSizeLimit) {
    return Status::InvalidArgument(fmt::format("value_size_max must be at most {}", kValueSizeLimit));
  }
  if (options_.write_buffer_size < 4096) {
    return Status::InvalidArgument("write_buffer_size must be at least 4096");
  }
  const uint64_t record_max = RecordSize(options_.key_size_max, options_.value_size_max, true);
  map_bytes_ = RoundUp(std::max(options_.data_file_size_max, kFileHeaderSize + record_max), 4096);
  buf_capacity_ = options_.write_buffer_size;
  buf_ = std::make_unique<char[]>(buf_capacity_);

  if (!env_->FileExists(dir_)) {
    if (!options_.create_if_missing) return Status::NotFound(fmt::format("{} does not exist", dir_));
    RKV_RETURN_IF_ERROR(env_->CreateDir(dir_));
    // The new directory's own entry must be durable, or a crash loses it
    // with everything synced inside it.
    RKV_RETURN_IF_ERROR(env_->SyncDir(ParentDir(dir_)));
  }
  auto lock = env_->LockFile(JoinPath(dir_, "LOCK"));
  if (!lock.ok()) return lock.status();
  lock_ = std::move(*lock);

  RKV_RETURN_IF_ERROR(Recover());
  // Without background merge (tests, the simulator) and interval syncs the
  // engine starts no thread at all, so every file operation happens on a
  // caller's thread, in an order a seed can replay.
  if (options_.background_merge || options_.sync_mode == SyncMode::kInterval) {
    background_ = std::thread([this] { BackgroundLoop(); });
  }
  return Status::OK();
}

std::shared_ptr<DataFile> EngineImpl::OpenDataFile(uint64_t id, uint64_t map_bytes, Status* status) {
  auto file = std::make_shared<DataFile>();
  file->id = id;
  file->path = JoinPath(dir_, DataFileName(id));
  file->hint_path = JoinPath(dir_, HintFileName(id));
  RandomAccessOptions ropts;
  ropts.map_bytes = map_bytes;
  auto reader = env_->NewRandomAccessFile(file->path, ropts);
  if (!reader.ok()) {
    *status = reader.status();
    return nullptr;
  }
  file->reader = std::move(*reader);
  *status = Status::OK();
  return file;
}

Status EngineImpl::Recover() {
  RKV_ASSIGN_OR_RETURN(std::vector<std::string> names, env_->GetChildren(dir_));
  std::vector<uint64_t> ids;
  for (const std::string& name : names) {
    uint64_t id;
    if (name.size() > 4 && name.compare(name.size() - 4, 4, ".tmp") == 0) {
      // A merge output or hint that was never finished.
      RKV_RETURN_IF_ERROR(env_->DeleteFile(JoinPath(dir_, name)));
    } else if (ParseDataFileName(name, &id)) {
      ids.push_back(id);
    }
  }
  std::sort(ids.begin(), ids.end());

  // A newest file without a complete header holds no records: the process
  // died while starting it. Remove it.
  while (!ids.empty()) {
    const std::string path = JoinPath(dir_, DataFileName(ids.back()));
    RKV_ASSIGN_OR_RETURN(uint64_t size, env_->GetFileSize(path));
    if (size >= kFileHeaderSize) break;
    RKV_LOG_WARN("event=remove_empty_data_file file={} bytes={}", path, size);
    RKV_RETURN_IF_ERROR(env_->DeleteFile(path));
    RKV_RETURN_IF_ERROR(env_->SyncDir(dir_));
    ids.pop_back();
  }

  for (size_t i = 0; i < ids.size(); ++i) {
    const bool newest = i + 1 == ids.size();
    const std::string path = JoinPath(dir_, DataFileName(ids[i]));
    RKV_ASSIGN_OR_RETURN(uint64_t size, env_->GetFileSize(path));
    Status s;
    std::shared_ptr<DataFile> file = OpenDataFile(ids[i], newest ? map_bytes_ : std::max<uint64_t>(size, 1), &s);
    if (file == nullptr) return s;
    uint64_t valid_size = 0;
    RKV_RETURN_IF_ERROR(LoadFile(file, size, newest, names, &valid_size));
    file->size.store(valid_size);
    max_file_id_ = std::max(max_file_id_, ids[i]);
  }
  // Forget hint files whose data file is gone (a merge removed it).
  for (const std::string& name : names) {
    uint64_t id;
    if (ParseHintFileName(name, &id) && !std::binary_search(ids.begin(), ids.end(), id)) {
      RKV_RETURN_IF_ERROR(env_->DeleteFile(JoinPath(dir_, name)));
    }
  }

  // Continue in the newest file while it has room, else start one.
  std::unique_lock w(write_mu_);
  std::shared_ptr<DataFile> newest;
  {
    std::shared_lock l(mu_);
    if (!by_id_.empty()) newest = by_id_.rbegin()->second;
  }
  if (newest != nullptr && newest->size.load() < options_.data_file_size_max) {
    RKV_ASSIGN_OR_RETURN(writer_, env_->NewAppendableFile(newest->path));
    RKV_ASSERT(writer_->Size() == newest->size.load());
    std::unique_lock l(mu_);
    active_ = newest;
    newest->has_hint = false;  // it grows from here; its hint covers only a prefix
    active_size_ = newest->size.load();
    buf_base_ = active_size_;
  } else {
    RKV_RETURN_IF_ERROR(CreateActiveFileLocked(NextActiveId()));
  }
  MarkSynced(last_seq_);
  RKV_LOG_INFO(
      "event=engine_open dir={} keys={} files={} from_hint={} scanned={} truncated_bytes={}",
      dir_, keydir_.size(), by_id_.size(), stat_hint_files_, stat_scanned_files_, stat_truncated_);
  return Status::OK();
}

Status EngineImpl::LoadFile(const std::shared_ptr<DataFile>& file, uint64_t file_size, bool newest,
                            const std::vector<std::string>& names, uint64_t* valid_size) {
  std::string header(kFileHeaderSize, '\0');
  std::string_view head;
  RKV_RETURN_IF_ERROR(file->reader->Read(0, kFileHeaderSize, header.data(), &head));
  uint64_t id_in_file = 0;
  Status hs = DecodeFileHeader(head, kDataMagic, &id_in_file);
  if (hs.ok() && id_in_file != file->id) hs = Status::Corruption(fmt::format("header names file {}", id_in_file));
  if (!hs.ok()) return Status::Corruption(fmt::format("{}: {}", file->path, hs.message()));

  {
    std::unique_lock l(mu_);
    RegisterFileLocked(file);
  }

  uint64_t scan_from = kFileHeaderSize;
  const std::string hint_name = HintFileName(file->id);
  if (std::binary_search(names.begin(), names.end(), hint_name)) {
    auto data = ReadFileToString(env_, file->hint_path);
    uint64_t covered = 0;
    Status hint_status = data.status();
    if (hint_status.ok()) {
      std::unique_lock l(mu_);
      hint_status = VisitHintFile(*data, file->id, file_size, &covered, [&](const HintEntryView& e) {
        RecordHeader h;
        h.type = e.type;
        h.flags = e.expiry_ms != 0 ? kRecordFlagExpiry : 0;
        h.key_size = static_cast<uint16_t>(e.key.size());
        h.expiry_ms = e.expiry_ms;
        h.seq = e.seq;
        h.value_size = static_cast<uint32_t>(e.record_size - h.header_size() - h.key_size);
        ApplyRecoveredLocked(file.get(), h, e.offset, e.key);
      });
    }
    if (hint_status.ok()) {
      file->has_hint = covered == file_size;
      scan_from = covered;
      ++stat_hint_files_;
    } else {
      RKV_LOG_WARN("event=hint_ignored file={} reason=\"{}\"", file->hint_path, hint_status.ToString());
    }
  }
  if (scan_from == kFileHeaderSize) ++stat_scanned_files_;

  ScanResult result;
  result.valid_end = scan_from;
  if (scan_from < file_size) {
    RKV_RETURN_IF_ERROR(ScanRecords(
        *file->reader, scan_from, file_size,
        [&](const ScannedRecord& r) {
          std::unique_lock l(mu_);
          ApplyRecoveredLocked(file.get(), r.header, r.offset, r.key);
          return Status::OK();
        },
        &result));
  }
  *valid_size = file_size;
  if (result.valid_end < file_size) {
    const uint64_t lost = file_size - result.valid_end;
    if (newest) {
      RKV_LOG_WARN("event=truncate_tail file={} offset={} bytes={} reason=\"{}\"", file->path,
                   result.valid_end, lost, result.stop_reason);
      RKV_RETURN_IF_ERROR(env_->TruncateFile(file->path, result.valid_end));
      stat_truncated_ += lost;
      *valid_size = result.valid_end;
      file->has_hint = false;
    } else if (options_.salvage) {
      RKV_LOG_WARN("event=salvage_skip file={} offset={} bytes={} reason=\"{}\"", file->path,
                   result.valid_end, lost, result.stop_reason);
      stat_salvaged_ += lost;
      std::unique_lock l(mu_);
      file->dead_bytes += lost;
    } else {
      return Status::Corruption(fmt::format("{}: bad record at offset {} ({}); {} bytes follow it. "
                                            "Open with salvage to skip them",
                                            file->path, result.valid_end, result.stop_reason, lost));
    }
  }
  return Status::OK();
}

void EngineImpl::ApplyRecoveredLocked(DataFile* file, const RecordHeader& header, uint64_t offset,
                                      std::string_view key) {
  last_seq_ = std::max(last_seq_, header.seq);
  if (header.type == RecordType::kPut) {
    Location loc{file->handle, static_cast<uint32_t>(offset), LocationSize(header)};
    if (auto prev = keydir_.Put(key, loc)) AddDeadLocked(*prev);
  } else {
    RKV_ASSERT(header.type == RecordType::kDelete);
    if (auto prev = keydir_.Erase(key)) AddDeadLocked(*prev);
    file->dead_bytes += header.record_size();
  }
}

void EngineImpl::RegisterFileLocked(const std::shared_ptr<DataFile>& file) {
  if (free_handles_.empty()) {
    file->handle = static_cast<uint32_t>(files_.size());
    files_.push_back(file);
  } else {
    file->handle = free_handles_.back();
    free_handles_.pop_back();
    RKV_ASSERT(files_[file->handle] == nullptr);
    files_[file->handle] = file;
  }
  const bool inserted = by_id_.emplace(file->id, file).second;
  RKV_ASSERT(inserted);
}

void EngineImpl::RetireFileLocked(const std::shared_ptr<DataFile>& file) {
  RKV_ASSERT(file != active_);
  RKV_ASSERT(files_[file->handle] == file);
  files_[file->handle] = nullptr;
  free_handles_.push_back(file->handle);
  by_id_.erase(file->id);
  auto at = std::lower_bound(obsolete_.begin(), obsolete_.end(), file,
                             [](const auto& a, const auto& b) { return a->id < b->id; });
  obsolete_.insert(at, file);
}

void EngineImpl::AddDeadLocked(const Location& location) {
  DataFile* f = files_[location.file].get();
  RKV_ASSERT(f != nullptr);
  f->dead_bytes += location.record_size();
}

uint64_t EngineImpl::NextActiveId() const { return (max_file_id_ / kIdStep + 1) * kIdStep; }

// ---------------------------------------------------------------------------
// Reads

Status EngineImpl::CheckKey(std::string_view key) const {
  if (key.empty()) return Status::InvalidArgument("key is empty");
  if (key.size() > options_.key_size_max) {
    return Status::InvalidArgument(
        fmt::format("key is {} bytes; the limit is {}", key.size(), options_.key_size_max));
  }
  return Status::OK();
}

Status EngineImpl::CheckValue(std::string_view value) const {
  if (value.size() > options_.value_size_max) {
    return Status::InvalidArgument(
        fmt::format("value is {} bytes; the limit is {}", value.size(), options_.value_size_max));
  }
  return Status::OK();
}

Status EngineImpl::ReadRecordLocked(const Location& location, std::string_view key,
                                    RecordHeader* header, std::string_view* value) const {
  thread_local std::string scratch;
  const uint32_t size = location.record_size();
  std::string_view record;
  if (location.file == active_->handle && location.offset >= buf_base_) {
    RKV_ASSERT(location.offset - buf_base_ + size <= buf_capacity_);
    record = std::string_view(buf_.get() + (location.offset - buf_base_), size);
  } else {
    const DataFile* file = files_[location.file].get();
    RKV_ASSERT(file != nullptr);
    if (scratch.size() < size) scratch.resize(size);
    RKV_RETURN_IF_ERROR(file->reader->Read(location.offset, size, scratch.data(), &record));
  }
  std::string_view k;
  if (DecodeRecordHeader(record, header) != DecodeOutcome::kOk || header->record_size() != size ||
      VerifyRecord(record, *header, &k, value) != DecodeOutcome::kOk || k != key) {
    const DataFile* file = files_[location.file].get();
    return Status::Corruption(fmt::format("{}: record at offset {} fails its checksum",
                                          file != nullptr ? file->path : "?", location.offset));
  }
  return Status::OK();
}

bool EngineImpl::ExpiredLocked(const Location& location, const RecordHeader& header) const {
  if (!location.has_expiry()) return false;
  return header.expiry_ms <= static_cast<uint64_t>(clock_->WallMillis());
}

Status EngineImpl::Get(std::string_view key, std::string* value) {
  RKV_RETURN_IF_ERROR(CheckKey(key));
  std::shared_lock l(mu_);
  const Location* location = keydir_.Find(key);
  if (location == nullptr) return Status::NotFound();
  RecordHeader header;
  std::string_view v;
  RKV_RETURN_IF_ERROR(ReadRecordLocked(*location, key, &header, &v));
  if (ExpiredLocked(*location, header)) return Status::NotFound();
  value->assign(v.data(), v.size());
  return Status::OK();
}

Result<std::vector<KeyValue>> EngineImpl::Scan(const ScanOptions& options) {
  const size_t limit = std::min(options.limit, kScanLimitMax);
  std::vector<KeyValue> out;
  if (limit == 0) return out;
  const std::string& start = std::max(options.start, options.prefix);
  for (;;) {
    {
      std::shared_lock l(mu_);
      if (!keydir_.NeedsOrdering()) {
        Status status;
        keydir_.ScanFrom(start, [&](std::string_view key, const Location& location) {
          if (!options.end.empty() && key >= options.end) return false;
          if (!options.prefix.empty() && key.substr(0, options.prefix.size()) != options.prefix) {
            return false;
          }
          if (options.keys_only && !location.has_expiry()) {
            out.push_back(KeyValue{std::string(key), {}});
            return out.size() < limit;
          }
          RecordHeader header;
          std::string_view value;
          status = ReadRecordLocked(location, key, &header, &value);
          if (!status.ok()) return false;
          if (ExpiredLocked(location, header)) return true;
          out.push_back(KeyValue{std::string(key), options.keys_only ? std::string() : std::string(value)});
          return out.size() < limit;
        });
        if (!status.ok()) return status;
        return out;
      }
    }
    std::unique_lock l(mu_);
    keydir_.Order();
  }
}

// ---------------------------------------------------------------------------
// Writes

Status EngineImpl::Put(std::string_view key, std::string_view value, const PutOptions& options) {
  RKV_RETURN_IF_ERROR(CheckKey(key));
  RKV_RETURN_IF_ERROR(CheckValue(value));
  RecordSpec spec{RecordType::kPut, 0, 0, options.expiry_ms, key, value};
  return WriteRecords(std::span<RecordSpec>(&spec, 1), /*batch=*/false);
}

Status EngineImpl::Delete(std::string_view key) {
  RKV_RETURN_IF_ERROR(CheckKey(key));
  RecordSpec spec{RecordType::kDelete, 0, 0, 0, key, {}};
  return WriteRecords(std::span<RecordSpec>(&spec, 1), /*batch=*/false);
}

Status EngineImpl::Write(const WriteBatch& batch) {
  if (batch.count() == 0) return Status::OK();
  std::vector<RecordSpec> specs;
  specs.reserve(batch.count());
  uint64_t bytes = kBatchCommitSize;
  for (const WriteBatch::Op& op : batch.ops()) {
    RKV_RETURN_IF_ERROR(CheckKey(op.key));
    if (op.type == WriteBatch::OpType::kPut) {
      RKV_RETURN_IF_ERROR(CheckValue(op.value));
      specs.push_back(RecordSpec{RecordType::kPut, kRecordFlagBatch, 0, op.expiry_ms, op.key, op.value});
    } else {
      specs.push_back(RecordSpec{RecordType::kDelete, kRecordFlagBatch, 0, 0, op.key, {}});
    }
    bytes += RecordSize(specs.back());
  }
  if (bytes > options_.data_file_size_max - kFileHeaderSize) {
    return Status::InvalidArgument(fmt::format(
        "batch is {} bytes; it must fit in one data file ({} bytes)", bytes, options_.data_file_size_max));
  }
  // The commit record ends the batch: value = the number of records.
  char count[4];
  EncodeFixed32(count, static_cast<uint32_t>(specs.size()));
  specs.push_back(RecordSpec{RecordType::kBatchCommit, 0, 0, 0, {}, std::string_view(count, 4)});
  return WriteRecords(specs, /*batch=*/true);
}

Status EngineImpl::WriteRecords(std::span<RecordSpec> specs, bool batch) {
  std::unique_lock w(write_mu_);
  if (closed_) return Status::ShuttingDown("engine is closed");
  if (!background_error_.ok()) return background_error_;

  if (!batch && specs.size() == 1 && specs[0].type == RecordType::kDelete) {
    std::shared_lock l(mu_);
    if (keydir_.Find(specs[0].key) == nullptr) return Status::OK();  // nothing to delete
  }

  RKV_ASSERT(!batch || specs.back().type == RecordType::kBatchCommit);
  size_t total = 0;
  for (const RecordSpec& spec : specs) total += RecordSize(spec);
  Status s = MakeRoomLocked(total);
  if (!s.ok()) return s;
  // Sequence numbers only after making room: a roll marks everything up to
  // last_seq_ durable, which must not include these records yet.
  for (RecordSpec& spec : specs) spec.seq = ++last_seq_;
  const uint64_t first_offset = active_size_;
  RKV_ASSERT(first_offset + total <= UINT32_MAX);
  if (total <= buf_capacity_ - buf_len_) {
    char* p = buf_.get() + buf_len_;
    for (const RecordSpec& spec : specs) {
      EncodeRecord(spec, p);
      p += RecordSize(spec);
    }
    buf_len_ += total;
  } else {
    // Larger than the whole buffer: MakeRoomLocked flushed it; write directly.
    RKV_ASSERT(buf_len_ == 0);
    std::string direct;
    direct.reserve(total);
    for (const RecordSpec& spec : specs) AppendRecord(spec, &direct);
    s = writer_->Append(direct);
    if (!s.ok()) {
      SetBackgroundErrorLocked(s);
      return s;
    }
    std::unique_lock l(mu_);
    buf_base_ = first_offset + total;
  }
  active_size_ += total;

  {
    std::unique_lock l(mu_);
    uint64_t offset = first_offset;
    for (const RecordSpec& spec : specs) {
      const size_t size = RecordSize(spec);
      if (spec.type == RecordType::kPut) {
        auto loc_size = static_cast<uint32_t>(size);
        if (spec.expiry_ms != 0) loc_size |= Location::kExpiryFlag;
        Location loc{active_->handle, static_cast<uint32_t>(offset), loc_size};
        if (auto prev = keydir_.Put(spec.key, loc)) AddDeadLocked(*prev);
      } else {
        if (spec.type == RecordType::kDelete) {
          if (auto prev = keydir_.Erase(spec.key)) AddDeadLocked(*prev);
        }
        active_->dead_bytes += size;
      }
      offset += size;
    }
    active_->size.store(active_size_);
  }
  stat_writes_.fetch_add(specs.size() - (batch ? 1 : 0), std::memory_order_relaxed);

  const uint64_t my_seq = last_seq_;
  switch (options_.sync_mode) {
    case SyncMode::kAlways:
      s = FlushLocked();
      if (s.ok()) s = SyncActiveLocked();
      return s;
    case SyncMode::kGroup:
      w.unlock();
      return WaitDurable(my_seq);
    case SyncMode::kInterval:
    case SyncMode::kNone:
      return Status::OK();
  }
  return Status::OK();
}

Status EngineImpl::MakeRoomLocked(size_t bytes) {
  if (active_size_ > kFileHeaderSize && active_size_ + bytes > options_.data_file_size_max) {
    RKV_RETURN_IF_ERROR(RollLocked());
  }
  if (bytes > buf_capacity_ - buf_len_) RKV_RETURN_IF_ERROR(FlushLocked());
  return Status::OK();
}

Status EngineImpl::FlushLocked() {
  if (buf_len_ == 0) return Status::OK();
  RKV_ASSERT(buf_base_ + buf_len_ == active_size_);
  Status s = writer_->Append(std::string_view(buf_.get(), buf_len_));
  // Start writing the chunk to disk now (as RocksDB's bytes_per_sync does):
  // the fdatasync at the next roll, Sync() or Close() then waits for little
  // instead of a whole file of dirty pages, with every writer blocked.
  if (s.ok()) s = writer_->StartWriteback(buf_base_, buf_len_);
  if (!s.ok()) {
    SetBackgroundErrorLocked(s);
    return s;
  }
  {
    std::unique_lock l(mu_);
    buf_base_ += buf_len_;
  }
  buf_len_ = 0;
  return Status::OK();
}

Status EngineImpl::SyncActiveLocked() {
  Status s;
  {
    std::lock_guard io(sync_io_mu_);
    s = writer_->Sync();
  }
  stat_syncs_.fetch_add(1, std::memory_order_relaxed);
  if (!s.ok()) {
    SetBackgroundErrorLocked(s);
    return s;
  }
  MarkSynced(last_seq_);
  return Status::OK();
}

void EngineImpl::SetBackgroundErrorLocked(const Status& s) {
  if (background_error_.ok()) {
    RKV_LOG_ERROR("event=storage_write_failed dir={} error=\"{}\" action=refusing_writes", dir_,
                  s.ToString());
    background_error_ = s;
  }
  SetSyncError(s);
}

void EngineImpl::SetSyncError(const Status& s) {
  {
    std::lock_guard l(sync_mu_);
    if (sync_error_.ok()) sync_error_ = s;
  }
  sync_failed_.store(true, std::memory_order_release);
  WakeSyncWaiters();
}

void EngineImpl::WakeSyncWaiters() {
  sync_epoch_.fetch_add(1, std::memory_order_acq_rel);
  sync_epoch_.notify_all();
}

void EngineImpl::MarkSynced(uint64_t seq) {
  uint64_t cur = synced_seq_.load(std::memory_order_acquire);
  while (cur < seq && !synced_seq_.compare_exchange_weak(cur, seq, std::memory_order_acq_rel)) {
  }
  WakeSyncWaiters();
}

Status EngineImpl::RollLocked() {
  RKV_RETURN_IF_ERROR(FlushLocked());
  // Sync the file before starting the next one: then only the newest file
  // can ever have a torn tail, and recovery treats a bad record anywhere
  // else as corruption.
  Status s;
  {
    std::lock_guard io(sync_io_mu_);
    s = writer_->Sync();
    if (s.ok()) s = writer_->Close();
    ++active_generation_;
  }
  stat_syncs_.fetch_add(1, std::memory_order_relaxed);
  if (!s.ok()) {
    SetBackgroundErrorLocked(s);
    return s;
  }
  MarkSynced(last_seq_);
  const uint64_t old_id = active_->id;
  s = CreateActiveFileLocked(NextActiveId());
  if (!s.ok()) {
    SetBackgroundErrorLocked(s);
    return s;
  }
  if (options_.background_merge) {
    {
      std::lock_guard l(bg_mu_);
      hint_queue_.push_back(old_id);  // also wakes the loop to look for merge work
    }
    bg_cv_.notify_one();
  }
  return Status::OK();
}

Status EngineImpl::CreateActiveFileLocked(uint64_t id) {
  const std::string path = JoinPath(dir_, DataFileName(id));
  RKV_ASSIGN_OR_RETURN(std::unique_ptr<WritableFile> writer, env_->NewWritableFile(path));
  RKV_RETURN_IF_ERROR(writer->Append(EncodeFileHeader(kDataMagic, id)));
  // The new file's directory entry must be durable before anything synced
  // into the file is promised durable.
  RKV_RETURN_IF_ERROR(env_->SyncDir(dir_));
  Status s;
  std::shared_ptr<DataFile> file = OpenDataFile(id, map_bytes_, &s);
  if (file == nullptr) return s;
  file->size.store(kFileHeaderSize);
  {
    std::lock_guard io(sync_io_mu_);
    writer_ = std::move(writer);
  }
  {
    std::unique_lock l(mu_);
    RegisterFileLocked(file);
    active_ = file;
    buf_base_ = kFileHeaderSize;
  }
  active_size_ = kFileHeaderSize;
  buf_len_ = 0;
  max_file_id_ = std::max(max_file_id_, id);
  return Status::OK();
}

Status EngineImpl::WaitDurable(uint64_t seq) {
  for (;;) {
    if (synced_seq_.load(std::memory_order_acquire) >= seq) return Status::OK();
    if (sync_failed_.load(std::memory_order_acquire)) {
      std::lock_guard l(sync_mu_);
      return sync_error_;
    }
    // Read the epoch before checking for a running sync: a sync that ends
    // after this point changes the epoch, so the wait below returns at once.
    const uint32_t epoch = sync_epoch_.load(std::memory_order_acquire);
    bool expected = false;
    if (syncing_.compare_exchange_strong(expected, true, std::memory_order_acq_rel)) {
      // Become the syncer for everyone waiting: one fdatasync covers every
      // write buffered before it starts.
      uint64_t covered = 0;
      Status s = SyncNow(&covered);
      syncing_.store(false, std::memory_order_release);
      if (s.ok()) {
        MarkSynced(covered);
      } else {
        SetSyncError(s);
      }
      continue;
    }
    if (synced_seq_.load(std::memory_order_acquire) >= seq) return Status::OK();
    sync_epoch_.wait(epoch, std::memory_order_acquire);
  }
}

Status EngineImpl::SyncNow(uint64_t* covered) {
  WritableFile* writer = nullptr;
  uint64_t generation = 0;
  {
    std::lock_guard w(write_mu_);
    if (closed_) return Status::ShuttingDown("engine is closed");
    if (!background_error_.ok()) return background_error_;
    RKV_RETURN_IF_ERROR(FlushLocked());
    *covered = last_seq_;
    writer = writer_.get();
    generation = active_generation_;
  }
  Status s;
  bool rolled = false;
  {
    std::lock_guard io(sync_io_mu_);
    rolled = generation != active_generation_;
    if (!rolled) s = writer->Sync();
  }
  if (rolled) {
    // A roll synced that file, or failed to and recorded why.
    std::lock_guard w(write_mu_);
    return background_error_;
  }
  stat_syncs_.fetch_add(1, std::memory_order_relaxed);
  if (!s.ok()) {
    std::lock_guard w(write_mu_);
    SetBackgroundErrorLocked(s);
  }
  return s;
}

Status EngineImpl::Sync() {
  uint64_t covered = 0;
  RKV_RETURN_IF_ERROR(SyncNow(&covered));
  MarkSynced(covered);
  return Status::OK();
}

// ---------------------------------------------------------------------------
// Views

Result<std::unique_ptr<View>> EngineImpl::CreateView() {
  std::vector<View::File> files;
  std::vector<std::shared_ptr<DataFile>> pinned;
  {
    std::lock_guard w(write_mu_);
    if (closed_) return Status::ShuttingDown("engine is closed");
    RKV_RETURN_IF_ERROR(FlushLocked());
    std::shared_lock l(mu_);
    for (const auto& [id, file] : by_id_) {
      const bool active = file == active_;
      const uint64_t size = active ? active_size_ : file->size.load();
      files.push_back(View::File{id, file->path, size,
                                 !active && file->has_hint ? file->hint_path : std::string()});
      pinned.push_back(file);
    }
  }
  views_.fetch_add(1);
  return std::unique_ptr<View>(std::make_unique<ViewImpl>(this, std::move(files), std::move(pinned)));
}

void EngineImpl::ReleaseView() {
  views_.fetch_sub(1);
  CollectObsolete();
}

void EngineImpl::CollectObsolete() {
  std::vector<std::shared_ptr<DataFile>> doomed;
  {
    std::unique_lock l(mu_);
    // Oldest first, and stop at the first file still pinned: deleting a newer
    // file (holding a tombstone) before an older one (holding the value it
    // deleted) could bring the value back after a crash.
    while (!obsolete_.empty() && obsolete_.front().use_count() == 1) {
      doomed.push_back(std::move(obsolete_.front()));
      obsolete_.erase(obsolete_.begin());
    }
  }
  for (const auto& file : doomed) {
    Status s = env_->DeleteFile(file->path);
    if (s.ok() && env_->FileExists(file->hint_path)) s = env_->DeleteFile(file->hint_path);
    if (s.ok()) s = env_->SyncDir(dir_);
    if (!s.ok()) {
      RKV_LOG_WARN("event=delete_merged_file_failed file={} error=\"{}\"", file->path, s.ToString());
    }
  }
}

// ---------------------------------------------------------------------------
// Hints and merge

Status EngineImpl::BuildHint(const std::shared_ptr<DataFile>& file, uint64_t size) {
  HintWriter hint(file->id);
  ScanResult result;
  RKV_RETURN_IF_ERROR(ScanRecords(
      *file->reader, kFileHeaderSize, size,
      [&](const ScannedRecord& r) {
        hint.Add(r.header, r.offset, r.key);
        return Status::OK();
      },
      &result));
  if (result.valid_end != size) {
    return Status::Corruption(fmt::format("{}: bad record at offset {} while writing its hint file",
                                          file->path, result.valid_end));
  }
  RKV_RETURN_IF_ERROR(WriteHintFile(env_, file->hint_path, hint.Finish(size)));
  std::unique_lock l(mu_);
  file->has_hint = true;
  return Status::OK();
}

Status EngineImpl::Merge() { return DoMerge(); }

namespace {

// A file merge is writing.
struct MergeOutput {
  struct Move {
    std::string key;
    Location from;
    uint32_t offset;
    uint32_t size;
  };
  uint64_t id = 0;
  std::string tmp_path;
  std::unique_ptr<WritableFile> writer;
  std::string pending;  // encoded, not yet appended
  uint64_t size = 0;
  std::unique_ptr<HintWriter> hint;
  std::vector<Move> moves;
};

}  // namespace

Status EngineImpl::DoMerge() {
  std::lock_guard merge_lock(merge_mu_);
  std::vector<std::shared_ptr<DataFile>> inputs;
  std::vector<uint64_t> immutable_ids;
  uint64_t active_id = 0;
  uint64_t planned_bytes = 0;  // of the inputs, for the log line
  uint64_t planned_dead = 0;
  {
    std::shared_lock l(mu_);
    if (active_ == nullptr) return Status::OK();
    active_id = active_->id;
    for (const auto& [id, file] : by_id_) {
      if (file == active_) continue;
      immutable_ids.push_back(id);
      const uint64_t payload = file->size.load() - kFileHeaderSize;
      if (payload > 0 && file->dead_bytes >= options_.merge_dead_bytes_min &&
          static_cast<double>(file->dead_bytes) >= options_.merge_dead_fraction_min * static_cast<double>(payload)) {
        inputs.push_back(file);
        planned_bytes += file->size.load();
        planned_dead += file->dead_bytes;
      }
    }
  }
  if (inputs.empty()) return Status::OK();
  const uint64_t merge_start_us = static_cast<uint64_t>(clock_->NowMicros());
  // A merge can run for minutes on large files; its start says what it took on.
  RKV_LOG_INFO("event=merge_start dir={} files_in={} bytes_in={} dead_bytes={} immutable_files={}", dir_,
               inputs.size(), planned_bytes, planned_dead, immutable_ids.size());
  uint64_t next_id = immutable_ids.back() + 1;

  // A tombstone may be dropped only when every file older than its own is
  // being merged too: otherwise an older file that stays could still hold
  // the value it deleted.
  std::set<uint64_t> input_ids;
  for (const auto& f : inputs) input_ids.insert(f->id);

  uint64_t bytes_done = 0;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  const auto throttle = [&](uint64_t bytes) {
    bytes_done += bytes;
    if (options_.merge_bytes_per_second_max == 0) return;
    const uint64_t due_us = bytes_done * 1'000'000 / options_.merge_bytes_per_second_max;
    const auto elapsed_us = static_cast<uint64_t>(clock_->NowMicros()) - merge_start_us;
    if (due_us > elapsed_us) std::this_thread::sleep_for(std::chrono::microseconds(due_us - elapsed_us));
  };

  std::unique_ptr<MergeOutput> out;
  const auto flush_pending = [&]() -> Status {
    if (out->pending.empty()) return Status::OK();
    Status s = out->writer->Append(out->pending);
    out->pending.clear();
    return s;
  };
  const auto finish_output = [&]() -> Status {
    RKV_RETURN_IF_ERROR(flush_pending());
    RKV_RETURN_IF_ERROR(out->writer->Sync());
    RKV_RETURN_IF_ERROR(out->writer->Close());
    const std::string path = JoinPath(dir_, DataFileName(out->id));
    RKV_RETURN_IF_ERROR(env_->RenameFile(out->tmp_path, path));
    RKV_RETURN_IF_ERROR(WriteHintFile(env_, JoinPath(dir_, HintFileName(out->id)), out->hint->Finish(out->size)));
    RKV_RETURN_IF_ERROR(env_->SyncDir(dir_));
    Status s;
    std::shared_ptr<DataFile> file = OpenDataFile(out->id, out->size, &s);
    if (file == nullptr) return s;
    file->size.store(out->size);
    file->has_hint = true;
    {
      std::unique_lock l(mu_);
      RegisterFileLocked(file);
      for (const MergeOutput::Move& m : out->moves) {
        Location to{file->handle, m.offset, m.size};
        if (keydir_.ReplaceIf(m.key, m.from, to)) {
          AddDeadLocked(m.from);
        } else {
          file->dead_bytes += to.record_size();  // a writer replaced it meanwhile
        }
      }
    }
    bytes_out += out->size;
    out.reset();
    return Status::OK();
  };
  const auto add = [&](const ScannedRecord& r, const Location* from) -> Status {
    RecordSpec spec{r.header.type, 0, r.header.seq, r.header.expiry_ms, r.key, r.value};
    const size_t size = RecordSize(spec);
    if (out != nullptr && out->size + size > options_.data_file_size_max) RKV_RETURN_IF_ERROR(finish_output());
    if (out == nullptr) {
      if (next_id >= active_id) return Status::Aborted("no file id left below the active file");
      auto next = std::make_unique<MergeOutput>();
      next->id = next_id++;
      next->tmp_path = JoinPath(dir_, DataFileName(next->id) + ".tmp");
      RKV_ASSIGN_OR_RETURN(next->writer, env_->NewWritableFile(next->tmp_path));
      out = std::move(next);
      out->pending = EncodeFileHeader(kDataMagic, out->id);
      out->size = kFileHeaderSize;
      out->hint = std::make_unique<HintWriter>(out->id);
    }
    const uint64_t offset = out->size;
    AppendRecord(spec, &out->pending);
    RecordHeader h = r.header;
    h.flags = static_cast<uint8_t>(h.flags & ~kRecordFlagBatch);
    out->hint->Add(h, offset, r.key);
    out->size += size;
    if (from != nullptr) {
      out->moves.push_back(MergeOutput::Move{std::string(r.key), *from, static_cast<uint32_t>(offset),
                                             LocationSize(h)});
    }
    if (out->pending.size() >= (1u << 20)) RKV_RETURN_IF_ERROR(flush_pending());
    return Status::OK();
  };

  Status status;
  for (const auto& input : inputs) {
    const bool tombstones_droppable =
        std::all_of(immutable_ids.begin(), immutable_ids.end(),
                    [&](uint64_t id) { return id >= input->id || input_ids.count(id) > 0; });
    const uint64_t size = input->size.load();
    ScanResult result;
    status = ScanRecords(
        *input->reader, kFileHeaderSize, size,
        [&](const ScannedRecord& r) -> Status {
          if (stopping()) return Status::Aborted("engine is closing");
          throttle(r.header.record_size());
          if (r.header.type == RecordType::kPut) {
            const Location here{input->handle, static_cast<uint32_t>(r.offset), LocationSize(r.header)};
            bool live;
            {
              std::shared_lock l(mu_);
              const Location* now = keydir_.Find(r.key);
              live = now != nullptr && *now == here;
            }
            return live ? add(r, &here) : Status::OK();
          }
          bool present;
          {
            std::shared_lock l(mu_);
            present = keydir_.Find(r.key) != nullptr;
          }
          // A newer put of the key exists, or nothing older can hold it.
          if (present || tombstones_droppable) return Status::OK();
          return add(r, nullptr);
        },
        &result);
    if (!status.ok()) break;
    bytes_in += size;
  }
  if (status.ok() && out != nullptr) status = finish_output();
  if (!status.ok()) {
    // Inputs stay; whatever outputs finished hold copies, which is harmless.
    if (out != nullptr) {
      RKV_ASSERT(out->writer != nullptr);
      (void)out->writer->Close();
      (void)env_->DeleteFile(out->tmp_path);
    }
    if (status.code() != StatusCode::kAborted) {
      RKV_LOG_WARN("event=merge_failed dir={} error=\"{}\"", dir_, status.ToString());
    }
    return status;
  }

  {
    std::unique_lock l(mu_);
    for (const auto& input : inputs) RetireFileLocked(input);
  }
  inputs.clear();
  const uint64_t merge_us = static_cast<uint64_t>(clock_->NowMicros()) - merge_start_us;
  merge_seconds_.Observe(static_cast<double>(merge_us) / 1e6);
  stat_merges_.fetch_add(1);
  if (bytes_in > bytes_out) stat_merge_reclaimed_.fetch_add(bytes_in - bytes_out);
  RKV_LOG_INFO("event=merge dir={} files_in={} bytes_in={} bytes_out={} ms={}", dir_, input_ids.size(),
               bytes_in, bytes_out, merge_us / 1000);
  CollectObsolete();
  return Status::OK();
}

void EngineImpl::BackgroundLoop() {
  const auto period = std::chrono::milliseconds(
      options_.sync_mode == SyncMode::kInterval ? std::max<uint32_t>(options_.sync_interval_ms, 1) : 1000);
  for (;;) {
    std::vector<uint64_t> hints;
    {
      std::unique_lock l(bg_mu_);
      bg_cv_.wait_for(l, period, [&] { return stopping() || !hint_queue_.empty(); });
      if (stopping()) return;
      hints.swap(hint_queue_);
    }
    if (options_.sync_mode == SyncMode::kInterval) {
      Status s = Sync();
      if (!s.ok() && s.code() != StatusCode::kShuttingDown) {
        RKV_LOG_ERROR("event=interval_sync_failed dir={} error=\"{}\"", dir_, s.ToString());
      }
    }
    for (uint64_t id : hints) {
      // Under merge_mu_: a merge must not retire (and then fail to delete)
      // a file this loop holds a reference to.
      std::lock_guard merge_lock(merge_mu_);
      std::shared_ptr<DataFile> file;
      {
        std::shared_lock l(mu_);
        auto it = by_id_.find(id);
        if (it != by_id_.end() && it->second != active_) file = it->second;
      }
      if (file == nullptr) continue;
      Status s = BuildHint(file, file->size.load());
      if (!s.ok()) RKV_LOG_WARN("event=hint_failed file={} error=\"{}\"", file->path, s.ToString());
    }
    if (options_.background_merge) {
      Status s = DoMerge();
      (void)s;  // DoMerge logs its failures
    }
  }
}

// ---------------------------------------------------------------------------

Stats EngineImpl::GetStats() {
  Stats stats;
  std::shared_lock l(mu_);
  stats.keys = keydir_.size();
  stats.keydir_bytes = keydir_.MemoryBytes();
  stats.data_files = by_id_.size();
  for (const auto& [id, file] : by_id_) {
    stats.data_bytes += file->size.load();
    stats.dead_bytes += file->dead_bytes;
  }
  stats.pinned_files = obsolete_.size();
  stats.merges = stat_merges_.load();
  stats.merge_bytes_reclaimed = stat_merge_reclaimed_.load();
  stats.syncs = stat_syncs_.load();
  stats.writes = stat_writes_.load();
  stats.recovered_hint_files = stat_hint_files_;
  stats.recovered_scanned_files = stat_scanned_files_;
  stats.truncated_tail_bytes = stat_truncated_;
  stats.salvaged_bytes = stat_salvaged_;
  return stats;
}

void EngineImpl::CollectMetrics(metrics::Registry::Collector& out) const {
  uint64_t keys = 0;
  uint64_t keydir_bytes = 0;
  uint64_t data_files = 0;
  uint64_t data_bytes = 0;
  uint64_t dead_bytes = 0;
  uint64_t pinned_files = 0;
  {
    // Only the counts under the lock; the collector's work comes after it,
    // so a scrape holds up writers no longer than GetStats does.
    std::shared_lock l(mu_);
    keys = keydir_.size();
    keydir_bytes = keydir_.MemoryBytes();
    data_files = by_id_.size();
    for (const auto& [id, file] : by_id_) {
      data_bytes += file->size.load();
      dead_bytes += file->dead_bytes;
    }
    pinned_files = obsolete_.size();
  }
  auto d = [](uint64_t v) { return static_cast<double>(v); };
  out.Gauge("raft_kv_engine_keys", "Live keys in the storage engine.", d(keys));
  out.Gauge("raft_kv_engine_data_files", "Data files of the storage engine (the active one included).",
            d(data_files));
  // Dead bytes are what merge can reclaim; live is the rest of the files
  // (their records and headers).
  out.Gauge("raft_kv_engine_live_bytes",
            "Bytes of the engine's data files not known to be dead (live records and file headers).",
            d(data_bytes >= dead_bytes ? data_bytes - dead_bytes : 0));
  out.Gauge("raft_kv_engine_dead_bytes",
            "Bytes of overwritten or deleted records in the engine's data files, which a merge reclaims.",
            d(dead_bytes));
  out.Gauge("raft_kv_engine_keydir_memory_bytes", "Memory held by the engine's in-memory key index.",
            d(keydir_bytes));
  out.Gauge("raft_kv_engine_pinned_files",
            "Merged-away data files kept on disk because a view (a snapshot being sent) still uses them.",
            d(pinned_files));
  out.Counter("raft_kv_engine_merges_total", "Merges of data files completed since the engine was opened.",
              d(stat_merges_.load()));
  out.Histogram("raft_kv_engine_merge_duration_seconds", "Time each completed merge of data files took.",
                merge_seconds_);
  out.Counter("raft_kv_engine_merge_reclaimed_bytes_total",
              "Bytes of data files that merges freed since the engine was opened.",
              d(stat_merge_reclaimed_.load()));
  out.Counter("raft_kv_engine_fsyncs_total", "fdatasyncs of engine data files since the engine was opened.",
              d(stat_syncs_.load()));
  out.Counter("raft_kv_engine_records_written_total",
              "Puts and deletes written to data files since the engine was opened.",
              d(stat_writes_.load()));
}

Status EngineImpl::Close() {
  {
    std::lock_guard l(bg_mu_);
    stopping_.store(true);
  }
  bg_cv_.notify_all();
  if (background_.joinable()) background_.join();

  std::lock_guard w(write_mu_);
  if (closed_ || writer_ == nullptr) {
    closed_ = true;
    return Status::OK();
  }
  Status s = background_error_;
  if (s.ok()) s = FlushLocked();
  if (s.ok()) s = SyncActiveLocked();
  if (s.ok()) {
    // Hint files for every file still without one (the active file, and
    // files rolled too recently for the background thread) make the next
    // open read no values.
    std::vector<std::pair<std::shared_ptr<DataFile>, uint64_t>> missing;
    {
      std::shared_lock l(mu_);
      for (const auto& [id, file] : by_id_) {
        if (file == active_ || !file->has_hint) missing.emplace_back(file, file == active_ ? active_size_ : file->size.load());
      }
    }
    for (const auto& [file, size] : missing) {
      Status hs = BuildHint(file, size);
      if (!hs.ok()) RKV_LOG_WARN("event=hint_failed file={} error=\"{}\"", file->path, hs.ToString());
    }
  }
  Status cs = writer_->Close();
  if (s.ok()) s = cs;
  closed_ = true;
  SetSyncError(Status::ShuttingDown("engine is closed"));
  lock_.reset();
  return s;
}

}  // namespace rkv::storage
