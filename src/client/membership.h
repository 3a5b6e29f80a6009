// Client side of cluster membership: the members JSON of
// /v1/cluster/members, and requests that must reach the leader.
//
//   Result<HttpReply> r = RequestLeader({"127.0.0.1:7001"}, "POST",
//                                       "/v1/cluster/members", body, 5s);
//   Result<Membership> m = ParseMembership(r->body);
#ifndef RKV_CLIENT_MEMBERSHIP_H_
#define RKV_CLIENT_MEMBERSHIP_H_

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "client/http_client.h"
#include "common/result.h"

namespace rkv::client {

struct Member {
  uint64_t id = 0;
  bool voter = true;
  std::string peer;
  std::string http;  // empty when unknown
};

struct Membership {
  uint64_t cluster_id = 0;
  std::vector<Member> members;
};

// Reads {"cluster_id":"<16 hex digits>","members":[{"id","voter","peer","http"}]}.
Result<Membership> ParseMembership(std::string_view body);

// The body of POST /v1/cluster/members.
std::string MemberRequestBody(uint64_t id, std::string_view peer, std::string_view http, bool learner);

// A redirect's Location, "http://host:port/path", as "host:port" and
// "/path"; false for anything else.
bool SplitLocation(std::string_view location, std::string* endpoint, std::string* target);

// Sends the request to the first of `endpoints` ("host:port") that answers,
// following the redirects (307) a follower answers for requests only the
// leader takes, at most `max_redirects` of them. A transport error moves on
// to the next endpoint; the last one is returned if none answered. Any HTTP
// reply other than a redirect is returned as it is.
Result<HttpReply> RequestLeader(const std::vector<std::string>& endpoints, std::string_view method,
                                std::string_view target, std::string_view body,
                                std::chrono::milliseconds timeout, int max_redirects = 3);

}  // namespace rkv::client

#endif  // RKV_CLIENT_MEMBERSHIP_H_
