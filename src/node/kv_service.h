// KvService: what a front end (HTTP now, Redis protocol later) asks of a node.
//
// Today LocalService (local_service.h) serves it straight from the storage
// engine; the replicated Raft node will implement the same interface, so the
// front ends do not change when replication arrives.
//
// Calls are asynchronous: `done` runs exactly once, on any thread, possibly
// before the call returns. Implementations bound their queues and answer
// Status::Busy when full, never queue without limit.
#ifndef RKV_NODE_KV_SERVICE_H_
#define RKV_NODE_KV_SERVICE_H_

#include <functional>
#include <string>

#include "common/result.h"
#include "common/status.h"

namespace rkv {

enum class ReadConsistency { kLinearizable, kLease, kStale };

struct ServiceReadOptions {
  ReadConsistency consistency = ReadConsistency::kLinearizable;
};

struct ServiceWriteOptions {
  // Identifies a client's retried write (the HTTP Idempotency-Key header);
  // empty when the client sent none. Used by the replicated node.
  std::string idempotency_key;
};

class KvService {
 public:
  using GetCallback = std::function<void(Result<std::string>)>;
  using WriteCallback = std::function<void(Status)>;

  virtual ~KvService() = default;

  // NotFound when the key is absent.
  virtual void Get(std::string key, const ServiceReadOptions& options, GetCallback done) = 0;
  // Answers ok only once the write is as durable as the node promises.
  virtual void Put(std::string key, std::string value, const ServiceWriteOptions& options,
                   WriteCallback done) = 0;
  // Deleting an absent key succeeds.
  virtual void Delete(std::string key, const ServiceWriteOptions& options, WriteCallback done) = 0;

  // True when the service can take requests (used by health checks).
  virtual bool Healthy() const = 0;
};

}  // namespace rkv

#endif  // RKV_NODE_KV_SERVICE_H_
