#include "env/fault_env.h"

#include <algorithm>
#include <utility>

#include "common/assert.h"
#include "common/random.h"

namespace rkv {
namespace {

bool Matches(FaultOp set, FaultOp op) { return (set & op) != FaultOp::kNone; }

}  // namespace

FaultEnv::FaultEnv() = default;

FaultEnv::~FaultEnv() = default;

void FaultEnv::Crash(const CrashOptions& options) {
  Random rng(options.seed);
  // Called once per file with MemEnv's mutex held; touches nothing else.
  ResetToDurableState([&](const std::string& /*path*/, uint64_t unsynced) -> uint64_t {
    if (options.keep_all_unsynced) return unsynced;
    if (options.seed != 0) return rng.Uniform(unsynced + 1);
    return std::min(options.keep_unsynced_bytes, unsynced);
  });
  std::lock_guard<std::mutex> guard(fault_mu_);
  crash_point_.reset();
  crash_point_reached_ = false;
}

void FaultEnv::FailAfter(uint64_t n, FaultOp ops, Status error, FaultMode mode,
                         const std::string& path_prefix) {
  RKV_ASSERT(!error.ok());
  // Normalized like the paths it is compared with, keeping a trailing '/' so
  // that "/db/wal/" does not match "/db/wal2/x".
  std::string prefix = path_prefix.empty() ? std::string() : NormalizePath(path_prefix);
  if (!path_prefix.empty() && path_prefix.back() == '/' && prefix.back() != '/') prefix += '/';
  std::lock_guard<std::mutex> guard(fault_mu_);
  rules_.push_back(Rule{n, ops, std::move(error), mode, std::move(prefix), /*active=*/true});
}

void FaultEnv::ClearFaults() {
  std::lock_guard<std::mutex> guard(fault_mu_);
  rules_.clear();
}

uint64_t FaultEnv::InjectedFailureCount() const {
  std::lock_guard<std::mutex> guard(fault_mu_);
  return injected_failures_;
}

void FaultEnv::SetCrashPoint(uint64_t k) {
  std::lock_guard<std::mutex> guard(fault_mu_);
  crash_point_ = operation_count_ + k;
  crash_point_reached_ = false;
}

bool FaultEnv::CrashPointReached() const {
  std::lock_guard<std::mutex> guard(fault_mu_);
  return crash_point_reached_;
}

uint64_t FaultEnv::OperationCount() const {
  std::lock_guard<std::mutex> guard(fault_mu_);
  return operation_count_;
}

void FaultEnv::FlipBitOnRead(const std::string& path, uint64_t offset, int bit) {
  RKV_ASSERT(bit >= 0 && bit < 8);
  std::lock_guard<std::mutex> guard(fault_mu_);
  bit_flips_[NormalizePath(path)][offset] |= static_cast<uint8_t>(1u << bit);
}

void FaultEnv::ClearBitFlips() {
  std::lock_guard<std::mutex> guard(fault_mu_);
  bit_flips_.clear();
}

uint64_t FaultEnv::SyncedSize(const std::string& path) {
  Result<uint64_t> size = DurableFileSize(path);
  return size.ok() ? *size : 0;
}

bool FaultEnv::IsDurable(const std::string& path) { return EntryIsDurable(path); }

Status FaultEnv::BeforeOp(Op op, const std::string& path) {
  FaultOp kind = FaultOp::kNone;
  switch (op) {
    case Op::kAppend: kind = FaultOp::kAppend; break;
    case Op::kSync: kind = FaultOp::kSync; break;
    case Op::kPreallocate: kind = FaultOp::kPreallocate; break;
    case Op::kSyncDir: kind = FaultOp::kSyncDir; break;
    case Op::kRename: kind = FaultOp::kRename; break;
    case Op::kLink: kind = FaultOp::kLink; break;
    case Op::kCreate: kind = FaultOp::kCreate; break;
    case Op::kDelete: kind = FaultOp::kDelete; break;
    case Op::kTruncate: kind = FaultOp::kTruncate; break;
    case Op::kRead: kind = FaultOp::kRead; break;
  }
  RKV_ASSERT(kind != FaultOp::kNone);

  std::lock_guard<std::mutex> guard(fault_mu_);
  if (Matches(FaultOp::kMutating, kind)) {
    const uint64_t index = operation_count_++;
    if (crash_point_.has_value() && index >= *crash_point_) {
      crash_point_reached_ = true;
      ++injected_failures_;
      return Status::IOError("crash point: operation " + std::to_string(index) + " on " + path +
                             " refused");
    }
  }
  const auto applies = [&](const Rule& rule) {
    return rule.active && Matches(rule.ops, kind) && path.starts_with(rule.path_prefix);
  };
  // An operation that fails did not succeed, so no rule counts it.
  for (Rule& rule : rules_) {
    if (applies(rule) && rule.successes_left == 0) {
      if (rule.mode == FaultMode::kOneShot) rule.active = false;
      ++injected_failures_;
      return rule.error;
    }
  }
  for (Rule& rule : rules_) {
    if (applies(rule)) --rule.successes_left;
  }
  return Status::OK();
}

void FaultEnv::AfterRead(const std::string& path, uint64_t offset, char* data, size_t n) {
  std::lock_guard<std::mutex> guard(fault_mu_);
  auto file = bit_flips_.find(path);
  if (file == bit_flips_.end()) return;
  for (auto it = file->second.lower_bound(offset);
       it != file->second.end() && it->first - offset < n; ++it) {
    data[it->first - offset] =
        static_cast<char>(static_cast<uint8_t>(data[it->first - offset]) ^ it->second);
  }
}

}  // namespace rkv
