// TcpTransport: the only translation unit of the transport that includes
// Boost.Asio.
//
// One io_context runs on one thread, the transport's own; every socket,
// timer and coroutine below lives on it, so none of them needs a lock. What
// other threads touch (the peer table and the outgoing queues, from Send,
// AddPeer and RemovePeer) is guarded by Impl::mu_, and the counters are
// atomics.
//
// Outgoing: each peer has two channels, regular and snapshot. A channel is a
// bounded queue of encoded messages plus a coroutine that dials the peer
// when there is something to send, writes a hello, then writes whatever is
// queued as one frame per write, and after losing the connection waits a
// jittered, growing backoff before dialing again. A second coroutine per
// connection reads from it only to notice at once when the peer closes it
// (the peer never writes on a connection we dialed).
//
// Incoming: an accept loop, and one coroutine per accepted connection that
// feeds what it reads to a FrameDecoder. The first frame must be a hello for
// this node; every message after it must be from the node that said hello
// and addressed to this node. Anything else closes the connection with one
// warning line; nothing a peer sends can stop the transport.
#include "transport/transport.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <deque>
#include <exception>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

#include "common/logging.h"
#include "common/random.h"

namespace rkv::transport {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

namespace {

constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);

// Bytes asked of the kernel per read on an accepted connection.
constexpr size_t kReadChunk = 64 << 10;
// How long Stop() lets the connections wind down before it abandons them.
constexpr auto kStopGrace = std::chrono::seconds(2);
// At most one queue-full warning per channel per interval; it counts the
// drops since the last one.
constexpr auto kDropLogInterval = std::chrono::seconds(10);
// A round-trip probe whose heartbeat response has not come in this long is
// abandoned (the response was lost), so one loss cannot make a sample of
// minutes; the next heartbeat starts a new one.
constexpr auto kProbeGiveUp = std::chrono::seconds(5);

constexpr size_t kChannels = 2;
size_t ChannelSlot(Channel c) { return static_cast<size_t>(c); }

Channel ChannelFor(const raft::Message& m) {
  // Snapshot chunks are the only large messages that are not time-critical;
  // they get their own connection so heartbeats never queue behind them.
  return std::holds_alternative<raft::InstallSnapshotRequest>(m.body) ? Channel::kSnapshot
                                                                      : Channel::kRegular;
}

struct Counters {
  std::atomic<uint64_t> messages_queued{0};
  std::atomic<uint64_t> messages_sent{0};
  std::atomic<uint64_t> messages_dropped{0};
  std::atomic<uint64_t> messages_received{0};
  std::atomic<uint64_t> frames_sent{0};
  std::atomic<uint64_t> frames_received{0};
  std::atomic<uint64_t> bytes_sent{0};
  std::atomic<uint64_t> bytes_received{0};
  std::atomic<uint64_t> connects{0};
  std::atomic<uint64_t> connect_failures{0};
  std::atomic<uint64_t> disconnects{0};
  std::atomic<uint64_t> inbound_accepted{0};
  std::atomic<uint64_t> inbound_rejected{0};
  std::atomic<uint64_t> outbound_connections{0};
  std::atomic<uint64_t> inbound_connections{0};
};

void Add(std::atomic<uint64_t>& counter, uint64_t n = 1) {
  counter.fetch_add(n, std::memory_order_relaxed);
}
void Sub(std::atomic<uint64_t>& counter, uint64_t n = 1) {
  counter.fetch_sub(n, std::memory_order_relaxed);
}

// One peer's traffic, exported per peer by CollectMetrics. Shared by the
// peer's channels and the inbound connections from it; kept when the peer
// moves to a new address and after Stop, dropped by RemovePeer.
struct PeerMetrics {
  std::atomic<uint64_t> messages_sent{0};
  std::atomic<uint64_t> bytes_sent{0};  // hellos included
  std::atomic<uint64_t> messages_received{0};
  std::atomic<uint64_t> bytes_received{0};
  std::atomic<uint64_t> messages_dropped{0};
  std::atomic<uint64_t> write_failures{0};
  std::atomic<uint64_t> connects{0};
  std::atomic<uint64_t> connect_failures{0};
  std::atomic<uint64_t> disconnects{0};
  // Established outgoing connections of the regular channel: 0 or 1 (2 for
  // a moment while a moved peer's old channel winds down).
  std::atomic<uint64_t> regular_connections{0};
  std::atomic<uint64_t> inbound_connections{0};
  metrics::Histogram round_trip{metrics::LatencyBuckets()};

  // The heartbeat being timed (see TcpTransport::CollectMetrics). io thread
  // only.
  bool probe_pending = false;
  Clock::time_point probe_sent_at;
  uint64_t probe_round = 0;
};

// Counts a live connection for as long as the coroutine that owns it runs
// (or until its frame is destroyed with the io_context).
class LiveCount {
 public:
  explicit LiveCount(std::atomic<uint64_t>* counter) : counter_(counter) { Add(*counter_); }
  ~LiveCount() { Sub(*counter_); }
  LiveCount(const LiveCount&) = delete;
  LiveCount& operator=(const LiveCount&) = delete;

 private:
  std::atomic<uint64_t>* counter_;
};

// A socket plus a watchdog timer; io thread only. Close() is the one way a
// connection ends: it closes the socket (completing every pending operation
// on it with an error) and wakes whoever waits on `wake`.
struct Connection {
  explicit Connection(tcp::socket s) : socket(std::move(s)), deadline(socket.get_executor()) {}

  void Close() {
    if (closed) return;
    closed = true;
    error_code ec;
    if (resolver != nullptr) resolver->cancel();
    socket.shutdown(tcp::socket::shutdown_both, ec);
    socket.close(ec);
    deadline.cancel();
    if (wake != nullptr) wake->cancel();
  }

