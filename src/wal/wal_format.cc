// Encoding and decoding of WAL segments.
//
//   segment := header record*
//   record  := crc u32 | length u32 | type u8 | flags u8 | payload[length]
//   The CRC covers every byte after the crc field, to the end of the payload.
//
// See docs/formats/wal.md for the payloads and the recovery rules.
#include "wal/wal_format.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>

#include "common/assert.h"
#include "common/coding.h"
#include "common/crc32c.h"

namespace rkv::wal {

std::string_view RecordTypeName(RecordType type) {
  switch (type) {
    case RecordType::kState: return "state";
    case RecordType::kEntry: return "entry";
    case RecordType::kHardState: return "hard_state";
    case RecordType::kSnapshot: return "snapshot";
    case RecordType::kCompact: return "compact";
    case RecordType::kTruncate: return "truncate";
    case RecordType::kConfiguration: return "configuration";
  }
  return "unknown";
}

namespace {

// Reserves the record header at the end of *dst; FinishRecord fills it in
// once the payload has been appended after it. The payload is written in
// place, so an entry's data is copied once.
size_t StartRecord(std::string* dst) {
  const size_t start = dst->size();
  dst->append(kRecordHeaderSize, '\0');
  return start;
}

void FinishRecord(size_t start, RecordType type, uint8_t flags, std::string* dst) {
  RKV_ASSERT((flags & ~kRecordFlagsKnown) == 0);
  const size_t length = dst->size() - start - kRecordHeaderSize;
  RKV_ASSERT(length <= kMaxPayloadSize);
  char* p = dst->data() + start;
  EncodeFixed32(p + 4, static_cast<uint32_t>(length));
  p[8] = static_cast<char>(type);
  p[9] = static_cast<char>(flags);
  EncodeFixed32(p, crc32c::Value(p + 4, kRecordHeaderSize - 4 + length));
}

void PutIds(const std::vector<NodeId>& ids, std::string* dst) {
  PutFixed32(dst, static_cast<uint32_t>(ids.size()));
  for (NodeId id : ids) PutFixed64(dst, id.value());
}

void PutConfiguration(const raft::Configuration& configuration, std::string* dst) {
  PutIds(configuration.voters, dst);
  PutIds(configuration.learners, dst);
}

void PutHardState(const raft::HardState& hs, std::string* dst) {
  PutFixed64(dst, hs.current_term.value());
  PutFixed64(dst, hs.voted_for.value());
  PutFixed64(dst, hs.commit_index.value());
}

void PutSnapshot(const raft::SnapshotMetadata& snapshot, std::string* dst) {
  PutFixed64(dst, snapshot.last_index.value());
  PutFixed64(dst, snapshot.last_term.value());
  PutConfiguration(snapshot.configuration, dst);
}

bool GetIds(std::string_view* in, std::vector<NodeId>* ids) {
  uint32_t count = 0;
  if (!GetFixed32(in, &count)) return false;
  if (count > in->size() / 8) return false;  // cannot hold that many
  ids->clear();
  ids->reserve(count);
  for (uint32_t i = 0; i < count; ++i) {
    uint64_t id = 0;
    if (!GetFixed64(in, &id)) return false;
    ids->push_back(NodeId{id});
  }
  return true;
}

bool GetConfiguration(std::string_view* in, raft::Configuration* configuration) {
  return GetIds(in, &configuration->voters) && GetIds(in, &configuration->learners) &&
         raft::CheckConfiguration(*configuration).ok();
}

bool GetHardState(std::string_view* in, raft::HardState* hs) {
  uint64_t term = 0, vote = 0, commit = 0;
  if (!GetFixed64(in, &term) || !GetFixed64(in, &vote) || !GetFixed64(in, &commit)) return false;
  *hs = {Term{term}, NodeId{vote}, LogIndex{commit}};
  return true;
}

bool GetSnapshot(std::string_view* in, raft::SnapshotMetadata* snapshot) {
  uint64_t index = 0, term = 0;
  if (!GetFixed64(in, &index) || !GetFixed64(in, &term)) return false;
  snapshot->last_index = LogIndex{index};
  snapshot->last_term = Term{term};
  return GetConfiguration(in, &snapshot->configuration);
}

}  // namespace

void AppendStateRecord(const raft::HardState& hard_state, const raft::SnapshotMetadata& snapshot,
                       const raft::Configuration& configuration, uint8_t flags, std::string* dst) {
  const size_t start = StartRecord(dst);
  PutHardState(hard_state, dst);
  PutSnapshot(snapshot, dst);
  PutConfiguration(configuration, dst);
  FinishRecord(start, RecordType::kState, flags, dst);
}

void AppendEntryRecord(const raft::Entry& entry, uint8_t flags, std::string* dst) {
  const size_t start = StartRecord(dst);
  PutFixed64(dst, entry.term.value());
  PutFixed64(dst, entry.index.value());
  dst->push_back(static_cast<char>(entry.type));
  dst->append(entry.data);
  FinishRecord(start, RecordType::kEntry, flags, dst);
}

void AppendHardStateRecord(const raft::HardState& hard_state, uint8_t flags, std::string* dst) {
  const size_t start = StartRecord(dst);
  PutHardState(hard_state, dst);
  FinishRecord(start, RecordType::kHardState, flags, dst);
}

void AppendSnapshotRecord(RecordType type, const raft::SnapshotMetadata& snapshot, uint8_t flags,
                          std::string* dst) {
  RKV_ASSERT(type == RecordType::kSnapshot || type == RecordType::kCompact);
  const size_t start = StartRecord(dst);
  PutSnapshot(snapshot, dst);
  FinishRecord(start, type, flags, dst);
}

void AppendTruncateRecord(LogIndex index, uint8_t flags, std::string* dst) {
  const size_t start = StartRecord(dst);
  PutFixed64(dst, index.value());
  FinishRecord(start, RecordType::kTruncate, flags, dst);
}

void AppendConfigurationRecord(const raft::Configuration& configuration, uint8_t flags,
                               std::string* dst) {
  const size_t start = StartRecord(dst);
  PutConfiguration(configuration, dst);
  FinishRecord(start, RecordType::kConfiguration, flags, dst);
}

DecodeOutcome DecodeRecordHeader(std::string_view data, RecordHeader* header) {
  if (data.size() < kRecordHeaderSize) return DecodeOutcome::kTruncated;
  const char* p = data.data();
  RecordHeader h;
  h.crc = DecodeFixed32(p);
  h.length = DecodeFixed32(p + 4);
  const auto type = static_cast<uint8_t>(p[8]);
  h.flags = static_cast<uint8_t>(p[9]);
  // Zero bytes (preallocated space) fail here: type 0 does not exist.
  if (type < 1 || type > kMaxRecordType) return DecodeOutcome::kCorrupt;
  h.type = static_cast<RecordType>(type);
  if ((h.flags & ~kRecordFlagsKnown) != 0) return DecodeOutcome::kCorrupt;
  if (h.length > kMaxPayloadSize) return DecodeOutcome::kCorrupt;
  *header = h;
  return DecodeOutcome::kOk;
}

DecodeOutcome VerifyRecord(std::string_view record, const RecordHeader& header,
                           std::string_view* payload) {
  const size_t size = header.record_size();
  if (record.size() < size) return DecodeOutcome::kTruncated;
  if (crc32c::Value(record.data() + 4, size - 4) != header.crc) return DecodeOutcome::kCorrupt;
  *payload = record.substr(kRecordHeaderSize, header.length);
  return DecodeOutcome::kOk;
}

Status DecodePayload(const RecordHeader& header, std::string_view payload, Record* record) {
  record->type = header.type;
  record->flags = header.flags;
  std::string_view in = payload;
  bool ok = false;
  switch (header.type) {
    case RecordType::kState:
      ok = GetHardState(&in, &record->hard_state) && GetSnapshot(&in, &record->snapshot) &&
           GetConfiguration(&in, &record->configuration);
      break;
    case RecordType::kEntry: {
      uint64_t term = 0, index = 0;
      ok = GetFixed64(&in, &term) && GetFixed64(&in, &index) && !in.empty();
      if (ok) {
        const auto type = static_cast<uint8_t>(in[0]);
        ok = type <= static_cast<uint8_t>(raft::EntryType::kConfChange) && index != 0;
        in.remove_prefix(1);
        record->entry.term = Term{term};
        record->entry.index = LogIndex{index};
        record->entry.type = static_cast<raft::EntryType>(type);
        record->entry.data.assign(in);
        in = {};
      }
      break;
    }
    case RecordType::kHardState:
      ok = GetHardState(&in, &record->hard_state);
      break;
    case RecordType::kSnapshot:
    case RecordType::kCompact:
      ok = GetSnapshot(&in, &record->snapshot) && record->snapshot.last_index != LogIndex{0};
      break;
    case RecordType::kTruncate: {
      uint64_t index = 0;
      ok = GetFixed64(&in, &index) && index != 0;
      record->index = LogIndex{index};
      break;
    }
    case RecordType::kConfiguration:
      ok = GetConfiguration(&in, &record->configuration);
      break;
  }
  if (!ok || !in.empty()) {
    return Status::Corruption(
        fmt::format("{} record of {} bytes does not decode", RecordTypeName(header.type), payload.size()));
  }
  return Status::OK();
}

std::string EncodeSegmentHeader(const SegmentHeader& header) {
  std::string out(kSegmentMagic);
  PutFixed32(&out, kFormatVersion);
  PutFixed32(&out, 0);  // flags
  PutFixed64(&out, header.seq);
  PutFixed64(&out, header.first_index.value());
  PutFixed32(&out, crc32c::Value(out));
  PutFixed32(&out, 0);  // reserved
  RKV_ASSERT(out.size() == kSegmentHeaderSize);
  return out;
}

Status DecodeSegmentHeader(std::string_view data, SegmentHeader* header) {
  if (data.size() < kSegmentHeaderSize) return Status::Corruption("segment header is truncated");
  if (data.substr(0, kSegmentMagic.size()) != kSegmentMagic) {
    return Status::Corruption("bad magic number");
  }
  if (crc32c::Value(data.data(), 32) != DecodeFixed32(data.data() + 32)) {
    return Status::Corruption("segment header checksum mismatch");
  }
  const uint32_t version = DecodeFixed32(data.data() + 8);
  if (version != kFormatVersion) {
    return Status::NotSupported(
        fmt::format("WAL format version {} (this build reads {})", version, kFormatVersion));
  }
  header->seq = DecodeFixed64(data.data() + 16);
  header->first_index = LogIndex{DecodeFixed64(data.data() + 24)};
  if (header->first_index == LogIndex{0}) return Status::Corruption("segment header: first index 0");
  return Status::OK();
}

std::string SegmentFileName(uint64_t seq) { return fmt::format("{:020}.wal", seq); }

bool ParseSegmentFileName(std::string_view name, uint64_t* seq) {
  constexpr std::string_view kSuffix = ".wal";
  if (name.size() != 20 + kSuffix.size() || name.substr(20) != kSuffix) return false;
  const char* begin = name.data();
  for (size_t i = 0; i < 20; ++i) {
    if (begin[i] < '0' || begin[i] > '9') return false;
  }
  auto [ptr, ec] = std::from_chars(begin, begin + 20, *seq);
  return ec == std::errc() && ptr == begin + 20;
}

Status ScanSegment(std::string_view data, const std::function<Status(const ScannedBatch&)>& fn,
                   ScanResult* result) {
  RKV_ASSERT(data.size() >= kSegmentHeaderSize);
  *result = ScanResult{};
  ScannedBatch batch;
  uint64_t pos = kSegmentHeaderSize;
  result->valid_end = pos;
  const uint64_t end = data.size();
  while (pos < end) {
    const std::string_view rest = data.substr(pos);
    RecordHeader header;
    const DecodeOutcome outcome = DecodeRecordHeader(rest, &header);
    std::string_view payload;
    std::string_view reason;
    if (outcome != DecodeOutcome::kOk) {
      reason = outcome == DecodeOutcome::kTruncated ? "truncated record header" : "impossible record header";
    } else if (header.record_size() > rest.size()) {
      reason = "truncated record";
    } else if (VerifyRecord(rest, header, &payload) != DecodeOutcome::kOk) {
      reason = "checksum mismatch";
    }
    if (!reason.empty()) {
      // Where a clean batch boundary is followed by nothing but zeros, the
      // records simply ended there (preallocated or zero-filled space).
      const bool zeros = std::all_of(rest.begin(), rest.end(), [](char c) { return c == '\0'; });
      if (batch.empty() && zeros) {
        result->zero_padding = rest.size();
        return Status::OK();
      }
      if (zeros) {
        // A batch cut off by zeros: a torn write, not a bad record.
        result->stop_reason = "unfinished batch";
        result->stop_offset = batch.front().offset;
      } else {
        result->stop_reason = reason;
        result->stop_offset = pos;
      }
      return Status::OK();
    }
    ScannedRecord scanned{pos, header.record_size(), {}};
    Status s = DecodePayload(header, payload, &scanned.record);
    if (!s.ok()) return Status::Corruption(fmt::format("offset {}: {}", pos, s.message()));
    pos += header.record_size();
    const bool batch_end = scanned.record.batch_end();
    batch.push_back(std::move(scanned));
    if (batch_end) {
      RKV_RETURN_IF_ERROR(fn(batch));
      batch.clear();
      result->valid_end = pos;
    }
  }
  if (!batch.empty()) {
    result->stop_reason = "unfinished batch";
    result->stop_offset = batch.front().offset;
  }
  return Status::OK();
}

}  // namespace rkv::wal
