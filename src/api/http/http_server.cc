// The only translation unit of the server that includes Boost.Asio/Beast.
//
// One io_context runs on `threads` threads. Each connection is a coroutine on
// its own strand: read a request (idle timeout until its first byte, then the
// read timeout for the rest), hand it to the HttpHandler, wait for the reply
// (which the service may complete on any thread; it is posted back to the
// strand), write it, repeat. Requests on one connection are answered one at
// a time, so pipelined requests get their replies in order.
//
// Lifetimes: connection coroutines hold the shared State (handler, limits,
// counters), never the io_context. A reply callback held by the service keeps
// the io_context alive, so a late reply after Stop() is posted to a stopped
// io_context and dropped with it rather than touching freed memory.
#include "api/http/http_server.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <limits>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_set>
#include <utility>
#include <vector>

#include "common/logging.h"

namespace rkv::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;

namespace {

constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);

// What the connections share with the server.
struct State {
  HttpHandler* handler = nullptr;
  HttpLimits limits;
  std::atomic<bool> stopping{false};
  std::atomic<size_t> connections{0};

  std::mutex mu;
  std::condition_variable cv;
  size_t in_flight = 0;  // requests handed to the handler and not yet written back

  // Every open connection, so Stop() can close those whose coroutine is
  // parked waiting for a reply the service still holds.
  std::mutex streams_mu;
  std::unordered_set<beast::tcp_stream*> streams;
};

// Registers a connection's stream for its lifetime.
class StreamRegistration {
 public:
  StreamRegistration(State* state, beast::tcp_stream* stream) : state_(state), stream_(stream) {
    std::lock_guard lock(state_->streams_mu);
    state_->streams.insert(stream_);
  }
  ~StreamRegistration() {
    std::lock_guard lock(state_->streams_mu);
    state_->streams.erase(stream_);
  }
  StreamRegistration(const StreamRegistration&) = delete;
  StreamRegistration& operator=(const StreamRegistration&) = delete;

 private:
  State* state_;
  beast::tcp_stream* stream_;
};

class InFlightGuard {
 public:
  explicit InFlightGuard(State* state) : state_(state) {
    std::lock_guard lock(state_->mu);
    ++state_->in_flight;
  }
  ~InFlightGuard() {
    std::lock_guard lock(state_->mu);
    --state_->in_flight;
    state_->cv.notify_all();
  }
  InFlightGuard(const InFlightGuard&) = delete;
  InFlightGuard& operator=(const InFlightGuard&) = delete;

 private:
  State* state_;
};

class ConnectionGuard {
 public:
  explicit ConnectionGuard(std::shared_ptr<State> state) : state_(std::move(state)) {}
  ~ConnectionGuard() { state_->connections.fetch_sub(1); }
  ConnectionGuard(const ConnectionGuard&) = delete;
  ConnectionGuard& operator=(const ConnectionGuard&) = delete;

 private:
  std::shared_ptr<State> state_;
};

// Where a reply meets the connection waiting for it. A reply given before
// Handle() returns (reads, bad requests) is taken directly, without a trip
// through the scheduler; a later one, from any thread, is posted to the
// connection's executor.
struct ReplySlot {
  std::mutex mu;
  std::optional<HttpResponse> reply;          // arrived, not yet taken
  std::function<void(HttpResponse)> deliver;  // set once the connection waits
};

// Holds the coroutine's completion handler until the service answers. The
// io_context is destroyed after the handler (members go in reverse order).
template <typename Handler>
struct PendingReply {
  std::shared_ptr<asio::io_context> io_context;
  std::optional<Handler> handler;
};

// Hands the request to the handler. Returns the reply if it came before
// Handle() returned; otherwise the slot will get it.
std::optional<HttpResponse> StartRequest(State* state, const std::shared_ptr<ReplySlot>& slot,
                                         HttpRequest request) {
  state->handler->Handle(std::move(request), [slot](HttpResponse response) {
    std::function<void(HttpResponse)> deliver;
    {
      std::lock_guard lock(slot->mu);
      if (!slot->deliver) {
        slot->reply = std::move(response);
        return;
      }
      deliver = std::move(slot->deliver);
    }
    deliver(std::move(response));
  });
  std::lock_guard lock(slot->mu);
  std::optional<HttpResponse> reply = std::move(slot->reply);
  slot->reply.reset();
  return reply;
}