  tcp::socket socket;
  asio::steady_timer deadline;
  bool closed = false;
  bool timed_out = false;                 // the watchdog closed it
  tcp::resolver* resolver = nullptr;      // set while a name lookup is in flight
  asio::steady_timer* wake = nullptr;     // the owning channel's timer while it uses this
};

// Closes `conn` unless the watchdog is re-armed or cancelled within `after`.
void ArmDeadline(const std::shared_ptr<Connection>& conn, milliseconds after) {
  conn->deadline.expires_after(after);
  conn->deadline.async_wait([conn](error_code ec) {
    if (ec || conn->closed) return;
    conn->timed_out = true;
    conn->Close();
  });
}

std::string RemoteAddress(const tcp::socket& socket) {
  error_code ec;
  tcp::endpoint endpoint = socket.remote_endpoint(ec);
  if (ec) return "unknown";
  return fmt::format("{}:{}", endpoint.address().to_string(), endpoint.port());
}

}  // namespace

class TcpTransport::Impl {
 public:
  explicit Impl(TcpTransportOptions options)
      : options_(std::move(options)), io_(std::make_unique<asio::io_context>(1)) {
    options_.max_batch_bytes = std::min(options_.max_batch_bytes, options_.max_frame_bytes);
  }

  ~Impl() { Stop(); }

  Status Start();
  void Stop();
  uint16_t bound_port() const { return port_.load(std::memory_order_acquire); }
  void SetClusterId(uint64_t cluster_id) { options_.cluster_id = cluster_id; }
  void SetListenAddress(std::string address) { options_.listen_address = std::move(address); }
  TransportStats stats() const;
  void CollectMetrics(metrics::Registry::Collector& out) const;
  void Send(raft::Message m);
  void AddPeer(NodeId id, std::string address);
  void RemovePeer(NodeId id);

 private:
  // One direction of traffic to one peer on one channel.
  // A message waiting in a channel's queue.
  struct Queued {
    std::string encoded;
    // A heartbeat's read_round, for the round-trip probe; none for other
    // messages.
    std::optional<uint64_t> heartbeat_round;
  };

  struct OutChannel {
    OutChannel(NodeId peer_id, Channel channel_kind, std::string peer_address, std::string h,
               uint16_t p, std::shared_ptr<PeerMetrics> peer_metrics)
        : peer(peer_id), kind(channel_kind), address(std::move(peer_address)), host(std::move(h)),
          port(p), metrics(std::move(peer_metrics)) {}

    const NodeId peer;
    const Channel kind;
    const std::string address;
    const std::string host;
    const uint16_t port;
    const std::shared_ptr<PeerMetrics> metrics;

    // Guarded by Impl::mu_.
    std::deque<Queued> queue;       // encoded messages, oldest first
    size_t queued_bytes = 0;
    bool wake_pending = false;      // a wake-up is posted and has not run yet
    bool closed = false;            // removed or stopping: the coroutine ends
    uint64_t drops_unlogged = 0;    // queue-full drops since the last log line
    Clock::time_point drops_logged_at;

    // io thread only.
    asio::steady_timer* wake = nullptr;  // the coroutine's timer while it runs
    std::shared_ptr<Connection> conn;    // the current connection, if any
  };

  struct Peer {
    std::string address;
    std::array<std::shared_ptr<OutChannel>, kChannels> channels;
  };

  // Marks a peer's channels closed and drops their queues; the coroutines
  // see it on the io thread. REQUIRES: mu_ held.
  void RetireLocked(Peer& peer);
  // Wakes the channel's coroutine (on the io thread). REQUIRES: mu_ held,
  // and not stopped_ (so the io_context exists).
  void WakeLocked(const std::shared_ptr<OutChannel>& ch);
  void CloseOnIoThread(const std::shared_ptr<OutChannel>& ch);
  bool IsClosed(const OutChannel& ch) const {
    std::lock_guard lock(mu_);
    return ch.closed;
  }

  asio::awaitable<void> RunChannel(std::shared_ptr<OutChannel> ch);
  asio::awaitable<Status> Dial(std::shared_ptr<OutChannel> ch, std::shared_ptr<Connection> conn);
  asio::awaitable<void> WriteLoop(std::shared_ptr<OutChannel> ch,
                                  std::shared_ptr<Connection> conn);
  asio::awaitable<void> WatchForClose(std::shared_ptr<Connection> conn);
  // Waits until the channel's timer is cancelled (new work, a closed
  // connection, a closed channel).
  asio::awaitable<void> WaitForWake(asio::steady_timer& wake);
  // Waits `delay`; only closing the channel cuts it short.
  asio::awaitable<void> Backoff(std::shared_ptr<OutChannel> ch, asio::steady_timer& wake,
                                milliseconds delay);

  // Which peer an inbound connection is from, for its per-peer counts.
  struct InboundPeer {
    InboundPeer() = default;
    InboundPeer(const InboundPeer&) = delete;
    InboundPeer& operator=(const InboundPeer&) = delete;
    // In the coroutine's frame: also runs when the frame is destroyed with
    // the io_context.
    ~InboundPeer() {
      if (metrics != nullptr) Sub(metrics->inbound_connections);
    }

    NodeId id;                              // kNoNode until the hello
    uint64_t version = UINT64_MAX;          // peers_version_ when `metrics` was looked up
    std::shared_ptr<PeerMetrics> metrics;   // counts this connection in inbound_connections
  };
  // The metrics of the peer an inbound connection is from, looked up again
  // only when the peer table changed; nullptr for a node that is not a
  // peer (its traffic is in the totals only). io thread.
  PeerMetrics* InboundMetrics(InboundPeer* peer);
  // Ends the peer's round-trip probe if `response` answers the heartbeat it
  // times. io thread.
  static void ObserveRoundTrip(PeerMetrics& peer, const raft::HeartbeatResponse& response);

