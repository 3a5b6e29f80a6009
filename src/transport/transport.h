// Transport: how the node hands Raft messages to its peers and gets theirs.
//
// Raft tolerates lost, duplicated and reordered messages, so a transport
// promises little: a message handed to Send() arrives at most once, in order
// with the messages sent before it on the same channel, or not at all. It
// never blocks the caller and never grows memory without bound; when a peer
// is slow or unreachable, messages are dropped and counted.
//
// TcpTransport is the implementation over TCP (docs/formats/transport.md has
// the bytes). This header has no Asio in it; transport_tcp.cc is the only file
// that does.
#ifndef RKV_TRANSPORT_TRANSPORT_H_
#define RKV_TRANSPORT_TRANSPORT_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/host_port.h"
#include "common/metrics.h"
#include "common/status.h"
#include "common/types.h"
#include "raft/message.h"
#include "transport/codec.h"

namespace rkv::transport {

class Transport {
 public:
  virtual ~Transport() = default;

  // Queues `m` for m.to. Never blocks. Drops it (and counts the drop) when
  // m.to is not a peer, the message is larger than a frame may be, the
  // transport is stopped, or the peer's queue is full (see the options).
  // Thread-safe.
  virtual void Send(raft::Message m) = 0;

  // Makes `id` reachable at `address` ("host:port"; host a name, an IPv4
  // address or a bracketed IPv6 address). Adding a known peer with a new
  // address moves it: its queued messages and connections are dropped.
  // Thread-safe.
  virtual void AddPeer(NodeId id, std::string address) = 0;

  // Forgets `id`: its queued messages are dropped and its connections
  // closed. Connections *from* it are not affected (it may still be sending
  // its last messages). Thread-safe.
  virtual void RemovePeer(NodeId id) = 0;

  // Exports the transport's metrics for a scrape (raft_kv_peer_* per peer,
  // raft_kv_transport_* over all). Thread-safe: runs on the scraping
  // thread. The default exports nothing, for transports that have nothing
  // to say (the simulator's, tests').
  virtual void CollectMetrics(metrics::Registry::Collector& out) const { (void)out; }
};

struct TcpTransportOptions {
  // This node. Messages are accepted only when addressed to it.
  NodeId id;
  // Every frame carries it; a frame with another cluster id closes its
  // connection, so two clusters that share hosts never mix messages.
  uint64_t cluster_id = 0;
  // Where peers dial us. Port 0 picks a free port (see bound_port()).
  std::string listen_address = "127.0.0.1:0";

  // Each peer has two outgoing queues, one per channel (regular, snapshot),
  // and each is bounded by both of these. When a new message does not fit,
  // the oldest queued messages are dropped until it does (the newest state
  // is the useful one: a fresh heartbeat or append supersedes an old one,
  // and Raft repairs any gap). A message larger than max_queue_bytes on its
  // own is itself dropped.
  size_t max_queue_messages = 4096;
  size_t max_queue_bytes = size_t{64} << 20;

  // Cap on a frame's payload, for frames sent and frames accepted. A message
  // that cannot fit one frame is dropped at Send(); a peer that declares a
  // larger frame is cut off before its payload is read.
  size_t max_frame_bytes = kDefaultMaxFrameBytes;
  // Queued messages are batched into one frame per write up to this many
  // payload bytes (a single larger message still goes alone).
  size_t max_batch_bytes = size_t{1} << 20;

