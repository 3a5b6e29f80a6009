// HttpClient: a small blocking HTTP/1.1 client for the raft-kv API.
//
// One keep-alive connection, opened on first use and reopened once if the
// server closed it. Not thread-safe: use one client per thread.
//
//   rkv::client::HttpClient client("127.0.0.1", 8080);
//   Status s = client.Put("hello", "world");
//   Result<std::string> v = client.Get("hello");
#ifndef RKV_CLIENT_HTTP_CLIENT_H_
#define RKV_CLIENT_HTTP_CLIENT_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"
#include "common/status.h"

namespace rkv::client {

using Headers = std::vector<std::pair<std::string, std::string>>;

struct HttpReply {
  int status = 0;
  Headers headers;
  std::string body;

  // The value of header `name` (case-insensitive), or "" if absent.
  std::string_view Header(std::string_view name) const;
};

class HttpClient {
 public:
  // `timeout` bounds connecting and each request.
  HttpClient(std::string host, uint16_t port,
             std::chrono::milliseconds timeout = std::chrono::seconds(30));
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Sends one request and reads its reply. An error Status only for
  // transport failures (IOError, Timeout); any HTTP status is a reply.
  Result<HttpReply> Request(std::string_view method, std::string_view target,
                            std::string_view body = {}, const Headers& headers = {});

  // Receives the body of a reply piece by piece, as it arrives.
  using BodySink = std::function<Status(std::string_view piece)>;
  // Sends a request without a body and streams a 2xx reply's body to
  // `sink` instead of holding it (a backup can be larger than memory
  // should hold); any other reply's body is kept in HttpReply::body, as
  // Request keeps it. A sink error ends the transfer (the connection is
  // closed) and is returned as it is. Each read waits at most the timeout.
  Result<HttpReply> RequestToSink(std::string_view method, std::string_view target, const BodySink& sink,
                                  const Headers& headers = {});

  // The original API. Keys are percent-encoded into the path. Errors map
  // back from the reply: 404 -> NotFound, 400/413 -> InvalidArgument,
  // 503 -> Busy, others -> IOError; the message is the server's.
  Result<std::string> Get(std::string_view key, std::string_view consistency = {});
  Status Put(std::string_view key, std::string_view value);
  Status Delete(std::string_view key);

  // Closes the connection (the next request opens a new one).
  void Close();

  // Percent-encodes `key` as one path segment: "/" + encoded key.
  static std::string KeyTarget(std::string_view key);

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

// The Status an error reply stands for.
Status ReplyToStatus(const HttpReply& reply);

}  // namespace rkv::client

#endif  // RKV_CLIENT_HTTP_CLIENT_H_
