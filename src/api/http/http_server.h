// HttpServer: HTTP/1.1 on Boost.Beast, serving an HttpHandler.
//
// Keep-alive and pipelining (answered in order), header and body limits,
// idle and read timeouts and a connection cap come from HttpLimits. All
// network code lives in http_server.cc; this header has no Boost in it.
#ifndef RKV_API_HTTP_HTTP_SERVER_H_
#define RKV_API_HTTP_HTTP_SERVER_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "api/http/http_handler.h"
#include "common/host_port.h"
#include "common/status.h"

namespace rkv::http {

struct HttpServerOptions {
  HttpLimits limits;
  // Threads running the one io_context.
  int threads = 1;
  // How long Stop() waits for requests in flight to be answered.
  std::chrono::milliseconds stop_timeout{10'000};
};

class HttpServer {
 public:
  // `handler` must outlive the server.
  HttpServer(HttpHandler* handler, HttpServerOptions options);
  ~HttpServer();  // Stops if running.
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds "host:port" (port 0 picks a free port) and starts serving.
  // InvalidArgument for a malformed address, IOError if it cannot bind.
  Status Start(const std::string& address);

  // The bound port once started.
  uint16_t port() const;
  // The bound host as given to Start.
  const std::string& host() const;

  // Stops accepting, waits (up to stop_timeout) until requests in flight
  // are answered, then closes every connection. Idempotent.
  void Stop();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

using ::rkv::SplitHostPort;  // common/host_port.h

}  // namespace rkv::http

#endif  // RKV_API_HTTP_HTTP_SERVER_H_
