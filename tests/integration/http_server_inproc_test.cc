// HttpServer in this process over a fake KvService: replies that come from
// other threads, late or never, and Stop() while they are outstanding.
#include "api/http/http_server.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "client/http_client.h"
#include "support/test_util.h"

namespace rkv::http {
namespace {

// Reads answer inline; writes are held until the test releases them, then
// answered from another thread.
class HeldWritesService : public KvService {
 public:
  void Get(std::string key, const ServiceReadOptions&, GetCallback done) override {
    done(std::string("value-of-") + key);
  }
  void Put(std::string, std::string, const ServiceWriteOptions&, WriteCallback done) override {
    Hold(std::move(done));
  }
  void Delete(std::string, const ServiceWriteOptions&, WriteCallback done) override {
    Hold(std::move(done));
  }
  bool Healthy() const override { return true; }
  ServiceStatus NodeStatus() const override { return {}; }
  void Cluster(std::function<void(ClusterInfo)> done) override { done({}); }

  void WaitForHeld(size_t n) {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return held_.size() >= n; });
  }
  // Answers every held write from a new thread and waits for that thread.
  void ReleaseAll(Status status) {
    std::vector<WriteCallback> callbacks;
    {
      std::lock_guard lock(mu_);
      callbacks.swap(held_);
    }
    std::thread([&] {
      for (auto& cb : callbacks) cb(status);
    }).join();
  }

 private:
  void Hold(WriteCallback done) {
    std::lock_guard lock(mu_);
    held_.push_back(std::move(done));
    cv_.notify_all();
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<WriteCallback> held_;
};

TEST(HttpServerInProcessTest, RepliesFromOtherThreadsReachTheRightConnection) {
  HeldWritesService service;
  HttpHandler handler(&service, {});
  HttpServerOptions options;
  options.threads = 2;
  HttpServer server(&handler, options);
  ASSERT_OK(server.Start("127.0.0.1:0"));
  ASSERT_NE(server.port(), 0);

  constexpr int kClients = 8;
  std::vector<std::thread> clients;
  std::vector<Status> results(kClients);
  for (int i = 0; i < kClients; ++i) {
    clients.emplace_back([&, i] {
      client::HttpClient c("127.0.0.1", server.port());
      results[static_cast<size_t>(i)] = c.Put("k" + std::to_string(i), "v");
      auto got = c.Get("k" + std::to_string(i));
      if (!got.ok() || *got != "value-of-k" + std::to_string(i)) {
        results[static_cast<size_t>(i)] = Status::Corruption("wrong read");
      }
    });
  }
  service.WaitForHeld(kClients);
  service.ReleaseAll(Status::OK());
  for (auto& t : clients) t.join();
  for (const auto& s : results) EXPECT_OK(s);
  server.Stop();
}

TEST(HttpServerInProcessTest, StopWaitsBoundedlyAndLateRepliesAreHarmless) {
  HeldWritesService service;
  HttpHandler handler(&service, {});
  HttpServerOptions options;
  options.stop_timeout = std::chrono::milliseconds(200);
  auto server = std::make_unique<HttpServer>(&handler, options);
  ASSERT_OK(server->Start("127.0.0.1:0"));

  Status client_result;
  std::thread client([&, port = server->port()] {
    client::HttpClient c("127.0.0.1", port, std::chrono::seconds(10));
    client_result = c.Put("k", "v");
  });
  service.WaitForHeld(1);
  // The write is never answered before Stop: Stop gives up after its
  // timeout and closes the connection, so the client learns at once.
  const auto start = std::chrono::steady_clock::now();
  server->Stop();
  client.join();
  EXPECT_FALSE(client_result.ok());
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  server.reset();
  // The service answers after the server is gone: nothing happens.
  service.ReleaseAll(Status::OK());
}

TEST(HttpServerInProcessTest, StopAnswersInFlightRequests) {
  HeldWritesService service;
  HttpHandler handler(&service, {});
  HttpServer server(&handler, {});
  ASSERT_OK(server.Start("127.0.0.1:0"));

  Status client_result = Status::Aborted("not run");
  std::thread client([&] {
    client::HttpClient c("127.0.0.1", server.port());
    client_result = c.Put("k", "v");
  });
  service.WaitForHeld(1);
  std::thread stopper([&] { server.Stop(); });
  service.ReleaseAll(Status::OK());
  stopper.join();
  client.join();
  EXPECT_OK(client_result);
}

TEST(HttpServerInProcessTest, BadAddressesAreRejected) {
  HeldWritesService service;
  HttpHandler handler(&service, {});
  HttpServer server(&handler, {});
  EXPECT_TRUE(server.Start("no-port").IsInvalidArgument());
  EXPECT_TRUE(server.Start("127.0.0.1:99999").IsInvalidArgument());
  std::string host;
  uint16_t port = 0;
  EXPECT_TRUE(SplitHostPort("[::1]:8080", &host, &port));
  EXPECT_EQ(host, "::1");
  EXPECT_EQ(port, 8080);
  EXPECT_FALSE(SplitHostPort("::1:8080", &host, &port));
}

}  // namespace
}  // namespace rkv::http
