// The bytes of each request the load generator sends, for each API it
// speaks, and which replies count as successes.
//
//   raft-kv       write  PUT /v1/kv/{key}, the value as the raw body
//                        (Content-Type: application/octet-stream)
//                 read   GET /v1/kv/{key}?consistency=linearizable|lease|stale
//   raft-kv-json  write  POST /{key}, body {"value":"..."}
//                 read   GET /{key}, with ?consistency=lease|stale unless linearizable
//   etcd          write  POST /v3/kv/put   {"key":"<base64>","value":"<base64>"}
//                 read   POST /v3/kv/range {"key":"<base64>"}, with
//                        "serializable":true for stale reads (etcd's v3 JSON
//                        gateway; it has no lease reads)
//
// A write succeeds with any 2xx; a read with any 2xx or with 404 (the key
// does not exist).
#ifndef RKV_APPS_RAFT_KV_BENCH_REQUESTS_H_
#define RKV_APPS_RAFT_KV_BENCH_REQUESTS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"

namespace rkv::bench {

enum class Api { kRaftKv, kRaftKvJson, kEtcd };
enum class Op { kRead, kWrite };
enum class Consistency { kLinearizable, kLease, kStale };

// Names as the command line spells them ("raft-kv", "read", "stale", ...).
std::string_view ApiName(Api api);
std::string_view OpName(Op op);
std::string_view ConsistencyName(Consistency consistency);
std::optional<Api> ParseApi(std::string_view name);
std::optional<Consistency> ParseConsistency(std::string_view name);

struct RequestOptions {
  Api api = Api::kRaftKv;
  // The Host header: the endpoint's "host:port".
  std::string host;
  // Key i is key_prefix + i, zero-padded to key_width digits (0: not padded).
  std::string key_prefix = "key";
  int key_width = 0;
  size_t value_size = 128;
  Consistency consistency = Consistency::kLinearizable;
};

class RequestBuilder {
 public:
  // InvalidArgument for a combination the API cannot express (lease reads
  // on etcd).
  static Result<RequestBuilder> Create(const RequestOptions& options);

  // Replaces *out with the request for `op` on key `key`.
  void Build(Op op, uint64_t key, std::string* out) const;

  // "key42" (or "key00042" with key_width 5).
  std::string KeyName(uint64_t key) const;
  // The value every write stores: value_size bytes of 'x'.
  const std::string& value() const { return value_; }

  static bool IsSuccess(Op op, int status) {
    return (status >= 200 && status < 300) || (op == Op::kRead && status == 404);
  }

 private:
  explicit RequestBuilder(const RequestOptions& options);
  void AppendKey(uint64_t key, std::string* out) const;

  RequestOptions options_;
  std::string value_;
  // Pieces precomputed once: the request is head + key + tail.
  std::string write_head_, write_tail_;
  std::string read_head_, read_tail_;
  std::string encoded_prefix_;  // the key prefix, percent-encoded (raft-kv)
  std::string value_base64_;    // etcd
};

// Percent-encodes everything but RFC 3986 unreserved characters.
std::string PercentEncode(std::string_view text);
// `text` as the inside of a JSON string (quotes, backslashes, controls escaped).
std::string JsonEscape(std::string_view text);

}  // namespace rkv::bench

#endif  // RKV_APPS_RAFT_KV_BENCH_REQUESTS_H_
