// The v1 API (docs/api.md, "API v1") on three real raft-kv processes:
// raw-byte keys and values with revisions, conditional writes, TTLs,
// transactions (and their atomicity across a leader kill), scans paginated
// while writes go on, leader transfer, /readyz, /metrics, and a backup
// restored into a new cluster.
//
// Nothing here waits by sleeping: every wait polls a condition under a
// deadline. Processes are stopped by PID (ClusterProcess).
#include <gtest/gtest.h>

#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "client/http_client.h"
#include "common/host_port.h"
#include "integration/cluster_process.h"
#include "node/restore.h"
#include "support/prometheus_text.h"
#include "support/test_util.h"

namespace rkv::test {
namespace {

using namespace std::chrono_literals;
using client::HttpClient;
using client::HttpReply;
using Clock = std::chrono::steady_clock;
namespace json = boost::json;

const std::vector<std::string> kTiming = {"--tick-ms", "50", "--election-ticks", "10"};
constexpr auto kLeaderDeadline = 15s;
constexpr auto kRetryPause = 20ms;

json::value Json(const HttpReply& reply) {
  boost::system::error_code ec;
  json::value v = json::parse(reply.body, ec);
  EXPECT_FALSE(ec) << reply.body;
  return v;
}

uint64_t U64(const json::value& v, std::string_view key) {
  const json::value* field = v.as_object().if_contains(key);
  EXPECT_NE(field, nullptr) << key << " in " << json::serialize(v);
  if (field == nullptr) return 0;
  return field->is_uint64() ? field->as_uint64() : static_cast<uint64_t>(field->as_int64());
}

std::string Str(const json::value& v, std::string_view key) {
  const json::value* field = v.as_object().if_contains(key);
  return field != nullptr && field->is_string() ? std::string(field->as_string()) : std::string();
}

// "/v1/kv/" + the key, every byte percent-encoded that is not unreserved.
std::string KvTarget(std::string_view key, std::string_view query = {}) {
  std::string target = "/v1/kv" + HttpClient::KeyTarget(key);
  if (!query.empty()) target += "?" + std::string(query);
  return target;
}

// A request retried while the cluster cannot answer it (503, a transport
// error), until the deadline. Only for requests that are safe to repeat.
Result<HttpReply> Retrying(HttpClient& c, std::string_view method, const std::string& target,
                           std::string_view body = {}, const client::Headers& headers = {},
                           std::chrono::milliseconds deadline = 20s) {
  const auto until = Clock::now() + deadline;
  for (;;) {
    Result<HttpReply> reply = c.Request(method, target, body, headers);
    const bool retry = !reply.ok() || reply->status == 503;
    if (!retry || Clock::now() >= until) return reply;
    if (!reply.ok()) c.Close();
    std::this_thread::sleep_for(kRetryPause);
  }
}

class V1ApiTest : public ::testing::Test {
 protected:
  void StartCluster(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = kTiming;
    args.insert(args.end(), extra.begin(), extra.end());
    cluster_ = std::make_unique<ClusterProcess>(dir_.Join("cluster"), 3, args);
    ASSERT_OK(cluster_->StartAll());
    Result<uint64_t> leader = cluster_->WaitForLeader(kLeaderDeadline);
    ASSERT_OK(leader);
    leader_ = *leader;
  }
  uint64_t AFollower() const {
    for (uint64_t id : cluster_->ids()) {
      if (id != leader_) return id;
    }
    return 0;
  }

