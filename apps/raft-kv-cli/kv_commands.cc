#include "kv_commands.h"

#include <boost/json.hpp>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <memory>
#include <random>
#include <thread>

#include "client/http_client.h"
#include "client/membership.h"
#include "common/host_port.h"
#include "common/text.h"
#include "env/env.h"
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
// Redirects (307 to the leader) followed per request; they are not attempts.
constexpr int kMaxRedirects = 3;
// Keys asked for per scan page.
constexpr uint64_t kScanPage = 1000;

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

// "HTTP 503 unavailable: no leader" and the like, from an error reply.
std::string ReplyError(const HttpReply& reply) { return client::ReplyToStatus(reply).message(); }

// The exit code for an error reply.
int ExitCodeFor(const HttpReply& reply) {
  if (reply.status == 409) return kExitConditionFailed;
  if (reply.status == 503) return kExitUnavailable;
  return kExitError;
}

int FailReply(const HttpReply& reply) { return Fail(ReplyError(reply), ExitCodeFor(reply)); }

// One CLI invocation's conversation with the cluster. A request goes to the
// current endpoint; a transport error or a 503 moves it to the next endpoint
// (sleeping with backoff once every endpoint has been tried since the last
// sleep), and a 307 to the leader is followed at once. The same method,
// target, body and headers are sent each time, so a write keeps its
// Idempotency-Key.
class Session {
 public:
  explicit Session(const RequestOptions& options)
      : options_(options), endpoints_(options.endpoints), jitter_(std::random_device{}()) {}

  Result<HttpReply> Send(std::string_view method, std::string target, std::string_view body = {},
                         const client::Headers& headers = {}) {
    return SendWith(std::move(target), [&](client::HttpClient& http, const std::string& t) {
      return http.Request(method, t, body, headers);
    });
  }

  // Send, with `exchange` making each attempt on the endpoint's client. An
  // attempt that returns Aborted ends the request at once (the caller gave
  // up: a local file it could not write).
  using Exchanger = std::function<Result<HttpReply>(client::HttpClient&, const std::string& target)>;
  Result<HttpReply> SendWith(std::string target, const Exchanger& exchange) {
    if (endpoints_.empty()) return Status::InvalidArgument("no endpoint given");
    const int attempts = std::max(1, options_.max_attempts);
    auto backoff = std::chrono::milliseconds(kFirstBackoff);
    size_t tried_since_sleep = 0;
    int redirects = 0;
    for (int attempt = 1;;) {
      Result<HttpReply> reply = exchange(Client(), target);
      if (!reply.ok() && reply.status().code() == StatusCode::kAborted) return reply;
      if (reply.ok() && (reply->status == 307 || reply->status == 308) && redirects < kMaxRedirects) {
        std::string address;
        std::string path;
        if (client::SplitLocation(reply->Header("Location"), &address, &path)) {
          if (auto leader = ParseEndpoint(address); leader.ok()) {
            ++redirects;
            UseEndpoint(*leader);
            target = std::move(path);
            continue;
          }
        }
        return reply;
      }
      const bool retryable = !reply.ok() || reply->status == 503;
      if (!retryable) return reply;
      if (attempt == attempts) {
        if (reply.ok()) return reply;
        return Status::IOError("cannot reach " + Describe(endpoints_[current_]) + " (" +
                               std::to_string(attempt) + (attempt == 1 ? " attempt" : " attempts") +
                               " over " + std::to_string(endpoints_.size()) +
                               (endpoints_.size() == 1 ? " endpoint" : " endpoints") +
                               "): " + reply.status().message());
      }
      ++attempt;
      Rotate();
      if (++tried_since_sleep < endpoints_.size()) continue;
      tried_since_sleep = 0;
      // Jitter spreads out clients that failed together (a leader change).
      auto delay = backoff / 2 + std::chrono::milliseconds(
                                     jitter_() % static_cast<uint64_t>(backoff.count() / 2 + 1));
      if (reply.ok()) delay = std::max(delay, RetryAfter(*reply));
      std::this_thread::sleep_for(delay);
      backoff = std::min(backoff * 2, std::chrono::milliseconds(kMaxBackoff));
    }
  }

  // The endpoint the last request went to.
  std::string Current() const { return Describe(endpoints_[current_]); }

