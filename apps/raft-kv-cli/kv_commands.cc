#include "kv_commands.h"

#include <boost/json.hpp>

#include <algorithm>
#include <cstdio>
#include <random>
#include <thread>

#include "client/http_client.h"
#include "client/membership.h"
#include "common/host_port.h"
#include "json_render.h"

namespace rkv::cli {
namespace {

namespace json = boost::json;
using client::HttpReply;

// Backoff between attempts: doubling from kFirstBackoff up to kMaxBackoff,
// or what Retry-After asks for (up to kMaxRetryAfter) when that is longer.
constexpr auto kFirstBackoff = std::chrono::milliseconds(100);
constexpr auto kMaxBackoff = std::chrono::milliseconds(2000);
constexpr auto kMaxRetryAfter = std::chrono::seconds(10);

std::string Describe(const Endpoint& e) {
  const bool v6 = e.host.find(':') != std::string::npos;
  return (v6 ? "[" + e.host + "]" : e.host) + ":" + std::to_string(e.port);
}

// Retry-After in its delay-seconds form; an HTTP-date is ignored (the
// server only sends seconds).
std::chrono::milliseconds RetryAfter(const HttpReply& reply) {
  std::string_view text = reply.Header("Retry-After");
  if (text.empty() || text.size() > 6) return std::chrono::milliseconds(0);
  int64_t seconds = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::chrono::milliseconds(0);
    seconds = seconds * 10 + (c - '0');
  }
  return std::min<std::chrono::milliseconds>(std::chrono::seconds(seconds), kMaxRetryAfter);
}

// Sends one request, retrying transport errors and 503s with the same
// method, target, body and headers (so the same Idempotency-Key). Returns
// the first other reply, or the last failure once the attempts run out.
Result<HttpReply> SendWithRetries(const RequestOptions& options, std::string_view method,
                                  const std::string& target, const std::string& body,
                                  const client::Headers& headers) {
  client::HttpClient http(options.endpoint.host, options.endpoint.port, options.timeout);
  std::minstd_rand jitter(std::random_device{}());
  auto backoff = std::chrono::milliseconds(kFirstBackoff);
  const int attempts = std::max(1, options.max_attempts);
  for (int attempt = 1;; ++attempt) {
    Result<HttpReply> reply = http.Request(method, target, body, headers);
    const bool retryable = !reply.ok() || reply->status == 503;
    if (!retryable || attempt == attempts) {
      if (!reply.ok()) {
        return Status::IOError("cannot reach " + Describe(options.endpoint) + " (" +
                               std::to_string(attempt) +
                               (attempt == 1 ? " attempt" : " attempts") +
                               "): " + reply.status().message());
      }
      return reply;
    }
    // Jitter spreads out clients that failed together (a leader change).
    auto delay = backoff / 2 + std::chrono::milliseconds(jitter() % static_cast<uint64_t>(
                                                                      backoff.count() / 2 + 1));
    if (reply.ok()) delay = std::max(delay, RetryAfter(*reply));
    std::this_thread::sleep_for(delay);
    backoff = std::min(backoff * 2, std::chrono::milliseconds(kMaxBackoff));
  }
}

// "HTTP 503 unavailable: no leader" and the like, from an error reply.
std::string ReplyError(const HttpReply& reply) { return client::ReplyToStatus(reply).message(); }

// Whether `text` is well-formed UTF-8 (no overlong forms, no surrogates,
// nothing past U+10FFFF): the API stores JSON strings, and the server's
// answer to anything else would only say the body is not JSON.
bool IsValidUtf8(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    size_t extra;
    uint32_t code;
    if (c < 0x80) {
      ++i;
      continue;
    } else if (c >= 0xc2 && c <= 0xdf) {
      extra = 1;
      code = c & 0x1fu;
    } else if (c >= 0xe0 && c <= 0xef) {
      extra = 2;
      code = c & 0x0fu;
    } else if (c >= 0xf0 && c <= 0xf4) {
      extra = 3;
      code = c & 0x07u;
    } else {
      return false;
    }
    if (text.size() - i <= extra) return false;  // truncated sequence
    for (size_t k = 1; k <= extra; ++k) {
      const auto next = static_cast<unsigned char>(text[i + k]);
      if ((next & 0xc0u) != 0x80u) return false;
      code = (code << 6) | (next & 0x3fu);
    }
    if ((extra == 2 && code < 0x800) || (extra == 3 && code < 0x10000) || code > 0x10ffff ||
        (code >= 0xd800 && code <= 0xdfff)) {
      return false;
    }
    i += extra + 1;
  }
  return true;
}