  asio::awaitable<void> AcceptLoop();
  asio::awaitable<void> RunInbound(std::shared_ptr<Connection> conn);
  // Handles every complete frame the decoder holds. Returns why the
  // connection must be closed, or an empty string to keep reading.
  std::string DrainFrames(Connection& conn, FrameDecoder& decoder, std::optional<Hello>* hello,
                          InboundPeer* peer);

  TcpTransportOptions options_;
  std::unique_ptr<asio::io_context> io_;
  std::optional<tcp::acceptor> acceptor_;
  std::thread thread_;
  std::promise<void> thread_done_;
  std::atomic<uint16_t> port_{0};
  Counters counters_;

  mutable std::mutex mu_;
  std::unordered_map<NodeId, Peer> peers_;  // guarded by mu_
  // Guarded by mu_. Every peer in peers_ has an entry; entries stay after
  // Stop (a stopped transport still reports its counts) and go with
  // RemovePeer.
  std::map<NodeId, std::shared_ptr<PeerMetrics>> peer_metrics_;
  // Bumped (under mu_) whenever peer_metrics_ gains or loses an entry.
  std::atomic<uint64_t> peers_version_{0};
  bool started_ = false;                    // guarded by mu_
  bool stopped_ = false;                    // guarded by mu_

  // io thread only (and Stop() after the thread is joined).
  std::unordered_set<std::shared_ptr<Connection>> inbound_;
};

Status TcpTransport::Impl::Start() {
  const TcpTransportOptions& o = options_;
  if (o.id == kNoNode) return Status::InvalidArgument("transport: node id 0 is reserved");
  if (!o.on_message) return Status::InvalidArgument("transport: on_message is required");
  if (o.max_queue_messages == 0 || o.max_queue_bytes == 0) {
    return Status::InvalidArgument("transport: queue limits must be positive");
  }
  if (o.max_frame_bytes < 1024 || o.max_frame_bytes > kMaxFrameBytesLimit) {
    return Status::InvalidArgument(fmt::format("transport: max_frame_bytes must be in [1024, {}]",
                                               kMaxFrameBytesLimit));
  }
  if (o.max_batch_bytes == 0) return Status::InvalidArgument("transport: max_batch_bytes is 0");
  if (o.reconnect_backoff_min.count() <= 0 || o.reconnect_backoff_max < o.reconnect_backoff_min) {
    return Status::InvalidArgument("transport: want 0 < reconnect_backoff_min <= max");
  }

  std::string host;
  uint16_t port = 0;
  if (!SplitHostPort(o.listen_address, &host, &port)) {
    return Status::InvalidArgument("transport: malformed listen address \"" + o.listen_address +
                                   "\"; want host:port");
  }
  {
    std::lock_guard lock(mu_);
    if (started_ || stopped_) return Status::InvalidArgument("transport: already started or stopped");
  }

  error_code ec;
  tcp::endpoint endpoint;
  const asio::ip::address ip = asio::ip::make_address(host, ec);
  if (!ec) {
    endpoint = tcp::endpoint(ip, port);
  } else {
    tcp::resolver resolver(*io_);
    auto results = resolver.resolve(host, std::to_string(port), ec);
    if (ec || results.empty()) {
      return Status::InvalidArgument("transport: cannot resolve \"" + host + "\"");
    }
    endpoint = results.begin()->endpoint();
  }
  acceptor_.emplace(*io_);
  auto fail = [&](const char* what) {
    acceptor_.reset();
    return Status::IOError(fmt::format("transport: cannot listen on {}: {}: {}", o.listen_address,
                                       what, ec.message()));
  };
  if (acceptor_->open(endpoint.protocol(), ec)) return fail("open");
  if (acceptor_->set_option(asio::socket_base::reuse_address(true), ec)) return fail("setsockopt");
  if (acceptor_->bind(endpoint, ec)) return fail("bind");
  if (acceptor_->listen(asio::socket_base::max_listen_connections, ec)) return fail("listen");
  const uint16_t bound = acceptor_->local_endpoint(ec).port();
  if (ec) return fail("local_endpoint");
  port_.store(bound, std::memory_order_release);

  {
    std::lock_guard lock(mu_);
    started_ = true;
  }
  asio::co_spawn(*io_, AcceptLoop(), asio::detached);
  thread_ = std::thread([this] {
    // A coroutine that throws (an allocation failure, a bug) ends alone; the
    // others go on.
    for (;;) {
      try {
        io_->run();
        break;
      } catch (const std::exception& e) {
        RKV_LOG_ERROR("event=transport_internal_error error=\"{}\"", e.what());
      }
    }
    thread_done_.set_value();
  });
  RKV_LOG_INFO("event=transport_listening node={} cluster={} address={}:{}", o.id.value(),
               o.cluster_id, host, bound);
  return Status::OK();
}

