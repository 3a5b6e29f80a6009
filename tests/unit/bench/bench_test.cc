// raft-kv-bench: each piece on its own, then whole runs against a small
// HTTP server in this process that records what it was sent.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/random.h"
#include "config.h"
#include "histogram.h"
#include "http_response.h"
#include "key_chooser.h"
#include "load.h"
#include "report.h"
#include "requests.h"

namespace rkv::bench {
namespace {

// ------------------------------------------------------------ histogram

TEST(HistogramTest, SmallValuesAreExactAndLargeOnesWithinOnePart128) {
  for (uint64_t v = 0; v < 256; ++v) {
    const size_t b = Histogram::BucketIndex(v);
    EXPECT_EQ(Histogram::BucketLowest(b), v);
    EXPECT_EQ(Histogram::BucketHighest(b), v);
  }
  Random random(7);
  for (int i = 0; i < 100000; ++i) {
    const uint64_t v = random.Uniform(Histogram::kMaxValue);
    const size_t b = Histogram::BucketIndex(v);
    ASSERT_LT(b, Histogram::kBuckets);
    ASSERT_LE(Histogram::BucketLowest(b), v);
    ASSERT_GE(Histogram::BucketHighest(b), v);
    ASSERT_LE(Histogram::BucketHighest(b) - Histogram::BucketLowest(b), std::max<uint64_t>(v / 128, 1)) << v;
  }
  // Buckets tile the range: each starts where the one before ended.
  for (size_t b = 1; b < Histogram::kBuckets; ++b) {
    ASSERT_EQ(Histogram::BucketLowest(b), Histogram::BucketHighest(b - 1) + 1) << b;
  }
}

TEST(HistogramTest, PercentilesOfAKnownDistribution) {
  Histogram h;
  EXPECT_EQ(h.ValueAtPercentile(50), 0u);
  for (uint64_t v = 1; v <= 10000; ++v) h.Record(v);
  EXPECT_EQ(h.count(), 10000u);
  EXPECT_EQ(h.min(), 1u);
  EXPECT_EQ(h.max(), 10000u);
  EXPECT_NEAR(h.mean(), 5000.5, 0.01);
  for (double p : {50.0, 90.0, 99.0, 99.9}) {
    const double exact = p * 100;
    EXPECT_NEAR(static_cast<double>(h.ValueAtPercentile(p)), exact, exact / 128 + 1) << p;
  }
  EXPECT_EQ(h.ValueAtPercentile(0), 1u);
  EXPECT_EQ(h.ValueAtPercentile(100), 10000u);

  Histogram other;
  other.Record(20000, 10000);
  h.Merge(other);
  EXPECT_EQ(h.count(), 20000u);
  EXPECT_EQ(h.max(), 20000u);
  EXPECT_NEAR(static_cast<double>(h.ValueAtPercentile(75)), 20000, 20000.0 / 128);
  h.Clear();
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.max(), 0u);
}

TEST(HistogramTest, ValuesPastTheRangeKeepTheirExactMaximum) {
  Histogram h;
  h.Record(Histogram::kMaxValue * 4);
  EXPECT_EQ(h.max(), Histogram::kMaxValue * 4);
  EXPECT_EQ(h.ValueAtPercentile(100), Histogram::kMaxValue * 4);
}

// ------------------------------------------------------- key choosers

TEST(KeyChooserTest, UniformCoversTheKeysEvenly) {
  KeyChooser keys(KeyDistribution::kUniform, 10);
  Random random(3);
  std::vector<int> counts(10);
  for (int i = 0; i < 100000; ++i) {
    const uint64_t k = keys.Next(random);
    ASSERT_LT(k, 10u);
    ++counts[k];
  }
  for (int c : counts) EXPECT_NEAR(c, 10000, 500);
}

TEST(KeyChooserTest, ZipfianRanksFollowTheirProbabilities) {
  const uint64_t n = 1000;
  ZipfianGenerator zipf(n, 0.99);
  EXPECT_NEAR(zipf.zeta(), ZipfianGenerator::Zeta(n, 0.99), 1e-9);
  Random random(11);
  std::map<uint64_t, int> counts;
  const int draws = 200000;
  for (int i = 0; i < draws; ++i) {
    const uint64_t r = zipf.Next(random);
    ASSERT_LT(r, n);
    ++counts[r];
  }
  // Gray's generator draws ranks 0 and 1 with their exact probabilities
  // and approximates the rest with a continuous curve (YCSB's generator
  // does the same), so the others are only checked to fall off in order.
  for (uint64_t rank : {uint64_t{0}, uint64_t{1}}) {
    const double expected = draws / (std::pow(static_cast<double>(rank + 1), 0.99) * zipf.zeta());
    EXPECT_NEAR(counts[rank], expected, expected * 0.05) << rank;
  }
  EXPECT_GT(counts[1], counts[2]);
  EXPECT_GT(counts[2], counts[9]);
  EXPECT_GT(counts[9], counts[99]);
  // Half the draws land on about the top 10% of the ranks, as zipf(0.99) over 1000 says.
  int top = 0;
  for (uint64_t r = 0; r < 100; ++r) top += counts[r];
  const double top_share = ZipfianGenerator::Zeta(100, 0.99) / zipf.zeta();
  EXPECT_NEAR(top / static_cast<double>(draws), top_share, 0.05);
}

TEST(KeyChooserTest, ZipfianRanksMapToEveryKeyOnce) {
  for (uint64_t n : std::vector<uint64_t>{1, 2, 10, 97, 1000, 4096}) {
    KeyChooser keys(KeyDistribution::kZipfian, n);
    std::set<uint64_t> seen;
    for (uint64_t r = 0; r < n; ++r) seen.insert(keys.KeyOfRank(r));
    EXPECT_EQ(seen.size(), n) << n;
    EXPECT_LT(*seen.rbegin(), n) << n;
  }
  // The popular keys are spread out, not neighbours.
  KeyChooser keys(KeyDistribution::kZipfian, 100000);
  EXPECT_NE(keys.KeyOfRank(1), keys.KeyOfRank(0) + 1);
}

// ------------------------------------------------------------ requests

RequestBuilder Builder(Api api, Consistency c = Consistency::kLinearizable) {
  RequestOptions options;
  options.api = api;
  options.host = "127.0.0.1:7001";
  options.value_size = 4;
  options.consistency = c;
  auto builder = RequestBuilder::Create(options);
  EXPECT_TRUE(builder.ok());
  return *builder;
}

TEST(RequestBuilderTest, TheBytesOfEachApi) {
  std::string out;
  Builder(Api::kRaftKv).Build(Op::kWrite, 42, &out);
  EXPECT_EQ(out,
            "PUT /v1/kv/key42 HTTP/1.1\r\nHost: 127.0.0.1:7001\r\nContent-Type: application/octet-stream\r\n"
            "Content-Length: 4\r\n\r\nxxxx");
  Builder(Api::kRaftKv, Consistency::kStale).Build(Op::kRead, 7, &out);
  EXPECT_EQ(out, "GET /v1/kv/key7?consistency=stale HTTP/1.1\r\nHost: 127.0.0.1:7001\r\n\r\n");
  Builder(Api::kRaftKvJson).Build(Op::kWrite, 1, &out);
  EXPECT_EQ(out,
            "POST /key1 HTTP/1.1\r\nHost: 127.0.0.1:7001\r\nContent-Type: application/json\r\n"
            "Content-Length: 16\r\n\r\n{\"value\":\"xxxx\"}");
  Builder(Api::kRaftKvJson).Build(Op::kRead, 1, &out);
  EXPECT_EQ(out, "GET /key1 HTTP/1.1\r\nHost: 127.0.0.1:7001\r\n\r\n");
  Builder(Api::kEtcd).Build(Op::kWrite, 1, &out);
  EXPECT_EQ(out,
            "POST /v3/kv/put HTTP/1.1\r\nHost: 127.0.0.1:7001\r\nContent-Type: application/json\r\n"
            "Content-Length: 37\r\n\r\n{\"key\":\"a2V5MQ==\",\"value\":\"eHh4eA==\"}");
  Builder(Api::kEtcd, Consistency::kStale).Build(Op::kRead, 1, &out);
  EXPECT_NE(out.find("\r\n\r\n{\"key\":\"a2V5MQ==\",\"serializable\":true}"), std::string::npos) << out;
}

TEST(RequestBuilderTest, PaddedKeysAndRefusedCombinations) {
  RequestOptions options;
  options.key_prefix = "k/";
  options.key_width = 5;
  auto builder = RequestBuilder::Create(options);
  ASSERT_TRUE(builder.ok());
  EXPECT_EQ(builder->KeyName(42), "k/00042");
  std::string out;
  builder->Build(Op::kRead, 42, &out);
  EXPECT_EQ(out.rfind("GET /v1/kv/k%2F00042?", 0), 0u) << out;

  options.api = Api::kEtcd;
  options.consistency = Consistency::kLease;
  EXPECT_TRUE(RequestBuilder::Create(options).status().IsInvalidArgument());
  options = RequestOptions();
  options.key_width = 21;
  EXPECT_TRUE(RequestBuilder::Create(options).status().IsInvalidArgument());
  EXPECT_TRUE(RequestBuilder::IsSuccess(Op::kRead, 404));
  EXPECT_FALSE(RequestBuilder::IsSuccess(Op::kWrite, 404));
  EXPECT_FALSE(RequestBuilder::IsSuccess(Op::kRead, 503));
}

// ------------------------------------------------------- reply parser

// Feeds `bytes` one byte at a time; returns the bytes used in all.
size_t FeedByteByByte(ResponseParser& p, std::string_view bytes) {
  size_t used = 0;
  for (size_t i = 0; i < bytes.size() && p.state() == ResponseParser::State::kIncomplete; ++i) {
    used += p.Feed(bytes.substr(i, 1));
  }
  return used;
}

TEST(ResponseParserTest, ContentLengthInPiecesAndBackToBack) {
  const std::string one = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
  ResponseParser p;
  EXPECT_EQ(FeedByteByByte(p, one), one.size());
  ASSERT_EQ(p.state(), ResponseParser::State::kComplete) << p.error();
  EXPECT_EQ(p.status(), 200);
  EXPECT_TRUE(p.keep_alive());
  p.Reset();
  // Two responses in one read: the first uses only its own bytes.
  const std::string two = one + "HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\nConnection: close\r\n\r\nnope";
  const size_t used = p.Feed(two);
  EXPECT_EQ(used, one.size());
  p.Reset();
  EXPECT_EQ(p.Feed(std::string_view(two).substr(used)), two.size() - used - 1);
  EXPECT_EQ(p.status(), 404);
  EXPECT_FALSE(p.keep_alive());
  EXPECT_EQ(p.body_prefix(), "nop");
}

TEST(ResponseParserTest, ChunkedNoBodyInterimAndUntilClose) {
  ResponseParser p;
  const std::string chunked =
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n3;ext=1\r\nefg\r\n0\r\nX-T: 1\r\n\r\n";
  EXPECT_EQ(FeedByteByByte(p, chunked), chunked.size());
  EXPECT_EQ(p.state(), ResponseParser::State::kComplete) << p.error();

  p.Reset();
  const std::string no_body = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nContent-Length: 99\r\n\r\n";
  EXPECT_EQ(p.Feed(no_body), no_body.size());
  EXPECT_EQ(p.state(), ResponseParser::State::kComplete) << p.error();
  EXPECT_EQ(p.status(), 204);

  p.Reset();
  p.Feed("HTTP/1.0 200 OK\r\n\r\nbody until the end");
  EXPECT_EQ(p.state(), ResponseParser::State::kIncomplete);
  p.FeedEof();
  EXPECT_EQ(p.state(), ResponseParser::State::kComplete);
  EXPECT_FALSE(p.keep_alive());

  p.Reset();
  p.Feed("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort");
  p.FeedEof();
  EXPECT_EQ(p.state(), ResponseParser::State::kError);
}

TEST(ResponseParserTest, MalformedRepliesAreErrors) {
  for (const char* bad : {"HTTX/1.1 200 OK\r\n\r\n", "HTTP/1.1 2000 OK\r\n\r\n",
                          "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
                          "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                          "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"}) {
    ResponseParser p;
    p.Feed(bad);
    EXPECT_EQ(p.state(), ResponseParser::State::kError) << bad;
    EXPECT_FALSE(p.error().empty()) << bad;
  }
  ResponseParser big;
  big.Feed("HTTP/1.1 200 OK\r\nX: " + std::string(ResponseParser::kMaxHeaderBytes, 'a'));
  EXPECT_EQ(big.state(), ResponseParser::State::kError);
}

// ------------------------------------------------- runs against a server

// Answers every request on every connection: `write_status` to PUT and
// POST, 404 to GET (a key never written), and records each request line.
class FakeServer {
 public:
  explicit FakeServer(int write_status = 200) : write_status_(write_status) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(listen_fd_, 64) != 0 ||
        ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      ADD_FAILURE() << "cannot listen";
    }
    port_ = ntohs(addr.sin_port);
    accept_thread_ = std::thread([this] { AcceptLoop(); });
  }
  ~FakeServer() {
    stop_ = true;
    accept_thread_.join();
    for (std::thread& t : threads_) t.join();
    ::close(listen_fd_);
  }
  std::string endpoint() const { return "127.0.0.1:" + std::to_string(port_); }
  std::vector<std::string> lines() {
    std::lock_guard<std::mutex> lock(mu_);
    return lines_;
  }

