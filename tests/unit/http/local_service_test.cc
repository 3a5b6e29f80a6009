// LocalService: reads inline, writes through the bounded writer pool.
#include "node/local_service.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <future>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "storage/engine.h"
#include "support/test_util.h"

namespace rkv {
namespace {

// An engine whose writes wait until released, to fill the queue.
class GatedEngine : public storage::Engine {
 public:
  Status Get(std::string_view key, std::string* value) override {
    std::lock_guard lock(mu_);
    auto it = data_.find(std::string(key));
    if (it == data_.end()) return Status::NotFound();
    *value = it->second;
    return Status::OK();
  }
  Status Put(std::string_view key, std::string_view value, const storage::PutOptions&) override {
    std::unique_lock lock(mu_);
    ++writes_started_;
    cv_.notify_all();
    cv_.wait(lock, [&] { return open_; });
    data_[std::string(key)] = std::string(value);
    return Status::OK();
  }
  Status Delete(std::string_view key) override {
    std::unique_lock lock(mu_);
    ++writes_started_;
    cv_.notify_all();
    cv_.wait(lock, [&] { return open_; });
    data_.erase(std::string(key));
    return Status::OK();
  }
  Status Write(const storage::WriteBatch&) override { return Status::NotSupported("batch"); }
  Result<std::vector<storage::KeyValue>> Scan(const storage::ScanOptions&) override {
    return Status::NotSupported("scan");
  }
  Status Sync() override { return Status::OK(); }
  Result<std::unique_ptr<storage::View>> CreateView() override {
    return Status::NotSupported("view");
  }
  Status Merge() override { return Status::OK(); }
  storage::Stats GetStats() override { return {}; }
  Status Close() override { return Status::OK(); }

  void Open() {
    std::lock_guard lock(mu_);
    open_ = true;
    cv_.notify_all();
  }
  void WaitForWritesStarted(int n) {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return writes_started_ >= n; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
  int writes_started_ = 0;
  std::map<std::string, std::string> data_;
};

TEST(LocalServiceTest, WritesThenReads) {
  GatedEngine engine;
  engine.Open();
  LocalService service(&engine, {.writer_threads = 4, .max_queued_writes = 100});
  std::promise<Status> put;
  service.Put("k", "v", {}, [&](Status s) { put.set_value(s); });
  ASSERT_OK(put.get_future().get());

  std::optional<Result<std::string>> got;
  service.Get("k", {}, [&](Result<std::string> r) { got = std::move(r); });
  ASSERT_TRUE(got.has_value());  // reads complete inline
  ASSERT_OK(*got);
  EXPECT_EQ(**got, "v");

  std::promise<Status> del;
  service.Delete("k", {}, [&](Status s) { del.set_value(s); });
  ASSERT_OK(del.get_future().get());
  service.Get("k", {.consistency = ReadConsistency::kStale},
              [&](Result<std::string> r) { got = std::move(r); });
  EXPECT_TRUE(got->status().IsNotFound());
  EXPECT_TRUE(service.Healthy());
}

TEST(LocalServiceTest, FullQueueAnswersBusyAndStopDrains) {
  GatedEngine engine;
  LocalService service(&engine, {.writer_threads = 2, .max_queued_writes = 3});
  std::mutex mu;
  std::vector<Status> results;
  auto record = [&](Status s) {
    std::lock_guard lock(mu);
    results.push_back(s);
  };
  // Two writes occupy both writers, three more fill the queue.
  service.Put("a", "1", {}, record);
  service.Put("b", "1", {}, record);
  engine.WaitForWritesStarted(2);
  for (int i = 0; i < 3; ++i) service.Put("q" + std::to_string(i), "1", {}, record);
  // The queue is full: refused at once, on the caller's thread.
  service.Put("over", "1", {}, record);
  {
    std::lock_guard lock(mu);
    ASSERT_EQ(results.size(), 1u);
    EXPECT_TRUE(results[0].IsBusy()) << results[0].ToString();
  }
  engine.Open();
  service.Stop();  // drains the queue before joining
  {
    std::lock_guard lock(mu);
    ASSERT_EQ(results.size(), 6u);
    for (size_t i = 1; i < results.size(); ++i) EXPECT_OK(results[i]);
  }
  EXPECT_FALSE(service.Healthy());
  Status after;
  service.Put("late", "1", {}, [&](Status s) { after = s; });
  EXPECT_EQ(after.code(), StatusCode::kShuttingDown);
  std::optional<Result<std::string>> got;
  service.Get("a", {}, [&](Result<std::string> r) { got = std::move(r); });
  EXPECT_EQ(got->status().code(), StatusCode::kShuttingDown);
}

}  // namespace
}  // namespace rkv
