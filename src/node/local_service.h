// LocalService: KvService served straight from one node's storage engine.
//
// Reads run inline on the caller's thread (an engine Get is a keydir lookup
// plus a read of a mapped file). Writes go to a bounded queue served by a
// pool of writer threads; each calls Engine::Put/Delete, which in group sync
// mode blocks until durable while the engine folds the fdatasyncs of
// concurrent writers into one (group commit). That is why the pool is large.
// A full queue answers Status::Busy.
#ifndef RKV_NODE_LOCAL_SERVICE_H_
#define RKV_NODE_LOCAL_SERVICE_H_

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "node/kv_service.h"

namespace rkv {

namespace storage {
class Engine;
}  // namespace storage

struct LocalServiceOptions {
  int writer_threads = 64;
  size_t max_queued_writes = 10000;
};

class LocalService final : public KvService {
 public:
  // `engine` must outlive the service.
  LocalService(storage::Engine* engine, LocalServiceOptions options = {});
  ~LocalService() override;  // Stop()s.
  LocalService(const LocalService&) = delete;
  LocalService& operator=(const LocalService&) = delete;

  void Get(std::string key, const ServiceReadOptions& options, GetCallback done) override;
  void Put(std::string key, std::string value, const ServiceWriteOptions& options,
           WriteCallback done) override;
  void Delete(std::string key, const ServiceWriteOptions& options, WriteCallback done) override;
  bool Healthy() const override;
  // A single node: always its own leader.
  ServiceStatus NodeStatus() const override;
  void Cluster(std::function<void(ClusterInfo)> done) override;

  // Finishes the queued writes, joins the writers; later calls answer
  // ShuttingDown. Idempotent.
  void Stop();

 private:
  struct WriteOp {
    bool is_delete = false;
    std::string key;
    std::string value;
    WriteCallback done;
  };

  void Enqueue(WriteOp op);
  void WriterLoop();

  storage::Engine* engine_;
  LocalServiceOptions options_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<WriteOp> queue_;
  // Written under mu_ (so writers waiting on cv_ see it), read without it on
  // the read path.
  std::atomic<bool> stopping_{false};
  std::vector<std::thread> writers_;
};

}  // namespace rkv

#endif  // RKV_NODE_LOCAL_SERVICE_H_