  TempDir dir_;
  std::unique_ptr<ClusterProcess> cluster_;
  uint64_t leader_ = 0;
};

TEST_F(V1ApiTest, RawBytesRevisionsAndConditionalWrites) {
  ASSERT_NO_FATAL_FAILURE(StartCluster());
  auto follower = cluster_->Client(AFollower());
  auto leader = cluster_->Client(leader_);

  // Any key and value bytes, through a follower (forwarded to the leader).
  const std::string key("bin\0key/\xff\x01", 11);
  const std::string value("\0\x01\x02 value \xfe\xff", 13);
  auto put = follower->Request("PUT", KvTarget(key), value);
  ASSERT_OK(put);
  ASSERT_EQ(put->status, 200) << put->body;
  const uint64_t revision = U64(Json(*put), "revision");
  EXPECT_GT(revision, 0u);
  EXPECT_EQ(put->Header("X-Revision"), std::to_string(revision));

  for (const char* consistency : {"linearizable", "lease", "stale"}) {
    auto& reader = std::string_view(consistency) == "stale" ? follower : leader;
    if (std::string_view(consistency) == "stale") ASSERT_OK(cluster_->WaitForApplied(AFollower(), revision, 10s));
    auto got = reader->Request("GET", KvTarget(key, std::string("consistency=") + consistency));
    ASSERT_OK(got);
    ASSERT_EQ(got->status, 200) << consistency << ": " << got->body;
    EXPECT_EQ(got->body, value) << consistency;
    EXPECT_EQ(got->Header("Content-Type"), "application/octet-stream");
    EXPECT_EQ(got->Header("X-Revision"), std::to_string(revision));
    EXPECT_FALSE(got->Header("X-Raft-Applied-Index").empty());
  }
  // The original API does not see v1's keys as routes of its own, and v1
  // reads what the original API wrote.
  ASSERT_EQ(leader->Request("POST", "/plain", R"({"value":"from the original api"})")->status, 200);
  auto plain = leader->Request("GET", KvTarget("plain"));
  ASSERT_OK(plain);
  EXPECT_EQ(plain->body, "from the original api");

  // if_revision=0: create only if absent.
  auto created = leader->Request("PUT", KvTarget("lock", "if_revision=0"), "me");
  ASSERT_OK(created);
  ASSERT_EQ(created->status, 200) << created->body;
  const uint64_t lock_revision = U64(Json(*created), "revision");
  auto taken = follower->Request("PUT", KvTarget("lock", "if_revision=0"), "someone else");
  ASSERT_OK(taken);
  EXPECT_EQ(taken->status, 409) << taken->body;
  EXPECT_EQ(Str(Json(*taken).as_object().at("error"), "code"), "condition_failed");
  EXPECT_EQ(U64(Json(*taken), "revision"), lock_revision);
  EXPECT_EQ(taken->Header("X-Revision"), std::to_string(lock_revision));
  // A stale revision fails; the current one succeeds; nothing was written
  // by the failures.
  auto stale = leader->Request("PUT", KvTarget("lock", "if_revision=" + std::to_string(lock_revision - 1)), "x");
  ASSERT_OK(stale);
  EXPECT_EQ(stale->status, 409);
  auto swapped = leader->Request("PUT", KvTarget("lock", "if_revision=" + std::to_string(lock_revision)), "mine");
  ASSERT_OK(swapped);
  ASSERT_EQ(swapped->status, 200) << swapped->body;
  const uint64_t swapped_revision = U64(Json(*swapped), "revision");
  EXPECT_GT(swapped_revision, lock_revision);
  EXPECT_EQ(leader->Request("GET", KvTarget("lock"))->body, "mine");
  // Conditional delete: the old revision fails, the current one deletes.
  EXPECT_EQ(leader->Request("DELETE", KvTarget("lock", "if_revision=" + std::to_string(lock_revision)))->status, 409);
  auto deleted = leader->Request("DELETE", KvTarget("lock", "if_revision=" + std::to_string(swapped_revision)));
  ASSERT_OK(deleted);
  EXPECT_EQ(deleted->status, 200) << deleted->body;
  auto gone = leader->Request("GET", KvTarget("lock"));
  ASSERT_OK(gone);
  EXPECT_EQ(gone->status, 404);
  // A conditional delete of an absent key holds only for if_revision=0.
  EXPECT_EQ(leader->Request("DELETE", KvTarget("lock", "if_revision=3"))->status, 409);

  // Bad requests say what is wrong.
  auto typo = leader->Request("PUT", KvTarget("k", "if_rev=0"), "v");
  ASSERT_OK(typo);
  EXPECT_EQ(typo->status, 400);
  EXPECT_NE(typo->body.find("if_rev"), std::string::npos) << typo->body;
  EXPECT_EQ(leader->Request("PUT", KvTarget("k", "if_revision=x"), "v")->status, 400);
  EXPECT_EQ(leader->Request("GET", KvTarget("k", "consistency=eventual"))->status, 400);
  EXPECT_EQ(leader->Request("PATCH", KvTarget("k"), "v")->status, 405);
  EXPECT_EQ(leader->Request("GET", "/v1/kv/")->status, 404);
  EXPECT_EQ(leader->Request("PUT", KvTarget(std::string(5000, 'k')), "v")->status, 413);

  // A TTL: the key is there, then (judged at a later entry's time) gone.
  auto ttl = leader->Request("PUT", KvTarget("short-lived", "ttl=1"), "soon gone");
  ASSERT_OK(ttl);
  ASSERT_EQ(ttl->status, 200) << ttl->body;
  EXPECT_EQ(leader->Request("GET", KvTarget("short-lived"))->status, 200);
  const auto until = Clock::now() + 15s;
  int status = 200;
  while (status == 200 && Clock::now() < until) {
    // Writes move the state machine's clock on.
    ASSERT_EQ(leader->Request("PUT", KvTarget("tick"), "t")->status, 200);
    status = leader->Request("GET", KvTarget("short-lived"))->status;
  }
  EXPECT_EQ(status, 404);
}

TEST_F(V1ApiTest, TxnAppliesAllOrNothing) {
  ASSERT_NO_FATAL_FAILURE(StartCluster());
  auto c = cluster_->Client(AFollower());
  auto txn = [&](const std::string& body) {
    auto reply = c->Request("POST", "/v1/txn", body);
    EXPECT_TRUE(reply.ok());
    return reply.ok() ? *reply : HttpReply{};
  };
  HttpReply ok = txn(R"({"compare":[{"key":"a","revision":0},{"key":"b","revision":0}],
                         "ops":[{"op":"put","key":"a","value":"1"},{"op":"put","key":"b","value":"2"}]})");
  ASSERT_EQ(ok.status, 200) << ok.body;
  EXPECT_TRUE(Json(ok).as_object().at("succeeded").as_bool());
  const uint64_t revision = U64(Json(ok), "revision");

