// TcpTransport's metrics on 127.0.0.1: per-peer connection state, traffic,
// failures and the heartbeat round trip, read through a Registry scrape and
// the strict text parser. Every wait is on a condition with a timeout.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "common/metrics.h"
#include "support/prometheus_text.h"
#include "support/test_util.h"
#include "transport/transport.h"
#include "transport_test_util.h"

namespace rkv::transport {
namespace {

using namespace std::chrono_literals;
using ::rkv::test::PrometheusFamily;
using ::rkv::test::SampleValue;
using test::Heartbeat;
using test::Inbox;
using test::LogCapture;

constexpr uint64_t kCluster = 78;

std::vector<PrometheusFamily> Scrape(const Transport& transport) {
  metrics::Registry registry;
  registry.AddCollector([&transport](metrics::Registry::Collector& out) { transport.CollectMetrics(out); });
  const std::string text = registry.Render();
  auto parsed = ::rkv::test::ParsePrometheusText(text);
  EXPECT_TRUE(parsed.ok()) << parsed.status().ToString() << "\n" << text;
  return parsed.ok() ? std::move(*parsed) : std::vector<PrometheusFamily>{};
}

metrics::Labels Peer(uint64_t id) { return {{"peer", std::to_string(id)}}; }

raft::Message HeartbeatResponse(NodeId from, NodeId to, uint64_t round) {
  raft::Message m;
  m.from = from;
  m.to = to;
  m.term = Term{7};
  m.body = raft::HeartbeatResponse{round};
  return m;
}

// A transport and what it received. With `answer_heartbeats` it answers
// each heartbeat at once, echoing its read_round, as a follower does.
struct Node {
  explicit Node(uint64_t id, bool answer_heartbeats = false, size_t max_queue_messages = 4096) {
    TcpTransportOptions o;
    o.id = NodeId{id};
    o.cluster_id = kCluster;
    o.listen_address = "127.0.0.1:0";
    o.reconnect_backoff_min = 5ms;
    o.reconnect_backoff_max = 40ms;
    o.jitter_seed = id;
    o.max_queue_messages = max_queue_messages;
    o.on_message = [this, answer_heartbeats](raft::Message m) {
      if (const auto* h = std::get_if<raft::HeartbeatRequest>(&m.body); h != nullptr && answer_heartbeats) {
        transport->Send(HeartbeatResponse(m.to, m.from, h->read_round));
      }
      inbox.Deliver(std::move(m));
    };
    transport = std::make_unique<TcpTransport>(std::move(o));
    EXPECT_OK(transport->Start());
  }
  std::string Address() const { return "127.0.0.1:" + std::to_string(transport->bound_port()); }

