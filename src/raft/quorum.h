// Majority arithmetic (§5.2 elections, §5.3-5.4 commitment), kept pure so it
// can be tested against a brute-force version.
#ifndef RKV_RAFT_QUORUM_H_
#define RKV_RAFT_QUORUM_H_

#include <cstdint>
#include <map>
#include <vector>

#include "common/types.h"

namespace rkv::raft::quorum {

// How many of n voters make a majority.
constexpr size_t MajoritySize(size_t n) { return n / 2 + 1; }

// The largest value v such that a majority of `values` are >= v: with the
// voters' match indexes, the highest index stored on a majority.
// REQUIRES: !values.empty().
uint64_t MajorityValue(std::vector<uint64_t> values);

enum class VoteResult { kPending, kWon, kLost };

// The outcome of an election among `voters` given the votes received so far
// (voters missing from `votes` have not answered; votes from non-voters are
// ignored).
VoteResult TallyVotes(const std::vector<NodeId>& voters, const std::map<NodeId, bool>& votes);

}  // namespace rkv::raft::quorum

#endif  // RKV_RAFT_QUORUM_H_