 private:
  client::HttpClient& Client() {
    if (http_ == nullptr) {
      const Endpoint& e = endpoints_[current_];
      http_ = std::make_unique<client::HttpClient>(e.host, e.port, options_.timeout);
    }
    return *http_;
  }

  void Rotate() {
    current_ = (current_ + 1) % endpoints_.size();
    http_.reset();
  }

  // Makes `e` current, adding it to the list when it is not there (a
  // leader the user did not name).
  void UseEndpoint(const Endpoint& e) {
    auto it = std::find_if(endpoints_.begin(), endpoints_.end(),
                           [&](const Endpoint& x) { return x.host == e.host && x.port == e.port; });
    if (it == endpoints_.end()) it = endpoints_.insert(endpoints_.end(), e);
    current_ = static_cast<size_t>(it - endpoints_.begin());
    http_.reset();
  }

  const RequestOptions& options_;
  std::vector<Endpoint> endpoints_;
  size_t current_ = 0;
  std::unique_ptr<client::HttpClient> http_;
  std::minstd_rand jitter_;
};

// No endpoint answered within the attempts.
int FailUnreachable(const Status& s) {
  return Fail(s.message() + "; check --endpoints (or RAFT_KV_ENDPOINTS) and that the nodes run", kExitUnavailable);
}

// Sends one request and turns a transport failure into an exit code.
// Returns the reply, or nullopt after printing the error into *exit_code.
std::optional<HttpReply> Exchange(Session& session, std::string_view method, std::string target,
                                  std::string_view body, const client::Headers& headers, int* exit_code) {
  Result<HttpReply> reply = session.Send(method, std::move(target), body, headers);
  if (!reply.ok()) {
    *exit_code = FailUnreachable(reply.status());
    return std::nullopt;
  }
  return std::move(*reply);
}

// Percent-encodes one path segment or query value.
std::string Encode(std::string_view text) { return client::HttpClient::KeyTarget(text).substr(1); }

std::string KvTarget(std::string_view key) { return "/v1/kv" + client::HttpClient::KeyTarget(key); }

void PrintLine(std::string_view text) {
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fputc('\n', stdout);
}

void PrintJson(const json::value& v) { PrintLine(json::serialize(v)); }

// Sets `name` to the bytes as a JSON string when they are UTF-8, else
// `name`_base64 to their base64.
void PutBytes(json::object& o, std::string_view name, std::string_view bytes) {
  if (IsValidUtf8(bytes)) {
    o[name] = json::string_view(bytes.data(), bytes.size());
  } else {
    o[std::string(name) + "_base64"] = Base64Encode(bytes);
  }
}

// A header holding a decimal number (X-Revision, X-Raft-Applied-Index); 0
// when absent or not a number.
uint64_t HeaderNumber(const HttpReply& reply, std::string_view name) {
  uint64_t n = 0;
  for (char c : reply.Header(name)) {
    if (c < '0' || c > '9') return 0;
    n = n * 10 + static_cast<uint64_t>(c - '0');
  }
  return n;
}

std::optional<json::object> ParseObject(const std::string& body) {
  boost::system::error_code ec;
  json::value doc = json::parse(body, ec);
  if (ec || !doc.is_object()) return std::nullopt;
  return std::move(doc.get_object());
}

int Malformed(const Session& session, const std::string& body) {
  return Fail("malformed reply from " + session.Current() + ": " + body.substr(0, 200));
}

// A put or delete under a fresh Idempotency-Key, kept across the retries of
// this one invocation.
int RunWrite(const RequestOptions& options, std::string_view method, const std::string& key,
             const std::string& body, const WriteOptions& write) {
  if (key.empty()) return Fail("the key must not be empty");
  std::string target = KvTarget(key);
  char sep = '?';
  if (write.if_revision) {
    target += sep + std::string("if_revision=") + std::to_string(*write.if_revision);
    sep = '&';
  }
  if (write.ttl_seconds > 0) target += sep + std::string("ttl=") + std::to_string(write.ttl_seconds);
  client::Headers headers = {{"Idempotency-Key", NewIdempotencyKey()}};
  if (method == "PUT") headers.emplace_back("Content-Type", "application/octet-stream");
  Session session(options);
  int code = kExitOk;
  std::optional<HttpReply> reply = Exchange(session, method, target, body, headers, &code);
  if (!reply) return code;
  if (reply->status != 200) {
    if (reply->status == 409 && options.json) PrintLine(reply->body);
    return FailReply(*reply);
  }
  if (options.json) {
    PrintLine(reply->body);
  } else {
    PrintLine("OK");
  }
  return kExitOk;
}

}  // namespace

