// The raft-kv binary over HTTP: the API, the connection handling, restarts,
// crashes and the data directory lock.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "client/http_client.h"
#include "integration/raw_socket.h"
#include "integration/server_process.h"
#include "support/test_util.h"

namespace rkv::test {
namespace {

using client::HttpClient;
using client::HttpReply;

using test::RawSocket;

class HttpServerTest : public ::testing::Test {
 protected:
  // Starts a server on data_dir() with `args`.
  void StartServer(std::vector<std::string> args = {}) {
    server_ = std::make_unique<ServerProcess>(dir_.path(), data_dir(), std::move(args));
    ASSERT_OK(server_->Start());
    client_ = std::make_unique<HttpClient>("127.0.0.1", server_->port());
  }
  std::string data_dir() const { return dir_.Join("data"); }
  HttpClient& client() { return *client_; }

  HttpReply Request(std::string_view method, std::string_view target, std::string_view body = {},
                    const client::Headers& headers = {}) {
    auto reply = client_->Request(method, target, body, headers);
    EXPECT_OK(reply);
    return reply.ok() ? *reply : HttpReply{};
  }

  TempDir dir_;
  std::unique_ptr<ServerProcess> server_;  // destroyed (stopped) before dir_
  std::unique_ptr<HttpClient> client_;
};

TEST_F(HttpServerTest, OriginalApi) {
  StartServer();
  HttpReply r = Request("POST", "/hello", R"({"value":"world"})");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, R"({"success":true})");
  EXPECT_EQ(r.Header("Content-Type"), "application/json");

  r = Request("GET", "/hello");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, R"({"value":"world"})");

  r = Request("PUT", "/hello", R"({"value":"again"})");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(*client().Get("hello"), "again");

  r = Request("DELETE", "/hello");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, R"({"success":true})");

  r = Request("GET", "/hello");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.body, R"({"error":{"code":"not_found","message":"key not found"}})");
  EXPECT_TRUE(client().Get("hello").status().IsNotFound());

  r = Request("GET", "/healthz");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, R"({"status":"ok"})");
}

TEST_F(HttpServerTest, ClientRoundTripsAwkwardKeysAndValues) {
  StartServer();
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"a/b/c", "slashes"},
      {"with space?and#hash%", "\"quoted\" \\ back\nslash"},
      {"\xE2\x82\xAC", "\xF0\x9F\x98\x80 emoji"},
      {"empty-value", ""},
  };
  for (const auto& [key, value] : cases) ASSERT_OK(client().Put(key, value));
  for (const auto& [key, value] : cases) {
    auto got = client().Get(key);
    ASSERT_OK(got);
    EXPECT_EQ(*got, value) << key;
    for (const char* consistency : {"linearizable", "lease", "stale"}) {
      EXPECT_EQ(*client().Get(key, consistency), value);
    }
  }
  ASSERT_OK(client().Delete("a/b/c"));
  EXPECT_TRUE(client().Get("a/b/c").status().IsNotFound());
}

TEST_F(HttpServerTest, Errors) {
  StartServer({"--max-value-bytes", "1024", "--max-key-bytes", "64"});
  auto code_of = [](const HttpReply& r) {
    auto pos = r.body.find("\"code\":\"");
    if (pos == std::string::npos) return std::string();
    pos += 8;
    return r.body.substr(pos, r.body.find('"', pos) - pos);
  };
  HttpReply r = Request("POST", "/k", "not json");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(code_of(r), "invalid_argument");
  EXPECT_EQ(Request("POST", "/k", R"({"value":5})").status, 400);
  EXPECT_EQ(Request("POST", "/k", R"({"value":"x"} extra)").status, 400);
  EXPECT_EQ(Request("POST", "/k", "{\"value\":\"\xFF\"}").status, 400);
  EXPECT_EQ(Request("GET", "/k?consistency=bogus").status, 400);
  EXPECT_EQ(Request("GET", "/bad%zzkey").status, 400);

  r = Request("PATCH", "/k", R"({"value":"x"})");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.Header("Allow"), "GET, POST, PUT, DELETE");

  r = Request("GET", "/");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(code_of(r), "not_found");

  r = Request("POST", "/k", "{\"value\":\"" + std::string(1025, 'v') + "\"}");
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(code_of(r), "too_large");
  EXPECT_EQ(Request("POST", "/k", "{\"value\":\"" + std::string(1024, 'v') + "\"}").status, 200);
  EXPECT_EQ(Request("GET", "/" + std::string(65, 'k')).status, 413);

  // The connection is still usable after every error.
  EXPECT_EQ(Request("GET", "/k").status, 200);
}