  // The second compare fails: neither op is applied; the answer says
  // which compare and every compared key's revision.
  HttpReply failed = txn(R"({"compare":[{"key":"a","target":"value","op":"==","value":"1"},{"key":"b","revision":0}],
                             "ops":[{"op":"put","key":"a","value":"changed"},{"op":"delete","key":"b"}]})");
  ASSERT_EQ(failed.status, 409) << failed.body;
  json::value f = Json(failed);
  EXPECT_FALSE(f.as_object().at("succeeded").as_bool());
  EXPECT_EQ(U64(f, "failed_compare"), 1u);
  EXPECT_EQ(json::serialize(f.as_object().at("revisions")), "[" + std::to_string(revision) + "," +
                                                              std::to_string(revision) + "]");
  EXPECT_EQ(c->Request("GET", KvTarget("a"))->body, "1");
  EXPECT_EQ(c->Request("GET", KvTarget("b"))->body, "2");

  // base64 keys and values.
  HttpReply binary = txn(R"({"encoding":"base64","ops":[{"op":"put","key":"AP8=","value":"AAEC"}]})");
  ASSERT_EQ(binary.status, 200) << binary.body;
  EXPECT_EQ(c->Request("GET", KvTarget(std::string("\0\xff", 2)))->body, std::string("\0\1\2", 3));

