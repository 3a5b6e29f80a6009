// Rendering the admin replies (GET /v1/cluster, GET /v1/status) for people.
//
// The CLI does not hard-code the shape of those replies, so that a field the
// server adds later shows up without a CLI change: objects become
// "name: value" lines, arrays of objects become aligned tables.
#ifndef RKV_APPS_RAFT_KV_CLI_JSON_RENDER_H_
#define RKV_APPS_RAFT_KV_CLI_JSON_RENDER_H_

#include <boost/json/value.hpp>

#include <optional>
#include <string>

namespace rkv::cli {

// A human-readable rendering of `value`, ending in a newline.
std::string RenderJson(const boost::json::value& value);

// The id of the leader a /v1/cluster reply names, if it names one: a
// top-level "leader" or "leader_id" (a number, a string, or an object with
// an "id"), or the member of a "members"/"nodes"/"peers" array whose
// "role"/"state" is "leader" or whose "is_leader"/"leader" is true. Ids 0
// and "" mean "no leader" (Raft's convention).
std::optional<std::string> FindLeader(const boost::json::value& cluster);

}  // namespace rkv::cli

#endif  // RKV_APPS_RAFT_KV_CLI_JSON_RENDER_H_