 private:
  void AcceptLoop() {
    while (!stop_) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd >= 0) threads_.emplace_back([this, fd] { Serve(fd); });
    }
  }

  void Serve(int fd) {
    std::string in;
    char buf[16384];
    while (!stop_) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      const ssize_t n = ::read(fd, buf, sizeof buf);
      if (n <= 0) break;
      in.append(buf, static_cast<size_t>(n));
      std::string out;
      while (true) {
        const size_t end = in.find("\r\n\r\n");
        if (end == std::string::npos) break;
        size_t body = 0;
        const size_t cl = in.find("Content-Length: ");
        if (cl != std::string::npos && cl < end) body = std::stoul(in.substr(cl + 16));
        if (in.size() < end + 4 + body) break;
        const std::string line = in.substr(0, in.find("\r\n"));
        in.erase(0, end + 4 + body);
        const bool write = line.rfind("GET ", 0) != 0;
        const int status = write ? write_status_ : 404;
        const std::string reply_body = write ? "{}" : "{\"error\":{}}";
        out += "HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Length: " +
               std::to_string(reply_body.size()) + "\r\n\r\n" + reply_body;
        std::lock_guard<std::mutex> lock(mu_);
        lines_.push_back(line);
      }
      if (!out.empty() && ::write(fd, out.data(), out.size()) != static_cast<ssize_t>(out.size())) break;
    }
    ::close(fd);
  }

  const int write_status_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread accept_thread_;
  std::vector<std::thread> threads_;  // touched by the accept thread only, until joined
  std::mutex mu_;
  std::vector<std::string> lines_;
};