bool IsNotFoundReply(const HttpReply& reply) {
  return reply.status == 404 && client::ReplyToStatus(reply).IsNotFound();
}

void PrintLine(const std::string& text) {
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fputc('\n', stdout);
}

// A write (POST or DELETE) under a fresh Idempotency-Key, kept across the
// retries of this one invocation.
int RunWrite(const RequestOptions& options, std::string_view method, const std::string& key,
             const std::string& body) {
  if (key.empty()) return Fail("the key must not be empty");
  client::Headers headers = {{"Idempotency-Key", NewIdempotencyKey()}};
  if (!body.empty()) headers.emplace_back("Content-Type", "application/json");
  Result<HttpReply> reply =
      SendWithRetries(options, method, client::HttpClient::KeyTarget(key), body, headers);
  if (!reply.ok()) return Fail(reply.status().message());
  if (reply->status != 200) return Fail(ReplyError(*reply));
  PrintLine("OK");
  return kExitOk;
}

}  // namespace

int Fail(std::string_view message) {
  std::fprintf(stderr, "raft-kv-cli: error: %.*s\n", static_cast<int>(message.size()),
               message.data());
  return kExitError;
}

Result<Endpoint> ParseEndpoint(std::string_view text) {
  std::string address(text);
  if (address.starts_with("http://")) address.erase(0, 7);
  if (address.ends_with("/")) address.pop_back();
  Endpoint endpoint;
  if (!SplitHostPort(address, &endpoint.host, &endpoint.port) || endpoint.port == 0) {
    return Status::InvalidArgument("bad endpoint \"" + std::string(text) +
                                   "\": want HOST:PORT, e.g. 127.0.0.1:8080");
  }
  return endpoint;
}

std::string NewIdempotencyKey() {
  std::random_device random;  // the kernel's generator: unique across processes
  static constexpr char kHex[] = "0123456789abcdef";
  std::string key;
  for (int word = 0; word < 4; ++word) {
    uint32_t bits = random();
    for (int nibble = 0; nibble < 8; ++nibble, bits >>= 4) key += kHex[bits & 0xf];
  }
  return key;
}

int RunGet(const RequestOptions& options, const std::string& key, const std::string& consistency) {
  // The empty key has no route; the server's 404 would read as "not found".
  if (key.empty()) return Fail("the key must not be empty");
  std::string target = client::HttpClient::KeyTarget(key);
  if (!consistency.empty()) target += "?consistency=" + consistency;
  Result<HttpReply> reply = SendWithRetries(options, "GET", target, {}, {});
  if (!reply.ok()) return Fail(reply.status().message());
  if (IsNotFoundReply(*reply)) {
    std::fprintf(stderr, "raft-kv-cli: not found: %s\n", key.c_str());
    return kExitNotFound;
  }
  if (reply->status != 200) return Fail(ReplyError(*reply));
  boost::system::error_code ec;
  json::value doc = json::parse(reply->body, ec);
  const json::object* object = ec ? nullptr : doc.if_object();
  const json::value* value = object ? object->if_contains("value") : nullptr;
  if (value == nullptr || !value->is_string()) {
    return Fail("malformed reply from " + Describe(options.endpoint) + ": " +
                reply->body.substr(0, 200));
  }
  PrintLine(std::string(value->as_string()));
  return kExitOk;
}

