// The key-value and admin subcommands of raft-kv-cli: each is a few HTTP
// exchanges with the cluster (the v1 API), retried where that is safe, sent
// to whichever of the given endpoints answers, and redirected to the leader
// where only the leader serves.
#ifndef RKV_APPS_RAFT_KV_CLI_KV_COMMANDS_H_
#define RKV_APPS_RAFT_KV_CLI_KV_COMMANDS_H_

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace rkv::cli {

// Exit codes every subcommand shares (scripts rely on them; --help and
// docs/cli.md list them).
inline constexpr int kExitOk = 0;
inline constexpr int kExitNotFound = 1;         // get: the key does not exist
inline constexpr int kExitError = 2;            // bad input, or the server refused the request
inline constexpr int kExitConditionFailed = 3;  // --if-revision or a txn compare did not hold
// No endpoint answered, or the cluster had no leader, within the attempts;
// or a local file could not be read or written. Worth retrying later.
inline constexpr int kExitUnavailable = 4;

struct Endpoint {
  std::string host;
  uint16_t port = 0;
};

// "HOST:PORT" ("[::1]:8080" for IPv6); an "http://" prefix and a trailing
// "/" are accepted, since people paste URLs.
Result<Endpoint> ParseEndpoint(std::string_view text);
// A comma-separated list of endpoints (at least one; spaces around commas
// are ignored).
Result<std::vector<Endpoint>> ParseEndpoints(std::string_view text);
// "host:port", "[v6]:port".
std::string Describe(const Endpoint& endpoint);

struct RequestOptions {
  // Tried in order; a node that cannot be reached or answers 503 hands the
  // request to the next one.
  std::vector<Endpoint> endpoints;
  // Bounds connecting and each attempt.
  std::chrono::milliseconds timeout{10'000};
  // Attempts per request. A transport error or a 503 is retried: a 503
  // promises nothing was applied, and a write whose reply was lost is
  // retried under the same Idempotency-Key, so the cluster applies it once.
  int max_attempts = 5;
  // Print JSON for scripts instead of text for people.
  bool json = false;
};

// A fresh Idempotency-Key: 128 random bits as 32 lowercase hex digits.
std::string NewIdempotencyKey();

// Conditions and options of a put or delete.
struct WriteOptions {
  std::optional<uint64_t> if_revision;  // 0: only if absent
  uint64_t ttl_seconds = 0;             // put: expire after this long (0: never)
};

struct ScanArgs {
  std::optional<std::string> prefix;
  std::optional<std::string> start;
  std::optional<std::string> end;
  uint64_t limit = 0;  // 0: every key in the range
  bool keys_only = false;
  std::string consistency;
};

// Each prints its result on stdout, or one line on stderr, and returns the
// exit code.
int RunGet(const RequestOptions& options, const std::string& key, const std::string& consistency);
int RunPut(const RequestOptions& options, const std::string& key, const std::string& value,
           const WriteOptions& write);
int RunDelete(const RequestOptions& options, const std::string& key, const WriteOptions& write);
// Every key of the range in byte order, page after page: "key<TAB>value"
// lines (keys only with keys_only), or one JSON object.
int RunScan(const RequestOptions& options, const ScanArgs& args);
// POST /v1/txn with `request` (its JSON, docs/api.md).
int RunTxn(const RequestOptions& options, const std::string& request);
// GET `path` (/v1/cluster, /v1/status): rendered for people, or the JSON.
// /v1/cluster is then asked of the leader the first answer names, since
// only the leader knows each follower's match index and lag.
int RunShow(const RequestOptions& options, const std::string& path);

// member list | add | promote | remove.
struct MemberCommand {
  std::string action;  // "list", "add", "promote", "remove"
  uint64_t id = 0;
  std::string peer;   // add
  std::string http;   // add; may be empty
  bool voter = false;  // add: as a voter at once instead of a learner
};
// Lists the members, or changes the membership through the leader (a
// follower's redirect is followed) and prints the members after the change.
int RunMember(const RequestOptions& options, const MemberCommand& command);

// Hands leadership to voter `id`, or to the most caught-up voter.
int RunLeaderTransfer(const RequestOptions& options, std::optional<uint64_t> id);

// Writes a consistent backup (GET /v1/snapshot) to `file`: to a temporary
// file beside it first, fsynced, then renamed over it, so `file` is either
// the old one or the whole new backup.
int RunSnapshotSave(const RequestOptions& options, const std::string& file);

// Prints "raft-kv-cli: error: <message>" on stderr; returns `code`.
int Fail(std::string_view message, int code = kExitError);

}  // namespace rkv::cli

#endif  // RKV_APPS_RAFT_KV_CLI_KV_COMMANDS_H_
