// raft-kv-check: verifies every checksum of a data directory and reports torn
// tails and corruption, the way opening the engine would judge them, without
// changing anything.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <vector>

#include "env/env.h"
#include "storage/hint_file.h"
#include "storage/record_format.h"
#include "tools/data_dir_reader.h"

int main(int argc, char** argv) {
  CLI::App app{
      "raft-kv-check: verify every record checksum of a raft-kv data directory, and every hint file.\n"
      "Changes nothing. Exit status:\n"
      "  0  every file is intact\n"
      "  1  only the newest data file has a torn tail (opening the engine truncates it)\n"
      "  2  corruption: a bad record before the tail of a file, a bad file header, or an unreadable file\n"
      "     (opening fails; open with salvage to skip the damaged part)\n"
      "  3  usage or I/O error"};
  std::string dir;
  app.add_option("dir", dir, "data directory (the --data of raft-kv)")->required();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 3;
  }

  rkv::Env* env = rkv::Env::Posix();
  auto names = env->GetChildren(dir);
  if (!names.ok()) {
    fmt::print(stderr, "raft-kv-check: {}\n", names.status().ToString());
    return 3;
  }
  std::vector<uint64_t> ids;
  for (const auto& n : *names) {
    uint64_t id;
    if (rkv::storage::ParseDataFileName(n, &id)) ids.push_back(id);
  }
  std::sort(ids.begin(), ids.end());

  int worst = 0;
  uint64_t total_records = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    const bool newest = i + 1 == ids.size();
    const std::string path = rkv::JoinPath(dir, rkv::storage::DataFileName(ids[i]));
    rkv::tools::FileScan scan;
    rkv::Status s = rkv::tools::ScanDataFile(path, [](const rkv::storage::ScannedRecord&) {}, &scan);
    if (!s.ok()) {
      fmt::print("CORRUPT {}: {}\n", path, s.ToString());
      worst = std::max(worst, 2);
      continue;
    }
    total_records += scan.records;
    if (scan.result.valid_end < scan.file_size) {
      const uint64_t bytes = scan.file_size - scan.result.valid_end;
      if (newest) {
        fmt::print("TORN    {}: tail of {} bytes at offset {} ({}); opening truncates it\n", path, bytes,
                   scan.result.valid_end, scan.result.stop_reason);
        worst = std::max(worst, 1);
      } else {
        fmt::print("CORRUPT {}: bad record at offset {} ({}); {} bytes after it\n", path,
                   scan.result.valid_end, scan.result.stop_reason, bytes);
        worst = std::max(worst, 2);
      }
    } else {
      fmt::print("OK      {}: {} records, {} bytes\n", path, scan.records, scan.file_size);
    }

    const std::string hint_path = rkv::JoinPath(dir, rkv::storage::HintFileName(ids[i]));
    if (env->FileExists(hint_path)) {
      auto data = rkv::ReadFileToString(env, hint_path);
      auto hint = data.ok() ? rkv::storage::DecodeHintFile(*data, ids[i])
                            : rkv::Result<rkv::storage::HintContents>(data.status());
      if (!hint.ok()) {
        // A bad hint loses nothing: the engine scans the data file instead.
        fmt::print("HINT    {}: ignored on open ({})\n", hint_path, hint.status().ToString());
      } else if (hint->data_size > scan.result.valid_end) {
        fmt::print("HINT    {}: covers {} bytes, more than the valid data; ignored on open\n", hint_path,
                   hint->data_size);
      }
    }
  }
  fmt::print("{} data files, {} records: {}\n", ids.size(), total_records,
             worst == 0 ? "intact" : worst == 1 ? "torn tail only" : "CORRUPT");
  return worst;
}
