// Helpers for the transport tests: random messages of every type, a field by
// field comparison (raft::Message has no operator==), an inbox that tests
// wait on, a log capture, and raw POSIX sockets for playing a misbehaving
// peer.
#ifndef RKV_TESTS_UNIT_TRANSPORT_TRANSPORT_TEST_UTIL_H_
#define RKV_TESTS_UNIT_TRANSPORT_TRANSPORT_TEST_UTIL_H_

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "common/logging.h"
#include "common/random.h"
#include "raft/message.h"

namespace rkv::transport::test {

inline constexpr size_t kMessageTypes = std::variant_size_v<raft::MessageBody>;

// A message whose body is alternative `type` of raft::MessageBody, with
// random field values: ids, terms and indexes over the whole 64-bit range
// now and then, empty and non-empty data, valid configurations.
raft::Message RandomMessage(Random& rng, size_t type);
// Random bytes, `n` of them.
std::string RandomBytes(Random& rng, size_t n);

// Every field of both messages equal.
::testing::AssertionResult SameMessage(const raft::Message& a, const raft::Message& b);

raft::Message Heartbeat(NodeId from, NodeId to, uint64_t round);
raft::Message SnapshotChunk(NodeId from, NodeId to, uint64_t offset, std::string data);
// The heartbeat's read_round, or -1 for another message type.
int64_t RoundOf(const raft::Message& m);

// Collects delivered messages; tests wait on it with a timeout.
class Inbox {
 public:
  void Deliver(raft::Message m);
  // Waits until `done(messages so far)` holds. False on timeout.
  bool WaitUntil(const std::function<bool(const std::vector<raft::Message>&)>& done,
                 std::chrono::milliseconds timeout = std::chrono::seconds(20));
  bool WaitForCount(size_t n, std::chrono::milliseconds timeout = std::chrono::seconds(20));
  std::vector<raft::Message> Take();
  size_t size() const;

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<raft::Message> messages_;
};

// Captures log lines while alive (the sink is process-wide).
class LogCapture {
 public:
  LogCapture();
  ~LogCapture();
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;

  // Waits until `count` lines at `level` or above contain every one of `parts`.
  bool WaitForLine(std::vector<std::string> parts, size_t count = 1,
                   log::Level level = log::Level::kWarn,
                   std::chrono::milliseconds timeout = std::chrono::seconds(20));
  size_t CountLines(const std::vector<std::string>& parts,
                    log::Level level = log::Level::kWarn) const;
  std::string Dump() const;

 private:
  size_t CountLocked(const std::vector<std::string>& parts, log::Level level) const;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::pair<log::Level, std::string>> lines_;
};

// A port on 127.0.0.1 that was free a moment ago (bound, read, released).
uint16_t FreePort();

// A blocking TCP socket to 127.0.0.1:port, for sending raw bytes.
class RawClient {
 public:
  explicit RawClient(uint16_t port);
  ~RawClient();
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  bool connected() const { return fd_ >= 0; }
  bool SendAll(std::string_view bytes);
  // Reads until end of stream or an error (the other side closed the
  // connection). False if it is still open after `timeout`.
  bool WaitClosed(std::chrono::milliseconds timeout = std::chrono::seconds(20));

 private:
  int fd_ = -1;
};

// A listening socket on 127.0.0.1 that accepts only when told to, and reads
// only what the test asks for: a peer that is slow, or never reads at all.
class RawListener {
 public:
  RawListener();
  ~RawListener();
  RawListener(const RawListener&) = delete;
  RawListener& operator=(const RawListener&) = delete;

  uint16_t port() const { return port_; }
  // An accepted connection's fd, or -1 on timeout. Owned by the listener.
  int Accept(std::chrono::milliseconds timeout = std::chrono::seconds(20));
  // Reads exactly n bytes. False on end of stream, error or timeout.
  static bool ReadExactly(int fd, size_t n, std::string* out,
                          std::chrono::milliseconds timeout = std::chrono::seconds(20));

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
  std::vector<int> accepted_;
};

}  // namespace rkv::transport::test

#endif  // RKV_TESTS_UNIT_TRANSPORT_TRANSPORT_TEST_UTIL_H_
