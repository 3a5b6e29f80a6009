// The member list of a new cluster as the command lines give it
// ("1=host:port,2=host:port": raft-kv --initial-cluster, raft-kv-cli
// snapshot restore) and the cluster id derived from it.
#ifndef RKV_NODE_INITIAL_CLUSTER_H_
#define RKV_NODE_INITIAL_CLUSTER_H_

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

namespace rkv {

// Parses "1=host:port,2=host:port" into id -> address (adding to *out);
// false with *error saying what is wrong. An empty text is an empty list.
bool ParseMemberList(std::string_view text, std::map<uint64_t, std::string>* out, std::string* error);

// The cluster id in every peer frame: a hash of the token and the initial
// members, so nodes started with different member lists never talk.
uint64_t ClusterIdFor(const std::string& token, const std::map<uint64_t, std::string>& members);

}  // namespace rkv

#endif  // RKV_NODE_INITIAL_CLUSTER_H_
