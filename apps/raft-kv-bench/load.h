// The socket side of raft-kv-bench: connections, threads, pacing.
//
// Each of config.threads threads runs one epoll loop over its share of the
// connections (connection i on thread i % threads, to endpoint
// i % endpoints). A connection has at most one request outstanding: it
// sends the next one when the reply to the last has been read (a closed
// loop), or, with a rate, at its next slot of a fixed schedule (an open
// loop: latency then counts from the slot, so a server that falls behind
// shows it). A connection the server closed is opened again; failures are
// counted, never retried, except during the preload (which must write
// every key).
#ifndef RKV_APPS_RAFT_KV_BENCH_LOAD_H_
#define RKV_APPS_RAFT_KV_BENCH_LOAD_H_

#include <sys/socket.h>

#include <string>
#include <vector>

#include "common/result.h"
#include "config.h"
#include "stats.h"

namespace rkv::bench {

struct Endpoint {
  std::string text;  // "host:port", also the Host header
  sockaddr_storage address{};
  socklen_t address_length = 0;
};

// Resolves each "host:port" (a name or a numeric address) once.
Result<std::vector<Endpoint>> ResolveEndpoints(const std::vector<std::string>& endpoints);

struct LoadResult {
  PreloadStats preload;
  RunStats stats;
  double elapsed_s = 0;  // the measured time
  bool interrupted = false;
};

// Preloads (if asked), warms up, measures. InvalidArgument for a
// configuration the request builder refuses; IOError if the sockets could
// not be set up. A server that cannot be reached is a result (connect
// errors), not an error.
Result<LoadResult> RunLoad(const BenchConfig& config, const std::vector<Endpoint>& endpoints);

// Ends a running load early (async-signal-safe: for SIGINT and SIGTERM).
void StopLoad();

}  // namespace rkv::bench

#endif  // RKV_APPS_RAFT_KV_BENCH_LOAD_H_
