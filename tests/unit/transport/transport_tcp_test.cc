// TcpTransport on 127.0.0.1: real transports exchanging every message type,
// snapshot chunks on their own connection, reconnecting after a peer comes
// back, bounded queues in front of a peer that never reads, misbehaving
// connections cut off without harming good ones, and shutdown with
// connections open. Every wait is on a condition with a timeout.
#include "transport/transport.h"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/coding.h"
#include "common/crc32c.h"
#include "common/random.h"
#include "support/test_util.h"
#include "transport/codec.h"
#include "transport_test_util.h"

namespace rkv::transport {
namespace {

using namespace std::chrono_literals;
using test::Heartbeat;
using test::Inbox;
using test::LogCapture;
using test::RawClient;
using test::RawListener;
using test::RoundOf;
using test::SameMessage;
using test::SnapshotChunk;

constexpr uint64_t kCluster = 77;

TcpTransportOptions OptionsFor(uint64_t id, Inbox* inbox, uint64_t cluster = kCluster) {
  TcpTransportOptions o;
  o.id = NodeId{id};
  o.cluster_id = cluster;
  o.listen_address = "127.0.0.1:0";
  o.reconnect_backoff_min = 5ms;
  o.reconnect_backoff_max = 40ms;
  o.jitter_seed = id;
  o.on_message = [inbox](raft::Message m) { inbox->Deliver(std::move(m)); };
  return o;
}

std::string Address(const TcpTransport& t) {
  return "127.0.0.1:" + std::to_string(t.bound_port());
}

// A node: a transport and what it received.
struct Node {
  explicit Node(uint64_t id, uint64_t cluster = kCluster)
      : transport(std::make_unique<TcpTransport>(OptionsFor(id, &inbox, cluster))) {}
  Inbox inbox;  // declared first: outlives the transport that delivers into it
  std::unique_ptr<TcpTransport> transport;
};

// Starts n nodes with ids 1..n, each knowing every other.
std::vector<std::unique_ptr<Node>> StartCluster(size_t n) {
  std::vector<std::unique_ptr<Node>> nodes;
  for (size_t i = 1; i <= n; ++i) {
    nodes.push_back(std::make_unique<Node>(i));
    EXPECT_OK(nodes.back()->transport->Start());
  }
  for (size_t a = 0; a < n; ++a) {
    for (size_t b = 0; b < n; ++b) {
      if (a != b) nodes[a]->transport->AddPeer(NodeId{b + 1}, Address(*nodes[b]->transport));
    }
  }
  return nodes;
}

std::vector<raft::Message> OfChannel(const std::vector<raft::Message>& messages, bool snapshot) {
  std::vector<raft::Message> out;
  for (const raft::Message& m : messages) {
    if (std::holds_alternative<raft::InstallSnapshotRequest>(m.body) == snapshot) out.push_back(m);
  }
  return out;
}

void ExpectSameSequence(const std::vector<raft::Message>& want,
                        const std::vector<raft::Message>& got) {
  ASSERT_EQ(want.size(), got.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_TRUE(SameMessage(want[i], got[i])) << "at " << i;
}

TEST(TcpTransportTest, ThreeNodesExchangeEveryMessageType) {
  auto nodes = StartCluster(3);
  Random rng(rkv::test::TestSeed(31));
  // want[receiver][sender]: what each pair sent, in order.
  std::vector<std::vector<std::vector<raft::Message>>> want(3, std::vector<std::vector<raft::Message>>(3));
  for (int round = 0; round < 20; ++round) {
    for (size_t from = 0; from < 3; ++from) {
      for (size_t to = 0; to < 3; ++to) {
        if (from == to) continue;
        raft::Message m = test::RandomMessage(rng, rng.Uniform(test::kMessageTypes));
        m.from = NodeId{from + 1};
        m.to = NodeId{to + 1};
        want[to][from].push_back(m);
        nodes[from]->transport->Send(std::move(m));
      }
    }
  }
  for (size_t to = 0; to < 3; ++to) {
    ASSERT_TRUE(nodes[to]->inbox.WaitForCount(40)) << "node " << to + 1 << " got "
                                                    << nodes[to]->inbox.size();
    const std::vector<raft::Message> got = nodes[to]->inbox.Take();
    for (size_t from = 0; from < 3; ++from) {
      if (from == to) continue;
      std::vector<raft::Message> from_sender;
      for (const raft::Message& m : got) {
        if (m.from == NodeId{from + 1}) from_sender.push_back(m);
      }
      // Order holds per channel.
      ExpectSameSequence(OfChannel(want[to][from], false), OfChannel(from_sender, false));
      ExpectSameSequence(OfChannel(want[to][from], true), OfChannel(from_sender, true));
    }
  }
  // A sender counts a message as sent when its write completes, which its
  // thread may learn after the receiver has the bytes. Stop() lets the thread
  // run the completions already queued, so the counts are final after it.
  for (auto& node : nodes) node->transport->Stop();
  for (auto& node : nodes) {
    const TransportStats s = node->transport->stats();
    EXPECT_EQ(s.messages_queued, 40u);
    EXPECT_EQ(s.messages_sent, 40u);
    EXPECT_EQ(s.messages_received, 40u);
    EXPECT_EQ(s.messages_dropped, 0u);
    EXPECT_GE(s.frames_sent, 1u);
    EXPECT_LE(s.frames_sent, 40u);
    EXPECT_GE(s.connects, 2u);  // a regular connection to each peer, at least
    EXPECT_GT(s.bytes_sent, 0u);
    EXPECT_GT(s.bytes_received, 0u);
  }
}

TEST(TcpTransportTest, LargeSnapshotChunkArrivesWhileHeartbeatsFlow) {
  auto nodes = StartCluster(2);
  Random rng(1);
  const std::string chunk = test::RandomBytes(rng, 24 << 20);
  TcpTransport& leader = *nodes[0]->transport;
  leader.Send(SnapshotChunk(NodeId{1}, NodeId{2}, 4096, chunk));
  for (uint64_t round = 1; round <= 200; ++round) leader.Send(Heartbeat(NodeId{1}, NodeId{2}, round));
  ASSERT_TRUE(nodes[1]->inbox.WaitForCount(201));
  const std::vector<raft::Message> got = nodes[1]->inbox.Take();
  uint64_t next_round = 1;
  for (const raft::Message& m : got) {
    if (const auto* s = std::get_if<raft::InstallSnapshotRequest>(&m.body)) {
      EXPECT_EQ(s->offset, 4096u);
      EXPECT_TRUE(s->data == chunk) << "the chunk arrived damaged";
    } else {
      EXPECT_EQ(RoundOf(m), static_cast<int64_t>(next_round++));
    }
  }
  EXPECT_EQ(next_round, 201u);
}

TEST(TcpTransportTest, HeartbeatsAreNotStuckBehindASnapshotChunkThePeerIsNotReading) {
  // The peer is played by the test: it reads the snapshot connection's hello
  // and then nothing more, so the 24 MiB chunk stalls in the socket buffers,
  // while it reads the regular connection. The heartbeats must get through.
  RawListener peer;
  Inbox unused;
  TcpTransport leader(OptionsFor(1, &unused));
  ASSERT_OK(leader.Start());
  leader.AddPeer(NodeId{2}, "127.0.0.1:" + std::to_string(peer.port()));

  Random rng(2);
  const std::string chunk = test::RandomBytes(rng, 24 << 20);
  leader.Send(SnapshotChunk(NodeId{1}, NodeId{2}, 0, chunk));
  const int snapshot_fd = peer.Accept();
  ASSERT_GE(snapshot_fd, 0);
  std::string bytes;
  ASSERT_TRUE(RawListener::ReadExactly(snapshot_fd, kFrameHeaderSize, &bytes));
  std::string rest;
  const uint32_t hello_length = DecodeFixed32(bytes.data() + 16);
  ASSERT_TRUE(RawListener::ReadExactly(snapshot_fd, hello_length, &rest));
  Result<Frame> hello = DecodeFrame(bytes + rest, kCluster);
  ASSERT_OK(hello);
  EXPECT_EQ(hello->hello.channel, Channel::kSnapshot);

  for (uint64_t round = 1; round <= 50; ++round) leader.Send(Heartbeat(NodeId{1}, NodeId{2}, round));
  const int regular_fd = peer.Accept();
  ASSERT_GE(regular_fd, 0);
  FrameDecoder decoder(kCluster);
  std::vector<raft::Message> heartbeats;
  bool saw_hello = false;
  while (heartbeats.size() < 50) {
    std::string piece;
    ASSERT_TRUE(RawListener::ReadExactly(regular_fd, 1, &piece)) << heartbeats.size();
    decoder.Append(piece);
    Result<std::optional<Frame>> next = decoder.Next();
    ASSERT_OK(next);
    if (!next->has_value()) continue;
    if ((*next)->type == FrameType::kHello) {
      EXPECT_EQ((*next)->hello.channel, Channel::kRegular);
      saw_hello = true;
      continue;
    }
    for (raft::Message& m : (*next)->messages) heartbeats.push_back(std::move(m));
  }
  EXPECT_TRUE(saw_hello);
  for (size_t i = 0; i < heartbeats.size(); ++i) {
    EXPECT_EQ(RoundOf(heartbeats[i]), static_cast<int64_t>(i + 1));
  }

  // Now drain the snapshot connection: the chunk is intact.
  FrameDecoder snapshot_decoder(kCluster);
  ASSERT_TRUE(RawListener::ReadExactly(snapshot_fd, kFrameHeaderSize, &bytes));
  const uint32_t length = DecodeFixed32(bytes.data() + 16);
  ASSERT_TRUE(RawListener::ReadExactly(snapshot_fd, length, &rest));
  Result<Frame> frame = DecodeFrame(bytes + rest, kCluster);
  ASSERT_OK(frame);
  ASSERT_EQ(frame->messages.size(), 1u);
  EXPECT_TRUE(std::get<raft::InstallSnapshotRequest>(frame->messages[0].body).data == chunk);
}

TEST(TcpTransportTest, ReconnectsWhenAPeerComesBack) {
  LogCapture logs;
  Inbox inbox_a;
  TcpTransport a(OptionsFor(1, &inbox_a));
  ASSERT_OK(a.Start());
  auto b = std::make_unique<Node>(2);
  ASSERT_OK(b->transport->Start());
  const std::string b_address = Address(*b->transport);
  a.AddPeer(NodeId{2}, b_address);

  a.Send(Heartbeat(NodeId{1}, NodeId{2}, 1));
  ASSERT_TRUE(b->inbox.WaitForCount(1));

  // B goes away. A notices (its connection ends) and, having more to send,
  // fails to redial. Like a leader, keep sending: a message written before A
  // noticed the close is lost into the dead socket and leaves nothing queued.
  b->transport->Stop();
  b.reset();
  bool failed = false;
  for (uint64_t round = 2; round < 1000 && !failed; ++round) {
    a.Send(Heartbeat(NodeId{1}, NodeId{2}, round));
    failed = logs.WaitForLine({"event=transport_connect_failed", "peer=2", "channel=regular"}, 1,
                              log::Level::kWarn, 20ms);
  }
  ASSERT_TRUE(failed) << logs.Dump();

  // B comes back on the same address. Messages sent while it was down may
  // be lost; later ones must arrive.
  TcpTransportOptions options = OptionsFor(2, nullptr);
  Inbox inbox_b;
  options.on_message = [&inbox_b](raft::Message m) { inbox_b.Deliver(std::move(m)); };
  options.listen_address = b_address;
  TcpTransport b2(options);
  ASSERT_OK(b2.Start());
  bool arrived = false;
  for (uint64_t round = 100; round < 1100 && !arrived; ++round) {
    a.Send(Heartbeat(NodeId{1}, NodeId{2}, round));
    arrived = inbox_b.WaitUntil(
        [](const std::vector<raft::Message>& got) {
          return !got.empty() && RoundOf(got.back()) >= 100;
        },
        20ms);
  }
  EXPECT_TRUE(arrived) << logs.Dump();
  const TransportStats s = a.stats();
  EXPECT_GE(s.connect_failures, 1u);
  EXPECT_GE(s.connects, 2u);
  EXPECT_GE(s.disconnects, 1u);
  // What arrived is in order.
  int64_t last = 0;
  for (const raft::Message& m : inbox_b.Take()) {
    EXPECT_GT(RoundOf(m), last);
    last = RoundOf(m);
  }
}

TEST(TcpTransportTest, QueueIsBoundedWhenThePeerNeverReads) {
  // The listener never accepts or reads: the kernel completes the handshake,
  // takes a few MiB into its buffers, and then the transport's writes stall.
  RawListener sink;
  Inbox unused;
  TcpTransportOptions options = OptionsFor(1, &unused);
  options.max_queue_bytes = 512 << 10;
  options.max_queue_messages = 1000;
  TcpTransport t(options);
  ASSERT_OK(t.Start());
  t.AddPeer(NodeId{2}, "127.0.0.1:" + std::to_string(sink.port()));

  constexpr uint64_t kMessages = 2000;
  raft::Message append;
  append.from = NodeId{1};
  append.to = NodeId{2};
  raft::AppendEntriesRequest r;
  r.entries.push_back(raft::Entry{Term{1}, LogIndex{1}, raft::EntryType::kNormal,
                                  std::string(64 << 10, 'v')});
  append.body = r;
  for (uint64_t i = 0; i < kMessages; ++i) {
    t.Send(append);
    // The bound holds after every Send, not just at the end.
    const TransportStats s = t.stats();
    ASSERT_LE(s.queued_bytes, options.max_queue_bytes);
  }
  const TransportStats s = t.stats();
  EXPECT_EQ(s.messages_queued, kMessages);
  EXPECT_LE(s.queued_messages, 8u);  // 512 KiB of 64 KiB messages
  // 125 MiB were offered; the socket can hold a few MiB. The rest was dropped.
  EXPECT_GE(s.messages_dropped, kMessages / 2) << "sent " << s.messages_sent;
  EXPECT_LE(s.messages_sent + s.messages_dropped + s.queued_messages, kMessages);
}

TEST(TcpTransportTest, MessageCountBoundIsExact) {
  Inbox unused;
  TcpTransportOptions options = OptionsFor(1, &unused);
  options.max_queue_messages = 10;
  TcpTransport t(options);
  // Not started: nothing drains the queue, so the bound is exact.
  t.AddPeer(NodeId{2}, "127.0.0.1:" + std::to_string(test::FreePort()));
  for (uint64_t round = 1; round <= 25; ++round) t.Send(Heartbeat(NodeId{1}, NodeId{2}, round));
  const TransportStats s = t.stats();
  EXPECT_EQ(s.queued_messages, 10u);
  EXPECT_EQ(s.messages_dropped, 15u);
  EXPECT_EQ(s.messages_queued, 25u);
}

TEST(TcpTransportTest, OldestMessagesAreTheOnesDropped) {
  // A peer that is not started yet: A's queue to it fills and drops its
  // oldest. When B starts, the newest 10 arrive.
  const std::string b_address = "127.0.0.1:" + std::to_string(test::FreePort());
  Inbox inbox_a;
  TcpTransportOptions options = OptionsFor(1, &inbox_a);
  options.max_queue_messages = 10;
  TcpTransport a(options);
  a.AddPeer(NodeId{2}, b_address);
  for (uint64_t round = 1; round <= 25; ++round) a.Send(Heartbeat(NodeId{1}, NodeId{2}, round));

  TcpTransportOptions b_options = OptionsFor(2, nullptr);
  Inbox inbox_b;
  b_options.on_message = [&inbox_b](raft::Message m) { inbox_b.Deliver(std::move(m)); };
  b_options.listen_address = b_address;
  TcpTransport b(b_options);
  ASSERT_OK(b.Start());
  ASSERT_OK(a.Start());
  ASSERT_TRUE(inbox_b.WaitForCount(10));
  const std::vector<raft::Message> got = inbox_b.Take();
  ASSERT_EQ(got.size(), 10u);
  for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(RoundOf(got[i]), static_cast<int64_t>(16 + i));
}

TEST(TcpTransportTest, BadConnectionsAreClosedAndGoodPeersKeepWorking) {
  LogCapture logs;
  Inbox inbox;
  TcpTransportOptions options = OptionsFor(2, &inbox);
  options.handshake_timeout = 200ms;
  options.max_frame_bytes = 1 << 20;
  TcpTransport b(options);
  ASSERT_OK(b.Start());
  const uint16_t port = b.bound_port();
  const std::string hello_2 = EncodeHelloFrame(kCluster, Hello{NodeId{1}, NodeId{2}, Channel::kRegular});

  struct Case {
    std::string name;
    std::string bytes;
    std::string logged;
  };
  std::string flipped = EncodeFrame(kCluster, std::vector{Heartbeat(NodeId{1}, NodeId{2}, 1)});
  flipped.back() = static_cast<char>(flipped.back() ^ 0x10);
  std::string oversized("rkvT\x01\x02\x00\x00", 8);
  PutFixed64(&oversized, kCluster);
  PutFixed32(&oversized, 1u << 30);
  PutFixed32(&oversized, 0);
  PutFixed32(&oversized, crc32c::Value(oversized.data(), oversized.size()));
  const std::vector<Case> cases = {
      {"garbage", "GET / HTTP/1.1\r\nHost: b\r\n\r\n", "bad frame magic"},
      {"other cluster", EncodeHelloFrame(kCluster + 1, Hello{NodeId{1}, NodeId{2}, Channel::kRegular}),
       "cluster"},
      {"hello for another node", EncodeHelloFrame(kCluster, Hello{NodeId{1}, NodeId{3}, Channel::kRegular}),
       "is for node 3"},
      {"no hello", EncodeFrame(kCluster, std::vector{Heartbeat(NodeId{1}, NodeId{2}, 1)}),
       "not a hello"},
      {"bit flip", hello_2 + flipped, "checksum"},
      {"oversized", hello_2 + oversized, "exceeds the limit"},
      {"spoofed sender", hello_2 + EncodeFrame(kCluster, std::vector{Heartbeat(NodeId{3}, NodeId{2}, 1)}),
       "on the connection from node 1"},
      {"silent", "", "handshake timeout"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    RawClient client(port);
    ASSERT_TRUE(client.connected());
    ASSERT_TRUE(client.SendAll(c.bytes));
    EXPECT_TRUE(client.WaitClosed()) << "the transport kept a bad connection open";
    EXPECT_TRUE(logs.WaitForLine({"event=transport_connection_rejected", c.logged})) << logs.Dump();
  }
  EXPECT_EQ(b.stats().inbound_rejected, cases.size());
  EXPECT_EQ(inbox.size(), 0u) << "a message from a bad connection was delivered";

  // A transport of another cluster gets nowhere either.
  Inbox foreign_inbox;
  TcpTransport foreign(OptionsFor(1, &foreign_inbox, kCluster + 1));
  ASSERT_OK(foreign.Start());
  foreign.AddPeer(NodeId{2}, "127.0.0.1:" + std::to_string(port));
  foreign.Send(Heartbeat(NodeId{1}, NodeId{2}, 1));
  EXPECT_TRUE(logs.WaitForLine({"event=transport_connection_rejected", "cluster"}, 2));

  // A good peer, including on a connection that shares the process with
  // all of the above, still gets through.
  Inbox good_inbox;
  TcpTransport good(OptionsFor(1, &good_inbox));
  ASSERT_OK(good.Start());
  good.AddPeer(NodeId{2}, "127.0.0.1:" + std::to_string(port));
  good.Send(Heartbeat(NodeId{1}, NodeId{2}, 42));
  ASSERT_TRUE(inbox.WaitForCount(1));
  const std::vector<raft::Message> got = inbox.Take();
  EXPECT_EQ(RoundOf(got[0]), 42);
  EXPECT_EQ(got.size(), 1u);
}

TEST(TcpTransportTest, TooManyInboundConnectionsAreRefused) {
  LogCapture logs;
  Inbox inbox;
  TcpTransportOptions options = OptionsFor(2, &inbox);
  options.max_inbound_connections = 2;
  TcpTransport b(options);
  ASSERT_OK(b.Start());
  const std::string hello = EncodeHelloFrame(kCluster, Hello{NodeId{1}, NodeId{2}, Channel::kRegular});
  RawClient first(b.bound_port());
  RawClient second(b.bound_port());
  ASSERT_TRUE(first.SendAll(hello));
  ASSERT_TRUE(second.SendAll(hello));
  RawClient third(b.bound_port());
  ASSERT_TRUE(third.connected());
  // The first two may not be accepted yet when the third connects; the
  // accept loop takes them in order, so the third is the one refused.
  EXPECT_TRUE(third.WaitClosed());
  EXPECT_TRUE(logs.WaitForLine({"too many connections"}));
  EXPECT_FALSE(first.WaitClosed(50ms));
}

TEST(TcpTransportTest, UnknownPeersTooLargeMessagesAndRemovedPeersAreDropped) {
  auto nodes = StartCluster(2);
  TcpTransport& a = *nodes[0]->transport;
  a.Send(Heartbeat(NodeId{1}, NodeId{9}, 1));  // no such peer
  EXPECT_EQ(a.stats().messages_dropped, 1u);

  // Larger than a frame may be (64 MiB by default).
  a.Send(SnapshotChunk(NodeId{1}, NodeId{2}, 0, std::string(kDefaultMaxFrameBytes, 's')));
  EXPECT_EQ(a.stats().messages_dropped, 2u);

  a.Send(Heartbeat(NodeId{1}, NodeId{2}, 1));
  ASSERT_TRUE(nodes[1]->inbox.WaitForCount(1));
  a.RemovePeer(NodeId{2});
  a.Send(Heartbeat(NodeId{1}, NodeId{2}, 2));
  EXPECT_EQ(a.stats().messages_dropped, 3u);

  // Adding it back (at its address) works again.
  a.AddPeer(NodeId{2}, Address(*nodes[1]->transport));
  a.Send(Heartbeat(NodeId{1}, NodeId{2}, 3));
  ASSERT_TRUE(nodes[1]->inbox.WaitUntil([](const std::vector<raft::Message>& got) {
    return !got.empty() && RoundOf(got.back()) == 3;
  }));
}

TEST(TcpTransportTest, AddPeerWithANewAddressMovesIt) {
  auto nodes = StartCluster(3);
  TcpTransport& a = *nodes[0]->transport;
  a.Send(Heartbeat(NodeId{1}, NodeId{2}, 1));
  ASSERT_TRUE(nodes[1]->inbox.WaitForCount(1));
  // Point node 2's id at node 3's address: node 3 refuses the hello (it is
  // for node 2), and logs why.
  LogCapture logs;
  a.AddPeer(NodeId{2}, Address(*nodes[2]->transport));
  a.Send(Heartbeat(NodeId{1}, NodeId{2}, 2));
  EXPECT_TRUE(logs.WaitForLine({"event=transport_connection_rejected", "is for node 2"}));
  EXPECT_EQ(nodes[2]->inbox.size(), 0u);
}

TEST(TcpTransportTest, StartRefusesBadOptions) {
  Inbox inbox;
  {
    TcpTransportOptions o = OptionsFor(1, &inbox);
    o.listen_address = "no-port";
    EXPECT_TRUE(TcpTransport(o).Start().IsInvalidArgument());
  }
  {
    TcpTransportOptions o = OptionsFor(1, &inbox);
    o.on_message = nullptr;
    EXPECT_TRUE(TcpTransport(o).Start().IsInvalidArgument());
  }
  {
    TcpTransportOptions o = OptionsFor(0, &inbox);
    EXPECT_TRUE(TcpTransport(o).Start().IsInvalidArgument());
  }
  {
    TcpTransport first(OptionsFor(1, &inbox));
    ASSERT_OK(first.Start());
    TcpTransportOptions o = OptionsFor(2, &inbox);
    o.listen_address = Address(first);
    EXPECT_TRUE(TcpTransport(o).Start().IsIOError());
  }
}

TEST(TcpTransportTest, StopsCleanlyWithConnectionsOpenAndTrafficFlowing) {
  auto nodes = StartCluster(3);
  // An unreachable peer in backoff, a raw connection mid-frame, and three
  // senders hammering away while the transports stop under them.
  nodes[0]->transport->AddPeer(NodeId{9}, "127.0.0.1:" + std::to_string(test::FreePort()));
  nodes[0]->transport->Send(Heartbeat(NodeId{1}, NodeId{9}, 1));
  RawClient half(nodes[1]->transport->bound_port());
  const std::string hello = EncodeHelloFrame(kCluster, Hello{NodeId{5}, NodeId{2}, Channel::kRegular});
  ASSERT_TRUE(half.SendAll(hello + "rkvT\x01\x02"));

  // Each sender goes on for a fixed number of sends after every transport
  // has stopped, so sends race with Stop and then hit stopped transports.
  std::atomic<bool> all_stopped{false};
  std::vector<std::thread> senders;
  for (uint64_t i = 0; i < 3; ++i) {
    senders.emplace_back([&, i] {
      uint64_t round = 0;
      uint64_t after_stop = 0;
      while (after_stop < 3000) {
        for (uint64_t to = 1; to <= 3; ++to) {
          if (to != i + 1) nodes[i]->transport->Send(Heartbeat(NodeId{i + 1}, NodeId{to}, ++round));
        }
        if (all_stopped.load()) ++after_stop;
        if (round % 64 == 0) std::this_thread::yield();
      }
    });
  }
  ASSERT_TRUE(nodes[2]->inbox.WaitForCount(100));
  for (auto& node : nodes) node->transport->Stop();
  std::vector<size_t> received;
  for (auto& node : nodes) received.push_back(node->inbox.size());
  all_stopped = true;
  for (auto& t : senders) t.join();
  // Nothing was delivered after Stop returned, and every send after it was
  // dropped.
  for (size_t i = 0; i < nodes.size(); ++i) EXPECT_EQ(nodes[i]->inbox.size(), received[i]);
  const TransportStats before = nodes[0]->transport->stats();
  nodes[0]->transport->Send(Heartbeat(NodeId{1}, NodeId{2}, 0));
  EXPECT_EQ(nodes[0]->transport->stats().messages_dropped, before.messages_dropped + 1);
  for (auto& node : nodes) {
    EXPECT_EQ(node->transport->stats().outbound_connections, 0u);
    EXPECT_EQ(node->transport->stats().inbound_connections, 0u);
    node->transport->Stop();  // idempotent
  }
  EXPECT_TRUE(half.WaitClosed());
}

TEST(TcpTransportTest, DestructorStopsARunningTransport) {
  auto nodes = StartCluster(2);
  nodes[0]->transport->Send(Heartbeat(NodeId{1}, NodeId{2}, 1));
  ASSERT_TRUE(nodes[1]->inbox.WaitForCount(1));
  nodes.clear();  // no Stop(): the destructors do it
}

TEST(TcpTransportTest, SplitHostPort) {
  std::string host;
  uint16_t port = 0;
  EXPECT_TRUE(SplitHostPort("127.0.0.1:7000", &host, &port));
  EXPECT_EQ(host, "127.0.0.1");
  EXPECT_EQ(port, 7000);
  EXPECT_TRUE(SplitHostPort("[::1]:0", &host, &port));
  EXPECT_EQ(host, "::1");
  EXPECT_TRUE(SplitHostPort("node-3.example:65535", &host, &port));
  EXPECT_FALSE(SplitHostPort("::1:80", &host, &port));
  EXPECT_FALSE(SplitHostPort("host:65536", &host, &port));
  EXPECT_FALSE(SplitHostPort("host:", &host, &port));
  EXPECT_FALSE(SplitHostPort(":80", &host, &port));
  EXPECT_FALSE(SplitHostPort("host:8x", &host, &port));
}

}  // namespace
}  // namespace rkv::transport