int RunPut(const RequestOptions& options, const std::string& key, const std::string& value) {
  if (!IsValidUtf8(value)) return Fail("the value is not UTF-8 text; values are JSON strings");
  json::object body;
  body["value"] = json::string_view(value.data(), value.size());
  return RunWrite(options, "POST", key, json::serialize(body));
}

int RunDelete(const RequestOptions& options, const std::string& key) {
  return RunWrite(options, "DELETE", key, {});
}

int RunShow(const RequestOptions& options, const std::string& path, bool raw_json) {
  Result<HttpReply> reply = SendWithRetries(options, "GET", path, {}, {});
  if (!reply.ok()) return Fail(reply.status().message());
  if (reply->status == 404) {
    return Fail(Describe(options.endpoint) + " does not serve " + path +
                " (a raft-kv without cluster mode?)");
  }
  if (reply->status != 200) return Fail(ReplyError(*reply));
  if (raw_json) {
    std::string body = reply->body;
    if (!body.ends_with("\n")) body += "\n";
    std::fwrite(body.data(), 1, body.size(), stdout);
    return kExitOk;
  }
  boost::system::error_code ec;
  json::value doc = json::parse(reply->body, ec);
  if (ec) {
    return Fail("malformed reply from " + Describe(options.endpoint) + ": " +
                reply->body.substr(0, 200));
  }
  const std::string text = RenderJson(doc);
  std::fwrite(text.data(), 1, text.size(), stdout);
  return kExitOk;
}

namespace {

void PrintMembers(const client::Membership& m) {
  std::printf("cluster %016llx\n", static_cast<unsigned long long>(m.cluster_id));
  std::printf("%-6s %-8s %-24s %s\n", "ID", "ROLE", "PEER", "HTTP");
  for (const client::Member& member : m.members) {
    std::printf("%-6llu %-8s %-24s %s\n", static_cast<unsigned long long>(member.id),
                member.voter ? "voter" : "learner", member.peer.c_str(),
                member.http.empty() ? "-" : member.http.c_str());
  }
}

}  // namespace

int RunMember(const RequestOptions& options, const MemberCommand& command, bool raw_json) {
  std::string method = "GET";
  std::string target = "/v1/cluster/members";
  std::string body;
  if (command.action == "add") {
    if (command.id == 0) return Fail("member ids start at 1");
    method = "POST";
    body = client::MemberRequestBody(command.id, command.peer, command.http, !command.voter);
  } else if (command.action == "promote") {
    method = "POST";
    target += "/" + std::to_string(command.id) + "/promote";
  } else if (command.action == "remove") {
    method = "DELETE";
    target += "/" + std::to_string(command.id);
  }
  // Retried while there is no leader or the node cannot be reached. A
  // change repeated after its reply was lost is answered at once (add,
  // promote) or with "no member" (remove).
  Result<HttpReply> reply = Status::IOError("no attempt made");
  auto backoff = std::chrono::milliseconds(kFirstBackoff);
  for (int attempt = 1; attempt <= std::max(1, options.max_attempts); ++attempt) {
    reply = client::RequestLeader({Describe(options.endpoint)}, method, target, body, options.timeout);
    if (reply.ok() && reply->status != 503) break;
    if (attempt == options.max_attempts) break;
    auto delay = backoff;
    if (reply.ok()) delay = std::max(delay, RetryAfter(*reply));
    std::this_thread::sleep_for(delay);
    backoff = std::min(backoff * 2, std::chrono::milliseconds(kMaxBackoff));
  }
  if (!reply.ok()) return Fail(reply.status().message());
  if (reply->status != 200) {
    std::string why = ReplyError(*reply);
    if (reply->status == 404 && command.action == "list") {
      why = Describe(options.endpoint) + " does not serve " + target;
    }
    return Fail(why);
  }
  if (raw_json) {
    PrintLine(reply->body);
    return kExitOk;
  }
  Result<client::Membership> members = client::ParseMembership(reply->body);
  if (!members.ok()) return Fail("malformed reply: " + members.status().message());
  PrintMembers(*members);
  return kExitOk;
}

}  // namespace rkv::cli