Result<LoadResult> RunAgainst(const FakeServer& server, BenchConfig config) {
  config.endpoints = {server.endpoint()};
  auto endpoints = ResolveEndpoints(config.endpoints);
  if (!endpoints.ok()) return endpoints.status();
  return RunLoad(config, *endpoints);
}

TEST(RunLoadTest, ACountOfWritesIsMeasuredExactly) {
  FakeServer server;
  BenchConfig config;
  config.connections = 4;
  config.threads = 2;
  config.requests = 1000;
  auto result = RunAgainst(server, config);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->stats.write.ok, 1000u);
  EXPECT_EQ(result->stats.write.errors.total(), 0u);
  EXPECT_EQ(result->stats.read.requests(), 0u);
  EXPECT_EQ(result->stats.write.latency.count(), 1000u);
  EXPECT_EQ(result->stats.connections.opened, 4u);
  EXPECT_GT(result->elapsed_s, 0);
  EXPECT_GE(server.lines().size(), 1000u);
  for (const std::string& line : server.lines()) {
    ASSERT_EQ(line.rfind("PUT /v1/kv/key", 0), 0u) << line;
  }
}

TEST(RunLoadTest, TheReadRatioSplitsTheRequestsAndA404IsARead) {
  FakeServer server;
  BenchConfig config;
  config.connections = 2;
  config.requests = 2000;
  config.read_ratio = 0.5;
  auto result = RunAgainst(server, config);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  const RunStats& s = result->stats;
  EXPECT_EQ(s.read.ok + s.write.ok, 2000u);
  EXPECT_NEAR(static_cast<double>(s.read.ok), 1000, 150);
  EXPECT_EQ(s.read.not_found, s.read.ok);
  EXPECT_EQ(s.All().errors.total(), 0u);
}

