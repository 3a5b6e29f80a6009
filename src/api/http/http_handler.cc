#include "api/http/http_handler.h"

#include <boost/json.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>

#include <fmt/format.h>

#include <array>
#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "api/http/http_util.h"
#include "common/json_fields.h"
#include "common/logging.h"
#include "common/metrics.h"

namespace rkv::http {

namespace internal {

namespace json = boost::json;

HttpResponse JsonResponse(int http_status, const json::value& body) {
  HttpResponse response;
  response.status = http_status;
  response.body = json::serialize(body);
  return response;
}

HttpResponse MethodNotAllowed(std::string_view allow) {
  HttpResponse response = ErrorResponse(405, "method_not_allowed", "method not allowed");
  response.headers.emplace_back("Allow", std::string(allow));
  return response;
}

HttpResponse TooLarge(std::string_view what, size_t size, size_t limit) {
  return ErrorResponse(413, "too_large", fmt::format("{} is {} bytes; the limit is {}", what, size, limit));
}

bool ParseConsistency(const boost::urls::url_view& url, ServiceReadOptions* options) {
  if (!url.has_query()) return true;
  for (auto param : url.params()) {
    if (param.key != "consistency") continue;
    if (param.value == "linearizable") {
      options->consistency = ReadConsistency::kLinearizable;
    } else if (param.value == "lease") {
      options->consistency = ReadConsistency::kLease;
    } else if (param.value == "stale") {
      options->consistency = ReadConsistency::kStale;
    } else {
      return false;
    }
  }
  return true;
}

std::optional<HttpResponse> RedirectToLeader(KvService* service, const std::string& target,
                                             std::string_view message) {
  const ServiceStatus status = service->NodeStatus();
  if (status.leader_http.empty() || status.leader == status.id) return std::nullopt;
  HttpResponse response = ErrorResponse(307, "not_leader", message);
  response.headers.emplace_back("Location", "http://" + status.leader_http + target);
  response.headers.emplace_back("X-Raft-Leader", std::to_string(status.leader));
  return response;
}

}  // namespace internal

namespace {

namespace json = boost::json;
using internal::JsonResponse;
using internal::MethodNotAllowed;
using internal::ParseConsistency;

constexpr std::string_view kAllowKey = "GET, POST, PUT, DELETE";
constexpr std::string_view kHealthPath = "/healthz";
constexpr std::string_view kStatusPath = "/v1/status";
constexpr std::string_view kClusterPath = "/v1/cluster";
// Everything below it is a membership route, never a key.
constexpr std::string_view kMembersPath = "/v1/cluster/members";
constexpr std::string_view kLeaderPath = "/v1/cluster/leader";
constexpr std::string_view kReadyPath = "/readyz";
constexpr std::string_view kMetricsPath = "/metrics";
constexpr std::string_view kKvPath = "/v1/kv";
constexpr std::string_view kKvPrefix = "/v1/kv/";
constexpr std::string_view kTxnPath = "/v1/txn";
constexpr std::string_view kSnapshotPath = "/v1/snapshot";

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i];
    char y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

HttpResponse Success() { return JsonResponse(200, json::object{{"success", true}}); }

// Extracts the string "value" of a {"value":"..."} body into *value, or
// returns why the body is unusable.
Status ParseValueBody(std::string_view body, std::string* value) {
  boost::system::error_code ec;
  json::value doc = json::parse(json::string_view(body.data(), body.size()), ec);
  if (ec) return Status::InvalidArgument("request body is not valid JSON: " + ec.message());
  const json::object* object = doc.if_object();
  if (object == nullptr) return Status::InvalidArgument("request body must be a JSON object");
  const json::value* field = object->if_contains("value");
  if (field == nullptr) return Status::InvalidArgument("request body has no \"value\"");
  const json::string* text = field->if_string();
  if (text == nullptr) return Status::InvalidArgument("\"value\" must be a string");
  value->assign(text->data(), text->size());
  return Status::OK();
}

json::array IdArray(const std::vector<uint64_t>& ids) {
  json::array out;
  for (uint64_t id : ids) out.emplace_back(id);
  return out;
}

json::object StatusJson(const ServiceStatus& s) {
  json::object out;
  out["id"] = s.id;
  out["role"] = s.role;
  out["leader"] = s.leader;
  if (!s.leader_http.empty()) out["leader_http"] = s.leader_http;
  out["term"] = s.term;
  out["commit_index"] = s.commit_index;
  out["applied_index"] = s.applied_index;
  out["first_index"] = s.first_index;
  out["last_index"] = s.last_index;
  out["voters"] = IdArray(s.voters);
  out["learners"] = IdArray(s.learners);
  if (!s.match_index.empty()) {
    json::object match;
    for (const auto& [id, index] : s.match_index) match[std::to_string(id)] = index;
    out["match_index"] = std::move(match);
  }
  return out;
}

json::object ClusterJson(const ClusterInfo& info) {
  json::object out;
  out["cluster_id"] = fmt::format("{:016x}", info.cluster_id);
  out["id"] = info.self.id;
  out["leader"] = info.self.leader;
  out["term"] = info.self.term;
  out["commit_index"] = info.self.commit_index;
  out["applied_index"] = info.self.applied_index;
  out["last_index"] = info.self.last_index;
  json::array members;
  for (const MemberInfo& m : info.members) {
    json::object member;
    member["id"] = m.id;
    member["voter"] = m.voter;
    member["leader"] = m.id == info.self.leader;
    member["peer"] = m.peer_address;
    member["http"] = m.http_address;
    if (auto it = info.self.match_index.find(m.id); it != info.self.match_index.end()) {
      // Known on the leader: how far behind its log each member is.
      member["match_index"] = it->second;
      member["lag"] = info.self.last_index > it->second ? info.self.last_index - it->second : 0;
    }
    if (m.status) {
      member["reachable"] = true;
      member["role"] = m.status->role;
      member["term"] = m.status->term;
      member["commit_index"] = m.status->commit_index;
      member["applied_index"] = m.status->applied_index;
    } else {
      member["reachable"] = false;
      member["error"] = m.error;
    }
    members.push_back(std::move(member));
  }
  out["members"] = std::move(members);
  return out;
}

json::object MembershipJson(const MembershipInfo& info) {
  json::object out;
  out["cluster_id"] = fmt::format("{:016x}", info.cluster_id);
  json::array members;
  for (const MemberInfo& m : info.members) {
    json::object member;
    member["id"] = m.id;
    member["voter"] = m.voter;
    member["peer"] = m.peer_address;
    member["http"] = m.http_address;
    members.push_back(std::move(member));
  }
  out["members"] = std::move(members);
  return out;
}

using json_fields::GetU64;

}  // namespace

