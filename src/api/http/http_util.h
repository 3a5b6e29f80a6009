// Pieces the HTTP handler's files share (http_handler.cc: the original
// routes and the cluster; http_v1.cc: the v1 key-value routes). Internal to
// the HTTP front end.
#ifndef RKV_API_HTTP_HTTP_UTIL_H_
#define RKV_API_HTTP_HTTP_UTIL_H_

#include <boost/json.hpp>
#include <boost/url/url_view.hpp>

#include <optional>
#include <string>
#include <string_view>

#include "api/http/http_handler.h"

namespace rkv::http::internal {

HttpResponse JsonResponse(int http_status, const boost::json::value& body);
HttpResponse MethodNotAllowed(std::string_view allow);
HttpResponse TooLarge(std::string_view what, size_t size, size_t limit);

// Parses ?consistency=...; false when the value is unknown.
bool ParseConsistency(const boost::urls::url_view& url, ServiceReadOptions* options);

// The 307 to the leader's HTTP address for a request that only the leader
// serves, or nullopt when no other leader is known.
std::optional<HttpResponse> RedirectToLeader(KvService* service, const std::string& target,
                                             std::string_view message);


}  // namespace rkv::http::internal

#endif  // RKV_API_HTTP_HTTP_UTIL_H_
