#include "wal/wal.h"

#include <fmt/format.h>

#include <algorithm>
#include <utility>

#include "common/assert.h"
#include "common/logging.h"

namespace rkv::wal {

namespace {
uint64_t Relaxed(const std::atomic<uint64_t>& counter) {
  return counter.load(std::memory_order_relaxed);
}
void Bump(std::atomic<uint64_t>& counter, uint64_t n = 1) {
  counter.fetch_add(n, std::memory_order_relaxed);
}
}  // namespace

Wal::Wal(Env* env, std::string dir, WalOptions options)
    : env_(env),
      clock_(options.clock != nullptr ? options.clock : Clock::Real()),
      dir_(std::move(dir)),
      options_(std::move(options)) {}

Wal::~Wal() {
  if (file_ != nullptr) (void)file_->Close();
}

Result<std::unique_ptr<Wal>> Wal::Open(Env* env, std::string dir, WalOptions options) {
  if (options.segment_size == 0) return Status::InvalidArgument("segment_size must be positive");
  if (options.bootstrap) {
    Status s = raft::CheckConfiguration(*options.bootstrap);
    if (!s.ok()) return Status::InvalidArgument("bootstrap configuration: " + s.message());
  }
  std::unique_ptr<Wal> wal(new Wal(env, std::move(dir), std::move(options)));
  if (!env->FileExists(wal->dir_)) {
    if (!wal->options_.bootstrap) return Status::NotFound(fmt::format("{} does not exist", wal->dir_));
    RKV_RETURN_IF_ERROR(env->CreateDir(wal->dir_));
    // The directory's own entry must be durable, or a crash loses it with
    // every segment synced inside it.
    RKV_RETURN_IF_ERROR(env->SyncDir(ParentDir(wal->dir_)));
  }
  RKV_ASSIGN_OR_RETURN(wal->lock_, env->LockFile(JoinPath(wal->dir_, "LOCK")));
  RKV_RETURN_IF_ERROR(wal->Recover());
  return wal;
}

// ---- Recovery. ----

Status Wal::Recover() {
  RKV_ASSIGN_OR_RETURN(std::vector<std::string> names, env_->GetChildren(dir_));
  std::vector<uint64_t> seqs;
  for (const std::string& name : names) {
    uint64_t seq = 0;
    if (ParseSegmentFileName(name, &seq)) seqs.push_back(seq);
  }
  std::sort(seqs.begin(), seqs.end());

  // A newest segment without a whole header was being started when the
  // process died: a segment is created only after everything before it is
  // durable, and nothing goes into it before its header and preamble are,
  // so it holds nothing. (A segment of zeros is the same, on file systems
  // that make the size durable before the data.)
  while (!seqs.empty()) {
    const std::string path = JoinPath(dir_, SegmentFileName(seqs.back()));
    RKV_ASSIGN_OR_RETURN(uint64_t size, env_->GetFileSize(path));
    bool partial = size < kSegmentHeaderSize;
    if (!partial) {
      RKV_ASSIGN_OR_RETURN(std::unique_ptr<RandomAccessFile> file, env_->NewRandomAccessFile(path));
      std::string scratch(kSegmentHeaderSize, '\0');
      std::string_view header;
      RKV_RETURN_IF_ERROR(file->Read(0, kSegmentHeaderSize, scratch.data(), &header));
      partial = std::all_of(header.begin(), header.end(), [](char c) { return c == '\0'; });
    }
    if (!partial) break;
    if (seqs.size() == 1 && seqs.back() != 1) {
      return Status::Corruption(fmt::format(
          "{}: the only segment has no header, and the segments before it are missing", path));
    }
    RKV_LOG_WARN("event=wal_remove_partial_segment file={} bytes={}", path, size);
    RKV_RETURN_IF_ERROR(env_->DeleteFile(path));
    RKV_RETURN_IF_ERROR(env_->SyncDir(dir_));
    seqs.pop_back();
  }
  if (seqs.empty()) return Bootstrap();

  for (size_t i = 1; i < seqs.size(); ++i) {
    if (seqs[i] != seqs[i - 1] + 1) {
      return Status::Corruption(fmt::format("{}: segment {} is missing (found {} and {})", dir_,
                                            SegmentFileName(seqs[i - 1] + 1),
                                            SegmentFileName(seqs[i - 1]), SegmentFileName(seqs[i])));
    }
  }

  Replayed last;
  for (size_t i = 0; i < seqs.size(); ++i) {
    Segment segment{seqs[i], LogIndex{0}, JoinPath(dir_, SegmentFileName(seqs[i]))};
    const bool is_last = i + 1 == seqs.size();
    Replayed replayed;
    RKV_RETURN_IF_ERROR(ReplaySegment(&segment, i == 0, is_last, &replayed));
    if (is_last && replayed.preamble_end == 0) {
      // The newest segment's preamble never became durable: it was being
      // started, and holds nothing (see above).
      if (i == 0) {
        if (segment.seq != 1) {
          return Status::Corruption(fmt::format(
              "{}: the only segment has no preamble, and the segments before it are missing",
              segment.path));
        }
        RKV_LOG_WARN("event=wal_remove_partial_segment file={} bytes={}", segment.path,
                     replayed.file_size);
        RKV_RETURN_IF_ERROR(env_->DeleteFile(segment.path));
        RKV_RETURN_IF_ERROR(env_->SyncDir(dir_));
        return Bootstrap();
      }
      RKV_LOG_WARN("event=wal_remove_partial_segment file={} bytes={}", segment.path,
                   replayed.file_size);
      RKV_RETURN_IF_ERROR(env_->DeleteFile(segment.path));
      RKV_RETURN_IF_ERROR(env_->SyncDir(dir_));
      break;
    }
    segments_.push_back(std::move(segment));
    last = replayed;
  }

  // The oldest segment left may start after the snapshot it restates (its
  // predecessors were deleted); a compaction or snapshot record further on
  // must then cover the gap.
  if (base_ != snapshot_.last_index + 1) {
    return Status::Corruption(fmt::format(
        "{}: the log has no entries {}..{}: a segment before it is missing",
        segments_.front().path, (snapshot_.last_index + 1).value(), (base_ - 1).value()));
  }

  counters_.segments.store(segments_.size(), std::memory_order_relaxed);
  RKV_RETURN_IF_ERROR(OpenForAppend(last));
  // A crash may have come between a compaction's sync and its deletions.
  RKV_RETURN_IF_ERROR(DeleteObsoleteSegments());
  RKV_LOG_INFO(
      "event=wal_open dir={} segments={} first_index={} last_index={} term={} commit={} "
      "truncated_bytes={}",
      dir_, segments_.size(), FirstIndex().value(), LastIndex().value(),
      hard_state_.current_term.value(), hard_state_.commit_index.value(), Relaxed(counters_.truncated_bytes));
  return Status::OK();
}

Status Wal::ReplaySegment(Segment* segment, bool first, bool last, Replayed* replayed) {
  RKV_ASSIGN_OR_RETURN(std::string data, ReadFileToString(env_, segment->path));
  replayed->file_size = data.size();
  SegmentHeader header;
  Status hs = DecodeSegmentHeader(data, &header);
  if (hs.ok() && header.seq != segment->seq) {
    hs = Status::Corruption(fmt::format("header names segment {}", header.seq));
  }
  if (!hs.ok()) {
    const std::string message = fmt::format("{}: {}", segment->path, hs.message());
    return hs.IsCorruption() ? Status::Corruption(message) : Status::NotSupported(message);
  }
  segment->first_index = header.first_index;

  bool preamble = true;
  ScanResult result;
  Status s = ScanSegment(
      data,
      [&](const ScannedBatch& batch) -> Status {
        if (preamble) {
          preamble = false;
          const ScannedRecord& r = batch.front();
          if (batch.size() != 1 || r.record.type != RecordType::kState) {
            return Status::Corruption(
                fmt::format("offset {}: the segment does not start with a state record", r.offset));
          }
          replayed->preamble_end = r.offset + r.size;
          if (first) {
            hard_state_ = r.record.hard_state;
            snapshot_ = r.record.snapshot;
            configuration_ = r.record.configuration;
            base_ = header.first_index;
            if (base_ <= snapshot_.last_index) {
              return Status::Corruption(fmt::format(
                  "offset {}: the segment starts at index {}, not after its snapshot at {}",
                  r.offset, base_.value(), snapshot_.last_index.value()));
            }
          } else if (header.first_index != LastIndex() + 1 ||
                     r.record.snapshot != snapshot_ || r.record.hard_state != hard_state_ ||
                     r.record.configuration != configuration_) {
            // A segment restates the state the segments before it built:
            // a mismatch means records before it were lost.
            return Status::Corruption(fmt::format(
                "offset {}: the segment starts at index {} after a snapshot at {}, but the "
                "segments before it end at index {} after a snapshot at {}",
                r.offset, header.first_index.value(), r.record.snapshot.last_index.value(),
                LastIndex().value(), snapshot_.last_index.value()));
          }
          return Status::OK();
        }
        for (const ScannedRecord& r : batch) {
          Status a = ApplyReplayed(r.record);
          if (!a.ok()) {
            return Status::Corruption(fmt::format("offset {}: {} record: {}", r.offset,
                                                  RecordTypeName(r.record.type), a.message()));
          }
        }
        return Status::OK();
      },
      &result);
  if (!s.ok()) return Status::Corruption(fmt::format("{}: {}", segment->path, s.message()));
  replayed->valid_end = result.valid_end;
  replayed->stop_reason = result.stop_reason;
  if (replayed->preamble_end == 0) {
    // Nothing complete after the header. In the newest segment that is a
    // segment being started when the process died, if the preamble is cut
    // off by the end of the file (or only zeros follow the header); a
    // preamble that is garbage with bytes after it is corruption.
    if (last) {
      RecordHeader h;
      const std::string_view rest = std::string_view(data).substr(kSegmentHeaderSize);
      const DecodeOutcome o = DecodeRecordHeader(rest, &h);
      replayed->preamble_torn = result.stop_reason.empty() || o == DecodeOutcome::kTruncated ||
                                (o == DecodeOutcome::kOk && h.record_size() >= rest.size());
    }
    if (!replayed->preamble_torn) {
      return Status::Corruption(fmt::format("{}: no valid state record at offset {} ({})",
                                            segment->path, kSegmentHeaderSize,
                                            result.stop_reason.empty() ? "only zeros follow the header"
                                                                       : result.stop_reason));
    }
    return Status::OK();
  }
  if (!result.stop_reason.empty() && !last) {
    // Only the newest segment can have a torn tail: a segment is synced
    // before the next one is started.
    return Status::Corruption(fmt::format("{}: bad record at offset {} ({}); {} bytes follow it",
                                          segment->path, result.stop_offset, result.stop_reason,
                                          data.size() - result.stop_offset));
  }
  return Status::OK();
}

Status Wal::ApplyReplayed(const Record& record) {
  switch (record.type) {
    case RecordType::kState:
      return Status::Corruption("a state record may only start a segment");
    case RecordType::kEntry:
      if (record.entry.index != LastIndex() + 1) {
        return Status::Corruption(fmt::format("entry {} does not follow the last index {}",
                                              record.entry.index.value(), LastIndex().value()));
      }
      DoAppend(record.entry);
      return Status::OK();
    case RecordType::kHardState:
      hard_state_ = record.hard_state;
      return Status::OK();
    case RecordType::kSnapshot:
      if (record.snapshot.last_index <= snapshot_.last_index) {
        return Status::Corruption(fmt::format("snapshot at {} is not newer than the one at {}",
                                              record.snapshot.last_index.value(),
                                              snapshot_.last_index.value()));
      }
      DoApplySnapshot(record.snapshot);
      return Status::OK();
    case RecordType::kCompact: {
      const LogIndex index = record.snapshot.last_index;
      if (index <= snapshot_.last_index || index > LastIndex()) {
        return Status::Corruption(fmt::format("compaction to {} outside the log {}..{}", index.value(),
                                              snapshot_.last_index.value(), LastIndex().value()));
      }
      if (index >= base_ && entries_[index - base_].term != record.snapshot.last_term) {
        return Status::Corruption(fmt::format("compaction to {} names term {}, the entry has {}",
                                              index.value(), record.snapshot.last_term.value(),
                                              entries_[index - base_].term.value()));
      }
      DoCompact(record.snapshot);
      return Status::OK();
    }
    case RecordType::kTruncate:
      if (record.index <= snapshot_.last_index || record.index > LastIndex()) {
        return Status::Corruption(fmt::format("truncation at {} outside the log {}..{}",
                                              record.index.value(), snapshot_.last_index.value(),
                                              LastIndex().value()));
      }
      DoTruncate(record.index);
      return Status::OK();
    case RecordType::kConfiguration:
      configuration_ = record.configuration;
      return Status::OK();
  }
  return Status::Corruption("unknown record type");
}

Status Wal::Bootstrap() {
  if (!options_.bootstrap) return Status::NotFound(fmt::format("{}: no WAL segments", dir_));
  hard_state_ = {};
  configuration_ = *options_.bootstrap;
  snapshot_ = {LogIndex{0}, Term{0}, configuration_};
  base_ = LogIndex{1};
  entries_.clear();
  RKV_RETURN_IF_ERROR(CreateSegment(1));
  RKV_LOG_INFO("event=wal_bootstrap dir={} voters={} learners={}", dir_,
               configuration_.voters.size(), configuration_.learners.size());
  return Status::OK();
}

Status Wal::OpenForAppend(const Replayed& replayed) {
  const Segment& segment = segments_.back();
  const bool cut = replayed.valid_end < replayed.file_size;
  if (cut) {
    const uint64_t bytes = replayed.file_size - replayed.valid_end;
    if (replayed.stop_reason.empty()) {
      // Zeros after the last record (preallocated space): not a loss, but
      // appends go to the end of the file, so they must go.
      RKV_LOG_INFO("event=wal_trim_padding file={} offset={} bytes={}", segment.path,
                   replayed.valid_end, bytes);
    } else {
      RKV_LOG_WARN("event=wal_truncate_tail file={} offset={} bytes={} reason=\"{}\"", segment.path,
                   replayed.valid_end, bytes, replayed.stop_reason);
      Bump(counters_.truncated_bytes, bytes);
    }
    RKV_RETURN_IF_ERROR(env_->TruncateFile(segment.path, replayed.valid_end));
  }
  RKV_ASSIGN_OR_RETURN(file_, env_->NewAppendableFile(segment.path));
  RKV_ASSERT(file_->Size() == replayed.valid_end);
  // Make the cut durable now, so a crash before the next Sync cannot bring
  // the torn bytes back under records appended after them.
  if (cut) RKV_RETURN_IF_ERROR(file_->Sync());
  file_size_ = replayed.valid_end;
  preamble_end_ = replayed.preamble_end;
  return Status::OK();
}

// ---- The state changes. ----

void Wal::DoTruncate(LogIndex index) {
  if (index < base_) {
    entries_.clear();
    base_ = index;
  } else {
    entries_.resize(index - base_);
  }
}

void Wal::DoAppend(raft::Entry entry) { entries_.push_back(std::move(entry)); }

void Wal::DoApplySnapshot(const raft::SnapshotMetadata& snapshot) {
  snapshot_ = snapshot;
  configuration_ = snapshot.configuration;
  entries_.clear();
  base_ = snapshot.last_index + 1;
}

void Wal::DoCompact(const raft::SnapshotMetadata& snapshot) {
  if (snapshot.last_index >= base_) {
    const uint64_t drop = std::min<uint64_t>(entries_.size(), snapshot.last_index - base_ + 1);
    entries_.erase(entries_.begin(), entries_.begin() + static_cast<std::ptrdiff_t>(drop));
    base_ = snapshot.last_index + 1;
  }
  snapshot_ = snapshot;
}

// ---- Reads. ----

raft::InitialState Wal::GetInitialState() const { return {hard_state_, configuration_}; }

LogIndex Wal::FirstIndex() const { return snapshot_.last_index + 1; }

LogIndex Wal::LastIndex() const { return LogIndex{base_.value() + entries_.size() - 1}; }

Result<Term> Wal::TermAt(LogIndex index) const {
  const LogIndex snapshot_index = snapshot_.last_index;
  if (index < snapshot_index) return Status::NotFound("compacted");
  if (index > LastIndex()) return Status::NotFound("beyond last index");
  if (index == snapshot_index) return snapshot_.last_term;
  const raft::Entry& e = entries_[index - base_];
  RKV_ASSERT(e.index == index);
  return e.term;
}

Result<std::vector<raft::Entry>> Wal::Entries(LogIndex lo, LogIndex hi, uint64_t max_bytes) const {
  if (lo < FirstIndex()) return Status::NotFound("compacted");
  RKV_ASSERT(lo <= hi);
  RKV_ASSERT(hi <= LastIndex() + 1);
  std::vector<raft::Entry> out;
  uint64_t bytes = 0;
  for (LogIndex i = lo; i < hi; i = i + 1) {
    const raft::Entry& e = entries_[i - base_];
    bytes += raft::EntryBytes(e);
    if (!out.empty() && bytes > max_bytes) break;
    out.push_back(e);
  }
  return out;
}

Result<raft::Snapshot> Wal::GetSnapshot() const { return raft::Snapshot{snapshot_, {}}; }

// ---- Metrics. ----

WalStats Wal::stats() const {
  WalStats s;
  s.syncs = Relaxed(counters_.syncs);
  s.bytes_written = Relaxed(counters_.bytes_written);
  s.segments_created = Relaxed(counters_.segments_created);
  s.segments_deleted = Relaxed(counters_.segments_deleted);
  s.truncated_bytes = Relaxed(counters_.truncated_bytes);
  return s;
}

void Wal::CollectMetrics(metrics::Registry::Collector& out) const {
  out.Histogram("raft_kv_wal_fsync_duration_seconds",
                "Time each fdatasync of a WAL segment file took (group commits and new segments).",
                sync_seconds_);
  out.Counter("raft_kv_wal_fsyncs_total", "fdatasyncs of WAL segment files since the WAL was opened.",
              static_cast<double>(Relaxed(counters_.syncs)));
  out.Counter("raft_kv_wal_bytes_written_total",
              "Bytes appended to WAL segment files (records, segment headers and preambles) since "
              "the WAL was opened.",
              static_cast<double>(Relaxed(counters_.bytes_written)));
  out.Gauge("raft_kv_wal_segments", "WAL segment files on disk now.",
            static_cast<double>(Relaxed(counters_.segments)));
  out.Counter("raft_kv_wal_segments_created_total", "WAL segment files started since the WAL was opened.",
              static_cast<double>(Relaxed(counters_.segments_created)));
  out.Counter("raft_kv_wal_segments_deleted_total",
              "WAL segment files deleted by compaction since the WAL was opened.",
              static_cast<double>(Relaxed(counters_.segments_deleted)));
  out.Gauge("raft_kv_wal_recovery_truncated_bytes",
            "Bytes of torn tail cut from the newest WAL segment when the WAL was opened.",
            static_cast<double>(Relaxed(counters_.truncated_bytes)));
}

std::vector<std::string> Wal::SegmentPaths() const {
  std::vector<std::string> out;
  for (const Segment& s : segments_) out.push_back(s.path);
  return out;
}

// ---- Writes. ----

Status Wal::CheckWritable() const {
  if (!error_.ok()) return error_;
  if (closed_) return Status::ShuttingDown("the WAL is closed");
  return Status::OK();
}

Status Wal::Fail(Status status) {
  RKV_ASSERT(!status.ok());
  if (error_.ok()) {
    RKV_LOG_ERROR("event=wal_write_failed dir={} error=\"{}\" action=refusing_writes", dir_,
                  status.ToString());
    error_ = status;
  }
  return status;
}

Status Wal::Save(const std::optional<raft::SnapshotMetadata>& snapshot,
                 const std::vector<raft::Entry>& entries,
                 const std::optional<raft::HardState>& hard_state) {
  RKV_RETURN_IF_ERROR(CheckWritable());
  // Check everything before changing anything.
  LogIndex snapshot_index = snapshot_.last_index;
  LogIndex last = LastIndex();
  if (snapshot) {
    if (snapshot->last_index <= snapshot_index) {
      return Status::InvalidArgument(fmt::format("snapshot at {} is not newer than the one at {}",
                                                 snapshot->last_index.value(), snapshot_index.value()));
    }
    Status s = raft::CheckConfiguration(snapshot->configuration);
    if (!s.ok()) return Status::InvalidArgument("snapshot configuration: " + s.message());
    snapshot_index = last = snapshot->last_index;
  }
  bool truncate = false;
  if (!entries.empty()) {
    const LogIndex first = entries.front().index;
    if (first <= snapshot_index || first > last + 1) {
      return Status::InvalidArgument(fmt::format("entries start at {}; the log holds {}..{}",
                                                 first.value(), (snapshot_index + 1).value(),
                                                 last.value()));
    }
    for (size_t i = 0; i < entries.size(); ++i) {
      if (entries[i].index != first + i) {
        return Status::InvalidArgument(fmt::format("entry {} follows entry {}",
                                                   entries[i].index.value(), (first + i - 1).value()));
      }
      if (EntryRecordSize(entries[i]) - kRecordHeaderSize > kMaxPayloadSize) {
        return Status::InvalidArgument(
            fmt::format("entry {} has {} bytes of data", entries[i].index.value(), entries[i].data.size()));
      }
    }
    truncate = first <= last;
  }
  size_t left = entries.size() + (snapshot ? 1u : 0u) + (truncate ? 1u : 0u) + (hard_state ? 1u : 0u);
  if (left == 0) return Status::OK();

  // One batch: only its last record carries the batch-end flag.
  const size_t batch_start = buffer_.size();
  auto flags = [&left] { return --left == 0 ? kRecordFlagBatchEnd : uint8_t{0}; };
  if (snapshot) AppendSnapshotRecord(RecordType::kSnapshot, *snapshot, flags(), &buffer_);
  if (hard_state) AppendHardStateRecord(*hard_state, flags(), &buffer_);
  if (truncate) AppendTruncateRecord(entries.front().index, flags(), &buffer_);
  for (const raft::Entry& e : entries) AppendEntryRecord(e, flags(), &buffer_);
  RKV_RETURN_IF_ERROR(MaybeRoll(batch_start));

  if (snapshot) DoApplySnapshot(*snapshot);
  if (hard_state) hard_state_ = *hard_state;
  if (truncate) DoTruncate(entries.front().index);
  for (const raft::Entry& e : entries) DoAppend(e);
  return MaybeFlush();
}

Status Wal::SetConfiguration(const raft::Configuration& configuration) {
  RKV_RETURN_IF_ERROR(CheckWritable());
  Status s = raft::CheckConfiguration(configuration);
  if (!s.ok()) return Status::InvalidArgument("configuration: " + s.message());
  const size_t batch_start = buffer_.size();
  AppendConfigurationRecord(configuration, kRecordFlagBatchEnd, &buffer_);
  RKV_RETURN_IF_ERROR(MaybeRoll(batch_start));
  configuration_ = configuration;
  return MaybeFlush();
}

Status Wal::Compact(LogIndex index, const raft::Configuration& configuration) {
  RKV_RETURN_IF_ERROR(CheckWritable());
  if (index <= snapshot_.last_index) {
    return Status::InvalidArgument(fmt::format("compaction to {} is not newer than the snapshot at {}",
                                               index.value(), snapshot_.last_index.value()));
  }
  if (index > LastIndex()) {
    return Status::InvalidArgument(fmt::format("compaction to {} is beyond the log's last index {}",
                                               index.value(), LastIndex().value()));
  }
  Status s = raft::CheckConfiguration(configuration);
  if (!s.ok()) return Status::InvalidArgument("configuration: " + s.message());
  const raft::SnapshotMetadata snapshot{index, entries_[index - base_].term, configuration};
  const size_t batch_start = buffer_.size();
  AppendSnapshotRecord(RecordType::kCompact, snapshot, kRecordFlagBatchEnd, &buffer_);
  RKV_RETURN_IF_ERROR(MaybeRoll(batch_start));
  DoCompact(snapshot);
  // Segments may go only once the record that makes them obsolete is
  // durable; Sync deletes them after its fdatasync.
  return Sync();
}

Status Wal::MaybeRoll(size_t batch_start) {
  const uint64_t before = file_size_ + batch_start;
  const uint64_t after = file_size_ + buffer_.size();
  if (after <= options_.segment_size || before <= preamble_end_) return Status::OK();
  // The batch goes into the next segment: a batch never spans two.
  std::string batch = buffer_.substr(batch_start);
  buffer_.resize(batch_start);
  RKV_RETURN_IF_ERROR(Roll());
  buffer_ += batch;
  return Status::OK();
}

Status Wal::Roll() {
  // Sync the segment before starting the next: then only the newest segment
  // can have a torn tail, and the next one's preamble restates durable state.
  RKV_RETURN_IF_ERROR(FlushAndSyncFile());
  Status s = file_->Close();
  file_.reset();
  if (!s.ok()) return Fail(s);
  RKV_LOG_INFO("event=wal_roll dir={} closed={} bytes={} next_first_index={}", dir_,
               segments_.back().path, file_size_, (LastIndex() + 1).value());
  return CreateSegment(segments_.back().seq + 1);
}

Status Wal::CreateSegment(uint64_t seq) {
  const Segment segment{seq, LastIndex() + 1, JoinPath(dir_, SegmentFileName(seq))};
  std::string data = EncodeSegmentHeader({seq, segment.first_index});
  AppendStateRecord(hard_state_, snapshot_, configuration_, kRecordFlagBatchEnd, &data);

  auto file = env_->NewWritableFile(segment.path);
  if (!file.ok()) return Fail(file.status());
  // Reserve the segment's blocks now, so appends do not allocate (and an
  // fdatasync then has less metadata to write). Best effort: appends work
  // without it.
  Status s = (*file)->Preallocate(options_.segment_size);
  if (!s.ok()) {
    RKV_LOG_WARN("event=wal_preallocate_failed file={} error=\"{}\"", segment.path, s.ToString());
  }
  s = (*file)->Append(data);
  if (s.ok()) s = TimedSync(file->get(), segment.path, data.size());
  if (s.ok()) s = env_->SyncDir(dir_);
  if (!s.ok()) return Fail(s);
  Bump(counters_.segments_created);
  Bump(counters_.bytes_written, data.size());
  file_ = std::move(*file);
  file_size_ = data.size();
  preamble_end_ = data.size();
  unsynced_ = false;
  unsynced_bytes_ = 0;
  segments_.push_back(segment);
  counters_.segments.store(segments_.size(), std::memory_order_relaxed);
  return Status::OK();
}

Status Wal::MaybeFlush() {
  if (buffer_.size() < options_.write_buffer_size) return Status::OK();
  return FlushBuffer();
}

Status Wal::FlushBuffer() {
  if (buffer_.empty()) return Status::OK();
  Status s = file_->Append(buffer_);
  if (!s.ok()) return Fail(s);
  file_size_ += buffer_.size();
  Bump(counters_.bytes_written, buffer_.size());
  unsynced_bytes_ += buffer_.size();
  buffer_.clear();
  unsynced_ = true;
  return Status::OK();
}

Status Wal::Flush() {
  RKV_RETURN_IF_ERROR(CheckWritable());
  return FlushBuffer();
}

Status Wal::FlushAndSyncFile() {
  RKV_RETURN_IF_ERROR(FlushBuffer());
  if (!unsynced_) return Status::OK();
  Status s = TimedSync(file_.get(), segments_.back().path, unsynced_bytes_);
  if (!s.ok()) return Fail(s);
  unsynced_ = false;
  unsynced_bytes_ = 0;
  return Status::OK();
}

Status Wal::TimedSync(WritableFile* file, const std::string& path, uint64_t bytes) {
  const int64_t start = clock_->NowMicros();
  Status s = file->Sync();
  const int64_t micros = std::max<int64_t>(0, clock_->NowMicros() - start);
  // A failed sync is timed too: one that hung for seconds before EIO is
  // exactly what the histogram is for.
  sync_seconds_.Observe(static_cast<double>(micros) / 1e6);
  Bump(counters_.syncs);
  if (micros > kSlowSyncMicros) {
    RKV_LOG_WARN("event=wal_slow_fsync file={} duration_ms={} bytes={} threshold_ms={} ok={}", path,
                 micros / 1000, bytes, kSlowSyncMicros / 1000, s.ok());
  }
  return s;
}

Status Wal::Sync() {
  RKV_RETURN_IF_ERROR(CheckWritable());
  RKV_RETURN_IF_ERROR(FlushAndSyncFile());
  return DeleteObsoleteSegments();
}

Status Wal::DeleteObsoleteSegments() {
  // Segment k can go once every entry before segment k + 1 is covered by the
  // (durable) snapshot: replaying from k + 1, whose preamble restates the
  // hard state and configuration, then builds the same log. Oldest first,
  // with a directory sync each, so the segments left are always consecutive.
  while (segments_.size() >= 2 && segments_[1].first_index <= snapshot_.last_index + 1) {
    const Segment& oldest = segments_.front();
    Status s = env_->DeleteFile(oldest.path);
    if (s.ok()) s = env_->SyncDir(dir_);
    if (!s.ok()) return Fail(s);
    RKV_LOG_INFO("event=wal_segment_delete file={} snapshot_index={}", oldest.path,
                 snapshot_.last_index.value());
    Bump(counters_.segments_deleted);
    segments_.pop_front();
    counters_.segments.store(segments_.size(), std::memory_order_relaxed);
  }
  return Status::OK();
}

Status Wal::Close() {
  if (closed_) return Status::OK();
  Status s = Sync();
  closed_ = true;
  if (file_ != nullptr) {
    Status c = file_->Close();
    file_.reset();
    if (s.ok()) s = c;
  }
  return s;
}

}  // namespace rkv::wal