TEST_F(HttpServerTest, HeaderAndBodyLimitsCloseTheConnection) {
  StartServer({"--max-value-bytes", "1024"});
  {
    RawSocket s(server_->port());
    ASSERT_TRUE(s.connected());
    s.Send("GET /k HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(20000, 'h') + "\r\n\r\n");
    std::string reply = s.ReadUntilClose();
    EXPECT_EQ(reply.rfind("HTTP/1.1 431", 0), 0u) << reply.substr(0, 200);
  }
  {
    // Body limit is value limit + 1 MiB; the header alone announces more.
    RawSocket s(server_->port());
    ASSERT_TRUE(s.connected());
    s.Send("POST /k HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\n\r\n{\"value\":\"");
    std::string reply = s.ReadUntilClose();
    EXPECT_EQ(reply.rfind("HTTP/1.1 413", 0), 0u) << reply.substr(0, 200);
    EXPECT_NE(reply.find("too_large"), std::string::npos);
  }
  EXPECT_EQ(Request("GET", "/healthz").status, 200);
}

TEST_F(HttpServerTest, KeepAliveServesManyRequestsOnOneConnection) {
  StartServer();
  RawSocket s(server_->port());
  ASSERT_TRUE(s.connected());
  for (int i = 0; i < 200; ++i) {
    std::string body = "{\"value\":\"v" + std::to_string(i) + "\"}";
    ASSERT_TRUE(s.Send("POST /k" + std::to_string(i) + " HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                       std::to_string(body.size()) + "\r\n\r\n" + body));
    std::string reply = s.ReadUntil("{\"success\":true}", 1);
    ASSERT_EQ(reply.rfind("HTTP/1.1 200", 0), 0u) << i << ": " << reply;
  }
  // The blocking client reuses its connection as well.
  for (int i = 0; i < 200; ++i) {
    auto got = client().Get("k" + std::to_string(i));
    ASSERT_OK(got);
    EXPECT_EQ(*got, "v" + std::to_string(i));
  }
}

TEST_F(HttpServerTest, PipelinedRequestsAreAnsweredInOrder) {
  StartServer();
  ASSERT_OK(client().Put("a", "first"));
  ASSERT_OK(client().Put("b", "second"));
  RawSocket s(server_->port());
  ASSERT_TRUE(s.connected());
  const std::string put = R"({"value":"third"})";
  ASSERT_TRUE(s.Send(
      "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
      "GET /b HTTP/1.1\r\nHost: x\r\n\r\n"
      "POST /c HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(put.size()) + "\r\n\r\n" +
      put +
      "GET /c HTTP/1.1\r\nHost: x\r\n\r\n"
      "GET /missing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
  std::string replies = s.ReadUntilClose();
  EXPECT_EQ(RawSocket::Count(replies, "HTTP/1.1 "), 5u) << replies;
  size_t a = replies.find(R"({"value":"first"})");
  size_t b = replies.find(R"({"value":"second"})");
  size_t put_ok = replies.find(R"({"success":true})");
  size_t c = replies.find(R"({"value":"third"})");
  size_t missing = replies.find("HTTP/1.1 404");
  ASSERT_NE(missing, std::string::npos) << replies;
  EXPECT_LT(a, b);
  EXPECT_LT(b, put_ok);
  EXPECT_LT(put_ok, c);
  EXPECT_LT(c, missing);
}

TEST_F(HttpServerTest, HeadIs405WithoutABody) {
  StartServer();
  ASSERT_OK(client().Put("k", "v"));
  RawSocket s(server_->port());
  ASSERT_TRUE(s.Send("HEAD /k HTTP/1.1\r\nHost: x\r\n\r\n"
                     "GET /k HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
  std::string replies = s.ReadUntilClose();
  ASSERT_EQ(replies.rfind("HTTP/1.1 405", 0), 0u) << replies;
  // The HEAD reply carries no body, so the next reply follows its header.
  size_t second = replies.find("\r\n\r\nHTTP/1.1 200");
  ASSERT_NE(second, std::string::npos) << replies;
  EXPECT_NE(replies.find(R"({"value":"v"})", second), std::string::npos);
}

TEST_F(HttpServerTest, GarbageAndAbandonedRequestsDoNotHurtOthers) {
  StartServer();
  ASSERT_OK(client().Put("k", "v"));
  {
    RawSocket s(server_->port());
    s.Send("THIS IS NOT HTTP\r\n\r\n");
    std::string reply = s.ReadUntilClose();
    EXPECT_EQ(reply.rfind("HTTP/1.1 400", 0), 0u) << reply;
  }
  {
    RawSocket s(server_->port());
    s.Send(std::string("\x00\x01\x02\xff\xfe binary junk", 18));
    s.ReadUntilClose();  // answered or closed; either way not hung
  }
  for (int i = 0; i < 5; ++i) {
    // Announces a body and goes away after a few bytes.
    RawSocket s(server_->port());
    s.Send("POST /k HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"value\":\"par");
  }
  {
    // Goes away in the middle of the header.
    RawSocket s(server_->port());
    s.Send("GET /k HTTP/1.1\r\nHost: x\r\nX-Half");
  }
  // A half-sent request stays open while a client is served.
  RawSocket stalled(server_->port());
  stalled.Send("POST /k HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{");
  for (int i = 0; i < 20; ++i) {
    auto got = client().Get("k");
    ASSERT_OK(got);
    EXPECT_EQ(*got, "v");
  }
  HttpClient fresh("127.0.0.1", server_->port());
  EXPECT_EQ(*fresh.Get("k"), "v");
}

TEST_F(HttpServerTest, ConnectionCap) {
  StartServer({"--max-connections", "2"});
  HttpClient first("127.0.0.1", server_->port());
  HttpClient second("127.0.0.1", server_->port());
  ASSERT_OK(first.Put("k", "v"));   // both connections are now open and counted
  ASSERT_OK(second.Put("k", "v"));
  RawSocket third(server_->port());
  ASSERT_TRUE(third.connected());
  third.Send("GET /k HTTP/1.1\r\nHost: x\r\n\r\n");
  std::string reply = third.ReadUntilClose();
  EXPECT_EQ(reply.rfind("HTTP/1.1 503", 0), 0u) << reply;
  EXPECT_NE(reply.find("Retry-After: 1"), std::string::npos);
  // Closing one frees a slot.
  first.Close();
  bool served = false;
  for (int attempt = 0; attempt < 200 && !served; ++attempt) {
    HttpClient again("127.0.0.1", server_->port());
    auto got = again.Get("k");
    served = got.ok() && *got == "v";
  }
  EXPECT_TRUE(served);
  EXPECT_EQ(*second.Get("k"), "v");
}

TEST_F(HttpServerTest, RestartKeepsData) {
  StartServer();
  for (int i = 0; i < 100; ++i) ASSERT_OK(client().Put("key" + std::to_string(i), "value" + std::to_string(i)));
  ASSERT_OK(client().Delete("key7"));
  client_.reset();
  std::optional<int> code = server_->Stop();
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0) << server_->Log();
  EXPECT_NE(server_->Log().find("event=stopped"), std::string::npos);

  StartServer();
  for (int i = 0; i < 100; ++i) {
    auto got = client().Get("key" + std::to_string(i));
    if (i == 7) {
      EXPECT_TRUE(got.status().IsNotFound());
    } else {
      ASSERT_OK(got);
      EXPECT_EQ(*got, "value" + std::to_string(i));
    }
  }
}

TEST_F(HttpServerTest, SigtermUnderLoadAnswersOrRefusesButLosesNothing) {
  StartServer();
  constexpr int kThreads = 4;
  std::mutex mu;
  std::condition_variable acked_cv;
  std::map<std::string, std::string> acknowledged;  // guarded by mu
  std::vector<std::thread> writers;
  for (int t = 0; t < kThreads; ++t) {
    writers.emplace_back([&, t] {
      HttpClient c("127.0.0.1", server_->port(), std::chrono::seconds(10));
      for (int i = 0;; ++i) {
        std::string key = "t" + std::to_string(t) + "-" + std::to_string(i);
        if (!c.Put(key, "v").ok()) return;  // refused or the server is gone
        {
          std::lock_guard lock(mu);
          acknowledged[key] = "v";
        }
        acked_cv.notify_all();
      }
    });
  }
  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(acked_cv.wait_for(lock, std::chrono::seconds(60),
                                  [&] { return acknowledged.size() >= 200; }));
  }
  std::optional<int> code = server_->Stop();
  for (auto& w : writers) w.join();
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0) << server_->Log();

  StartServer();
  for (const auto& [key, value] : acknowledged) {
    auto got = client().Get(key);
    ASSERT_TRUE(got.ok()) << key << ": " << got.status().ToString();
  }
}

class CrashTest : public HttpServerTest, public ::testing::WithParamInterface<const char*> {};

TEST_P(CrashTest, AcknowledgedWritesSurviveKill9) {
  StartServer({"--sync", GetParam()});
  constexpr int kThreads = 4;
  constexpr int kWritesPerThread = 100;
  std::mutex mu;
  std::condition_variable acked_cv;
  std::map<std::string, std::string> acknowledged;  // guarded by mu
  int done_writes = 0;                              // guarded by mu
  std::atomic<bool> stop{false};
  std::vector<std::thread> writers;
  for (int t = 0; t < kThreads; ++t) {
    writers.emplace_back([&, t] {
      HttpClient c("127.0.0.1", server_->port(), std::chrono::seconds(10));
      for (int i = 0; !stop.load(); ++i) {
        // Overwrites a small key set so the last acknowledged value matters.
        std::string key = "t" + std::to_string(t) + "-" + std::to_string(i % 50);
        std::string value = "v" + std::to_string(i);
        if (!c.Put(key, value).ok()) return;  // the server is gone
        {
          std::lock_guard lock(mu);
          acknowledged[key] = value;
          ++done_writes;
        }
        acked_cv.notify_all();
      }
    });
  }
  // Kill once enough writes were acknowledged, while writers are still going.
  // The snapshot of acknowledgements is taken under the same lock as the
  // kill, so it holds only replies the server sent before it died.
  std::map<std::string, std::string> snapshot;
  {
    std::unique_lock lock(mu);
    bool enough = acked_cv.wait_for(lock, std::chrono::seconds(60), [&] {
      return done_writes >= kThreads * kWritesPerThread;
    });
    server_->Kill();
    snapshot = acknowledged;
    if (!enough) {
      lock.unlock();
      stop.store(true);
      for (auto& w : writers) w.join();
      FAIL() << "only " << snapshot.size() << " keys acknowledged in time";
    }
  }
  stop.store(true);
  for (auto& w : writers) w.join();

  StartServer({"--sync", GetParam()});
  for (const auto& [key, value] : snapshot) {
    auto got = client().Get(key);
    ASSERT_TRUE(got.ok()) << key << ": " << got.status().ToString();
    // A write in flight at the kill may have landed after the last
    // acknowledged one; it carries a later sequence number.
    const int acked = std::stoi(value.substr(1));
    const int found = std::stoi(got->substr(1));
    EXPECT_GE(found, acked) << key;
  }
}

INSTANTIATE_TEST_SUITE_P(SyncModes, CrashTest, ::testing::Values("group", "always"));

TEST_F(HttpServerTest, LockedDataDirIsRefused) {
  StartServer();
  ServerProcess second(dir_.path(), data_dir());
  std::optional<int> code = second.RunToExit();
  ASSERT_TRUE(code.has_value()) << "second server did not exit";
  EXPECT_NE(*code, 0);
  EXPECT_NE(second.Log().find("locked by another raft-kv process"), std::string::npos)
      << second.Log();
  // The first one is unaffected.
  ASSERT_OK(client().Put("k", "v"));
}

TEST_F(HttpServerTest, StartupErrorsExitNonZero) {
  {
    ServerProcess bad_flag(dir_.path(), data_dir(), {"--sync", "sometimes"});
    std::optional<int> code = bad_flag.RunToExit();
    ASSERT_TRUE(code.has_value());
    EXPECT_NE(*code, 0);
  }
  StartServer();
  {
    // Same port as the running server, another data directory.
    ServerProcess clash(dir_.path(), dir_.Join("other"),
                        {"--http", "127.0.0.1:" + std::to_string(server_->port())});
    std::optional<int> code = clash.RunToExit();
    ASSERT_TRUE(code.has_value());
    EXPECT_NE(*code, 0);
    EXPECT_NE(clash.Log().find("cannot listen"), std::string::npos) << clash.Log();
  }
}

TEST_F(HttpServerTest, OptionsFromATomlFile) {
  // The config file names a member id and a one-member cluster; the flags
  // ServerProcess adds (--data, --http, --ready-file) come on top.
  const std::string config = dir_.Join("node.toml");
  {
    std::ofstream out(config);
    out << "# a one-member cluster\nid = 7\ninitial-cluster = \"7=127.0.0.1:1\"\n"
        << "compact-entries = 500\n";
  }
  StartServer({"--config", config});
  ASSERT_OK(client().Put("k", "v"));
  HttpReply status = Request("GET", "/v1/status");
  EXPECT_EQ(status.status, 200);
  EXPECT_NE(status.body.find("\"id\":7"), std::string::npos) << status.body;
  EXPECT_NE(status.body.find("\"role\":\"leader\""), std::string::npos) << status.body;

  // An unknown option in the file is refused.
  {
    std::ofstream out(config);
    out << "no-such-option = 1\n";
  }
  ServerProcess bad(dir_.path(), dir_.Join("other"), {"--config", config});
  std::optional<int> code = bad.RunToExit();
  ASSERT_TRUE(code.has_value());
  EXPECT_NE(*code, 0);
}

TEST_F(HttpServerTest, VersionAndHelp) {
  ServerProcess version(dir_.path(), data_dir(), {"--version"});
  std::optional<int> code = version.RunToExit();
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0);
  EXPECT_NE(version.Log().find("raft-kv"), std::string::npos);
}

}  // namespace
}  // namespace rkv::test
