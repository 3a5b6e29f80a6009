// Hint files: the records of one data file without their values
// (docs/formats/hint-file.md).
#ifndef RKV_STORAGE_HINT_FILE_H_
#define RKV_STORAGE_HINT_FILE_H_

#include <cstdint>
#include <functional>
#include <string_view>
#include <string>
#include <vector>

#include "common/result.h"
#include "storage/record_format.h"

namespace rkv {
class Env;
}

namespace rkv::storage {

struct HintEntry {
  RecordType type = RecordType::kPut;  // kPut or kDelete
  uint32_t record_size = 0;
  uint64_t offset = 0;
  uint64_t seq = 0;
  uint64_t expiry_ms = 0;
  std::string key;
};

// Builds the bytes of a hint file in memory.
class HintWriter {
 public:
  explicit HintWriter(uint64_t file_id);
  void Add(const RecordHeader& header, uint64_t offset, std::string_view key);
  // Appends the footer and returns the whole file.
  std::string Finish(uint64_t data_size);
  uint32_t count() const { return count_; }

 private:
  std::string buf_;
  uint32_t count_ = 0;
};

struct HintContents {
  uint64_t data_size = 0;  // bytes of the data file the entries cover
  std::vector<HintEntry> entries;
};

// One entry as it lies in the file; `key` points into the file's bytes.
struct HintEntryView {
  RecordType type = RecordType::kPut;
  uint32_t record_size = 0;
  uint64_t offset = 0;
  uint64_t seq = 0;
  uint64_t expiry_ms = 0;
  std::string_view key;
};

// Verifies a whole hint file (header, checksum, every entry), then sets
// *data_size and calls fn for each entry in file order. Corruption if
// anything is wrong, including a file id other than `file_id` or a hint
// covering more than `data_size_max` bytes of its data file; then fn is never
// called. Copies nothing: what opening the engine uses.
Status VisitHintFile(std::string_view data, uint64_t file_id, uint64_t data_size_max,
                     uint64_t* data_size, const std::function<void(const HintEntryView&)>& fn);

// The same, collected into owned entries (tools and tests).
Result<HintContents> DecodeHintFile(std::string_view data, uint64_t file_id);

// Writes `contents` to `path` through a temporary file, synced, and renamed.
Status WriteHintFile(Env* env, const std::string& path, const std::string& contents);

}  // namespace rkv::storage

#endif  // RKV_STORAGE_HINT_FILE_H_