Result<ServiceStatus> ParseServiceStatus(std::string_view body) {
  boost::system::error_code ec;
  json::value doc = json::parse(json::string_view(body.data(), body.size()), ec);
  if (ec) return Status::InvalidArgument("status is not valid JSON: " + ec.message());
  const json::object* o = doc.if_object();
  if (o == nullptr) return Status::InvalidArgument("status is not a JSON object");
  ServiceStatus s;
  const json::value* role = o->if_contains("role");
  if (!GetU64(*o, "id", &s.id) || !GetU64(*o, "leader", &s.leader) || !GetU64(*o, "term", &s.term) ||
      !GetU64(*o, "commit_index", &s.commit_index) ||
      !GetU64(*o, "applied_index", &s.applied_index) || role == nullptr || !role->is_string()) {
    return Status::InvalidArgument("status lacks id, role, leader, term or indexes");
  }
  s.role = std::string(role->get_string());
  (void)GetU64(*o, "first_index", &s.first_index);
  (void)GetU64(*o, "last_index", &s.last_index);
  if (const json::value* lh = o->if_contains("leader_http"); lh != nullptr && lh->is_string()) {
    s.leader_http = std::string(lh->get_string());
  }
  for (auto [field, ids] : {std::pair{"voters", &s.voters}, std::pair{"learners", &s.learners}}) {
    const json::value* list = o->if_contains(field);
    if (list == nullptr) continue;
    if (!list->is_array()) return Status::InvalidArgument("status has a malformed member list");
    for (const json::value& v : list->get_array()) {
      if (!v.is_uint64() && !(v.is_int64() && v.get_int64() > 0)) {
        return Status::InvalidArgument("status has a malformed member id");
      }
      ids->push_back(v.is_uint64() ? v.get_uint64() : static_cast<uint64_t>(v.get_int64()));
    }
  }
  return s;
}

