// The key-value and admin subcommands of raft-kv-cli (get, put, delete,
// cluster, status): one HTTP exchange each, retried where that is safe.
#ifndef RKV_APPS_RAFT_KV_CLI_KV_COMMANDS_H_
#define RKV_APPS_RAFT_KV_CLI_KV_COMMANDS_H_

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"

namespace rkv::cli {

// Exit codes every subcommand shares (scripts rely on them).
inline constexpr int kExitOk = 0;
inline constexpr int kExitNotFound = 1;  // get: the key does not exist
inline constexpr int kExitError = 2;     // anything else; one line on stderr says what

struct Endpoint {
  std::string host;
  uint16_t port = 0;
};

// "HOST:PORT" ("[::1]:8080" for IPv6); an "http://" prefix and a trailing
// "/" are accepted, since people paste URLs.
Result<Endpoint> ParseEndpoint(std::string_view text);

struct RequestOptions {
  Endpoint endpoint;
  // Bounds connecting and each attempt.
  std::chrono::milliseconds timeout{10'000};
  // Attempts per request. A transport error or a 503 is retried: a 503
  // promises nothing was applied, and a write whose reply was lost is
  // retried under the same Idempotency-Key, so the node applies it once.
  int max_attempts = 5;
};

// A fresh Idempotency-Key: 128 random bits as 32 lowercase hex digits.
std::string NewIdempotencyKey();

// Each prints its result on stdout (get: the value and a newline) or one
// line on stderr, and returns the exit code.
int RunGet(const RequestOptions& options, const std::string& key, const std::string& consistency);
int RunPut(const RequestOptions& options, const std::string& key, const std::string& value);
int RunDelete(const RequestOptions& options, const std::string& key);
// GET `path` (/v1/cluster, /v1/status): rendered for people, or the raw
// JSON with `raw_json`.
int RunShow(const RequestOptions& options, const std::string& path, bool raw_json);

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
int RunMember(const RequestOptions& options, const MemberCommand& command, bool raw_json);

// Prints "raft-kv-cli: error: <message>" on stderr; returns kExitError.
int Fail(std::string_view message);

}  // namespace rkv::cli

#endif  // RKV_APPS_RAFT_KV_CLI_KV_COMMANDS_H_
