#include "storage/record_scanner.h"

#include <string>
#include <vector>

#include "common/assert.h"
#include "common/coding.h"
#include "env/env.h"

namespace rkv::storage {

namespace {

struct PendingRecord {
  uint64_t offset;
  RecordHeader header;
  std::string key;
  std::string value;
};

}  // namespace

Status ScanRecords(const RandomAccessFile& file, uint64_t start, uint64_t end,
                   const std::function<Status(const ScannedRecord&)>& fn, ScanResult* result) {
  RKV_ASSERT(start <= end);
  result->valid_end = start;
  result->stop_reason = {};
  std::vector<PendingRecord> batch;
  uint64_t batch_start = 0;
  std::string header_scratch(kRecordHeaderSizeMax, '\0');
  std::string record_scratch;

  uint64_t pos = start;
  while (pos < end) {
    const uint64_t left = end - pos;
    std::string_view head;
    const size_t head_len = left < kRecordHeaderSizeMax ? static_cast<size_t>(left) : kRecordHeaderSizeMax;
    RKV_RETURN_IF_ERROR(file.Read(pos, head_len, header_scratch.data(), &head));
    RecordHeader header;
    DecodeOutcome outcome = DecodeRecordHeader(head, &header);
    if (outcome != DecodeOutcome::kOk) {
      result->stop_reason = outcome == DecodeOutcome::kTruncated ? "truncated record header"
                                                                 : "impossible record header";
      break;
    }
    const size_t size = header.record_size();
    if (size > left) {
      result->stop_reason = "truncated record";
      break;
    }
    std::string_view record;
    if (record_scratch.size() < size) record_scratch.resize(size);
    RKV_RETURN_IF_ERROR(file.Read(pos, size, record_scratch.data(), &record));
    std::string_view key, value;
    if (VerifyRecord(record, header, &key, &value) != DecodeOutcome::kOk) {
      result->stop_reason = "checksum mismatch";
      break;
    }

    if (header.type == RecordType::kBatchCommit) {
      const uint32_t count = DecodeFixed32(value.data());
      if (batch.empty() || count != batch.size()) {
        result->stop_reason = "batch commit does not match its records";
        break;
      }
      for (const PendingRecord& r : batch) {
        RKV_RETURN_IF_ERROR(fn(ScannedRecord{r.offset, r.header, r.key, r.value}));
      }
      batch.clear();
      pos += size;
      result->valid_end = pos;
      continue;
    }
    if (header.in_batch()) {
      if (batch.empty()) batch_start = pos;
      batch.push_back(PendingRecord{pos, header, std::string(key), std::string(value)});
      pos += size;
      continue;
    }
    if (!batch.empty()) {
      result->stop_reason = "batch interrupted by a record outside it";
      break;
    }
    RKV_RETURN_IF_ERROR(fn(ScannedRecord{pos, header, key, value}));
    pos += size;
    result->valid_end = pos;
  }
  if (pos >= end && !batch.empty()) result->stop_reason = "batch without its commit record";
  // An unfinished batch ends the valid part where the batch began.
  if (!batch.empty()) RKV_ASSERT(result->valid_end <= batch_start);
  return Status::OK();
}

}  // namespace rkv::storage