void TcpTransport::Impl::Stop() {
  std::vector<std::shared_ptr<OutChannel>> channels;
  bool running = false;
  {
    std::lock_guard lock(mu_);
    if (stopped_) return;
    stopped_ = true;
    running = started_;
    for (auto& [id, peer] : peers_) {
      RetireLocked(peer);
      for (auto& ch : peer.channels) channels.push_back(ch);
    }
    peers_.clear();
  }
  if (running) {
    // Close everything on the io thread; the coroutines then end and run()
    // returns for want of work. A name lookup cannot be interrupted, so do
    // not wait for stragglers forever.
    asio::post(*io_, [this, channels] {
      error_code ec;
      acceptor_->close(ec);
      for (const auto& ch : channels) CloseOnIoThread(ch);
      for (const auto& conn : inbound_) conn->Close();
    });
    if (thread_done_.get_future().wait_for(kStopGrace) != std::future_status::ready) {
      RKV_LOG_WARN("event=transport_stop_forced grace_ms={}",
                   std::chrono::duration_cast<milliseconds>(kStopGrace).count());
      io_->stop();
    }
    thread_.join();
  }
  // No io thread now. Release the sockets before the io_context they belong
  // to; coroutine frames still suspended are destroyed with the io_context.
  for (const auto& ch : channels) ch->conn.reset();
  channels.clear();
  inbound_.clear();
  acceptor_.reset();
  io_.reset();
  if (running) RKV_LOG_INFO("event=transport_stopped node={}", options_.id.value());
}

void TcpTransport::Impl::RetireLocked(Peer& peer) {
  for (auto& ch : peer.channels) {
    ch->closed = true;
    Add(counters_.messages_dropped, ch->queue.size());
    Add(ch->metrics->messages_dropped, ch->queue.size());
    ch->queue.clear();
    ch->queued_bytes = 0;
    if (!stopped_) {
      asio::post(*io_, [this, ch] { CloseOnIoThread(ch); });
    }
  }
}

void TcpTransport::Impl::CloseOnIoThread(const std::shared_ptr<OutChannel>& ch) {
  if (ch->conn) ch->conn->Close();
  if (ch->wake != nullptr) ch->wake->cancel();
}

void TcpTransport::Impl::WakeLocked(const std::shared_ptr<OutChannel>& ch) {
  if (ch->wake_pending) return;
  ch->wake_pending = true;
  asio::post(*io_, [this, ch] {
    {
      std::lock_guard lock(mu_);
      ch->wake_pending = false;
    }
    if (ch->wake != nullptr) ch->wake->cancel();
  });
}

void TcpTransport::Impl::Send(raft::Message m) {
  const Channel kind = ChannelFor(m);
  const NodeId to = m.to;
  std::optional<uint64_t> heartbeat_round;
  if (const auto* heartbeat = std::get_if<raft::HeartbeatRequest>(&m.body)) {
    heartbeat_round = heartbeat->read_round;
  }
  // Encode outside the lock: the caller's thread pays for its own messages.
  std::string encoded = EncodeMessage(m);
  if (FrameBuilder::AddedBytes(encoded.size()) > options_.max_frame_bytes) {
    Add(counters_.messages_dropped);
    RKV_LOG_WARN("event=transport_message_too_large peer={} type={} bytes={} limit={}", to.value(),
                 MessageTypeName(m), encoded.size(), options_.max_frame_bytes);
    return;
  }
  std::lock_guard lock(mu_);
  auto it = peers_.find(to);
  if (stopped_ || it == peers_.end()) {
    Add(counters_.messages_dropped);
    return;
  }
  const std::shared_ptr<OutChannel>& ch = it->second.channels[ChannelSlot(kind)];
  if (encoded.size() > options_.max_queue_bytes) {
    Add(counters_.messages_dropped);
    Add(ch->metrics->messages_dropped);
    return;
  }
  // Drop the oldest until the new message fits (see the options).
  uint64_t evicted = 0;
  while (!ch->queue.empty() && (ch->queue.size() >= options_.max_queue_messages ||
                                ch->queued_bytes + encoded.size() > options_.max_queue_bytes)) {
    ch->queued_bytes -= ch->queue.front().encoded.size();
    ch->queue.pop_front();
    ++evicted;
  }
  ch->queued_bytes += encoded.size();
  ch->queue.push_back(Queued{std::move(encoded), heartbeat_round});
  Add(counters_.messages_queued);
  if (evicted > 0) {
    Add(counters_.messages_dropped, evicted);
    Add(ch->metrics->messages_dropped, evicted);
    ch->drops_unlogged += evicted;
    // A peer that stays slow would otherwise log on every Send.
    const auto now = Clock::now();
    if (ch->drops_logged_at == Clock::time_point{} || now - ch->drops_logged_at >= kDropLogInterval) {
      RKV_LOG_WARN("event=transport_queue_full peer={} channel={} dropped={} queued_messages={} "
                   "queued_bytes={} action=drop_oldest",
                   to.value(), ChannelName(kind), ch->drops_unlogged, ch->queue.size(),
                   ch->queued_bytes);
      ch->drops_unlogged = 0;
      ch->drops_logged_at = now;
    }
  }
  WakeLocked(ch);
}

void TcpTransport::Impl::AddPeer(NodeId id, std::string address) {
  std::string host;
  uint16_t port = 0;
  if (!SplitHostPort(address, &host, &port)) {
    RKV_LOG_WARN("event=transport_bad_peer_address peer={} address=\"{}\"", id.value(), address);
    return;
  }
  if (id == kNoNode || id == options_.id) {
    RKV_LOG_WARN("event=transport_bad_peer_id peer={} address=\"{}\"", id.value(), address);
    return;
  }
  std::lock_guard lock(mu_);
  if (stopped_) return;
  auto it = peers_.find(id);
  if (it != peers_.end()) {
    if (it->second.address == address) return;
    RetireLocked(it->second);
    peers_.erase(it);
  }
  // A moved peer keeps its metrics: it is the same node.
  std::shared_ptr<PeerMetrics>& metrics = peer_metrics_[id];
  if (metrics == nullptr) {
    metrics = std::make_shared<PeerMetrics>();
    peers_version_.fetch_add(1, std::memory_order_release);
  }
  Peer peer;
  peer.address = address;
  for (Channel kind : {Channel::kRegular, Channel::kSnapshot}) {
    auto ch = std::make_shared<OutChannel>(id, kind, address, host, port, metrics);
    peer.channels[ChannelSlot(kind)] = ch;
    asio::post(*io_, [this, ch] { asio::co_spawn(*io_, RunChannel(ch), asio::detached); });
  }
  peers_.emplace(id, std::move(peer));
}

