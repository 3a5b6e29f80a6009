// Shared by raft-kv-dump and raft-kv-check: reading data and hint files
// without opening an engine (so a damaged directory can still be inspected).
#ifndef RKV_TOOLS_DATA_DIR_READER_H_
#define RKV_TOOLS_DATA_DIR_READER_H_

#include <cstdint>
#include <functional>
#include <string>

#include "common/status.h"
#include "storage/record_scanner.h"

namespace rkv::tools {

// Printable form of bytes: printable ASCII as is, the rest as \xNN; at most
// `max` input bytes, with "..." when cut.
std::string Escape(std::string_view bytes, size_t max = 64);

struct FileScan {
  uint64_t file_id = 0;
  uint64_t file_size = 0;
  uint64_t records = 0;  // puts and deletes delivered
  storage::ScanResult result;
};

// Checks the header of the data file at `path` and reads every committed
// record, calling fn for each. Status errors are I/O errors or a bad header.
Status ScanDataFile(const std::string& path,
                    const std::function<void(const storage::ScannedRecord&)>& fn, FileScan* scan);

}  // namespace rkv::tools

#endif  // RKV_TOOLS_DATA_DIR_READER_H_