  // Bounds and malformed bodies.
  std::string big = R"({"ops":[)";
  for (int i = 0; i < 129; ++i) big += std::string(i ? "," : "") + R"({"op":"delete","key":"k)" + std::to_string(i) + "\"}";
  big += "]}";
  EXPECT_EQ(txn(big).status, 400);
  EXPECT_EQ(txn(R"({"ops":[{"op":"upsert","key":"a","value":"1"}]})").status, 400);
  EXPECT_EQ(txn(R"({"compare":[{"key":"a","op":"~=","revision":1}]})").status, 400);
  EXPECT_EQ(txn(R"({"oops":[]})").status, 400);
  EXPECT_EQ(txn("not json").status, 400);
  EXPECT_EQ(c->Request("GET", "/v1/txn")->status, 405);
}

// Transfers between two accounts, each a transaction conditional on both
// accounts' revisions, from several clients while the leader is killed:
// the total never changes, so no transaction was half-applied or applied
// twice.
TEST_F(V1ApiTest, TxnAtomicityAcrossALeaderKill) {
  ASSERT_NO_FATAL_FAILURE(StartCluster());
  constexpr int kTotal = 1000;
  {
    auto c = cluster_->Client(leader_);
    ASSERT_EQ(c->Request("PUT", KvTarget("acct/a"), std::to_string(kTotal))->status, 200);
    ASSERT_EQ(c->Request("PUT", KvTarget("acct/b"), "0")->status, 200);
  }
  std::atomic<bool> stop{false};
  std::atomic<int> committed{0};
  std::vector<std::thread> clients;
  std::vector<uint64_t> targets;
  for (uint64_t id : cluster_->ids()) {
    if (id != leader_) targets.push_back(id);
  }
  for (int t = 0; t < 4; ++t) {
    const uint16_t port = cluster_->http_port(targets[static_cast<size_t>(t) % targets.size()]);
    clients.emplace_back([&, port, t] {
      HttpClient c("127.0.0.1", port, 15s);
      for (int i = 0; !stop.load(); ++i) {
        auto a = Retrying(c, "GET", KvTarget("acct/a"));
        auto b = Retrying(c, "GET", KvTarget("acct/b"));
        if (!a.ok() || !b.ok() || a->status != 200 || b->status != 200) continue;
        const int amount = 1 + (i % 7);
        const std::string body =
            R"({"compare":[{"key":"acct/a","revision":)" + std::string(a->Header("X-Revision")) +
            R"(},{"key":"acct/b","revision":)" + std::string(b->Header("X-Revision")) + R"(}],"ops":[)" +
            R"({"op":"put","key":"acct/a","value":")" + std::to_string(std::stoi(a->body) - amount) + R"("},)" +
            R"({"op":"put","key":"acct/b","value":")" + std::to_string(std::stoi(b->body) + amount) + R"("}]})";
        // One logical transfer: retries carry its key, so it applies once.
        const client::Headers key = {{"Idempotency-Key", "xfer-" + std::to_string(t) + "-" + std::to_string(i)}};
        auto r = Retrying(c, "POST", "/v1/txn", body, key);
        if (r.ok() && r->status == 200) committed.fetch_add(1);
      }
    });
  }
  const auto wait_for = [&](int n) {
    const auto until = Clock::now() + 30s;
    while (committed.load() < n && Clock::now() < until) std::this_thread::sleep_for(5ms);
    return committed.load() >= n;
  };
  ASSERT_TRUE(wait_for(20));
  cluster_->Kill(leader_);
  Result<uint64_t> next = cluster_->WaitForLeader(kLeaderDeadline);
  ASSERT_OK(next);
  const int before = committed.load();
  ASSERT_TRUE(wait_for(before + 20)) << cluster_->LogTails();
  stop = true;
  for (std::thread& t : clients) t.join();

  auto c = cluster_->Client(*next);
  auto a = Retrying(*c, "GET", KvTarget("acct/a"));
  auto b = Retrying(*c, "GET", KvTarget("acct/b"));
  ASSERT_OK(a);
  ASSERT_OK(b);
  EXPECT_EQ(std::stoi(a->body) + std::stoi(b->body), kTotal) << a->body << " + " << b->body;
  EXPECT_GT(std::stoi(b->body), 0);
}

