#include "stats.h"

namespace rkv::bench {

uint64_t ErrorCounts::total() const {
  uint64_t sum = closed + timeout + malformed;
  for (const auto& [code, count] : status) sum += count;
  return sum;
}

void ErrorCounts::Merge(const ErrorCounts& other) {
  for (const auto& [code, count] : other.status) status[code] += count;
  closed += other.closed;
  timeout += other.timeout;
  malformed += other.malformed;
}

void OpStats::Merge(const OpStats& other) {
  latency.Merge(other.latency);
  ok += other.ok;
  not_found += other.not_found;
  errors.Merge(other.errors);
}

void ConnectionStats::Merge(const ConnectionStats& other) {
  opened += other.opened;
  reconnects += other.reconnects;
  connect_errors += other.connect_errors;
  server_closed += other.server_closed;
  unsolicited += other.unsolicited;
}

OpStats RunStats::All() const {
  OpStats all = read;
  all.Merge(write);
  return all;
}

void RunStats::Merge(const RunStats& other) {
  read.Merge(other.read);
  write.Merge(other.write);
  connections.Merge(other.connections);
  finished_all += other.finished_all;
  if (first_error.empty()) first_error = other.first_error;
}

}  // namespace rkv::bench
