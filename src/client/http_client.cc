#include "client/http_client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <boost/url/encode.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>

#include <algorithm>
#include <utility>
#include <vector>

namespace rkv::client {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace json = boost::json;
using tcp = asio::ip::tcp;

namespace {

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return beast::iequals(beast::string_view(a.data(), a.size()),
                        beast::string_view(b.data(), b.size()));
}

// The "message" of a {"error":{"code":..,"message":..}} body, or the body.
void ParseError(const std::string& body, std::string* code, std::string* message) {
  boost::system::error_code ec;
  json::value doc = json::parse(body, ec);
  *message = body;
  if (ec) return;
  const json::object* object = doc.if_object();
  if (object == nullptr) return;
  const json::value* error = object->if_contains("error");
  if (error == nullptr || !error->is_object()) return;
  if (const json::value* c = error->as_object().if_contains("code"); c && c->is_string()) {
    *code = std::string(c->as_string());
  }
  if (const json::value* m = error->as_object().if_contains("message"); m && m->is_string()) {
    *message = std::string(m->as_string());
  }
}

}  // namespace

std::string_view HttpReply::Header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (EqualsIgnoreCase(key, name)) return value;
  }
  return {};
}

Status ReplyToStatus(const HttpReply& reply) {
  if (reply.status >= 200 && reply.status < 300) return Status::OK();
  std::string code;
  std::string message;
  ParseError(reply.body, &code, &message);
  std::string text = "HTTP " + std::to_string(reply.status) + (code.empty() ? "" : " " + code) +
                     ": " + message;
  switch (reply.status) {
    case 404:
      return Status::NotFound(text);
    case 400:
    case 413:
      return Status::InvalidArgument(text);
    case 503:
      return Status::Busy(text);
    default:
      return Status::IOError(text);
  }
}

class HttpClient::Impl {
 public:
  Impl(std::string host, uint16_t port, std::chrono::milliseconds timeout)
      : host_(std::move(host)), port_(port), timeout_(timeout), stream_(io_context_) {}

  Result<HttpReply> Request(std::string_view method, std::string_view target,
                            std::string_view body, const Headers& headers) {
    bhttp::request<bhttp::string_body> req = NewRequest(method, target, headers);
    if (!body.empty() || method == "POST" || method == "PUT") {
      req.body().assign(body.data(), body.size());
    }
    req.prepare_payload();

    for (int attempt = 0;; ++attempt) {
      const bool reused = connected_ && requests_on_connection_ > 0;
      if (!connected_) RKV_RETURN_IF_ERROR(Connect());
      beast::error_code ec;
      HttpReply reply;
      Status s = RoundTrip(req, &reply, &ec);
      if (s.ok()) {
        ++requests_on_connection_;
        return reply;
      }
      Close();
      // A kept-alive connection the server closed meanwhile: retry once.
      const bool stale = ec == bhttp::error::end_of_stream || ec == asio::error::eof ||
                         ec == asio::error::connection_reset || ec == asio::error::broken_pipe;
      if (!(reused && stale && attempt == 0)) return s;
    }
  }

  Result<HttpReply> RequestToSink(std::string_view method, std::string_view target,
                                  const HttpClient::BodySink& sink, const Headers& headers) {
    bhttp::request<bhttp::string_body> req = NewRequest(method, target, headers);
    req.prepare_payload();
    if (!connected_) RKV_RETURN_IF_ERROR(Connect());

    beast::error_code ec;
    stream_.expires_after(timeout_);
    bhttp::async_write(stream_, req, [&](beast::error_code e, size_t) { ec = e; });
    Run();
    if (ec) return Failed(ec, "send");
    bhttp::response_parser<bhttp::buffer_body> parser;
    parser.body_limit(boost::none);
    parser.header_limit(1u << 20);
    stream_.expires_after(timeout_);
    bhttp::async_read_header(stream_, buffer_, parser, [&](beast::error_code e, size_t) { ec = e; });
    Run();
    if (ec) return Failed(ec, "receive");
    HttpReply reply;
    reply.status = static_cast<int>(parser.get().result_int());
    for (const auto& field : parser.get()) {
      reply.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
    }
    const bool success = reply.status >= 200 && reply.status < 300;
    // An error reply's body is a short JSON message; keep at most this much.
    constexpr size_t kMaxErrorBody = 64 * 1024;
    std::vector<char> piece(256 * 1024);
    while (!parser.is_done()) {
      parser.get().body().data = piece.data();
      parser.get().body().size = piece.size();
      stream_.expires_after(timeout_);
      bhttp::async_read(stream_, buffer_, parser, [&](beast::error_code e, size_t) { ec = e; });
      Run();
      if (ec == bhttp::error::need_buffer) ec = {};
      if (ec) return Failed(ec, "receive");
      const size_t n = piece.size() - parser.get().body().size;
      if (n == 0) continue;
      if (success) {
        Status s = sink(std::string_view(piece.data(), n));
        if (!s.ok()) {
          Close();
          return s;
        }
      } else if (reply.body.size() < kMaxErrorBody) {
        reply.body.append(piece.data(), std::min(n, kMaxErrorBody - reply.body.size()));
      }
    }
    ++requests_on_connection_;
    if (!parser.get().keep_alive()) Close();
    return reply;
  }