void TcpTransport::Impl::RemovePeer(NodeId id) {
  std::lock_guard lock(mu_);
  if (peer_metrics_.erase(id) > 0) peers_version_.fetch_add(1, std::memory_order_release);
  auto it = peers_.find(id);
  if (it == peers_.end()) return;
  RetireLocked(it->second);
  peers_.erase(it);
}

TransportStats TcpTransport::Impl::stats() const {
  auto get = [](const std::atomic<uint64_t>& c) { return c.load(std::memory_order_relaxed); };
  TransportStats s;
  s.messages_queued = get(counters_.messages_queued);
  s.messages_sent = get(counters_.messages_sent);
  s.messages_dropped = get(counters_.messages_dropped);
  s.messages_received = get(counters_.messages_received);
  s.frames_sent = get(counters_.frames_sent);
  s.frames_received = get(counters_.frames_received);
  s.bytes_sent = get(counters_.bytes_sent);
  s.bytes_received = get(counters_.bytes_received);
  s.connects = get(counters_.connects);
  s.connect_failures = get(counters_.connect_failures);
  s.disconnects = get(counters_.disconnects);
  s.inbound_accepted = get(counters_.inbound_accepted);
  s.inbound_rejected = get(counters_.inbound_rejected);
  s.outbound_connections = get(counters_.outbound_connections);
  s.inbound_connections = get(counters_.inbound_connections);
  std::lock_guard lock(mu_);
  for (const auto& [id, peer] : peers_) {
    for (const auto& ch : peer.channels) {
      s.queued_messages += ch->queue.size();
      s.queued_bytes += ch->queued_bytes;
    }
  }
  return s;
}

void TcpTransport::Impl::CollectMetrics(metrics::Registry::Collector& out) const {
  struct Row {
    NodeId id;
    std::shared_ptr<PeerMetrics> m;
    uint64_t queued_messages = 0;
    uint64_t queued_bytes = 0;
  };
  std::vector<Row> rows;
  {
    // Copy under the lock, hand to the collector outside it: a scrape must
    // not hold up Send.
    std::lock_guard lock(mu_);
    rows.reserve(peer_metrics_.size());
    for (const auto& [id, m] : peer_metrics_) {
      Row row{id, m};
      auto it = peers_.find(id);
      if (it != peers_.end()) {
        for (const auto& ch : it->second.channels) {
          row.queued_messages += ch->queue.size();
          row.queued_bytes += ch->queued_bytes;
        }
      }
      rows.push_back(std::move(row));
    }
  }
  auto get = [](const std::atomic<uint64_t>& c) {
    return static_cast<double>(c.load(std::memory_order_relaxed));
  };
  for (const Row& row : rows) {
    const PeerMetrics& m = *row.m;
    const metrics::Labels peer{{"peer", std::to_string(row.id.value())}};
    out.Gauge("raft_kv_peer_connected",
              "1 while this node's outgoing connection to the peer (regular channel) is up; it dials "
              "only when it has a message to send.",
              m.regular_connections.load(std::memory_order_relaxed) > 0 ? 1 : 0, peer);
    out.Gauge("raft_kv_peer_inbound_connections", "Connections from the peer to this node now.",
              get(m.inbound_connections), peer);
    out.Counter("raft_kv_peer_messages_sent_total", "Raft messages written to the peer's connections.",
                get(m.messages_sent), peer);
    out.Counter("raft_kv_peer_bytes_sent_total", "Bytes written to the peer's connections (frames and hellos).",
                get(m.bytes_sent), peer);
    out.Counter("raft_kv_peer_messages_received_total", "Raft messages received from the peer.",
                get(m.messages_received), peer);
    out.Counter("raft_kv_peer_bytes_received_total", "Bytes read from the peer's connections to this node.",
                get(m.bytes_received), peer);
    out.Counter("raft_kv_peer_messages_dropped_total",
                "Messages for the peer that were not written: its queue overflowed, a write failed, or it "
                "moved.",
                get(m.messages_dropped), peer);
    out.Counter("raft_kv_peer_write_failures_total",
                "Frames whose write to the peer failed or timed out (the connection is then redialed).",
                get(m.write_failures), peer);
    out.Counter("raft_kv_peer_connects_total", "Connections to the peer established (hello sent).",
                get(m.connects), peer);
    out.Counter("raft_kv_peer_connect_failures_total", "Attempts to connect to the peer that failed.",
                get(m.connect_failures), peer);
    out.Counter("raft_kv_peer_disconnects_total", "Established connections to the peer that were lost.",
                get(m.disconnects), peer);
    out.Gauge("raft_kv_peer_queued_messages", "Messages waiting to be written to the peer.",
              static_cast<double>(row.queued_messages), peer);
    out.Gauge("raft_kv_peer_queued_bytes", "Bytes of messages waiting to be written to the peer.",
              static_cast<double>(row.queued_bytes), peer);
    out.Histogram("raft_kv_peer_round_trip_seconds",
                  "Time from writing a heartbeat to the peer to receiving its response: the network both "
                  "ways and the peer's node loop.",
                  m.round_trip, peer);
  }
  out.Counter("raft_kv_transport_messages_dropped_total",
              "Messages handed to the transport that it did not write, for any peer or none.",
              get(counters_.messages_dropped));
  out.Gauge("raft_kv_transport_inbound_connections", "Connections from other nodes to this one now.",
            get(counters_.inbound_connections));
  out.Counter("raft_kv_transport_inbound_rejected_total",
              "Inbound connections closed for a bad frame, a wrong cluster or node, or the connection cap.",
              get(counters_.inbound_rejected));
}