// Waits for the reply of a request StartRequest() did not answer at once;
// resumes on the connection's executor.
asio::awaitable<HttpResponse> AwaitReply(std::shared_ptr<ReplySlot> slot,
                                         std::shared_ptr<asio::io_context> io_context) {
  return asio::async_initiate<decltype(asio::use_awaitable), void(HttpResponse)>(
      [slot = std::move(slot), io_context = std::move(io_context)](auto handler) mutable {
        using Handler = decltype(handler);
        auto pending = std::make_shared<PendingReply<Handler>>();
        pending->io_context = std::move(io_context);
        pending->handler.emplace(std::move(handler));
        auto deliver = [pending](HttpResponse response) {
          Handler h = std::move(*pending->handler);
          pending->handler.reset();
          auto executor = asio::get_associated_executor(h);
          asio::post(executor, [h = std::move(h), response = std::move(response)]() mutable {
            std::move(h)(std::move(response));
          });
        };
        std::optional<HttpResponse> early;
        {
          std::lock_guard lock(slot->mu);
          if (slot->reply) {
            early = std::move(slot->reply);  // answered after StartRequest returned
            slot->reply.reset();
          } else {
            slot->deliver = std::move(deliver);
          }
        }
        if (early) deliver(std::move(*early));
      },
      asio::use_awaitable);
}

bhttp::response<bhttp::string_body> ToBeast(HttpResponse response, unsigned version,
                                            bool keep_alive) {
  bhttp::response<bhttp::string_body> res;
  res.version(version);
  res.result(static_cast<unsigned>(response.status));
  res.set(bhttp::field::content_type, response.content_type);
  for (auto& [name, value] : response.headers) res.set(name, value);
  res.body() = std::move(response.body);
  res.keep_alive(keep_alive);
  res.prepare_payload();
  return res;
}

// The reply to a request that could not be read, or nullopt to just close.
std::optional<HttpResponse> ReadErrorReply(const beast::error_code& ec, const HttpLimits& limits) {
  if (ec == bhttp::error::body_limit) {
    return ErrorResponse(413, "too_large",
                         "request body exceeds " + std::to_string(limits.max_body_bytes) + " bytes");
  }
  if (ec == bhttp::error::header_limit || ec == bhttp::error::buffer_overflow) {
    return ErrorResponse(431, "too_large",
                         "request header exceeds " + std::to_string(limits.max_header_bytes) +
                             " bytes");
  }
  if (ec == bhttp::error::end_of_stream || ec == bhttp::error::partial_message ||
      ec == bhttp::error::need_more) {
    return std::nullopt;
  }
  if (ec.category() == bhttp::make_error_code(bhttp::error::bad_method).category()) {
    return ErrorResponse(400, "invalid_argument", "malformed HTTP request: " + ec.message());
  }
  return std::nullopt;  // timeout, reset, aborted
}

// Half-closes, then reads and discards what the client still sends (bounded
// in time and bytes), so the client sees our last reply instead of a reset.
asio::awaitable<void> Linger(beast::tcp_stream& stream) {
  beast::error_code ec;
  stream.socket().shutdown(tcp::socket::shutdown_send, ec);
  if (ec) co_return;
  stream.expires_after(std::chrono::seconds(1));
  std::vector<char> scratch(64 << 10);
  size_t total = 0;
  while (total < (32u << 20)) {
    auto [read_ec, n] = co_await stream.async_read_some(asio::buffer(scratch), kUseTuple);
    if (read_ec) break;
    total += n;
  }
}

