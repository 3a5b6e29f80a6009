// The results of a run, for people (FormatText) and for scripts
// (FormatJson: one JSON object, on one line, whose "summary" holds the
// headline figures of all operations together).
#ifndef RKV_APPS_RAFT_KV_BENCH_REPORT_H_
#define RKV_APPS_RAFT_KV_BENCH_REPORT_H_

#include <string>

#include "config.h"
#include "stats.h"

namespace rkv::bench {

struct Report {
  std::string version;
  BenchConfig config;
  PreloadStats preload;
  RunStats stats;
  // The measured time: throughput is successes divided by this.
  double elapsed_s = 0;
  // Stopped by a signal before the end: the figures cover elapsed_s.
  bool interrupted = false;
};

std::string FormatText(const Report& report);
std::string FormatJson(const Report& report);

// Successes per second over the measured time (0 when nothing was measured).
double OkPerSecond(const OpStats& op, double elapsed_s);

}  // namespace rkv::bench

#endif  // RKV_APPS_RAFT_KV_BENCH_REPORT_H_
