// Reading the records of a data file in order, as recovery, views, hint
// building and merge all do.
#ifndef RKV_STORAGE_RECORD_SCANNER_H_
#define RKV_STORAGE_RECORD_SCANNER_H_

#include <cstdint>
#include <functional>
#include <string_view>

#include "common/status.h"
#include "storage/record_format.h"

namespace rkv {
class RandomAccessFile;
}

namespace rkv::storage {

struct ScannedRecord {
  uint64_t offset;
  RecordHeader header;
  std::string_view key;
  std::string_view value;
};

struct ScanResult {
  // Offset just past the last record that was delivered (or, for a batch,
  // past its commit record). Equal to `end` when the whole range was good.
  uint64_t valid_end = 0;
  // Why the scan stopped before `end`, when it did ("bad checksum", ...).
  std::string_view stop_reason;
};

// Reads the records of `file` in [start, end) and calls fn for every put and
// delete that is committed: records of a batch are delivered, in order, only
// once their commit record has been read; commit records themselves are not
// delivered. Stops at the first record that is truncated, fails its checksum,
// is impossible, or breaks batch structure, and reports where in
// result->valid_end; that is not an error (the caller decides whether it is
// a torn tail or corruption). Returns an error if a read fails or fn does.
// The views passed to fn are valid only during the call.
Status ScanRecords(const RandomAccessFile& file, uint64_t start, uint64_t end,
                   const std::function<Status(const ScannedRecord&)>& fn, ScanResult* result);

}  // namespace rkv::storage

#endif  // RKV_STORAGE_RECORD_SCANNER_H_