asio::awaitable<void> Session(tcp::socket socket, std::shared_ptr<State> state,
                              std::weak_ptr<asio::io_context> weak_io_context) {
  ConnectionGuard connection_guard(state);
  const HttpLimits& limits = state->limits;
  beast::tcp_stream stream(std::move(socket));
  StreamRegistration registration(state.get(), &stream);
  beast::flat_buffer buffer;
  bool linger = false;

  while (!state->stopping.load()) {
    // Idle: wait for the first byte of the next request unless it is
    // already buffered (pipelining).
    if (buffer.size() == 0) {
      stream.expires_after(limits.idle_timeout);
      auto [ec, n] = co_await stream.async_read_some(buffer.prepare(4096), kUseTuple);
      if (ec) break;
      buffer.commit(n);
    }

    stream.expires_after(limits.read_timeout);
    bhttp::request_parser<bhttp::string_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(
        std::min<size_t>(limits.max_header_bytes, std::numeric_limits<std::uint32_t>::max())));
    parser.body_limit(static_cast<std::uint64_t>(limits.max_body_bytes));

    beast::error_code read_ec;
    {
      auto [ec, n] = co_await bhttp::async_read_header(stream, buffer, parser, kUseTuple);
      read_ec = ec;
    }
    if (!read_ec && !parser.is_done()) {
      if (beast::iequals(parser.get()[bhttp::field::expect], "100-continue")) {
        bhttp::response<bhttp::empty_body> go_on{bhttp::status::continue_, parser.get().version()};
        auto [ec, n] = co_await bhttp::async_write(stream, go_on, kUseTuple);
        if (ec) break;
      }
      auto [ec, n] = co_await bhttp::async_read(stream, buffer, parser, kUseTuple);
      read_ec = ec;
    }
    if (read_ec) {
      std::optional<HttpResponse> reply = ReadErrorReply(read_ec, limits);
      if (reply) {
        auto res = ToBeast(std::move(*reply), 11, false);
        stream.expires_after(limits.read_timeout);
        auto [ec, n] = co_await bhttp::async_write(stream, res, kUseTuple);
        linger = !ec;
      }
      break;
    }

    bhttp::request<bhttp::string_body> request = parser.release();
    HttpRequest req;
    req.method = std::string(request.method_string());
    req.target = std::string(request.target());
    req.idempotency_key = std::string(request["Idempotency-Key"]);
    req.body = std::move(request.body());
    const bool keep_alive = request.keep_alive();

    InFlightGuard in_flight(state.get());
    auto slot = std::make_shared<ReplySlot>();
    std::optional<HttpResponse> ready = StartRequest(state.get(), slot, std::move(req));
    // Kept as plain statements: with GCC 12, co_await inside a conditional
    // expression (and co_return co_await) corrupted memory here.
    HttpResponse reply;
    if (ready) {
      reply = std::move(*ready);
    } else {
      reply = co_await AwaitReply(std::move(slot), weak_io_context.lock());
    }
    const bool close = !keep_alive || state->stopping.load();
    auto res = ToBeast(std::move(reply), request.version(), !close);
    if (request.method() == bhttp::verb::head) res.body().clear();  // keeps Content-Length
    stream.expires_after(limits.read_timeout);
    auto [write_ec, n] = co_await bhttp::async_write(stream, res, kUseTuple);
    if (write_ec || close) break;
  }

  if (linger) co_await Linger(stream);
  beast::error_code ec;
  stream.socket().shutdown(tcp::socket::shutdown_both, ec);
  stream.socket().close(ec);
}

// Answers a connection over the cap with 503 and closes it.
template <typename Socket>
void Refuse(Socket& socket) {
  HttpResponse reply = ErrorResponse(503, "unavailable", "too many connections");
  reply.headers.emplace_back("Retry-After", "1");
  auto res = ToBeast(std::move(reply), 11, false);
  beast::error_code ec;
  bhttp::write(socket, res, ec);
  socket.shutdown(tcp::socket::shutdown_both, ec);
  socket.close(ec);
}

asio::awaitable<void> AcceptLoop(std::shared_ptr<tcp::acceptor> acceptor,
                                 std::shared_ptr<State> state,
                                 std::weak_ptr<asio::io_context> weak_io_context,
                                 asio::io_context* io_context) {
  asio::steady_timer backoff(acceptor->get_executor());
  while (acceptor->is_open()) {
    auto [ec, socket] = co_await acceptor->async_accept(asio::make_strand(*io_context), kUseTuple);
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor->is_open()) break;
      // Out of file descriptors or a transient error: do not spin.
      RKV_LOG_WARN("event=accept_failed error=\"{}\"", ec.message());
      backoff.expires_after(std::chrono::milliseconds(50));
      co_await backoff.async_wait(kUseTuple);
      continue;
    }
    if (state->stopping.load()) {
      Refuse(socket);
      continue;
    }
    if (state->connections.fetch_add(1) >= state->limits.max_connections) {
      state->connections.fetch_sub(1);
      Refuse(socket);
      continue;
    }
    beast::error_code opt_ec;
    socket.set_option(tcp::no_delay(true), opt_ec);
    auto executor = socket.get_executor();
    asio::co_spawn(executor, Session(std::move(socket), state, weak_io_context), asio::detached);
  }
}

}  // namespace