// Pages through 300 keys of a prefix while other clients overwrite them and
// write keys around the prefix: every key is seen exactly once, in order.
TEST_F(V1ApiTest, ScanPagesWhileWritesGoOn) {
  ASSERT_NO_FATAL_FAILURE(StartCluster());
  auto c = cluster_->Client(leader_);
  std::set<std::string> keys;
  for (int i = 0; i < 300; ++i) {
    char key[16];
    std::snprintf(key, sizeof(key), "p/%03d", i);
    keys.insert(key);
    std::string txn = R"({"ops":[{"op":"put","key":")" + std::string(key) + R"(","value":"v0"}]})";
    ASSERT_EQ(c->Request("POST", "/v1/txn", txn)->status, 200);
  }
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    HttpClient w("127.0.0.1", cluster_->http_port(AFollower()), 15s);
    for (int i = 0; !stop.load(); ++i) {
      char key[16];
      std::snprintf(key, sizeof(key), "p/%03d", (i * 37) % 300);
      (void)w.Request("PUT", KvTarget(key), "v" + std::to_string(i));
      (void)w.Request("PUT", KvTarget(i % 2 ? "o/" + std::to_string(i) : "q/" + std::to_string(i)), "x");
    }
  });
  std::vector<std::string> seen;
  std::string next;
  int pages = 0;
  for (;;) {
    std::string target = "/v1/kv?prefix=p/&limit=37";
    if (!next.empty()) target += "&continue=" + next;
    auto page = c->Request("GET", target);
    ASSERT_OK(page);
    ASSERT_EQ(page->status, 200) << page->body;
    json::value v = Json(*page);
    const json::array& kvs = v.as_object().at("kvs").as_array();
    EXPECT_LE(kvs.size(), 37u);
    for (const json::value& kv : kvs) {
      seen.push_back(Str(kv, "key"));
      EXPECT_EQ(Str(kv, "value").substr(0, 1), "v");
      EXPECT_GT(U64(kv, "revision"), 0u);
    }
    ++pages;
    if (!v.as_object().at("more").as_bool()) break;
    next = Str(v, "next");
    ASSERT_FALSE(next.empty());
    ASSERT_LT(pages, 20);
  }
  stop = true;
  writer.join();
  EXPECT_EQ(pages, 9);  // ceil(300 / 37)
  EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end()));
  EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()), keys);
  EXPECT_EQ(seen.size(), keys.size());

  // Keys only, a range, base64, and bounds.
  auto range = c->Request("GET", "/v1/kv?start=p/100&end=p/103&keys_only=true");
  ASSERT_OK(range);
  json::value r = Json(*range);
  ASSERT_EQ(r.as_object().at("kvs").as_array().size(), 3u);
  EXPECT_EQ(Str(r.as_object().at("kvs").as_array()[2], "key"), "p/102");
  EXPECT_EQ(Str(r.as_object().at("kvs").as_array()[2], "value"), "");
  auto b64 = c->Request("GET", "/v1/kv?prefix=cC8w&limit=1&encoding=base64");  // "p/0"
  ASSERT_OK(b64);
  ASSERT_EQ(b64->status, 200) << b64->body;
  EXPECT_EQ(Str(Json(*b64).as_object().at("kvs").as_array()[0], "key"), "cC8wMDA=");  // "p/000"
  EXPECT_EQ(c->Request("GET", "/v1/kv?prefix=p/&limit=100000")->status, 400);
  EXPECT_EQ(c->Request("GET", "/v1/kv")->status, 400);
  EXPECT_EQ(c->Request("GET", "/v1/kv?prefix=p/&colour=red")->status, 400);
}

