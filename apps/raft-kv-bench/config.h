// What one raft-kv-bench run does: the command line, checked.
#ifndef RKV_APPS_RAFT_KV_BENCH_CONFIG_H_
#define RKV_APPS_RAFT_KV_BENCH_CONFIG_H_

#include <cstdint>
#include <string>
#include <vector>

#include "key_chooser.h"
#include "requests.h"

namespace rkv::bench {

struct BenchConfig {
  std::vector<std::string> endpoints{"127.0.0.1:8080"};  // "host:port" each
  int connections = 16;
  int threads = 1;
  Api api = Api::kRaftKv;
  uint64_t keys = 100000;
  std::string key_prefix = "key";
  int key_width = 0;  // zero-pad key numbers to this many digits (0: no padding)
  KeyDistribution distribution = KeyDistribution::kUniform;
  double zipf_theta = 0.99;
  size_t value_size = 128;
  double read_ratio = 0;  // 0: all writes, 1: all reads
  Consistency consistency = Consistency::kLinearizable;
  double duration_s = 10;  // used when requests == 0
  uint64_t requests = 0;   // >0: measure this many requests instead of a duration
  double rate = 0;         // requests/s over all connections; 0: as fast as answered
  double warmup_s = 0;
  bool preload = false;
  double timeout_s = 10;
  uint64_t seed = 1;

  // Whether the run measures a fixed number of requests (else a duration).
  bool by_requests() const { return requests > 0; }
  // A preload with nothing measured after it (--duration 0).
  bool preload_only() const { return preload && requests == 0 && duration_s == 0; }
};

}  // namespace rkv::bench

#endif  // RKV_APPS_RAFT_KV_BENCH_CONFIG_H_
