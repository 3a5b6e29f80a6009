// Progress: what a leader knows about one follower's log (Figure 2's
// nextIndex[] and matchIndex[]), and the flow control on top of it.
//
// A follower's progress is in one of three states (as in etcd raft's
// design.md):
//   kProbe:     the leader does not know where the logs diverge; it sends one
//               AppendEntries at a time and waits for the answer (or the next
//               heartbeat response) before the next, backing next_index off
//               with the follower's conflict hint.
//   kReplicate: the logs agree up to match_index; the leader streams entries
//               optimistically (next_index runs ahead of match_index), with at
//               most max_inflight_messages AppendEntries unanswered.
//   kSnapshot:  the entries the follower needs were compacted; the leader
//               sends a snapshot in chunks and nothing else until it is done.
#ifndef RKV_RAFT_PROGRESS_H_
#define RKV_RAFT_PROGRESS_H_

#include <cstdint>
#include <deque>
#include <string_view>

#include "common/types.h"

namespace rkv::raft {

// The window of AppendEntries sent but not yet acknowledged, identified by
// the last index each carried.
class Inflights {
 public:
  explicit Inflights(size_t capacity) : capacity_(capacity) {}

  bool Full() const { return last_indexes_.size() >= capacity_; }
  size_t count() const { return last_indexes_.size(); }
  // REQUIRES: !Full(), last_index beyond every one already in flight.
  void Add(LogIndex last_index);
  // Forgets every message whose last index is <= index (acknowledged).
  void FreeLE(LogIndex index);
  // Frees the oldest message (a heartbeat response suggests it was lost).
  void FreeFirstOne() {
    if (!last_indexes_.empty()) last_indexes_.pop_front();
  }
  void Reset() { last_indexes_.clear(); }

 private:
  size_t capacity_;
  std::deque<LogIndex> last_indexes_;
};

enum class ProgressState : uint8_t { kProbe, kReplicate, kSnapshot };
std::string_view ProgressStateName(ProgressState state);

struct Progress {
  explicit Progress(size_t max_inflight) : inflights(max_inflight) {}

  // The highest index known to be replicated on the follower (matchIndex).
  LogIndex match_index;
  // The index of the next entry to send (nextIndex). Invariant:
  // next_index > match_index.
  LogIndex next_index{1};
  ProgressState state = ProgressState::kProbe;
  // kProbe: an AppendEntries is outstanding; wait before sending another.
  bool probe_sent = false;
  // kSnapshot: the index of the snapshot being sent and how many of its bytes
  // the follower has acknowledged.
  LogIndex pending_snapshot_index;
  uint64_t snapshot_offset = 0;
  // Heard from since the last CheckQuorum round.
  bool recent_active = false;
  bool is_learner = false;
  // The highest ReadIndex confirmation round this follower acknowledged.
  uint64_t read_round_acked = 0;
  Inflights inflights;

  void BecomeProbe();
  void BecomeReplicate();
  void BecomeSnapshot(LogIndex snapshot_index);

  // A successful AppendEntries response for `index`. Returns true if it was
  // news (match_index grew).
  bool MaybeUpdate(LogIndex index);
  // After sending entries up to last_index in kReplicate.
  void OptimisticUpdate(LogIndex last_index) { next_index = last_index + 1; }
  // A rejection of the AppendEntries whose prev_log_index was
  // rejected_index; hint_next is where the conflict hint says to resume.
  // Returns false if the rejection is stale and was ignored.
  bool MaybeDecreaseTo(LogIndex rejected_index, LogIndex hint_next);

  // No more AppendEntries may be sent to this follower for now.
  bool IsPaused() const;
};

}  // namespace rkv::raft

#endif  // RKV_RAFT_PROGRESS_H_