TEST(RunLoadTest, RefusedWritesAreCountedByStatusNotRetried) {
  FakeServer server(503);
  BenchConfig config;
  config.connections = 2;
  config.requests = 300;
  auto result = RunAgainst(server, config);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->stats.write.ok, 0u);
  EXPECT_EQ(result->stats.write.errors.status.at(503), 300u);
  EXPECT_NE(result->stats.first_error.find("503"), std::string::npos) << result->stats.first_error;
}

TEST(RunLoadTest, PreloadWritesEveryKeyOnce) {
  FakeServer server;
  BenchConfig config;
  config.connections = 8;
  config.keys = 500;
  config.preload = true;
  config.duration_s = 0;
  ASSERT_TRUE(config.preload_only());
  auto result = RunAgainst(server, config);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_TRUE(result->preload.ok) << result->preload.error;
  EXPECT_EQ(result->preload.keys, 500u);
  std::set<std::string> targets;
  for (const std::string& line : server.lines()) targets.insert(line);
  EXPECT_EQ(targets.size(), 500u);
  EXPECT_EQ(server.lines().size(), 500u);
  EXPECT_EQ(targets.count("PUT /v1/kv/key499 HTTP/1.1"), 1u);
}

TEST(RunLoadTest, ANodeThatIsDownIsAResultNotAnError) {
  BenchConfig config;
  config.connections = 1;
  config.duration_s = 0.2;
  config.timeout_s = 1;
  {
    FakeServer closed;  // its port, then nothing listens there
    config.endpoints = {closed.endpoint()};
  }
  auto endpoints = ResolveEndpoints(config.endpoints);
  ASSERT_TRUE(endpoints.ok());
  auto result = RunLoad(config, *endpoints);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_GT(result->stats.connections.connect_errors, 0u);
  EXPECT_EQ(result->stats.write.ok, 0u);
}

