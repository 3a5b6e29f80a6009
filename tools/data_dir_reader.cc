#include "tools/data_dir_reader.h"

#include <fmt/format.h>

#include "env/env.h"
#include "storage/record_format.h"

namespace rkv::tools {

std::string Escape(std::string_view bytes, size_t max) {
  std::string out;
  for (size_t i = 0; i < bytes.size() && i < max; ++i) {
    const auto c = static_cast<unsigned char>(bytes[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\' && c != '"') {
      out.push_back(static_cast<char>(c));
    } else {
      out += fmt::format("\\x{:02x}", c);
    }
  }
  if (bytes.size() > max) out += "...";
  return out;
}

Status ScanDataFile(const std::string& path,
                    const std::function<void(const storage::ScannedRecord&)>& fn, FileScan* scan) {
  Env* env = Env::Posix();
  RKV_ASSIGN_OR_RETURN(scan->file_size, env->GetFileSize(path));
  RandomAccessOptions options;
  options.map_bytes = std::max<uint64_t>(scan->file_size, 1);
  RKV_ASSIGN_OR_RETURN(std::unique_ptr<RandomAccessFile> file, env->NewRandomAccessFile(path, options));
  if (scan->file_size < storage::kFileHeaderSize) {
    return Status::Corruption(fmt::format("{}: {} bytes, shorter than a file header", path, scan->file_size));
  }
  std::string scratch(storage::kFileHeaderSize, '\0');
  std::string_view header;
  RKV_RETURN_IF_ERROR(file->Read(0, storage::kFileHeaderSize, scratch.data(), &header));
  Status s = storage::DecodeFileHeader(header, storage::kDataMagic, &scan->file_id);
  if (!s.ok()) return Status::Corruption(fmt::format("{}: {}", path, s.message()));
  return storage::ScanRecords(
      *file, storage::kFileHeaderSize, scan->file_size,
      [&](const storage::ScannedRecord& r) {
        ++scan->records;
        fn(r);
        return Status::OK();
      },
      &scan->result);
}

}  // namespace rkv::tools