std::string_view HttpResponse::Header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (EqualsIgnoreCase(key, name)) return value;
  }
  return {};
}

HttpResponse ErrorResponse(int http_status, std::string_view code, std::string_view message) {
  json::object error;
  error["code"] = json::string_view(code.data(), code.size());
  error["message"] = json::string_view(message.data(), message.size());
  return JsonResponse(http_status, json::object{{"error", std::move(error)}});
}

HttpResponse StatusToResponse(const Status& status) {
  const std::string& message = status.message();
  auto text = [&](std::string_view fallback) -> std::string_view {
    return message.empty() ? fallback : std::string_view(message);
  };
  switch (status.code()) {
    case StatusCode::kOk:
      return Success();
    case StatusCode::kNotFound:
      return ErrorResponse(404, "not_found", text("key not found"));
    case StatusCode::kInvalidArgument:
      return ErrorResponse(400, "invalid_argument", text("invalid argument"));
    case StatusCode::kBusy:
    case StatusCode::kShuttingDown:
    case StatusCode::kNotLeader:
    case StatusCode::kTimeout: {
      HttpResponse response = ErrorResponse(503, "unavailable", status.ToString());
      response.headers.emplace_back("Retry-After", "1");
      return response;
    }
    case StatusCode::kCorruption:
    case StatusCode::kIOError:
    case StatusCode::kNoSpace:
    case StatusCode::kNotSupported:
    case StatusCode::kAborted:
      break;
  }
  return ErrorResponse(500, "internal", status.ToString());
}

namespace {

Result<MemberRequest> ParseMemberRequest(std::string_view body) {
  boost::system::error_code ec;
  json::value doc = json::parse(json::string_view(body.data(), body.size()), ec);
  if (ec) return Status::InvalidArgument("request body is not valid JSON: " + ec.message());
  const json::object* o = doc.if_object();
  if (o == nullptr) return Status::InvalidArgument("request body must be a JSON object");
  MemberRequest request;
  if (!GetU64(*o, "id", &request.id) || request.id == 0) {
    return Status::InvalidArgument("\"id\" must be a member id (a number from 1)");
  }
  const json::value* peer = o->if_contains("peer");
  if (peer == nullptr || !peer->is_string() || peer->get_string().empty()) {
    return Status::InvalidArgument("\"peer\" must be the new member's peer address, HOST:PORT");
  }
  request.peer_address = std::string(peer->get_string());
  if (const json::value* http = o->if_contains("http")) {
    if (!http->is_string()) return Status::InvalidArgument("\"http\" must be a string, HOST:PORT");
    request.http_address = std::string(http->get_string());
  }
  if (const json::value* learner = o->if_contains("learner")) {
    if (!learner->is_bool()) return Status::InvalidArgument("\"learner\" must be true or false");
    request.learner = learner->get_bool();
  }
  return request;
}

// The member id of "/v1/cluster/members/{id}" or ".../{id}/promote", or 0.
uint64_t ParseMemberId(std::string_view text) {
  if (text.empty() || text.size() > 19) return 0;
  uint64_t id = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return 0;
    id = id * 10 + static_cast<uint64_t>(c - '0');
  }
  return id;
}

}  // namespace