// ---- Outgoing. ----

asio::awaitable<void> TcpTransport::Impl::WaitForWake(asio::steady_timer& wake) {
  wake.expires_at(asio::steady_timer::time_point::max());
  co_await wake.async_wait(kUseTuple);
}

asio::awaitable<void> TcpTransport::Impl::Backoff(std::shared_ptr<OutChannel> ch,
                                                  asio::steady_timer& wake, milliseconds delay) {
  const auto until = Clock::now() + delay;
  // Sends wake the timer too; keep waiting through those.
  while (!IsClosed(*ch) && Clock::now() < until) {
    wake.expires_at(until);
    co_await wake.async_wait(kUseTuple);
  }
}

asio::awaitable<void> TcpTransport::Impl::RunChannel(std::shared_ptr<OutChannel> ch) {
  asio::steady_timer wake(*io_);
  ch->wake = &wake;
  Random rng(options_.jitter_seed ^ (ch->peer.value() * 0x9e3779b97f4a7c15ULL) ^
             static_cast<uint64_t>(ch->kind));
  auto jittered = [&rng](milliseconds d) {
    const auto half = static_cast<uint64_t>(d.count()) / 2;
    return milliseconds(static_cast<milliseconds::rep>(half + rng.Uniform(half + 1)));
  };
  milliseconds backoff = options_.reconnect_backoff_min;
  uint64_t failures = 0;  // consecutive failed dials

  for (;;) {
    bool has_work = false;
    {
      std::lock_guard lock(mu_);
      if (ch->closed) break;
      has_work = !ch->queue.empty();
    }
    if (!has_work) {
      co_await WaitForWake(wake);
      continue;
    }

    auto conn = std::make_shared<Connection>(tcp::socket(*io_));
    conn->wake = &wake;
    ch->conn = conn;
    Status dialed = co_await Dial(ch, conn);
    if (!dialed.ok()) {
      ch->conn.reset();
      conn->wake = nullptr;
      conn->Close();
      if (IsClosed(*ch)) break;
      Add(counters_.connect_failures);
      Add(ch->metrics->connect_failures);
      ++failures;
      const milliseconds delay = jittered(backoff);
      // The first failure of a run is worth a warning; the rest would flood
      // the log while a peer is down.
      if (failures == 1) {
        RKV_LOG_WARN("event=transport_connect_failed peer={} channel={} address={} error=\"{}\" "
                     "retry_in_ms={}",
                     ch->peer.value(), ChannelName(ch->kind), ch->address, dialed.message(),
                     delay.count());
      } else {
        RKV_LOG_DEBUG("event=transport_connect_failed peer={} channel={} address={} error=\"{}\" "
                      "attempt={} retry_in_ms={}",
                      ch->peer.value(), ChannelName(ch->kind), ch->address, dialed.message(),
                      failures, delay.count());
      }
      backoff = std::min(backoff * 2, options_.reconnect_backoff_max);
      co_await Backoff(ch, wake, delay);
      continue;
    }

    Add(counters_.connects);
    Add(ch->metrics->connects);
    RKV_LOG_INFO("event=transport_connected peer={} channel={} address={} failed_attempts={}",
                 ch->peer.value(), ChannelName(ch->kind), ch->address, failures);
    failures = 0;
    const auto connected_at = Clock::now();
    asio::co_spawn(*io_, WatchForClose(conn), asio::detached);
    {
      LiveCount live(&counters_.outbound_connections);
      std::optional<LiveCount> connected;
      if (ch->kind == Channel::kRegular) connected.emplace(&ch->metrics->regular_connections);
      co_await WriteLoop(ch, conn);
    }
    ch->conn.reset();
    conn->wake = nullptr;
    conn->Close();
    // A heartbeat written on the lost connection may never have arrived.
    if (ch->kind == Channel::kRegular) ch->metrics->probe_pending = false;
    if (IsClosed(*ch)) break;
    Add(counters_.disconnects);
    Add(ch->metrics->disconnects);

    // A connection that stayed up a while says the peer is healthy: start
    // the backoff afresh. One that ended at once (a peer that accepts and
    // then refuses us) must not turn into a tight redial loop.
    if (Clock::now() - connected_at >= options_.reconnect_backoff_max) {
      backoff = options_.reconnect_backoff_min;
    }
    const milliseconds delay = jittered(backoff);
    RKV_LOG_INFO("event=transport_disconnected peer={} channel={} address={} retry_in_ms={}",
                 ch->peer.value(), ChannelName(ch->kind), ch->address, delay.count());
    backoff = std::min(backoff * 2, options_.reconnect_backoff_max);
    co_await Backoff(ch, wake, delay);
  }
  ch->wake = nullptr;
}

