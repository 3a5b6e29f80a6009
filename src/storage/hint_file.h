// Hint files: the records of one data file without their values
// (docs/formats/hint-file.md).
#ifndef RKV_STORAGE_HINT_FILE_H_
#define RKV_STORAGE_HINT_FILE_H_

#include <cstdint>
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

// Parses and verifies a whole hint file. Corruption if anything is wrong,
// including a file id other than `file_id`.
Result<HintContents> DecodeHintFile(std::string_view data, uint64_t file_id);

// Writes `contents` to `path` through a temporary file, synced, and renamed.
Status WriteHintFile(Env* env, const std::string& path, const std::string& contents);

}  // namespace rkv::storage

#endif  // RKV_STORAGE_HINT_FILE_H_