TEST_F(V1ApiTest, LeaderTransferReadinessAndMetrics) {
  ASSERT_NO_FATAL_FAILURE(StartCluster());
  const uint64_t target = AFollower();
  // Asked of a follower: 307 to the leader.
  auto follower = cluster_->Client(target);
  auto redirect = follower->Request("POST", "/v1/cluster/leader", "{\"id\":" + std::to_string(target) + "}");
  ASSERT_OK(redirect);
  EXPECT_EQ(redirect->status, 307) << redirect->body;
  EXPECT_NE(redirect->Header("Location").find(std::to_string(cluster_->http_port(leader_))), std::string::npos);
  // To a non-member: 404.
  auto leader = cluster_->Client(leader_);
  EXPECT_EQ(leader->Request("POST", "/v1/cluster/leader", R"({"id":99})")->status, 404);

  // Under write load, hand leadership over; no acknowledged write is lost.
  std::atomic<bool> stop{false};
  std::atomic<int> acked{0};
  std::thread writer([&] {
    HttpClient w("127.0.0.1", cluster_->http_port(target), 15s);
    for (int i = 0; !stop.load(); ++i) {
      auto r = Retrying(w, "PUT", KvTarget("load/" + std::to_string(i)), "v");
      if (r.ok() && r->status == 200) acked.store(i + 1);
    }
  });
  auto moved = leader->Request("POST", "/v1/cluster/leader", "{\"id\":" + std::to_string(target) + "}");
  ASSERT_OK(moved);
  ASSERT_EQ(moved->status, 200) << moved->body;
  EXPECT_EQ(U64(Json(*moved), "leader"), target);
  Result<uint64_t> now = cluster_->WaitForLeader(kLeaderDeadline);
  ASSERT_OK(now);
  EXPECT_EQ(*now, target);
  const int before = acked.load();
  const auto until = Clock::now() + 15s;
  while (acked.load() < before + 10 && Clock::now() < until) std::this_thread::sleep_for(5ms);
  stop = true;
  writer.join();
  const int total = acked.load();
  ASSERT_GT(total, before);
  for (int i = 0; i < total; ++i) {
    auto got = follower->Request("GET", KvTarget("load/" + std::to_string(i)));
    ASSERT_OK(got);
    ASSERT_EQ(got->status, 200) << "load/" << i << " lost";
  }

  // GET /v1/cluster: the new leader reports every follower's lag.
  auto view = follower->Request("GET", "/v1/cluster");
  ASSERT_OK(view);
  json::value cv = Json(*view);
  EXPECT_EQ(U64(cv, "leader"), target);
  for (const json::value& m : cv.as_object().at("members").as_array()) {
    EXPECT_TRUE(m.as_object().contains("lag")) << json::serialize(m);
    EXPECT_TRUE(m.as_object().at("reachable").as_bool());
  }

  // Every node is ready; /metrics is valid Prometheus text with the
  // families an operator looks for.
  for (uint64_t id : cluster_->ids()) {
    auto c = cluster_->Client(id);
    auto ready = c->Request("GET", "/readyz");
    ASSERT_OK(ready);
    EXPECT_EQ(ready->status, 200) << ready->body;
    auto scraped = c->Request("GET", "/metrics");
    ASSERT_OK(scraped);
    ASSERT_EQ(scraped->status, 200);
    EXPECT_EQ(scraped->Header("Content-Type").substr(0, 10), "text/plain");
    // Valid Prometheus text (the strict parser of the tests).
    Result<std::vector<PrometheusFamily>> families = ParsePrometheusText(scraped->body);
    ASSERT_TRUE(families.ok()) << families.status().ToString();
    for (const char* family : {"raft_kv_term", "raft_kv_role", "raft_kv_commit_index", "raft_kv_applied_index",
                               "raft_kv_leader_changes_total", "raft_kv_proposals_committed_total",
                               "raft_kv_apply_duration_seconds", "raft_kv_http_requests_total",
                               "raft_kv_http_request_duration_seconds", "raft_kv_wal_fsync_duration_seconds", "raft_kv_engine_keys",
                               "raft_kv_peer_round_trip_seconds"}) {
      EXPECT_NE(FindFamily(*families, family), nullptr) << "node " << id << " lacks " << family;
    }
    EXPECT_EQ(SampleValue(*families, "raft_kv_role", {{"role", id == target ? "leader" : "follower"}}), 1.0) << id;
    EXPECT_GT(SampleValue(*families, "raft_kv_wal_fsyncs_total").value_or(0), 0.0) << id;
  }
  // A node that knows no leader is not ready.
  for (uint64_t id : cluster_->ids()) {
    if (id != target) cluster_->Kill(id);
  }
  const auto deadline = Clock::now() + 15s;
  int ready = 200;
  while (ready == 200 && Clock::now() < deadline) {
    ready = follower->Request("GET", "/readyz")->status;
  }
  EXPECT_EQ(ready, 503);
}