  // Reconnecting after a failed connect or a lost connection waits a random
  // time in [d/2, d], where d starts at backoff_min and doubles on each
  // consecutive failure up to backoff_max. A connection that stayed up for
  // at least backoff_max resets d (one dropped at once, say by a peer of
  // another cluster, counts as a failure: no tight redial loop).
  std::chrono::milliseconds reconnect_backoff_min{50};
  std::chrono::milliseconds reconnect_backoff_max{2'000};
  // Seeds the jitter (with the peer id and channel), so runs can be replayed.
  uint64_t jitter_seed = 0;

  // A connect (resolve, TCP connect, hello) must complete within this.
  std::chrono::milliseconds connect_timeout{3'000};
  // One frame's write must complete within this, or the connection is
  // deemed dead (a peer that stopped reading, a black-holed route) and
  // redialed.
  std::chrono::milliseconds write_timeout{15'000};
  // An accepted connection must send its hello within this.
  std::chrono::milliseconds handshake_timeout{5'000};
  // Accepted connections beyond this are closed at once.
  size_t max_inbound_connections = 256;

  // Called with every message received, on the transport's own thread, one
  // message at a time in the order they arrived on each connection. It must
  // not block for long (it stalls every connection) and must not call Stop();
  // the node pushes the message into its input queue and returns. It may call
  // Send, AddPeer and RemovePeer. Required.
  std::function<void(raft::Message)> on_message;
};

// Counters since Start, over all peers. A snapshot; each field is read
// atomically but not all at the same instant.
struct TransportStats {
  uint64_t messages_queued = 0;    // accepted by Send()
  uint64_t messages_sent = 0;      // written to a peer's socket
  uint64_t messages_dropped = 0;   // every message Send() was given and did not write
  uint64_t messages_received = 0;  // delivered to on_message
  uint64_t frames_sent = 0;
  uint64_t frames_received = 0;
  uint64_t bytes_sent = 0;         // frame bytes, hellos included
  uint64_t bytes_received = 0;     // bytes read from accepted connections
  uint64_t connects = 0;           // outgoing connections that completed the handshake
  uint64_t connect_failures = 0;   // dial attempts that did not
  uint64_t disconnects = 0;        // established outgoing connections lost
  uint64_t inbound_accepted = 0;
  uint64_t inbound_rejected = 0;   // closed for a bad frame, a wrong cluster or the cap

  // Now, not cumulative.
  uint64_t outbound_connections = 0;  // established
  uint64_t inbound_connections = 0;
  uint64_t queued_messages = 0;
  uint64_t queued_bytes = 0;
};

class TcpTransport final : public Transport {
 public:
  explicit TcpTransport(TcpTransportOptions options);
  ~TcpTransport() override;  // Stop()s if running.
  TcpTransport(const TcpTransport&) = delete;
  TcpTransport& operator=(const TcpTransport&) = delete;

  // Binds the listen address and starts the transport's thread.
  // InvalidArgument for bad options or a malformed address; IOError if it
  // cannot listen. Peers may be added and messages sent before Start (they
  // wait in the queues).
  Status Start();

  // Closes every connection and joins the thread; queued messages are
  // dropped. No on_message call runs after it returns. Idempotent.
  void Stop();

  // The port bound by Start (useful with port 0); 0 before.
  uint16_t bound_port() const;

  // Replaces TcpTransportOptions::cluster_id (a node learns the id from its
  // data). REQUIRES: before Start.
  void SetClusterId(uint64_t cluster_id);
  // Replaces TcpTransportOptions::listen_address. REQUIRES: before Start.
  void SetListenAddress(std::string address);

  TransportStats stats() const;

  // Per peer (label peer="<id>"), while it is a peer, and on after Stop:
  //   raft_kv_peer_connected                 1 while the outgoing regular connection is up.
  //                                          A channel dials only when it has a message to
  //                                          send, so two followers show 0 between elections.
  //   raft_kv_peer_inbound_connections       connections from the peer now
  //   raft_kv_peer_messages_sent_total, raft_kv_peer_bytes_sent_total
  //   raft_kv_peer_messages_received_total, raft_kv_peer_bytes_received_total
  //   raft_kv_peer_messages_dropped_total    queue overflow, failed writes, a moved peer
  //   raft_kv_peer_write_failures_total      frames whose write failed (the connection ends)
  //   raft_kv_peer_connects_total, raft_kv_peer_connect_failures_total,
  //   raft_kv_peer_disconnects_total         established connections that were lost
  //   raft_kv_peer_queued_messages, raft_kv_peer_queued_bytes
  //   raft_kv_peer_round_trip_seconds        heartbeat to heartbeat response (histogram)
  // and over all peers raft_kv_transport_messages_dropped_total (also those
  // for unknown peers), raft_kv_transport_inbound_connections,
  // raft_kv_transport_inbound_rejected_total.
  //
  // The round trip: the transport pairs no requests with responses, so it
  // times what Raft pairs anyway. When it writes a heartbeat to a peer and
  // is not already timing one, it notes the time and the heartbeat's
  // read_round; the next HeartbeatResponse from that peer with the same
  // read_round ends the measurement. That is the network both ways plus
  // the time the peer's node loop took to answer. Responses come back in
  // order over TCP, so it is exact unless a response is lost without a
  // connection breaking (the peer's queue overflowed: the sample is then
  // too long; a probe not answered in 5 s is abandoned), or heartbeats go
  // out faster than they come back (an earlier heartbeat's response ends
  // it: too short). A probe is abandoned when either regular connection
  // between the two nodes breaks.
  void CollectMetrics(metrics::Registry::Collector& out) const override;

  void Send(raft::Message m) override;
  void AddPeer(NodeId id, std::string address) override;
  void RemovePeer(NodeId id) override;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

using ::rkv::SplitHostPort;  // common/host_port.h

}  // namespace rkv::transport

#endif  // RKV_TRANSPORT_TRANSPORT_H_
