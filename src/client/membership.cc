#include "client/membership.h"

#include <boost/json.hpp>

#include <utility>

#include "common/host_port.h"
#include "common/json_fields.h"

namespace rkv::client {

namespace json = boost::json;

namespace {

using json_fields::GetU64;

bool GetString(const json::object& o, std::string_view key, std::string* out) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr || !v->is_string()) return false;
  *out = std::string(v->get_string());
  return true;
}

bool ParseHex(std::string_view text, uint64_t* out) {
  if (text.empty() || text.size() > 16) return false;
  uint64_t v = 0;
  for (char c : text) {
    int d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      d = c - 'a' + 10;
    } else if (c >= 'A' && c <= 'F') {
      d = c - 'A' + 10;
    } else {
      return false;
    }
    v = (v << 4) | static_cast<uint64_t>(d);
  }
  *out = v;
  return true;
}

}  // namespace

bool SplitLocation(std::string_view location, std::string* endpoint, std::string* target) {
  constexpr std::string_view kScheme = "http://";
  if (!location.starts_with(kScheme)) return false;
  location.remove_prefix(kScheme.size());
  const size_t slash = location.find('/');
  if (slash == std::string_view::npos || slash == 0) return false;
  *endpoint = std::string(location.substr(0, slash));
  *target = std::string(location.substr(slash));
  return true;
}

Result<Membership> ParseMembership(std::string_view body) {
  boost::system::error_code ec;
  json::value doc = json::parse(json::string_view(body.data(), body.size()), ec);
  if (ec) return Status::InvalidArgument("membership is not valid JSON: " + ec.message());
  const json::object* o = doc.if_object();
  std::string cluster;
  Membership out;
  if (o == nullptr || !GetString(*o, "cluster_id", &cluster) || !ParseHex(cluster, &out.cluster_id)) {
    return Status::InvalidArgument("membership lacks a cluster_id");
  }
  const json::value* members = o->if_contains("members");
  if (members == nullptr || !members->is_array()) {
    return Status::InvalidArgument("membership lacks a members list");
  }
  for (const json::value& v : members->get_array()) {
    const json::object* m = v.if_object();
    Member member;
    const json::value* voter = m != nullptr ? m->if_contains("voter") : nullptr;
    if (m == nullptr || !GetU64(*m, "id", &member.id) || member.id == 0 || voter == nullptr ||
        !voter->is_bool() || !GetString(*m, "peer", &member.peer)) {
      return Status::InvalidArgument("membership has a malformed member");
    }
    member.voter = voter->get_bool();
    (void)GetString(*m, "http", &member.http);
    out.members.push_back(std::move(member));
  }
  return out;
}

std::string MemberRequestBody(uint64_t id, std::string_view peer, std::string_view http, bool learner) {
  json::object body;
  body["id"] = id;
  body["peer"] = json::string_view(peer.data(), peer.size());
  if (!http.empty()) body["http"] = json::string_view(http.data(), http.size());
  body["learner"] = learner;
  return json::serialize(body);
}

Result<HttpReply> RequestLeader(const std::vector<std::string>& endpoints, std::string_view method,
                                std::string_view target, std::string_view body,
                                std::chrono::milliseconds timeout, int max_redirects) {
  Status last = Status::InvalidArgument("no endpoint given");
  for (const std::string& first : endpoints) {
    std::string endpoint = first;
    std::string path(target);
    for (int redirects = 0;; ++redirects) {
      std::string host;
      uint16_t port = 0;
      if (!SplitHostPort(endpoint, &host, &port)) {
        last = Status::InvalidArgument("bad endpoint \"" + endpoint + "\" (HOST:PORT)");
        break;
      }
      HttpClient http(host, port, timeout);
      Result<HttpReply> reply = http.Request(method, path, body);
      if (!reply.ok()) {
        last = Status::IOError("cannot reach " + endpoint + ": " + reply.status().message());
        break;
      }
      if ((reply->status != 307 && reply->status != 308) || redirects == max_redirects) return reply;
      if (!SplitLocation(reply->Header("Location"), &endpoint, &path)) return reply;
    }
  }
  return last;
}

}  // namespace rkv::client
