#include "node/local_service.h"

#include <utility>

#include "storage/engine.h"

namespace rkv {

LocalService::LocalService(storage::Engine* engine, LocalServiceOptions options)
    : engine_(engine), options_(options) {
  int threads = options_.writer_threads < 1 ? 1 : options_.writer_threads;
  writers_.reserve(static_cast<size_t>(threads));
  for (int i = 0; i < threads; ++i) writers_.emplace_back([this] { WriterLoop(); });
}

LocalService::~LocalService() { Stop(); }

void LocalService::Get(std::string key, const ServiceReadOptions& /*options*/, GetCallback done) {
  // One node: linearizable, lease and stale reads are all the local state.
  if (stopping_.load(std::memory_order_acquire)) {
    done(Status::ShuttingDown("service is stopping"));
    return;
  }
  done(engine_->Get(key));
}

void LocalService::Put(std::string key, std::string value, const ServiceWriteOptions& /*options*/,
                       WriteCallback done) {
  Enqueue(WriteOp{false, std::move(key), std::move(value), std::move(done)});
}

void LocalService::Delete(std::string key, const ServiceWriteOptions& /*options*/,
                          WriteCallback done) {
  Enqueue(WriteOp{true, std::move(key), {}, std::move(done)});
}

bool LocalService::Healthy() const { return !stopping_.load(std::memory_order_acquire); }

ServiceStatus LocalService::NodeStatus() const {
  ServiceStatus status;
  status.id = 1;
  status.role = "leader";
  status.leader = 1;
  status.voters = {1};
  return status;
}

void LocalService::Cluster(std::function<void(ClusterInfo)> done) {
  ClusterInfo info;
  info.self = NodeStatus();
  MemberInfo self;
  self.id = 1;
  self.status = info.self;
  info.members.push_back(std::move(self));
  done(std::move(info));
}

void LocalService::Enqueue(WriteOp op) {
  Status refused;
  {
    std::lock_guard lock(mu_);
    if (stopping_) {
      refused = Status::ShuttingDown("service is stopping");
    } else if (queue_.size() >= options_.max_queued_writes) {
      refused = Status::Busy("write queue is full");
    } else {
      queue_.push_back(std::move(op));
    }
  }
  if (!refused.ok()) {
    op.done(refused);
    return;
  }
  cv_.notify_one();
}

void LocalService::WriterLoop() {
  for (;;) {
    WriteOp op;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping and drained
      op = std::move(queue_.front());
      queue_.pop_front();
    }
    Status s = op.is_delete ? engine_->Delete(op.key) : engine_->Put(op.key, op.value);
    op.done(std::move(s));
  }
}

void LocalService::Stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_ && writers_.empty()) return;
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : writers_) t.join();
  writers_.clear();
}

}  // namespace rkv