asio::awaitable<Status> TcpTransport::Impl::Dial(std::shared_ptr<OutChannel> ch,
                                                 std::shared_ptr<Connection> conn) {
  ArmDeadline(conn, options_.connect_timeout);
  std::vector<tcp::endpoint> endpoints;
  error_code ec;
  const asio::ip::address ip = asio::ip::make_address(ch->host, ec);
  if (!ec) {
    endpoints.emplace_back(ip, ch->port);
  } else {
    tcp::resolver resolver(*io_);
    conn->resolver = &resolver;
    auto [resolve_ec, results] =
        co_await resolver.async_resolve(ch->host, std::to_string(ch->port), kUseTuple);
    conn->resolver = nullptr;
    if (conn->closed) {
      co_return Status::Aborted(conn->timed_out ? "timed out resolving" : "closed");
    }
    if (resolve_ec) co_return Status::IOError("resolve: " + resolve_ec.message());
    for (const auto& entry : results) endpoints.push_back(entry.endpoint());
  }
  if (conn->closed) co_return Status::Aborted("closed");

  auto [connect_ec, endpoint] = co_await asio::async_connect(conn->socket, endpoints, kUseTuple);
  if (connect_ec) {
    co_return Status::IOError(conn->timed_out ? std::string("timed out connecting")
                                              : connect_ec.message());
  }
  conn->socket.set_option(tcp::no_delay(true), ec);
  conn->socket.set_option(asio::socket_base::keep_alive(true), ec);

  const std::string hello =
      EncodeHelloFrame(options_.cluster_id, Hello{options_.id, ch->peer, ch->kind});
  auto [write_ec, n] = co_await asio::async_write(conn->socket, asio::buffer(hello), kUseTuple);
  if (write_ec) {
    co_return Status::IOError(conn->timed_out ? std::string("timed out sending hello")
                                              : "hello: " + write_ec.message());
  }
  conn->deadline.cancel();
  if (conn->closed) co_return Status::Aborted("closed");
  Add(counters_.bytes_sent, n);
  Add(ch->metrics->bytes_sent, n);
  co_return Status::OK();
}

asio::awaitable<void> TcpTransport::Impl::WriteLoop(std::shared_ptr<OutChannel> ch,
                                                    std::shared_ptr<Connection> conn) {
  FrameBuilder builder(options_.cluster_id);
  std::vector<std::string> batch;
  asio::steady_timer& wake = *conn->wake;
  PeerMetrics& peer = *ch->metrics;
  for (;;) {
    if (conn->closed) co_return;
    batch.clear();
    std::optional<uint64_t> heartbeat_round;  // of the batch's first heartbeat
    {
      // Take whatever is queued, up to one batch. Move the strings out under
      // the lock; build the frame outside it.
      std::lock_guard lock(mu_);
      if (ch->closed) co_return;
      size_t batch_bytes = 0;
      while (!ch->queue.empty()) {
        Queued& next = ch->queue.front();
        const size_t added = FrameBuilder::AddedBytes(next.encoded.size());
        if (!batch.empty() && batch_bytes + added > options_.max_batch_bytes) break;
        batch_bytes += added;
        ch->queued_bytes -= next.encoded.size();
        if (!heartbeat_round) heartbeat_round = next.heartbeat_round;
        batch.push_back(std::move(next.encoded));
        ch->queue.pop_front();
      }
    }
    if (batch.empty()) {
      co_await WaitForWake(wake);
      continue;
    }
    for (const std::string& encoded : batch) builder.Add(encoded);
    const std::string frame = builder.Finish();

    if (heartbeat_round) {
      // Start timing this heartbeat unless one is being timed already.
      const auto now = Clock::now();
      if (!peer.probe_pending || now - peer.probe_sent_at > kProbeGiveUp) {
        peer.probe_pending = true;
        peer.probe_sent_at = now;
        peer.probe_round = *heartbeat_round;
      }
    }
    ArmDeadline(conn, options_.write_timeout);
    auto [ec, n] = co_await asio::async_write(conn->socket, asio::buffer(frame), kUseTuple);
    conn->deadline.cancel();
    if (ec) {
      // Whether any of it reached the peer is unknown; count it lost.
      Add(counters_.messages_dropped, batch.size());
      Add(peer.messages_dropped, batch.size());
      Add(peer.write_failures);
      RKV_LOG_DEBUG("event=transport_write_failed peer={} channel={} messages={} error=\"{}\"",
                    ch->peer.value(), ChannelName(ch->kind), batch.size(),
                    conn->timed_out ? std::string("timed out") : ec.message());
      co_return;
    }
    Add(counters_.messages_sent, batch.size());
    Add(counters_.frames_sent);
    Add(counters_.bytes_sent, n);
    Add(peer.messages_sent, batch.size());
    Add(peer.bytes_sent, n);
  }
}

asio::awaitable<void> TcpTransport::Impl::WatchForClose(std::shared_ptr<Connection> conn) {
  std::array<char, 64> scratch;
  // The peer never writes on a connection we dialed: bytes, end of stream
  // and errors all end it.
  auto [ec, n] = co_await conn->socket.async_read_some(asio::buffer(scratch), kUseTuple);
  (void)ec;
  (void)n;
  conn->Close();
}

// ---- Incoming. ----

asio::awaitable<void> TcpTransport::Impl::AcceptLoop() {
  asio::steady_timer pause(*io_);
  for (;;) {
    auto [ec, socket] = co_await acceptor_->async_accept(kUseTuple);
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor_->is_open()) break;
      // Out of file descriptors or a transient error: do not spin.
      RKV_LOG_WARN("event=transport_accept_failed error=\"{}\"", ec.message());
      pause.expires_after(milliseconds(50));
      co_await pause.async_wait(kUseTuple);
      continue;
    }
    if (inbound_.size() >= options_.max_inbound_connections) {
      Add(counters_.inbound_rejected);
      RKV_LOG_WARN("event=transport_connection_rejected remote={} reason=\"too many connections\" "
                   "limit={}",
                   RemoteAddress(socket), options_.max_inbound_connections);
      error_code close_ec;
      socket.close(close_ec);
      continue;
    }
    error_code opt_ec;
    socket.set_option(tcp::no_delay(true), opt_ec);
    auto conn = std::make_shared<Connection>(std::move(socket));
    inbound_.insert(conn);
    asio::co_spawn(*io_, RunInbound(conn), asio::detached);
  }
}

