#include "raft/progress.h"

#include <algorithm>

#include "common/assert.h"

namespace rkv::raft {

void Inflights::Add(LogIndex last_index) {
  RKV_ASSERT(!Full());
  RKV_ASSERT(last_indexes_.empty() || last_indexes_.back() < last_index);
  last_indexes_.push_back(last_index);
}

void Inflights::FreeLE(LogIndex index) {
  while (!last_indexes_.empty() && last_indexes_.front() <= index) last_indexes_.pop_front();
}

std::string_view ProgressStateName(ProgressState state) {
  switch (state) {
    case ProgressState::kProbe: return "probe";
    case ProgressState::kReplicate: return "replicate";
    case ProgressState::kSnapshot: return "snapshot";
  }
  return "?";
}

void Progress::BecomeProbe() {
  if (state == ProgressState::kSnapshot) {
    // The follower has (or is about to have) the snapshot; resume after it.
    next_index = std::max(match_index + 1, pending_snapshot_index + 1);
  } else {
    next_index = match_index + 1;
  }
  state = ProgressState::kProbe;
  probe_sent = false;
  pending_snapshot_index = LogIndex{0};
  snapshot_offset = 0;
  inflights.Reset();
}

void Progress::BecomeReplicate() {
  state = ProgressState::kReplicate;
  next_index = match_index + 1;
  probe_sent = false;
  inflights.Reset();
}

void Progress::BecomeSnapshot(LogIndex snapshot_index) {
  state = ProgressState::kSnapshot;
  pending_snapshot_index = snapshot_index;
  snapshot_offset = 0;
  probe_sent = false;
  inflights.Reset();
}

bool Progress::MaybeUpdate(LogIndex index) {
  bool updated = false;
  if (match_index < index) {
    match_index = index;
    updated = true;
    probe_sent = false;
  }
  next_index = std::max(next_index, index + 1);
  return updated;
}

bool Progress::MaybeDecreaseTo(LogIndex rejected_index, LogIndex hint_next) {
  if (state == ProgressState::kReplicate) {
    // A rejection of an index we already know matches is stale.
    if (rejected_index <= match_index) return false;
    next_index = match_index + 1;
    return true;
  }
  // In probe (or snapshot) state only the answer to the outstanding probe,
  // sent with prev_log_index == next_index - 1, counts.
  if (next_index - 1 != rejected_index) return false;
  next_index = std::max(std::min(rejected_index, hint_next), match_index + 1);
  probe_sent = false;
  return true;
}

bool Progress::IsPaused() const {
  switch (state) {
    case ProgressState::kProbe: return probe_sent;
    case ProgressState::kReplicate: return inflights.Full();
    case ProgressState::kSnapshot: return true;
  }
  return true;
}

}  // namespace rkv::raft
