// raft-kv-dump: prints the records of a data file or the entries of a hint
// file, one line each.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "env/env.h"
#include "storage/hint_file.h"
#include "storage/record_format.h"
#include "tools/data_dir_reader.h"
#include "wal/wal_format.h"

namespace {

std::string_view TypeName(rkv::storage::RecordType type) {
  switch (type) {
    case rkv::storage::RecordType::kPut: return "put";
    case rkv::storage::RecordType::kDelete: return "delete";
    case rkv::storage::RecordType::kBatchCommit: return "batch_commit";
  }
  return "?";
}

std::string Describe(const rkv::raft::Configuration& c) {
  std::string out = "voters=";
  for (size_t i = 0; i < c.voters.size(); ++i) out += (i ? "," : "") + std::to_string(c.voters[i].value());
  out += " learners=";
  for (size_t i = 0; i < c.learners.size(); ++i) out += (i ? "," : "") + std::to_string(c.learners[i].value());
  return out;
}

std::string Describe(const rkv::raft::SnapshotMetadata& m) {
  return fmt::format("snapshot_index={} snapshot_term={} {}", m.last_index.value(), m.last_term.value(),
                     Describe(m.configuration));
}

std::string Describe(const rkv::raft::HardState& h) {
  return fmt::format("term={} vote={} commit={}", h.current_term.value(), h.voted_for.value(),
                     h.commit_index.value());
}

// One line per record of a WAL segment (docs/formats/wal.md).
int DumpWalSegment(const std::string& path, bool values, size_t max_bytes) {
  using namespace rkv::wal;  // NOLINT: the format's names read best unqualified here
  auto data = rkv::ReadFileToString(rkv::Env::Posix(), path);
  if (!data.ok()) {
    fmt::print(stderr, "raft-kv-dump: {}\n", data.status().ToString());
    return 2;
  }
  SegmentHeader header;
  rkv::Status s = DecodeSegmentHeader(*data, &header);
  if (!s.ok()) {
    fmt::print(stderr, "raft-kv-dump: {}: {}\n", path, s.ToString());
    return 2;
  }
  fmt::print("# wal segment {} seq={} first_index={}\n", path, header.seq, header.first_index.value());
  uint64_t records = 0;
  ScanResult result;
  s = ScanSegment(
      *data,
      [&](const ScannedBatch& batch) {
        for (const ScannedRecord& r : batch) {
          ++records;
          const Record& rec = r.record;
          std::string line = fmt::format("offset={} type={}", r.offset, RecordTypeName(rec.type));
          switch (rec.type) {
            case RecordType::kState:
              line += " " + Describe(rec.hard_state) + " " + Describe(rec.snapshot);
              break;
            case RecordType::kEntry:
              line += fmt::format(" index={} term={} entry={} data_bytes={}", rec.entry.index.value(),
                                  rec.entry.term.value(),
                                  rec.entry.type == rkv::raft::EntryType::kConfChange ? "conf_change" : "normal",
                                  rec.entry.data.size());
              if (values) line += fmt::format(" data=\"{}\"", rkv::tools::Escape(rec.entry.data, max_bytes));
              break;
            case RecordType::kHardState:
              line += " " + Describe(rec.hard_state);
              break;
            case RecordType::kSnapshot:
            case RecordType::kCompact:
              line += " " + Describe(rec.snapshot);
              break;
            case RecordType::kTruncate:
              line += fmt::format(" from_index={}", rec.index.value());
              break;
            case RecordType::kConfiguration:
              line += " " + Describe(rec.configuration);
              break;
          }
          if (rec.batch_end()) line += " batch_end=1";
          fmt::print("{}\n", line);
        }
        return rkv::Status::OK();
      },
      &result);
  if (!s.ok()) {
    fmt::print("# corrupt: {}\n", s.ToString());
    return 1;
  }
  if (!result.stop_reason.empty()) {
    fmt::print("# stopped at offset {}: {} ({} bytes not read)\n", result.stop_offset, result.stop_reason,
               data->size() - result.valid_end);
    return 1;
  }
  fmt::print("# {} records, {} bytes used, {} bytes of preallocated zeros\n", records, result.valid_end,
             result.zero_padding);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "raft-kv-dump: print the records of a raft-kv data file (*.data), the entries of a hint\n"
      "file (*.hint) or the records of a Raft log segment (*.wal), one line each. Batch records\n"
      "are printed once their batch commits (data files) or completes (log segments).\n"
      "Exit status: 0 if the file was read to its end, 1 if it stops at a bad record, 2 on errors."};
  std::string path;
  bool values = false;
  size_t max_bytes = 64;
  app.add_option("file", path, "data, hint or log segment file")->required();
  app.add_flag("--values", values, "print values (and log entry data) too, escaped");
  app.add_option("--max-bytes", max_bytes, "print at most this many bytes of each key and value")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  using rkv::storage::ParseHintFileName;
  const std::string name = path.substr(path.rfind('/') == std::string::npos ? 0 : path.rfind('/') + 1);
  uint64_t id = 0;
  if (rkv::wal::ParseSegmentFileName(name, &id)) return DumpWalSegment(path, values, max_bytes);
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