struct HttpHandler::RouteMetrics {
  metrics::Histogram* latency = nullptr;
  // By status code, made on first use (the registry hands out one counter
  // per series, so two threads racing here store the same pointer).
  std::array<std::atomic<metrics::Counter*>, 600> by_code{};
};

namespace {

constexpr std::string_view kRouteNames[] = {"key", "kv_v1", "kv_scan", "txn", "healthz", "readyz", "metrics",
                                            "status", "cluster", "members", "leader", "snapshot", "other"};

}  // namespace

HttpHandler::HttpHandler(KvService* service, HttpLimits limits, metrics::Registry* metrics)
    : service_(service), limits_(limits), metrics_(metrics) {
  if (metrics_ == nullptr) return;
  route_metrics_ = std::make_unique<RouteMetrics[]>(static_cast<size_t>(Route::kCount));
  for (size_t i = 0; i < static_cast<size_t>(Route::kCount); ++i) {
    route_metrics_[i].latency = metrics_->GetHistogram(
        "raft_kv_http_request_duration_seconds", "HTTP requests from the first byte read to the reply, by route.",
        metrics::LatencyBuckets(), {{"route", std::string(kRouteNames[i])}});
  }
}

HttpHandler::~HttpHandler() = default;

HttpHandler::Route HttpHandler::RouteOf(std::string_view path) {
  if (path.starts_with(kKvPrefix)) return Route::kKeyV1;
  if (path == kKvPath) return Route::kScan;
  if (path == kTxnPath) return Route::kTxn;
  if (path == kHealthPath) return Route::kHealth;
  if (path == kReadyPath) return Route::kReady;
  if (path == kMetricsPath) return Route::kMetrics;
  if (path == kStatusPath) return Route::kStatus;
  if (path == kClusterPath) return Route::kCluster;
  if (path == kLeaderPath) return Route::kLeader;
  if (path == kSnapshotPath) return Route::kSnapshot;
  if (path == kMembersPath || (path.starts_with(kMembersPath) && path[kMembersPath.size()] == '/')) {
    return Route::kMembers;
  }
  if (path.size() > 1) return Route::kKey;
  return Route::kOther;
}

HttpHandler::Callback HttpHandler::Measured(Route route, Callback done) {
  if (route_metrics_ == nullptr) return done;
  RouteMetrics* m = &route_metrics_[static_cast<size_t>(route)];
  metrics::Registry* registry = metrics_;
  const auto start = std::chrono::steady_clock::now();
  return [m, registry, route, start, done = std::move(done)](HttpResponse response) {
    m->latency->Observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    const size_t code = response.status >= 100 && response.status < 600 ? static_cast<size_t>(response.status) : 0;
    metrics::Counter* counter = m->by_code[code].load(std::memory_order_acquire);
    if (counter == nullptr) {
      counter = registry->GetCounter("raft_kv_http_requests_total", "HTTP requests answered, by route and status code.",
                                     {{"route", std::string(kRouteNames[static_cast<size_t>(route)])},
                                      {"code", std::to_string(response.status)}});
      m->by_code[code].store(counter, std::memory_order_release);
    }
    counter->Inc();
    if (response.status >= 500) LogRefusal(route, response);
    done(std::move(response));
  };
}

// Requests refused for want of a leader, capacity or time are logged, at
// most one line a second (with how many were not logged since), so an
// outage shows in the log without flooding it.
void HttpHandler::LogRefusal(Route route, const HttpResponse& response) {
  static std::atomic<int64_t> last_ms{0};
  static std::atomic<uint64_t> suppressed{0};
  const int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::steady_clock::now().time_since_epoch())
                             .count();
  int64_t last = last_ms.load(std::memory_order_relaxed);
  if (now_ms - last < 1000 || !last_ms.compare_exchange_strong(last, now_ms)) {
    suppressed.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  std::string_view body = response.body;
  if (body.size() > 200) body = body.substr(0, 200);
  RKV_LOG_WARN("event=request_refused route={} code={} suppressed={} body={}", kRouteNames[static_cast<size_t>(route)],
               response.status, suppressed.exchange(0, std::memory_order_relaxed), body);
}