  void Close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.close();
    buffer_.clear();
    connected_ = false;
    requests_on_connection_ = 0;
  }

 private:
  // Runs the io_context until the pending operation completes (each one is
  // bounded by the stream's expiry).
  void Run() {
    io_context_.restart();
    io_context_.run();
  }

  Status Connect() {
    beast::error_code ec;
    tcp::resolver resolver(io_context_);
    auto endpoints = resolver.resolve(host_, std::to_string(port_), ec);
    if (ec) return Status::IOError("resolve " + host_ + ": " + ec.message());
    stream_.expires_after(timeout_);
    stream_.async_connect(endpoints, [&](beast::error_code e, const tcp::endpoint&) { ec = e; });
    Run();
    if (ec) {
      stream_.close();
      return Status::IOError("connect " + host_ + ":" + std::to_string(port_) + ": " +
                             ec.message());
    }
    beast::error_code opt_ec;
    stream_.socket().set_option(tcp::no_delay(true), opt_ec);
    connected_ = true;
    requests_on_connection_ = 0;
    return Status::OK();
  }

  // An HTTP/1.1 request to this host, without a body yet.
  bhttp::request<bhttp::string_body> NewRequest(std::string_view method, std::string_view target,
                                                const Headers& headers) const {
    bhttp::request<bhttp::string_body> req;
    req.method_string(beast::string_view(method.data(), method.size()));
    req.target(beast::string_view(target.data(), target.size()));
    req.version(11);
    req.set(bhttp::field::host, host_ + ":" + std::to_string(port_));
    for (const auto& [name, value] : headers) req.set(name, value);
    return req;
  }

  // Closes the connection after a failed exchange and says what failed.
  Status Failed(const beast::error_code& ec, std::string_view what) {
    Close();
    if (ec == beast::error::timeout) return Status::Timeout(std::string(what) + " timed out");
    return Status::IOError(std::string(what) + ": " + ec.message());
  }

  Status RoundTrip(bhttp::request<bhttp::string_body>& req, HttpReply* reply,
                   beast::error_code* error) {
    stream_.expires_after(timeout_);
    beast::error_code ec;
    bhttp::async_write(stream_, req, [&](beast::error_code e, size_t) { ec = e; });
    Run();
    if (ec) {
      *error = ec;
      return ec == beast::error::timeout ? Status::Timeout("request timed out")
                                         : Status::IOError("send: " + ec.message());
    }
    bhttp::response_parser<bhttp::string_body> parser;
    parser.body_limit(boost::none);
    parser.header_limit(1u << 20);
    stream_.expires_after(timeout_);
    bhttp::async_read(stream_, buffer_, parser, [&](beast::error_code e, size_t) { ec = e; });
    Run();
    if (ec) {
      *error = ec;
      return ec == beast::error::timeout ? Status::Timeout("reply timed out")
                                         : Status::IOError("receive: " + ec.message());
    }
    auto res = parser.release();
    reply->status = static_cast<int>(res.result_int());
    for (const auto& field : res) {
      reply->headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
    }
    reply->body = std::move(res.body());
    if (!res.keep_alive()) Close();
    return Status::OK();
  }

  std::string host_;
  uint16_t port_;
  std::chrono::milliseconds timeout_;
  asio::io_context io_context_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  bool connected_ = false;
  uint64_t requests_on_connection_ = 0;
};

HttpClient::HttpClient(std::string host, uint16_t port, std::chrono::milliseconds timeout)
    : impl_(std::make_unique<Impl>(std::move(host), port, timeout)) {}
HttpClient::~HttpClient() = default;

Result<HttpReply> HttpClient::Request(std::string_view method, std::string_view target,
                                      std::string_view body, const Headers& headers) {
  return impl_->Request(method, target, body, headers);
}

Result<HttpReply> HttpClient::RequestToSink(std::string_view method, std::string_view target,
                                            const BodySink& sink, const Headers& headers) {
  return impl_->RequestToSink(method, target, sink, headers);
}

void HttpClient::Close() { impl_->Close(); }

std::string HttpClient::KeyTarget(std::string_view key) {
  return "/" + boost::urls::encode(boost::urls::string_view(key.data(), key.size()),
                                   boost::urls::unreserved_chars);
}

Result<std::string> HttpClient::Get(std::string_view key, std::string_view consistency) {
  std::string target = KeyTarget(key);
  if (!consistency.empty()) target += "?consistency=" + std::string(consistency);
  auto reply = Request("GET", target);
  if (!reply.ok()) return reply.status();
  if (reply->status != 200) return ReplyToStatus(*reply);
  boost::system::error_code ec;
  json::value doc = json::parse(reply->body, ec);
  const json::object* object = ec ? nullptr : doc.if_object();
  const json::value* value = object ? object->if_contains("value") : nullptr;
  if (value == nullptr || !value->is_string()) {
    return Status::Corruption("malformed reply: " + reply->body.substr(0, 200));
  }
  return std::string(value->as_string());
}

Status HttpClient::Put(std::string_view key, std::string_view value) {
  json::object body;
  body["value"] = json::string_view(value.data(), value.size());
  auto reply = Request("POST", KeyTarget(key), json::serialize(body));
  if (!reply.ok()) return reply.status();
  return ReplyToStatus(*reply);
}

Status HttpClient::Delete(std::string_view key) {
  auto reply = Request("DELETE", KeyTarget(key));
  if (!reply.ok()) return reply.status();
  return ReplyToStatus(*reply);
}

}  // namespace rkv::client