TEST(ReportTest, TheJsonSummaryHoldsTheHeadlineFigures) {
  FakeServer server;
  BenchConfig config;
  config.connections = 2;
  config.requests = 200;
  auto result = RunAgainst(server, config);
  ASSERT_TRUE(result.ok());
  Report report;
  report.version = "test";
  report.config = config;
  report.stats = result->stats;
  report.elapsed_s = result->elapsed_s;
  const boost::json::value doc = boost::json::parse(FormatJson(report));
  const boost::json::object& summary = doc.at("summary").as_object();
  EXPECT_EQ(summary.at("ok").to_number<uint64_t>(), 200u);
  EXPECT_EQ(summary.at("errors").to_number<uint64_t>(), 0u);
  EXPECT_NEAR(summary.at("ok_per_s").to_number<double>(), 200 / result->elapsed_s, 200 / result->elapsed_s * 0.01);
  EXPECT_LE(summary.at("p50_ms").to_number<double>(), summary.at("p99_ms").to_number<double>());
  EXPECT_LE(summary.at("p99_ms").to_number<double>(), summary.at("max_ms").to_number<double>());
  const std::string text = FormatText(report);
  EXPECT_NE(text.find("p99"), std::string::npos) << text;
  EXPECT_NE(text.find("write"), std::string::npos) << text;
}

}  // namespace
}  // namespace rkv::bench