  Inbox inbox;  // declared first: outlives the transport that delivers into it
  std::unique_ptr<TcpTransport> transport;
};

TEST(TransportMetricsTest, TwoConnectedTransportsCountTrafficAndTimeHeartbeats) {
  Node a(1);
  Node b(2, /*answer_heartbeats=*/true);
  a.transport->AddPeer(NodeId{2}, b.Address());
  b.transport->AddPeer(NodeId{1}, a.Address());

  // Before any traffic: the peer is known, nothing is connected.
  auto m = Scrape(*a.transport);
  EXPECT_EQ(SampleValue(m, "raft_kv_peer_connected", Peer(2)), 0);
  EXPECT_EQ(SampleValue(m, "raft_kv_peer_round_trip_seconds_count", Peer(2)), 0);

  // One heartbeat at a time, each answered before the next: three probes.
  for (uint64_t round = 1; round <= 3; ++round) {
    a.transport->Send(Heartbeat(NodeId{1}, NodeId{2}, round));
    ASSERT_TRUE(a.inbox.WaitForCount(round)) << "responses: " << a.inbox.size();
  }
  m = Scrape(*a.transport);
  EXPECT_EQ(SampleValue(m, "raft_kv_peer_connected", Peer(2)), 1);
  EXPECT_EQ(SampleValue(m, "raft_kv_peer_inbound_connections", Peer(2)), 1);
  EXPECT_EQ(SampleValue(m, "raft_kv_peer_messages_received_total", Peer(2)), 3);
  EXPECT_GT(SampleValue(m, "raft_kv_peer_bytes_received_total", Peer(2)).value_or(0), 0);
  EXPECT_EQ(SampleValue(m, "raft_kv_peer_round_trip_seconds_count", Peer(2)), 3);
  EXPECT_GT(SampleValue(m, "raft_kv_peer_round_trip_seconds_sum", Peer(2)).value_or(0), 0);
  EXPECT_EQ(SampleValue(m, "raft_kv_transport_inbound_connections"), 1);
  const PrometheusFamily* rtt = ::rkv::test::FindFamily(m, "raft_kv_peer_round_trip_seconds");
  ASSERT_NE(rtt, nullptr);
  EXPECT_EQ(rtt->type, "histogram");

  // B answered but sent no heartbeats of its own: connected, nothing timed.
  auto mb = Scrape(*b.transport);
  EXPECT_EQ(SampleValue(mb, "raft_kv_peer_connected", Peer(1)), 1);
  EXPECT_EQ(SampleValue(mb, "raft_kv_peer_messages_received_total", Peer(1)), 3);
  EXPECT_EQ(SampleValue(mb, "raft_kv_peer_round_trip_seconds_count", Peer(1)), 0);

  // A write counts as sent when its completion runs, which may come after
  // the peer has the bytes; after Stop every completion has run.
  a.transport->Stop();
  b.transport->Stop();
  m = Scrape(*a.transport);
  EXPECT_EQ(SampleValue(m, "raft_kv_peer_messages_sent_total", Peer(2)), 3);
  EXPECT_GT(SampleValue(m, "raft_kv_peer_bytes_sent_total", Peer(2)).value_or(0), 0);
  EXPECT_EQ(SampleValue(m, "raft_kv_peer_connects_total", Peer(2)), 1);
  EXPECT_EQ(SampleValue(m, "raft_kv_peer_connect_failures_total", Peer(2)), 0);
  EXPECT_EQ(SampleValue(m, "raft_kv_peer_messages_dropped_total", Peer(2)), 0);
  EXPECT_EQ(SampleValue(m, "raft_kv_peer_write_failures_total", Peer(2)), 0);
  EXPECT_EQ(SampleValue(m, "raft_kv_peer_connected", Peer(2)), 0);
  EXPECT_EQ(SampleValue(m, "raft_kv_peer_inbound_connections", Peer(2)), 0);
  EXPECT_EQ(SampleValue(m, "raft_kv_peer_round_trip_seconds_count", Peer(2)), 3);  // kept after Stop
  mb = Scrape(*b.transport);
  EXPECT_EQ(SampleValue(mb, "raft_kv_peer_messages_sent_total", Peer(1)), 3);
  EXPECT_EQ(SampleValue(mb, "raft_kv_transport_messages_dropped_total"), 0);
}

TEST(TransportMetricsTest, OnlyTheResponseWithTheHeartbeatsRoundEndsTheProbe) {
  Node a(1);
  Node b(2);  // answers only when the test says so
  a.transport->AddPeer(NodeId{2}, b.Address());
  b.transport->AddPeer(NodeId{1}, a.Address());
  a.transport->Send(Heartbeat(NodeId{1}, NodeId{2}, 5));
  ASSERT_TRUE(b.inbox.WaitForCount(1));

  // A response to another round (an earlier heartbeat's) is not this one's.
  b.transport->Send(HeartbeatResponse(NodeId{2}, NodeId{1}, 4));
  ASSERT_TRUE(a.inbox.WaitForCount(1));
  EXPECT_EQ(SampleValue(Scrape(*a.transport), "raft_kv_peer_round_trip_seconds_count", Peer(2)), 0);

  b.transport->Send(HeartbeatResponse(NodeId{2}, NodeId{1}, 5));
  ASSERT_TRUE(a.inbox.WaitForCount(2));
  EXPECT_EQ(SampleValue(Scrape(*a.transport), "raft_kv_peer_round_trip_seconds_count", Peer(2)), 1);

  // A second answer finds no probe waiting: one heartbeat, one sample.
  b.transport->Send(HeartbeatResponse(NodeId{2}, NodeId{1}, 5));
  ASSERT_TRUE(a.inbox.WaitForCount(3));
  EXPECT_EQ(SampleValue(Scrape(*a.transport), "raft_kv_peer_round_trip_seconds_count", Peer(2)), 1);
}

TEST(TransportMetricsTest, ALostPeerShowsDisconnectedAndFailedDials) {
  LogCapture logs;
  Node a(1);
  auto b = std::make_unique<Node>(2);
  a.transport->AddPeer(NodeId{2}, b->Address());
  a.transport->Send(Heartbeat(NodeId{1}, NodeId{2}, 1));
  ASSERT_TRUE(b->inbox.WaitForCount(1));
  EXPECT_EQ(SampleValue(Scrape(*a.transport), "raft_kv_peer_connected", Peer(2)), 1);

  b.reset();  // stops it: A's connection is closed by the peer
  ASSERT_TRUE(logs.WaitForLine({"event=transport_disconnected", "peer=2", "channel=regular"}, 1,
                               log::Level::kInfo))
      << logs.Dump();
  auto m = Scrape(*a.transport);
  EXPECT_EQ(SampleValue(m, "raft_kv_peer_connected", Peer(2)), 0);
  EXPECT_EQ(SampleValue(m, "raft_kv_peer_disconnects_total", Peer(2)), 1);
  EXPECT_EQ(SampleValue(m, "raft_kv_peer_connects_total", Peer(2)), 1);

  // Something to send makes A dial again, and nobody listens there now. The
  // message waits in the queue.
  a.transport->Send(Heartbeat(NodeId{1}, NodeId{2}, 2));
  ASSERT_TRUE(logs.WaitForLine({"event=transport_connect_failed", "peer=2"})) << logs.Dump();
  m = Scrape(*a.transport);
  EXPECT_GE(SampleValue(m, "raft_kv_peer_connect_failures_total", Peer(2)).value_or(0), 1);
  EXPECT_EQ(SampleValue(m, "raft_kv_peer_connected", Peer(2)), 0);
  EXPECT_EQ(SampleValue(m, "raft_kv_peer_queued_messages", Peer(2)), 1);
  EXPECT_GT(SampleValue(m, "raft_kv_peer_queued_bytes", Peer(2)).value_or(0), 0);
}

TEST(TransportMetricsTest, DropsAreCountedPerPeerAndRemovedPeersDisappear) {
  // Peer 2's address has no listener, so its queue only fills.
  const uint16_t closed_port = test::FreePort();
  ASSERT_NE(closed_port, 0);
  Node a(1, /*answer_heartbeats=*/false, /*max_queue_messages=*/2);
  a.transport->AddPeer(NodeId{2}, "127.0.0.1:" + std::to_string(closed_port));
  for (uint64_t round = 1; round <= 5; ++round) a.transport->Send(Heartbeat(NodeId{1}, NodeId{2}, round));
  a.transport->Send(Heartbeat(NodeId{1}, NodeId{9}, 1));  // not a peer
  auto m = Scrape(*a.transport);
  EXPECT_EQ(SampleValue(m, "raft_kv_peer_messages_dropped_total", Peer(2)), 3);  // the oldest three
  EXPECT_EQ(SampleValue(m, "raft_kv_peer_queued_messages", Peer(2)), 2);
  EXPECT_EQ(SampleValue(m, "raft_kv_transport_messages_dropped_total"), 4);
  EXPECT_EQ(SampleValue(m, "raft_kv_peer_messages_sent_total", Peer(9)), std::nullopt);

  // A removed peer's queued messages are dropped and its series go.
  a.transport->RemovePeer(NodeId{2});
  m = Scrape(*a.transport);
  for (const PrometheusFamily& family : m) {
    for (const auto& sample : family.samples) {
      EXPECT_NE(sample.labels, Peer(2)) << sample.name;
    }
  }
  EXPECT_EQ(SampleValue(m, "raft_kv_transport_messages_dropped_total"), 6);
}

TEST(TransportMetricsTest, ATransportWithoutMetricsExportsNothing) {
  class Silent final : public Transport {
   public:
    void Send(raft::Message) override {}
    void AddPeer(NodeId, std::string) override {}
    void RemovePeer(NodeId) override {}
  };
  Silent silent;
  EXPECT_TRUE(Scrape(silent).empty());
}

}  // namespace
}  // namespace rkv::transport