int Fail(std::string_view message, int code) {
  std::fprintf(stderr, "raft-kv-cli: error: %.*s\n", static_cast<int>(message.size()), message.data());
  return code;
}

std::string Describe(const Endpoint& e) {
  const bool v6 = e.host.find(':') != std::string::npos;
  return (v6 ? "[" + e.host + "]" : e.host) + ":" + std::to_string(e.port);
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

Result<std::vector<Endpoint>> ParseEndpoints(std::string_view text) {
  std::vector<Endpoint> out;
  while (true) {
    const size_t comma = text.find(',');
    std::string_view one = text.substr(0, comma);
    while (!one.empty() && one.front() == ' ') one.remove_prefix(1);
    while (!one.empty() && one.back() == ' ') one.remove_suffix(1);
    Result<Endpoint> e = ParseEndpoint(one);
    if (!e.ok()) return e.status();
    out.push_back(std::move(*e));
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  return out;
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
  std::string target = KvTarget(key);
  if (!consistency.empty()) target += "?consistency=" + consistency;
  Session session(options);
  int code = kExitOk;
  std::optional<HttpReply> reply = Exchange(session, "GET", target, {}, {}, &code);
  if (!reply) return code;
  if (reply->status == 404 && client::ReplyToStatus(*reply).IsNotFound()) {
    std::fprintf(stderr, "raft-kv-cli: not found: %s\n", key.c_str());
    return kExitNotFound;
  }
  if (reply->status != 200) return FailReply(*reply);
  if (options.json) {
    json::object out;
    PutBytes(out, "key", key);
    PutBytes(out, "value", reply->body);
    out["revision"] = HeaderNumber(*reply, "X-Revision");
    PrintJson(out);
  } else {
    PrintLine(reply->body);
  }
  return kExitOk;
}

int RunPut(const RequestOptions& options, const std::string& key, const std::string& value,
           const WriteOptions& write) {
  return RunWrite(options, "PUT", key, value, write);
}

int RunDelete(const RequestOptions& options, const std::string& key, const WriteOptions& write) {
  if (write.ttl_seconds > 0) return Fail("--ttl is for put");
  return RunWrite(options, "DELETE", key, {}, write);
}

int RunScan(const RequestOptions& options, const ScanArgs& args) {
  if (!args.prefix && !args.start && !args.end) {
    return Fail("give --prefix P (\"\" for every key), or --start and/or --end");
  }
  // Base64 both ways, so any key or value bytes scan.
  std::string query = "encoding=base64";
  if (args.prefix) query += "&prefix=" + Encode(Base64Encode(*args.prefix));
  if (args.start) query += "&start=" + Encode(Base64Encode(*args.start));
  if (args.end) query += "&end=" + Encode(Base64Encode(*args.end));
  if (args.keys_only) query += "&keys_only=true";
  if (!args.consistency.empty()) query += "&consistency=" + args.consistency;

  Session session(options);
  json::array all;
  uint64_t shown = 0;
  std::string next;
  while (args.limit == 0 || shown < args.limit) {
    const uint64_t page = args.limit == 0 ? kScanPage : std::min(kScanPage, args.limit - shown);
    std::string target = "/v1/kv?" + query + "&limit=" + std::to_string(page);
    if (!next.empty()) target += "&continue=" + Encode(next);
    int code = kExitOk;
    std::optional<HttpReply> reply = Exchange(session, "GET", target, {}, {}, &code);
    if (!reply) return code;
    if (reply->status != 200) return FailReply(*reply);
    std::optional<json::object> doc = ParseObject(reply->body);
    const json::value* kvs = doc ? doc->if_contains("kvs") : nullptr;
    if (kvs == nullptr || !kvs->is_array()) return Malformed(session, reply->body);
    for (const json::value& item : kvs->get_array()) {
      const json::object* o = item.if_object();
      const json::value* k = o ? o->if_contains("key") : nullptr;
      const json::value* v = o ? o->if_contains("value") : nullptr;
      std::optional<std::string> key = k && k->is_string() ? Base64Decode(k->get_string()) : std::nullopt;
      std::optional<std::string> value = v && v->is_string() ? Base64Decode(v->get_string()) : std::nullopt;
      if (!key || !value) return Malformed(session, reply->body);
      if (options.json) {
        json::object out;
        PutBytes(out, "key", *key);
        if (!args.keys_only) PutBytes(out, "value", *value);
        if (const json::value* r = o->if_contains("revision")) out["revision"] = *r;
        all.push_back(std::move(out));
      } else if (args.keys_only) {
        PrintLine(*key);
      } else {
        PrintLine(*key + "\t" + *value);
      }
      ++shown;
    }
    const json::value* more = doc->if_contains("more");
    const json::value* next_value = doc->if_contains("next");
    if (more == nullptr || !more->is_bool() || !more->get_bool()) break;
    if (next_value == nullptr || !next_value->is_string()) return Malformed(session, reply->body);
    next = std::string(next_value->get_string());
  }
  if (options.json) PrintJson(json::object{{"kvs", std::move(all)}, {"count", shown}});
  return kExitOk;
}

int RunTxn(const RequestOptions& options, const std::string& request) {
  if (!ParseObject(request)) {
    return Fail("the transaction is not a JSON object: want {\"compare\":[...],\"ops\":[...]} (docs/api.md)");
  }
  const client::Headers headers = {{"Idempotency-Key", NewIdempotencyKey()},
                                   {"Content-Type", "application/json"}};
  Session session(options);
  int code = kExitOk;
  std::optional<HttpReply> reply = Exchange(session, "POST", "/v1/txn", request, headers, &code);
  if (!reply) return code;
  if (options.json && (reply->status == 200 || reply->status == 409)) PrintLine(reply->body);
  if (reply->status != 200) return FailReply(*reply);
  if (!options.json) {
    std::optional<json::object> doc = ParseObject(reply->body);
    const json::value* revision = doc ? doc->if_contains("revision") : nullptr;
    if (revision == nullptr) return Malformed(session, reply->body);
    PrintLine("OK revision " + json::serialize(*revision));
  }
  return kExitOk;
}

namespace {

// The leader's view of the cluster, which alone has each follower's match
// index and lag: when `reply` (GET /v1/cluster) came from a follower that
// names the leader's HTTP address, the leader's own reply; else nullopt.
std::optional<HttpReply> LeadersView(const RequestOptions& options, const HttpReply& reply) {
  std::optional<json::object> doc = ParseObject(reply.body);
  if (!doc) return std::nullopt;
  const json::value* self = doc->if_contains("id");
  const json::value* leader = doc->if_contains("leader");
  const json::value* members = doc->if_contains("members");
  if (self == nullptr || leader == nullptr || members == nullptr || !members->is_array() || *self == *leader) {
    return std::nullopt;
  }
  for (const json::value& m : members->get_array()) {
    const json::object* o = m.if_object();
    const json::value* id = o ? o->if_contains("id") : nullptr;
    const json::value* http = o ? o->if_contains("http") : nullptr;
    if (id == nullptr || *id != *leader || http == nullptr || !http->is_string()) continue;
    Result<Endpoint> endpoint = ParseEndpoint(http->get_string());
    if (!endpoint.ok()) return std::nullopt;
    RequestOptions one = options;
    one.endpoints = {*endpoint};
    one.max_attempts = 1;
    Session session(one);
    Result<HttpReply> view = session.Send("GET", "/v1/cluster");
    if (view.ok() && view->status == 200) return std::move(*view);
    return std::nullopt;
  }
  return std::nullopt;
}

}  // namespace

int RunShow(const RequestOptions& options, const std::string& path) {
  Session session(options);
  int code = kExitOk;
  std::optional<HttpReply> reply = Exchange(session, "GET", path, {}, {}, &code);
  if (!reply) return code;
  if (path == "/v1/cluster" && reply->status == 200) {
    if (std::optional<HttpReply> leaders = LeadersView(options, *reply)) reply = std::move(leaders);
  }
  if (reply->status == 404) {
    return Fail(session.Current() + " does not serve " + path + " (a raft-kv without cluster mode?)");
  }
  if (reply->status != 200) return FailReply(*reply);
  if (options.json) {
    std::string body = reply->body;
    if (!body.ends_with("\n")) body += "\n";
    std::fwrite(body.data(), 1, body.size(), stdout);
    return kExitOk;
  }
  boost::system::error_code ec;
  json::value doc = json::parse(reply->body, ec);
  if (ec) return Malformed(session, reply->body);
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

int RunMember(const RequestOptions& options, const MemberCommand& command) {
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
  Session session(options);
  int code = kExitOk;
  std::optional<HttpReply> reply = Exchange(session, method, target, body, {}, &code);
  if (!reply) return code;
  if (reply->status != 200) {
    if (reply->status == 404 && command.action == "list") {
      return Fail(session.Current() + " does not serve " + target);
    }
    return FailReply(*reply);
  }
  if (options.json) {
    PrintLine(reply->body);
    return kExitOk;
  }
  Result<client::Membership> members = client::ParseMembership(reply->body);
  if (!members.ok()) return Fail("malformed reply: " + members.status().message());
  PrintMembers(*members);
  return kExitOk;
}

int RunLeaderTransfer(const RequestOptions& options, std::optional<uint64_t> id) {
  json::object body;
  if (id) body["id"] = *id;
  Session session(options);
  int code = kExitOk;
  std::optional<HttpReply> reply =
      Exchange(session, "POST", "/v1/cluster/leader", json::serialize(body), {{"Content-Type", "application/json"}}, &code);
  if (!reply) return code;
  if (reply->status != 200) return FailReply(*reply);
  if (options.json) {
    PrintLine(reply->body);
    return kExitOk;
  }
  std::optional<json::object> doc = ParseObject(reply->body);
  const json::value* leader = doc ? doc->if_contains("leader") : nullptr;
  const json::value* term = doc ? doc->if_contains("term") : nullptr;
  if (leader == nullptr || term == nullptr) return Malformed(session, reply->body);
  PrintLine("leader is " + json::serialize(*leader) + " (term " + json::serialize(*term) + ")");
  return kExitOk;
}

int RunSnapshotSave(const RequestOptions& options, const std::string& file) {
  if (file.empty()) return Fail("give the file to write the backup to");
  // Streamed into FILE.tmp as it arrives (memory stays bounded whatever the
  // backup's size), then synced and renamed over FILE.
  Env* env = Env::Posix();
  const std::string tmp = file + ".tmp";
  std::unique_ptr<WritableFile> out;
  Status local;  // why the file could not be written
  const auto write = [&](std::string_view piece) {
    local = out->Append(piece);
    return local.ok() ? Status::OK() : Status::Aborted(local.message());
  };
  Session session(options);
  Result<HttpReply> reply =
      session.SendWith("/v1/snapshot", [&](client::HttpClient& http, const std::string& target) -> Result<HttpReply> {
        // Each attempt starts the file over.
        Result<std::unique_ptr<WritableFile>> opened = env->NewWritableFile(tmp);
        if (!opened.ok()) {
          local = opened.status();
          return Status::Aborted(local.message());
        }
        out = std::move(*opened);
        return http.RequestToSink("GET", target, write);
      });
  const auto cleanup = [&] {
    if (out) (void)out->Close();
    if (env->FileExists(tmp)) (void)env->DeleteFile(tmp);
  };
  if (!local.ok()) {
    cleanup();
    return Fail("cannot write " + tmp + ": " + local.ToString(), kExitUnavailable);
  }
  if (!reply.ok()) {
    cleanup();
    return FailUnreachable(reply.status());
  }
  if (reply->status != 200) {
    cleanup();
    return FailReply(*reply);
  }
  const uint64_t bytes = out->Size();
  Status s = out->Sync();
  if (s.ok()) s = out->Close();
  if (s.ok()) s = env->RenameFile(tmp, file);
  if (s.ok()) s = env->SyncDir(ParentDir(file));
  if (!s.ok()) {
    cleanup();
    return Fail("cannot write " + file + ": " + s.ToString(), kExitUnavailable);
  }
  const uint64_t index = HeaderNumber(*reply, "X-Raft-Applied-Index");
  const uint64_t term = HeaderNumber(*reply, "X-Raft-Applied-Term");
  if (options.json) {
    PrintJson(json::object{{"file", file}, {"bytes", bytes}, {"index", index}, {"term", term}, {"from", session.Current()}});
  } else {
    std::printf("saved %s: %llu bytes, applied index %llu (term %llu), from %s\n", file.c_str(),
                static_cast<unsigned long long>(bytes), static_cast<unsigned long long>(index),
                static_cast<unsigned long long>(term), session.Current().c_str());
  }
  return kExitOk;
}

}  // namespace rkv::cli
