// What a run counted: per operation, the latencies of the requests that
// succeeded and the failures by kind; per run, the connections.
#ifndef RKV_APPS_RAFT_KV_BENCH_STATS_H_
#define RKV_APPS_RAFT_KV_BENCH_STATS_H_

#include <cstdint>
#include <map>
#include <string>

#include "histogram.h"

namespace rkv::bench {

struct ErrorCounts {
  std::map<int, uint64_t> status;  // replies that are not successes, by status code
  uint64_t closed = 0;     // the connection closed or failed with the request outstanding
  uint64_t timeout = 0;    // no complete reply within the timeout
  uint64_t malformed = 0;  // a reply that is not valid HTTP/1.x

  uint64_t total() const;
  void Merge(const ErrorCounts& other);
};

struct OpStats {
  Histogram latency;       // of successful requests, microseconds
  uint64_t ok = 0;         // successes
  uint64_t not_found = 0;  // reads answered 404 (counted in ok)
  ErrorCounts errors;

  uint64_t requests() const { return ok + errors.total(); }
  void Merge(const OpStats& other);
};

struct ConnectionStats {
  uint64_t opened = 0;          // connections established, first ones included
  uint64_t reconnects = 0;      // connections reopened after a close or a failure
  uint64_t connect_errors = 0;  // connection attempts that failed or timed out
  uint64_t server_closed = 0;   // closed by the server between requests (no request lost)
  uint64_t unsolicited = 0;     // bytes received with no request outstanding

  void Merge(const ConnectionStats& other);
};

struct RunStats {
  OpStats read;
  OpStats write;
  ConnectionStats connections;
  // Every request finished in the load phase, warm-up included (for a
  // caller dividing CPU time by requests).
  uint64_t finished_all = 0;
  // The first failure seen, as an example ("write: HTTP 503 ...").
  std::string first_error;

  OpStats All() const;
  void Merge(const RunStats& other);
};

struct PreloadStats {
  bool ran = false;
  bool ok = false;
  uint64_t keys = 0;      // keys written
  double seconds = 0;
  uint64_t retries = 0;   // writes sent again after a failure
  std::string error;      // why it failed
};

}  // namespace rkv::bench

#endif  // RKV_APPS_RAFT_KV_BENCH_STATS_H_