void HttpHandler::Handle(HttpRequest request, Callback done) {
  auto parsed = boost::urls::parse_origin_form(request.target);
  if (parsed.has_error()) {
    Measured(Route::kOther, std::move(done))(ErrorResponse(400, "invalid_argument", "malformed request target"));
    return;
  }
  const boost::urls::url_view& url = *parsed;
  std::string path = url.path();  // percent-decoded
  const std::string& method = request.method;
  const Route route = RouteOf(path);
  done = Measured(route, std::move(done));

  switch (route) {
    case Route::kKeyV1:
      HandleKeyV1(path.substr(kKvPrefix.size()), std::move(request), std::move(done));
      return;
    case Route::kScan:
      HandleScan(request, std::move(done));
      return;
    case Route::kTxn:
      HandleTxn(request, std::move(done));
      return;
    case Route::kLeader:
      HandleLeader(request, std::move(done));
      return;
    case Route::kSnapshot:
      HandleSnapshot(request, std::move(done));
      return;
    case Route::kReady:
    case Route::kMetrics:
      if (method != "GET") {
        done(MethodNotAllowed("GET"));
      } else if (route == Route::kReady) {
        HandleReady(std::move(done));
      } else {
        HandleMetrics(std::move(done));
      }
      return;
    default:
      break;
  }

  if (path == kHealthPath) {
    if (method != "GET") {
      done(MethodNotAllowed("GET"));
      return;
    }
    if (!service_->Healthy()) {
      done(StatusToResponse(Status::ShuttingDown("service is not ready")));
      return;
    }
    done(JsonResponse(200, json::object{{"status", "ok"}}));
    return;
  }
  if (path == kStatusPath || path == kClusterPath) {
    if (method != "GET") {
      done(MethodNotAllowed("GET"));
      return;
    }
    if (path == kStatusPath) {
      done(JsonResponse(200, StatusJson(service_->NodeStatus())));
    } else {
      service_->Cluster(
          [done = std::move(done)](ClusterInfo info) { done(JsonResponse(200, ClusterJson(info))); });
    }
    return;
  }

  if (route == Route::kMembers) {
    HandleMembers(path.substr(kMembersPath.size()), request, std::move(done));
    return;
  }

  std::string key = path.substr(1);  // an origin-form path starts with '/'
  if (key.empty()) {
    done(ErrorResponse(404, "not_found", "no such route; use /{key}"));
    return;
  }
  const bool is_get = method == "GET";
  const bool is_put = method == "POST" || method == "PUT";
  const bool is_delete = method == "DELETE";
  if (!is_get && !is_put && !is_delete) {
    done(MethodNotAllowed(kAllowKey));
    return;
  }
  if (key.size() > limits_.max_key_bytes) {
    done(ErrorResponse(413, "too_large",
                       "key is " + std::to_string(key.size()) + " bytes; the limit is " +
                           std::to_string(limits_.max_key_bytes)));
    return;
  }

  if (is_get) {
    ServiceReadOptions options;
    if (!ParseConsistency(url, &options)) {
      done(ErrorResponse(400, "invalid_argument",
                         "consistency must be linearizable, lease or stale"));
      return;
    }
    // A stale read says how current it is: the index this node had applied
    // (compare with the leader's commit_index in /v1/status).
    const bool stale = options.consistency == ReadConsistency::kStale;
    KvService* service = service_;
    service_->Get(std::move(key), options,
                  [done = std::move(done), stale, service](Result<std::string> result) {
                    HttpResponse response =
                        result.ok()
                            ? JsonResponse(200, json::object{{"value", json::string(*result)}})
                            : StatusToResponse(result.status());
                    if (stale) {
                      const ServiceStatus status = service->NodeStatus();
                      response.headers.emplace_back("X-Raft-Applied-Index",
                                                    std::to_string(status.applied_index));
                      response.headers.emplace_back("X-Raft-Leader", std::to_string(status.leader));
                    }
                    done(std::move(response));
                  });
    return;
  }

  ServiceWriteOptions options;
  options.idempotency_key = std::move(request.idempotency_key);
  if (is_delete) {
    service_->Delete(std::move(key), options,
                     [done = std::move(done)](Status status) { done(StatusToResponse(status)); });
    return;
  }

  if (request.body.size() > limits_.max_body_bytes) {
    done(ErrorResponse(413, "too_large",
                       "request body is " + std::to_string(request.body.size()) +
                           " bytes; the limit is " + std::to_string(limits_.max_body_bytes)));
    return;
  }
  std::string value;
  Status parse_status = ParseValueBody(request.body, &value);
  if (!parse_status.ok()) {
    done(StatusToResponse(parse_status));
    return;
  }
  if (value.size() > limits_.max_value_bytes) {
    done(ErrorResponse(413, "too_large",
                       "value is " + std::to_string(value.size()) + " bytes; the limit is " +
                           std::to_string(limits_.max_value_bytes)));
    return;
  }
  request.body.clear();
  request.body.shrink_to_fit();
  service_->Put(std::move(key), std::move(value), options,
                [done = std::move(done)](Status status) { done(StatusToResponse(status)); });
}

