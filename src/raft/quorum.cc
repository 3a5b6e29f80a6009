#include "raft/quorum.h"

#include <algorithm>
#include <functional>

#include "common/assert.h"

namespace rkv::raft::quorum {

uint64_t MajorityValue(std::vector<uint64_t> values) {
  RKV_ASSERT(!values.empty());
  std::sort(values.begin(), values.end(), std::greater<>());
  // values[k] is held by k+1 voters (those at positions 0..k); the majority
  // needs MajoritySize(n) of them.
  return values[MajoritySize(values.size()) - 1];
}

VoteResult TallyVotes(const std::vector<NodeId>& voters, const std::map<NodeId, bool>& votes) {
  RKV_ASSERT(!voters.empty());
  size_t granted = 0;
  size_t rejected = 0;
  for (NodeId voter : voters) {
    auto it = votes.find(voter);
    if (it == votes.end()) continue;
    if (it->second) {
      ++granted;
    } else {
      ++rejected;
    }
  }
  const size_t majority = MajoritySize(voters.size());
  if (granted >= majority) return VoteResult::kWon;
  if (voters.size() - rejected < majority) return VoteResult::kLost;
  return VoteResult::kPending;
}

}  // namespace rkv::raft::quorum