asio::awaitable<void> TcpTransport::Impl::RunInbound(std::shared_ptr<Connection> conn) {
  LiveCount live(&counters_.inbound_connections);
  Add(counters_.inbound_accepted);
  const std::string remote = RemoteAddress(conn->socket);
  FrameDecoder decoder(options_.cluster_id, options_.max_frame_bytes);
  std::vector<char> buffer(kReadChunk);
  std::optional<Hello> hello;
  InboundPeer peer;
  std::string reject;  // why we close it; empty when the peer did

  ArmDeadline(conn, options_.handshake_timeout);
  for (;;) {
    auto [ec, n] = co_await conn->socket.async_read_some(asio::buffer(buffer), kUseTuple);
    if (ec) {
      if (conn->timed_out) reject = "no hello within the handshake timeout";
      break;
    }
    Add(counters_.bytes_received, n);
    decoder.Append(std::string_view(buffer.data(), n));
    reject = DrainFrames(*conn, decoder, &hello, &peer);
    // After the frames: the first read's bytes count once its hello says
    // who sent them.
    if (PeerMetrics* m = InboundMetrics(&peer)) Add(m->bytes_received, n);
    if (!reject.empty() || conn->closed) break;
  }
  // A heartbeat response still on its way here is lost with the connection.
  if (peer.metrics != nullptr && hello && hello->channel == Channel::kRegular) {
    peer.metrics->probe_pending = false;
  }

  if (!reject.empty()) {
    Add(counters_.inbound_rejected);
    RKV_LOG_WARN("event=transport_connection_rejected remote={} peer={} reason=\"{}\"", remote,
                 hello ? hello->from.value() : 0, reject);
  } else {
    RKV_LOG_DEBUG("event=transport_inbound_closed remote={} peer={}", remote,
                  hello ? hello->from.value() : 0);
  }
  conn->Close();
  inbound_.erase(conn);
}

PeerMetrics* TcpTransport::Impl::InboundMetrics(InboundPeer* peer) {
  if (peer->id == kNoNode) return nullptr;
  if (peer->version != peers_version_.load(std::memory_order_acquire)) {
    std::shared_ptr<PeerMetrics> now;
    {
      std::lock_guard lock(mu_);
      peer->version = peers_version_.load(std::memory_order_relaxed);
      auto it = peer_metrics_.find(peer->id);
      if (it != peer_metrics_.end()) now = it->second;
    }
    if (now != peer->metrics) {
      // The connection counts toward the entry the peer has now.
      if (peer->metrics != nullptr) Sub(peer->metrics->inbound_connections);
      if (now != nullptr) Add(now->inbound_connections);
      peer->metrics = std::move(now);
    }
  }
  return peer->metrics.get();
}

void TcpTransport::Impl::ObserveRoundTrip(PeerMetrics& peer, const raft::HeartbeatResponse& response) {
  if (!peer.probe_pending || response.read_round != peer.probe_round) return;
  peer.probe_pending = false;
  peer.round_trip.Observe(std::chrono::duration<double>(Clock::now() - peer.probe_sent_at).count());
}

std::string TcpTransport::Impl::DrainFrames(Connection& conn, FrameDecoder& decoder,
                                            std::optional<Hello>* hello, InboundPeer* peer) {
  for (;;) {
    Result<std::optional<Frame>> next = decoder.Next();
    if (!next.ok()) return next.status().ToString();
    if (!next->has_value()) return {};
    Frame& frame = **next;
    Add(counters_.frames_received);
    if (!hello->has_value()) {
      if (frame.type != FrameType::kHello) return "the first frame is not a hello";
      if (frame.hello.to != options_.id) {
        return fmt::format("hello from node {} is for node {}, this is node {}",
                           frame.hello.from.value(), frame.hello.to.value(),
                           options_.id.value());
      }
      *hello = frame.hello;
      conn.deadline.cancel();
      peer->id = frame.hello.from;
      (void)InboundMetrics(peer);  // counts the connection from now on
      continue;
    }
    if (frame.type == FrameType::kHello) return "a second hello";
    // A frame is accepted whole or not at all.
    for (const raft::Message& m : frame.messages) {
      if (m.from != (*hello)->from || m.to != options_.id) {
        return fmt::format("message {} on the connection from node {} to node {}",
                           DescribeMessage(m), (*hello)->from.value(), options_.id.value());
      }
    }
    PeerMetrics* metrics = InboundMetrics(peer);
    for (raft::Message& m : frame.messages) {
      Add(counters_.messages_received);
      if (metrics != nullptr) {
        Add(metrics->messages_received);
        // Before on_message: whoever reacts to the response sees it timed.
        if (const auto* r = std::get_if<raft::HeartbeatResponse>(&m.body)) ObserveRoundTrip(*metrics, *r);
      }
      options_.on_message(std::move(m));
    }
  }
}

// ---- TcpTransport. ----

TcpTransport::TcpTransport(TcpTransportOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}
TcpTransport::~TcpTransport() = default;
Status TcpTransport::Start() { return impl_->Start(); }
void TcpTransport::Stop() { impl_->Stop(); }
uint16_t TcpTransport::bound_port() const { return impl_->bound_port(); }
void TcpTransport::SetClusterId(uint64_t cluster_id) { impl_->SetClusterId(cluster_id); }
void TcpTransport::SetListenAddress(std::string address) {
  impl_->SetListenAddress(std::move(address));
}
TransportStats TcpTransport::stats() const { return impl_->stats(); }
void TcpTransport::CollectMetrics(metrics::Registry::Collector& out) const {
  impl_->CollectMetrics(out);
}
void TcpTransport::Send(raft::Message m) { impl_->Send(std::move(m)); }
void TcpTransport::AddPeer(NodeId id, std::string address) {
  impl_->AddPeer(id, std::move(address));
}
void TcpTransport::RemovePeer(NodeId id) { impl_->RemovePeer(id); }

}  // namespace rkv::transport