// path: what follows /v1/cluster/members ("", "/4" or "/4/promote").
void HttpHandler::HandleMembers(std::string_view path, const HttpRequest& request, Callback done) {
  const std::string& method = request.method;
  KvService* service = service_;
  std::string target = request.target;
  // A change made elsewhere than on the leader is redirected there (307
  // keeps the method and body: curl -L, and raft-kv's own clients, follow).
  auto reply = std::make_shared<Callback>(std::move(done));
  auto answer = [reply, service, target](Result<MembershipInfo> result) {
    const Callback& send = *reply;
    if (result.ok()) {
      send(JsonResponse(200, MembershipJson(*result)));
      return;
    }
    if (result.status().IsNotLeader()) {
      const ServiceStatus status = service->NodeStatus();
      if (!status.leader_http.empty() && status.leader != status.id) {
        HttpResponse response = ErrorResponse(307, "not_leader", result.status().message());
        response.headers.emplace_back("Location", "http://" + status.leader_http + target);
        response.headers.emplace_back("X-Raft-Leader", std::to_string(status.leader));
        send(std::move(response));
        return;
      }
    }
    send(StatusToResponse(result.status()));
  };

  if (path.empty()) {
    if (method == "GET") {
      answer(service_->Members());
    } else if (method == "POST") {
      if (request.body.size() > limits_.max_body_bytes) {
        answer(Status::InvalidArgument("request body too large"));
        return;
      }
      Result<MemberRequest> member = ParseMemberRequest(request.body);
      if (!member.ok()) {
        answer(member.status());
        return;
      }
      service_->AddMember(std::move(*member), std::move(answer));
    } else {
      (*reply)(MethodNotAllowed("GET, POST"));
    }
    return;
  }
  path.remove_prefix(1);  // the '/'
  const size_t slash = path.find('/');
  const uint64_t id = ParseMemberId(path.substr(0, slash));
  const std::string_view action = slash == std::string_view::npos ? "" : path.substr(slash);
  if (id == 0 || (!action.empty() && action != "/promote")) {
    (*reply)(ErrorResponse(404, "not_found",
                       "no such route; use /v1/cluster/members, /v1/cluster/members/{id} or "
                       "/v1/cluster/members/{id}/promote"));
    return;
  }
  if (action.empty()) {
    if (method != "DELETE") {
      (*reply)(MethodNotAllowed("DELETE"));
      return;
    }
    service_->RemoveMember(id, std::move(answer));
    return;
  }
  if (method != "POST") {
    (*reply)(MethodNotAllowed("POST"));
    return;
  }
  service_->PromoteMember(id, std::move(answer));
}

}  // namespace rkv::http
