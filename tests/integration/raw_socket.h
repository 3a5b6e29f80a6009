// RawSocket: a plain TCP connection to a server on 127.0.0.1, for what the
// HTTP client will not do: send malformed or pipelined requests, stall
// mid-request, or queue a request at a stopped (SIGSTOP) server.
#ifndef RKV_TESTS_INTEGRATION_RAW_SOCKET_H_
#define RKV_TESTS_INTEGRATION_RAW_SOCKET_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cctype>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "client/http_client.h"

namespace rkv::test {

class RawSocket {
 public:
  // Sends and receives give up after `timeout_seconds`.
  explicit RawSocket(uint16_t port, int timeout_seconds = 10) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    timeval tv{timeout_seconds, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  }
  ~RawSocket() { Close(); }
  RawSocket(const RawSocket&) = delete;
  RawSocket& operator=(const RawSocket&) = delete;

  bool connected() const { return connected_; }

  // Returns once the kernel holds the bytes (the server need not be running).
  bool Send(std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  // Reads until the peer closes (or the receive timeout).
  std::string ReadUntilClose() {
    while (Fill()) {
    }
    return std::exchange(buffer_, {});
  }

  // Reads until `needle` has appeared `count` times (or close/timeout).
  std::string ReadUntil(std::string_view needle, size_t count) {
    while (Count(buffer_, needle) < count && Fill()) {
    }
    return std::exchange(buffer_, {});
  }

  // Reads one reply (status and body, by Content-Length); status 0 on a
  // closed connection or the receive timeout.
  client::HttpReply ReadReply() {
    client::HttpReply reply;
    size_t header_end;
    while ((header_end = buffer_.find("\r\n\r\n")) == std::string::npos) {
      if (!Fill()) return reply;
    }
    const std::string head = buffer_.substr(0, header_end);
    size_t length = 0;
    std::string lower = head;
    for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    if (size_t pos = lower.find("content-length:"); pos != std::string::npos) {
      length = std::stoul(head.substr(pos + 15));
    }
    while (buffer_.size() < header_end + 4 + length) {
      if (!Fill()) return reply;
    }
    if (head.rfind("HTTP/1.1 ", 0) == 0) reply.status = std::stoi(head.substr(9, 3));
    reply.body = buffer_.substr(header_end + 4, length);
    buffer_.erase(0, header_end + 4 + length);
    return reply;
  }

  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  static size_t Count(std::string_view text, std::string_view needle) {
    size_t count = 0;
    for (size_t pos = text.find(needle); pos != std::string_view::npos;
         pos = text.find(needle, pos + needle.size())) {
      ++count;
    }
    return count;
  }

 private:
  bool Fill() {
    char buf[4096];
    ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
    if (n <= 0) return false;
    buffer_.append(buf, static_cast<size_t>(n));
    return true;
  }

  int fd_ = -1;
  bool connected_ = false;
  std::string buffer_;
};

}  // namespace rkv::test

#endif  // RKV_TESTS_INTEGRATION_RAW_SOCKET_H_
