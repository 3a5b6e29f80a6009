// NodeHost: three hosts in one process, talking over real TCP on 127.0.0.1,
// served from many threads at once (built under ThreadSanitizer by
// `make test`): writes and reads of every consistency through every host,
// a host stopped and reopened on its data, a snapshot installed while
// stale reads run on other threads, and backups built off the node thread
// while writes go on.
#include "node/node_host.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "node/snapshot.h"
#include "support/test_util.h"

namespace rkv {
namespace {

using namespace std::chrono_literals;

class NodeHostTest : public ::testing::Test {
 protected:
  static constexpr int kNodes = 3;

  void SetUp() override {
    std::vector<uint16_t> ports = test::FreePorts(kNodes);
    for (int i = 0; i < kNodes; ++i) {
      ASSERT_NE(ports[static_cast<size_t>(i)], 0);
      peers_[static_cast<uint64_t>(i + 1)] = "127.0.0.1:" + std::to_string(ports[static_cast<size_t>(i)]);
    }
    for (uint64_t id = 1; id <= kNodes; ++id) Start(id);
  }

  void TearDown() override {
    for (auto& [id, host] : hosts_) {
      if (host) {
        EXPECT_TRUE(host->Stop().ok());
      }
    }
  }

  void Start(uint64_t id) {
    NodeHostOptions o;
    o.node.id = NodeId{id};
    for (const auto& [peer, address] : peers_) o.node.initial_members.voters.push_back(NodeId{peer});
    o.node.data_dir = dir_.Join("node" + std::to_string(id));
    o.node.election_timeout_ticks = 10;
    o.node.request_timeout_ticks = 400;
    o.node.compact_every_entries = compact_every_entries_;
    o.node.raft.read_mode = raft::ReadMode::kLease;
    o.node.random_seed = id;
    o.peer_addresses = peers_;
    o.cluster_id = 42;
    o.tick = 10ms;
    auto host = NodeHost::Start(std::move(o));
    ASSERT_TRUE(host.ok()) << host.status().ToString();
    hosts_[id] = std::move(*host);
  }

  // Blocks for the answer of a write.
  Status Put(uint64_t id, const std::string& key, const std::string& value) {
    std::promise<Status> done;
    hosts_.at(id)->Put(key, value, {}, [&done](Status s) { done.set_value(s); });
    return done.get_future().get();
  }

  Result<std::string> Get(uint64_t id, const std::string& key, ReadConsistency c) {
    std::promise<Result<std::string>> done;
    hosts_.at(id)->Get(key, {c}, [&done](Result<std::string> r) { done.set_value(std::move(r)); });
    return done.get_future().get();
  }

  // Retries while the cluster has no leader (503s), for up to 10 s.
  Status PutRetrying(uint64_t id, const std::string& key, const std::string& value) {
    Status s;
    for (int i = 0; i < 1000; ++i) {
      s = Put(id, key, value);
      if (!s.IsNotLeader() && !s.IsTimeout() && !s.IsBusy()) return s;
      std::this_thread::sleep_for(10ms);  // backoff between retries, not synchronisation
    }
    return s;
  }

  uint64_t compact_every_entries_ = 10'000;
  test::TempDir dir_;
  std::map<uint64_t, std::string> peers_;
  std::map<uint64_t, std::unique_ptr<NodeHost>> hosts_;
};

TEST_F(NodeHostTest, ConcurrentClientsOnEveryHost) {
  ASSERT_TRUE(PutRetrying(1, "warmup", "x").ok());
  constexpr int kThreads = 6;
  constexpr int kWrites = 40;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const uint64_t host = static_cast<uint64_t>(t % kNodes + 1);
      for (int i = 0; i < kWrites; ++i) {
        const std::string key = "t" + std::to_string(t) + "-" + std::to_string(i);
        if (!PutRetrying(host, key, "v" + std::to_string(i)).ok()) ++failures;
        // Read it back at once, linearizably, through another host.
        const uint64_t reader = host % kNodes + 1;
        Result<std::string> got = Get(reader, key, ReadConsistency::kLinearizable);
        if (!got.ok() || *got != "v" + std::to_string(i)) ++failures;
        (void)Get(reader, key, i % 2 ? ReadConsistency::kLease : ReadConsistency::kStale);
        (void)hosts_.at(reader)->NodeStatus();
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
}

TEST_F(NodeHostTest, SnapshotInstallWhileStaleReadsRun) {
  for (auto& [id, host] : hosts_) ASSERT_TRUE(host->Stop().ok());
  hosts_.clear();
  compact_every_entries_ = 100;
  for (uint64_t id = 1; id <= kNodes; ++id) Start(id);
  ASSERT_TRUE(PutRetrying(1, "k", "0").ok());
  // Stop one host; write enough that the others compact past it.
  const uint64_t lagging = 3;
  ASSERT_TRUE(hosts_[lagging]->Stop().ok());
  hosts_[lagging].reset();
  for (int i = 0; i < 400; ++i) {
    ASSERT_TRUE(PutRetrying(1 + static_cast<uint64_t>(i % 2), "k" + std::to_string(i % 50),
                            std::to_string(i))
                    .ok());
  }
  Start(lagging);
  // Stale reads on other threads while it installs the snapshot.
  std::atomic<bool> stop{false};
  std::vector<std::thread> readers;
  for (int r = 0; r < 3; ++r) {
    readers.emplace_back([&] {
      while (!stop.load()) {
        Result<std::string> v = Get(lagging, "k49", ReadConsistency::kStale);
        (void)v;
      }
    });
  }
  // A linearizable read through it returns the last value once it caught up.
  Result<std::string> got = Get(lagging, "k49", ReadConsistency::kLinearizable);
  for (int i = 0; i < 1000 && !(got.ok() && *got == "399"); ++i) {
    std::this_thread::sleep_for(10ms);  // backoff between retries
    got = Get(lagging, "k49", ReadConsistency::kLinearizable);
  }
  stop = true;
  for (auto& t : readers) t.join();
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(*got, "399");
  EXPECT_GT(hosts_[lagging]->NodeStatus().first_index, 2u);  // it holds a snapshot
}

TEST_F(NodeHostTest, BackupsAreBuiltWhileWritesGoOn) {
  for (int i = 0; i < 200; ++i) ASSERT_TRUE(PutRetrying(1, "b" + std::to_string(i), "before").ok());
  std::atomic<bool> stop{false};
  std::atomic<int> written{0};
  std::thread writer([&] {
    for (int i = 0; !stop.load(); ++i) {
      if (PutRetrying(2, "w" + std::to_string(i % 100), std::to_string(i)).ok()) ++written;
    }
  });
  for (uint64_t id = 1; id <= kNodes; ++id) {
    std::promise<Result<Backup>> done;
    hosts_.at(id)->TakeBackup([&done](Result<Backup> r) { done.set_value(std::move(r)); });
    Result<Backup> backup = done.get_future().get();
    ASSERT_TRUE(backup.ok()) << backup.status().ToString();
    Result<SnapshotSummary> summary = VerifySnapshot(backup->data);
    ASSERT_TRUE(summary.ok()) << summary.status().ToString();
    EXPECT_EQ(summary->meta.applied_index.value(), backup->applied_index);
    EXPECT_GE(summary->records, 200u);
  }
  stop = true;
  writer.join();
  EXPECT_GT(written.load(), 0);
}

}  // namespace
}  // namespace rkv
