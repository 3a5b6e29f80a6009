// raft-kv-check: verifies every checksum of a node's data directory (its
// engine, named by kv/CURRENT, and its Raft log in wal/) or of one engine
// directory, and reports torn tails and corruption the way opening would
// judge them, without changing anything.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <vector>

#include "env/env.h"
#include "storage/hint_file.h"
#include "storage/record_format.h"
#include "tools/data_dir_reader.h"
#include "wal/wal_format.h"

namespace {

// Exit-status severities, worst wins.
constexpr int kIntact = 0;
constexpr int kTornTail = 1;
constexpr int kCorrupt = 2;
constexpr int kUsage = 3;

int CheckEngineDir(rkv::Env* env, const std::string& dir) {
  auto names = env->GetChildren(dir);
  if (!names.ok()) {
    fmt::print(stderr, "raft-kv-check: {}\n", names.status().ToString());
    return kUsage;
  }
  std::vector<uint64_t> ids;
  for (const auto& n : *names) {
    uint64_t id;
    if (rkv::storage::ParseDataFileName(n, &id)) ids.push_back(id);
  }
  std::sort(ids.begin(), ids.end());

  int worst = kIntact;
  uint64_t total_records = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    const bool newest = i + 1 == ids.size();
    const std::string path = rkv::JoinPath(dir, rkv::storage::DataFileName(ids[i]));
    rkv::tools::FileScan scan;
    rkv::Status s = rkv::tools::ScanDataFile(path, [](const rkv::storage::ScannedRecord&) {}, &scan);
    if (!s.ok()) {
      fmt::print("CORRUPT {}: {}\n", path, s.ToString());
      worst = std::max(worst, kCorrupt);
      continue;
    }
    total_records += scan.records;
    if (scan.result.valid_end < scan.file_size) {
      const uint64_t bytes = scan.file_size - scan.result.valid_end;
      if (newest) {
        fmt::print("TORN    {}: tail of {} bytes at offset {} ({}); opening truncates it\n", path, bytes,
                   scan.result.valid_end, scan.result.stop_reason);
        worst = std::max(worst, kTornTail);
      } else {
        fmt::print("CORRUPT {}: bad record at offset {} ({}); {} bytes after it\n", path,
                   scan.result.valid_end, scan.result.stop_reason, bytes);
        worst = std::max(worst, kCorrupt);
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
             worst == kIntact ? "intact" : worst == kTornTail ? "torn tail only" : "CORRUPT");
  return worst;
}

// The Raft log: every segment's header and batches. A torn batch is expected
// only at the end of the newest segment (the WAL truncates it on open).
int CheckWalDir(rkv::Env* env, const std::string& dir) {
  auto names = env->GetChildren(dir);
  if (!names.ok()) {
    fmt::print(stderr, "raft-kv-check: {}\n", names.status().ToString());
    return kUsage;
  }
  std::vector<std::pair<uint64_t, std::string>> segments;
  for (const auto& n : *names) {
    uint64_t seq;
    if (rkv::wal::ParseSegmentFileName(n, &seq)) segments.emplace_back(seq, n);
  }
  std::sort(segments.begin(), segments.end());
  int worst = kIntact;
  uint64_t total_batches = 0;
  for (size_t i = 0; i < segments.size(); ++i) {
    const bool newest = i + 1 == segments.size();
    const std::string path = rkv::JoinPath(dir, segments[i].second);
    auto data = rkv::ReadFileToString(env, path);
    rkv::wal::SegmentHeader header;
    rkv::Status s = data.ok() ? rkv::wal::DecodeSegmentHeader(*data, &header) : data.status();
    rkv::wal::ScanResult result;
    uint64_t batches = 0;
    if (s.ok()) {
      s = rkv::wal::ScanSegment(
          *data, [&](const rkv::wal::ScannedBatch&) { ++batches; return rkv::Status::OK(); }, &result);
    }
    total_batches += batches;
    if (!s.ok()) {
      fmt::print("CORRUPT {}: {}\n", path, s.ToString());
      worst = std::max(worst, kCorrupt);
    } else if (!result.stop_reason.empty()) {
      if (newest) {
        fmt::print("TORN    {}: {} at offset {}; opening truncates it\n", path, result.stop_reason,
                   result.stop_offset);
        worst = std::max(worst, kTornTail);
      } else {
        fmt::print("CORRUPT {}: {} at offset {}\n", path, result.stop_reason, result.stop_offset);
        worst = std::max(worst, kCorrupt);
      }
    } else {
      fmt::print("OK      {}: {} batches, {} bytes used\n", path, batches, result.valid_end);
    }
  }
  fmt::print("{} log segments, {} batches: {}\n", segments.size(), total_batches,
             worst == kIntact ? "intact" : worst == kTornTail ? "torn tail only" : "CORRUPT");
  return worst;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "raft-kv-check: verify every checksum of a raft-kv node's data directory (the --data of\n"
      "raft-kv: its engine, named by kv/CURRENT, and its Raft log in wal/), or of one engine\n"
      "directory. Changes nothing. Exit status:\n"
      "  0  every file is intact\n"
      "  1  only the newest data file or log segment has a torn tail (opening truncates it)\n"
      "  2  corruption: a bad record before the tail of a file, a bad file header, or an unreadable file\n"
      "     (opening fails)\n"
      "  3  usage or I/O error"};
  std::string dir;
  app.add_option("dir", dir, "a node's data directory, or an engine directory")->required();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : kUsage;
  }

  rkv::Env* env = rkv::Env::Posix();
  const std::string current = rkv::JoinPath(rkv::JoinPath(dir, "kv"), "CURRENT");
  if (!env->FileExists(current)) return CheckEngineDir(env, dir);

  auto name = rkv::ReadFileToString(env, current);
  if (!name.ok()) {
    fmt::print(stderr, "raft-kv-check: {}\n", name.status().ToString());
    return kUsage;
  }
  std::string engine = *name;
  while (!engine.empty() && (engine.back() == '\n' || engine.back() == '\r')) engine.pop_back();
  if (engine.empty() || engine.find('/') != std::string::npos) {
    fmt::print("CORRUPT {}: names no engine directory\n", current);
    return kCorrupt;
  }
  const std::string engine_dir = rkv::JoinPath(rkv::JoinPath(dir, "kv"), engine);
  fmt::print("# engine {}\n", engine_dir);
  int worst = CheckEngineDir(env, engine_dir);
  const std::string wal_dir = rkv::JoinPath(dir, "wal");
  if (env->FileExists(wal_dir)) {
    fmt::print("# Raft log {}\n", wal_dir);
    worst = std::max(worst, CheckWalDir(env, wal_dir));
  }
  return worst;
}
