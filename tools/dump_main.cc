// raft-kv-dump: prints the records of a data file or the entries of a hint
// file, one line each.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "env/env.h"
#include "storage/hint_file.h"
#include "storage/record_format.h"
#include "tools/data_dir_reader.h"

namespace {

std::string_view TypeName(rkv::storage::RecordType type) {
  switch (type) {
    case rkv::storage::RecordType::kPut: return "put";
    case rkv::storage::RecordType::kDelete: return "delete";
    case rkv::storage::RecordType::kBatchCommit: return "batch_commit";
  }
  return "?";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "raft-kv-dump: print the records of a raft-kv data file (*.data) or the entries of a hint\n"
      "file (*.hint), one line each. Batch records are printed once their batch commits.\n"
      "Exit status: 0 if the file was read to its end, 1 if it stops at a bad record, 2 on errors."};
  std::string path;
  bool values = false;
  size_t max_bytes = 64;
  app.add_option("file", path, "data or hint file")->required();
  app.add_flag("--values", values, "print values too (escaped)");
  app.add_option("--max-bytes", max_bytes, "print at most this many bytes of each key and value")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  using rkv::storage::ParseHintFileName;
  const std::string name = path.substr(path.rfind('/') == std::string::npos ? 0 : path.rfind('/') + 1);
  uint64_t id = 0;
  if (ParseHintFileName(name, &id)) {
    auto data = rkv::ReadFileToString(rkv::Env::Posix(), path);
    if (!data.ok()) {
      fmt::print(stderr, "raft-kv-dump: {}\n", data.status().ToString());
      return 2;
    }
    auto hint = rkv::storage::DecodeHintFile(*data, id);
    if (!hint.ok()) {
      fmt::print(stderr, "raft-kv-dump: {}: {}\n", path, hint.status().ToString());
      return 1;
    }
    fmt::print("# hint file {} id={} entries={} covers_data_bytes={}\n", path, id, hint->entries.size(),
               hint->data_size);
    for (const auto& e : hint->entries) {
      fmt::print("offset={} type={} seq={} record_bytes={} expiry_ms={} key=\"{}\"\n", e.offset,
                 TypeName(e.type), e.seq, e.record_size, e.expiry_ms, rkv::tools::Escape(e.key, max_bytes));
    }
    return 0;
  }

  rkv::tools::FileScan scan;
  rkv::Status s = rkv::tools::ScanDataFile(
      path,
      [&](const rkv::storage::ScannedRecord& r) {
        std::string line = fmt::format("offset={} type={} seq={} key=\"{}\" value_bytes={}", r.offset,
                                       TypeName(r.header.type), r.header.seq,
                                       rkv::tools::Escape(r.key, max_bytes), r.value.size());
        if (r.header.has_expiry()) line += fmt::format(" expiry_ms={}", r.header.expiry_ms);
        if (r.header.in_batch()) line += " batch=1";
        if (values) line += fmt::format(" value=\"{}\"", rkv::tools::Escape(r.value, max_bytes));
        fmt::print("{}\n", line);
      },
      &scan);
  if (!s.ok()) {
    fmt::print(stderr, "raft-kv-dump: {}\n", s.ToString());
    return 2;
  }
  if (scan.result.valid_end < scan.file_size) {
    fmt::print("# stopped at offset {}: {} ({} bytes not read)\n", scan.result.valid_end,
               scan.result.stop_reason, scan.file_size - scan.result.valid_end);
    return 1;
  }
  fmt::print("# {} records, {} bytes, file id {}\n", scan.records, scan.file_size, scan.file_id);
  return 0;
}
