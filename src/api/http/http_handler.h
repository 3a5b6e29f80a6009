// HTTP request handling for the original raft-kv API, free of any network
// code: the server (http_server.cc) turns wire requests into HttpRequest,
// calls HttpHandler::Handle and writes the HttpResponse it gets back.
//
// Routes (docs/api.md):
//   GET    /healthz   -> 200 {"status":"ok"}
//   GET    /v1/status -> 200 this node: id, role, leader, term, indexes
//   GET    /v1/cluster-> 200 members, leader, and each member's status
//   GET    /v1/cluster/members               -> 200 the members and their addresses
//   POST   /v1/cluster/members               body {"id","peer","http","learner"}: add
//   POST   /v1/cluster/members/{id}/promote  learner -> voter
//   DELETE /v1/cluster/members/{id}          remove
//   (changes on a follower: 307 to the leader's HTTP address)
//   GET    /{key}     -> 200 {"value":"..."}   ?consistency=linearizable|lease|stale
//   POST   /{key}     body {"value":"..."} -> 200 {"success":true}
//   PUT    /{key}     same as POST
//   DELETE /{key}     -> 200 {"success":true}
// The key is the percent-decoded path after the first '/'. Every error is
// {"error":{"code":"...","message":"..."}}.
#ifndef RKV_API_HTTP_HTTP_HANDLER_H_
#define RKV_API_HTTP_HTTP_HANDLER_H_

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"
#include "common/status.h"
#include "node/kv_service.h"

namespace rkv::metrics {
class Counter;
class Histogram;
class Registry;
}  // namespace rkv::metrics

namespace rkv::http {

// Limits enforced by the handler (key, value) and the server (the rest).
struct HttpLimits {
  size_t max_key_bytes = 4096;
  size_t max_value_bytes = 16u << 20;
  size_t max_body_bytes = 17u << 20;
  size_t max_header_bytes = 16u << 10;
  std::chrono::milliseconds idle_timeout{60'000};
  std::chrono::milliseconds read_timeout{30'000};
  size_t max_connections = 10000;
  // POST /v1/txn: compares and ops, each.
  size_t max_txn_ops = 128;
  // GET /v1/kv: the largest limit= a scan may ask.
  size_t max_scan_limit = 10000;
};

struct HttpRequest {
  std::string method;  // "GET", "POST", ... as sent
  std::string target;  // origin form: "/key?query"
  std::string idempotency_key;  // the Idempotency-Key header; empty if absent
  std::string body;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  // Extra headers.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;

  // The value of header `name` (case-insensitive), or "" if absent.
  std::string_view Header(std::string_view name) const;
};

// Reads the body of GET /v1/status back into a ServiceStatus (what a node
// uses to show its peers in GET /v1/cluster).
Result<ServiceStatus> ParseServiceStatus(std::string_view body);

// The one mapping from a Status to an HTTP error reply.
HttpResponse StatusToResponse(const Status& status);

// An error reply: {"error":{"code":code,"message":message}}.
HttpResponse ErrorResponse(int http_status, std::string_view code, std::string_view message);

class HttpHandler {
 public:
  using Callback = std::function<void(HttpResponse)>;

  // `service` and `metrics` (may be nullptr: no metrics, and GET /metrics
  // answers 404) must outlive the handler. Requests are counted in
  // `metrics` by route and status code, with a latency histogram per route.
  HttpHandler(KvService* service, HttpLimits limits, metrics::Registry* metrics = nullptr);
  ~HttpHandler();

  // Handles one request; `done` runs exactly once, on any thread, possibly
  // before Handle returns.
  void Handle(HttpRequest request, Callback done);

  const HttpLimits& limits() const { return limits_; }

 private:
  // The routes a request can take, for its metrics.
  enum class Route { kKey, kKeyV1, kScan, kTxn, kHealth, kReady, kMetrics, kStatus, kCluster, kMembers,
                     kLeader, kSnapshot, kOther, kCount };
  struct RouteMetrics;

  static Route RouteOf(std::string_view path);
  // Wraps `done` so the reply is counted under `route`.
  Callback Measured(Route route, Callback done);
  static void LogRefusal(Route route, const HttpResponse& response);
  void HandleMembers(std::string_view path, const HttpRequest& request, Callback done);
  // http_v1.cc
  void HandleKeyV1(std::string key, HttpRequest request, Callback done);
  void HandleScan(const HttpRequest& request, Callback done);
  void HandleTxn(const HttpRequest& request, Callback done);
  void HandleLeader(const HttpRequest& request, Callback done);
  void HandleSnapshot(const HttpRequest& request, Callback done);
  void HandleMetrics(Callback done);
  void HandleReady(Callback done);

  KvService* service_;
  HttpLimits limits_;
  metrics::Registry* metrics_;
  std::unique_ptr<RouteMetrics[]> route_metrics_;
};

}  // namespace rkv::http

#endif  // RKV_API_HTTP_HTTP_HANDLER_H_