class HttpServer::Impl {
 public:
  Impl(HttpHandler* handler, HttpServerOptions options) : options_(options) {
    state_ = std::make_shared<State>();
    state_->handler = handler;
    state_->limits = options.limits;
  }

  ~Impl() { Stop(); }

  Status Start(const std::string& address) {
    if (running_) return Status::InvalidArgument("server already started");
    uint16_t port = 0;
    if (!SplitHostPort(address, &host_, &port)) {
      return Status::InvalidArgument("malformed address \"" + address + "\"; want host:port");
    }
    io_context_ = std::make_shared<asio::io_context>(options_.threads);
    beast::error_code ec;
    tcp::endpoint endpoint;
    asio::ip::address ip = asio::ip::make_address(host_, ec);
    if (!ec) {
      endpoint = tcp::endpoint(ip, port);
    } else {
      tcp::resolver resolver(*io_context_);
      auto results = resolver.resolve(host_, std::to_string(port), ec);
      if (ec || results.empty()) {
        return Status::InvalidArgument("cannot resolve host \"" + host_ + "\"");
      }
      endpoint = results.begin()->endpoint();
    }

    acceptor_ = std::make_shared<tcp::acceptor>(*io_context_);
    auto fail = [&](const char* what) {
      return Status::IOError(std::string("cannot listen on ") + address + ": " + what + ": " +
                             ec.message());
    };
    if (acceptor_->open(endpoint.protocol(), ec)) return fail("open");
    if (acceptor_->set_option(asio::socket_base::reuse_address(true), ec)) return fail("setsockopt");
    if (acceptor_->bind(endpoint, ec)) return fail("bind");
    if (acceptor_->listen(asio::socket_base::max_listen_connections, ec)) return fail("listen");
    port_ = acceptor_->local_endpoint(ec).port();

    asio::co_spawn(*io_context_,
                   AcceptLoop(acceptor_, state_, io_context_, io_context_.get()),
                   asio::detached);
    int threads = options_.threads < 1 ? 1 : options_.threads;
    for (int i = 0; i < threads; ++i) {
      threads_.emplace_back([io_context = io_context_] { io_context->run(); });
    }
    running_ = true;
    return Status::OK();
  }

  void Stop() {
    if (!running_) return;
    running_ = false;
    state_->stopping.store(true);
    asio::post(*io_context_, [acceptor = acceptor_] {
      beast::error_code ec;
      acceptor->close(ec);
    });
    {
      std::unique_lock lock(state_->mu);
      state_->cv.wait_for(lock, options_.stop_timeout, [&] { return state_->in_flight == 0; });
    }
    io_context_->stop();
    for (auto& t : threads_) t.join();
    threads_.clear();
    acceptor_.reset();
    {
      // No io thread runs now. A connection still waiting for the service
      // is owned by the service's callback, not by the io_context, so close
      // its socket here rather than when the callback lets go.
      std::lock_guard lock(state_->streams_mu);
      for (beast::tcp_stream* stream : state_->streams) {
        beast::error_code ec;
        stream->socket().shutdown(tcp::socket::shutdown_both, ec);
        stream->socket().close(ec);
      }
    }
    // Connections still open are closed when the io_context goes (now, or
    // when the last reply callback the service holds lets go of it).
    io_context_.reset();
  }

  uint16_t port() const { return port_; }
  const std::string& host() const { return host_; }

 private:
  HttpServerOptions options_;
  std::shared_ptr<State> state_;
  std::shared_ptr<asio::io_context> io_context_;
  std::shared_ptr<tcp::acceptor> acceptor_;
  std::vector<std::thread> threads_;
  std::string host_;
  uint16_t port_ = 0;
  bool running_ = false;
};

HttpServer::HttpServer(HttpHandler* handler, HttpServerOptions options)
    : impl_(std::make_unique<Impl>(handler, options)) {}
HttpServer::~HttpServer() = default;
Status HttpServer::Start(const std::string& address) { return impl_->Start(address); }
uint16_t HttpServer::port() const { return impl_->port(); }
const std::string& HttpServer::host() const { return impl_->host(); }
void HttpServer::Stop() { impl_->Stop(); }

}  // namespace rkv::http