// A backup from one cluster restored into a new one: every key there, and
// the new cluster takes writes after it.
TEST_F(V1ApiTest, BackupRestoredIntoANewCluster) {
  ASSERT_NO_FATAL_FAILURE(StartCluster());
  auto c = cluster_->Client(AFollower());
  for (int i = 0; i < 200; ++i) {
    ASSERT_EQ(c->Request("PUT", KvTarget("b/" + std::to_string(i)), "value " + std::to_string(i))->status, 200);
  }
  auto backup = c->Request("GET", "/v1/snapshot");
  ASSERT_OK(backup);
  ASSERT_EQ(backup->status, 200);
  EXPECT_EQ(backup->Header("Content-Type"), "application/octet-stream");
  const uint64_t index = std::stoull(std::string(backup->Header("X-Raft-Applied-Index")));
  EXPECT_GE(index, 200u);
  cluster_->KillAll();

  // The new cluster's members, restored before they first start.
  auto restored = std::make_unique<ClusterProcess>(dir_.Join("restored"), 3, kTiming);
  RestoreOptions options;
  options.cluster_id = 99;
  for (uint64_t id : restored->ids()) {
    options.members[id] = MemberAddress{"127.0.0.1:" + std::to_string(restored->peer_port(id)),
                                        "127.0.0.1:" + std::to_string(restored->http_port(id))};
  }
  for (uint64_t id : restored->ids()) {
    options.id = NodeId{id};
    std::filesystem::create_directories(std::filesystem::path(restored->data_dir(id)).parent_path());
    auto summary = RestoreBackup(backup->body, restored->data_dir(id), options);
    ASSERT_OK(summary);
    EXPECT_EQ(summary->index, index);
  }
  ASSERT_OK(restored->StartAll());
  Result<uint64_t> leader = restored->WaitForLeader(kLeaderDeadline);
  ASSERT_TRUE(leader.ok()) << restored->LogTails();
  for (uint64_t id : restored->ids()) {
    auto r = restored->Client(id);
    auto page = Retrying(*r, "GET", "/v1/kv?prefix=b/&limit=1000&keys_only=true");
    ASSERT_OK(page);
    ASSERT_EQ(page->status, 200) << page->body;
    EXPECT_EQ(Json(*page).as_object().at("kvs").as_array().size(), 200u) << "node " << id;
  }
  auto r = restored->Client(*leader);
  EXPECT_EQ(r->Request("GET", KvTarget("b/17"))->body, "value 17");
  auto fresh = r->Request("PUT", KvTarget("after"), "restore");
  ASSERT_OK(fresh);
  ASSERT_EQ(fresh->status, 200) << fresh->body;
  EXPECT_GT(U64(Json(*fresh), "revision"), index);
}

}  // namespace
}  // namespace rkv::test
