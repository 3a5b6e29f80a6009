#include "load.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <queue>
#include <thread>

#include "common/assert.h"
#include "common/host_port.h"
#include "common/random.h"
#include "http_response.h"
#include "key_chooser.h"
#include "requests.h"

namespace rkv::bench {
namespace {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;
using std::chrono::duration_cast;
using std::chrono::microseconds;
using std::chrono::nanoseconds;

std::atomic<bool> g_stop{false};

// How often a loop looks for timed-out requests and for a stop.
constexpr auto kScanInterval = std::chrono::milliseconds(10);
// Reconnect backoff: doubling from kFirstBackoff up to kMaxBackoff.
constexpr auto kFirstBackoff = std::chrono::milliseconds(10);
constexpr auto kMaxBackoff = std::chrono::milliseconds(1000);
// A connection that failed to connect this many times in a row gives up
// (about 45 s of trying): a run against a server that is gone ends.
constexpr int kMaxConnectFailures = 50;
// Tries per key during the preload, with a pause of 100 ms times the try.
constexpr int kMaxPreloadAttempts = 10;
constexpr uint64_t kTimerTag = UINT64_MAX;
constexpr size_t kReadBuffer = 64 * 1024;

TimePoint AddSeconds(TimePoint t, double seconds) {
  return t + duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

enum class ConnState {
  kDown,        // no socket
  kBackoff,     // waiting to connect again
  kConnecting,  // connect() in progress
  kIdle,        // connected, nothing to send yet
  kPaced,       // connected, waiting for its next slot
  kSending,     // request partly written
  kReceiving,   // request written, reading the reply
  kDone,        // connected or not, sends nothing more in this phase
};

enum class Failure { kClosed, kTimeout, kMalformed };

struct Conn {
  size_t index = 0;     // in the worker
  uint64_t global = 0;  // over all workers: spreads the pacing slots
  size_t endpoint = 0;
  int fd = -1;
  ConnState state = ConnState::kDown;
  bool ever_connected = false;
  int connect_failures = 0;
  TimePoint connect_deadline;
  uint32_t timer_generation = 0;

  // The request in flight.
  std::string out;
  size_t out_sent = 0;
  ResponseParser parser;
  Op op = Op::kWrite;
  uint64_t key = 0;
  TimePoint start;  // when it was due (its slot, or when it was sent)
  TimePoint deadline;
  bool measured = false;

  TimePoint next_slot;  // with a rate: when the next request is due

  // Preload: the key to write again after a failure.
  bool preload_retry = false;
  int preload_attempts = 0;
};

struct Timer {
  TimePoint when;
  size_t conn;
  uint32_t generation;
  bool operator>(const Timer& other) const { return when > other.when; }
};

enum class Phase { kPreload, kLoad };

// State shared by the workers of one run.
struct Shared {
  const BenchConfig* config = nullptr;
  std::vector<RequestBuilder> builders;  // one per endpoint
  const std::vector<Endpoint>* endpoints = nullptr;
  std::unique_ptr<KeyChooser> chooser;

  std::atomic<uint64_t> next_preload_key{0};
  std::atomic<uint64_t> preload_written{0};
  std::atomic<uint64_t> preload_retries{0};
  std::atomic<bool> preload_failed{false};
  std::mutex mu;
  std::string preload_error;  // guarded by mu

  TimePoint load_start;
  TimePoint measure_start;
  TimePoint measure_end;  // TimePoint::max() when measuring a number of requests
  std::atomic<uint64_t> tickets{0};  // measured requests handed out (by requests)

  void FailPreload(const std::string& why) {
    std::lock_guard<std::mutex> lock(mu);
    if (!preload_failed.exchange(true)) preload_error = why;
  }
};

class Worker {
 public:
  Worker(Shared* shared, int index) : shared_(shared), random_(Seed(shared->config->seed, index)) {}

  ~Worker() {
    for (Conn& c : conns_) CloseSocket(c);
    if (timer_fd_ >= 0) ::close(timer_fd_);
    if (epoll_fd_ >= 0) ::close(epoll_fd_);
  }

  Status Init(const std::vector<uint64_t>& globals) {
    epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd_ < 0) return Status::FromErrno(errno, "epoll_create1");
    timer_fd_ = ::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (timer_fd_ < 0) return Status::FromErrno(errno, "timerfd_create");
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kTimerTag;
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, timer_fd_, &ev) != 0) {
      return Status::FromErrno(errno, "epoll_ctl");
    }
    conns_.resize(globals.size());
    const size_t endpoints = shared_->endpoints->size();
    for (size_t i = 0; i < globals.size(); ++i) {
      conns_[i].index = i;
      conns_[i].global = globals[i];
      conns_[i].endpoint = static_cast<size_t>(globals[i] % endpoints);
    }
    buffer_ = std::make_unique<char[]>(kReadBuffer);
    return Status::OK();
  }

  void Run(Phase phase) {
    phase_ = phase;
    const BenchConfig& config = *shared_->config;
    by_requests_ = config.by_requests();
    timeout_ = duration_cast<Clock::duration>(std::chrono::duration<double>(config.timeout_s));
    if (config.rate > 0) {
      slot_interval_ = duration_cast<Clock::duration>(
          std::chrono::duration<double>(static_cast<double>(config.connections) / config.rate));
    }
    const TimePoint now = Clock::now();
    done_ = 0;
    for (Conn& c : conns_) {
      if (phase == Phase::kLoad && config.rate > 0) {
        c.next_slot = AddSeconds(shared_->load_start, static_cast<double>(c.global) / config.rate);
      }
      switch (c.state) {
        case ConnState::kDown:
          StartConnect(c, now);
          break;
        case ConnState::kDone:
        case ConnState::kIdle:
          c.state = ConnState::kIdle;
          if (c.fd >= 0) {
            Next(c, now);
          } else {
            StartConnect(c, now);
          }
          break;
        default:  // kBackoff and kConnecting go on
          break;
      }
    }
    Loop();
  }

  const RunStats& stats() const { return stats_; }
  TimePoint last_measured() const { return last_measured_; }

 private:
  static uint64_t Seed(uint64_t seed, int index) {
    return seed * uint64_t{0x9e3779b97f4a7c15} + static_cast<uint64_t>(index) + 1;
  }

  bool Finished(TimePoint now) const {
    if (g_stop.load(std::memory_order_relaxed)) return true;
    if (phase_ == Phase::kPreload && shared_->preload_failed.load(std::memory_order_relaxed)) {
      return true;
    }
    if (phase_ == Phase::kLoad && !by_requests_ && now >= shared_->measure_end) return true;
    return done_ == conns_.size();
  }

  void Loop() {
    std::array<epoll_event, 256> events;
    TimePoint next_scan = Clock::now() + kScanInterval;
    for (;;) {
      TimePoint now = Clock::now();
      if (Finished(now)) return;
      TimePoint wake = next_scan;
      while (!timers_.empty() && conns_[timers_.top().conn].timer_generation !=
                                     timers_.top().generation) {
        timers_.pop();  // superseded
      }
      if (!timers_.empty()) wake = std::min(wake, timers_.top().when);
      if (phase_ == Phase::kLoad && !by_requests_) wake = std::min(wake, shared_->measure_end);
      int wait_ms = -1;
      if (wake <= now) {
        wait_ms = 0;
      } else {
        ArmTimer(wake);
      }
      const int n = ::epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()), wait_ms);
      if (n < 0 && errno != EINTR) {
        std::fprintf(stderr, "raft-kv-bench: epoll_wait: %s\n", std::strerror(errno));
        std::abort();
      }
      for (int i = 0; i < n; ++i) {
        if (events[static_cast<size_t>(i)].data.u64 == kTimerTag) {
          uint64_t expirations;
          [[maybe_unused]] ssize_t r = ::read(timer_fd_, &expirations, sizeof expirations);
          armed_ = TimePoint::min();
          continue;
        }
        OnEvent(conns_[events[static_cast<size_t>(i)].data.u64], events[static_cast<size_t>(i)].events);
      }
      now = Clock::now();
      while (!timers_.empty() && timers_.top().when <= now) {
        const Timer t = timers_.top();
        timers_.pop();
        Conn& c = conns_[t.conn];
        if (c.timer_generation != t.generation) continue;
        ++c.timer_generation;
        if (c.state == ConnState::kBackoff) {
          StartConnect(c, now);
        } else if (c.state == ConnState::kPaced) {
          c.state = ConnState::kIdle;
          Next(c, now);
        }
      }
      if (now >= next_scan) {
        ScanTimeouts(now);
        next_scan = now + kScanInterval;
      }
    }
  }

  void ArmTimer(TimePoint when) {
    if (when == armed_) return;
    const auto ns = duration_cast<nanoseconds>(when.time_since_epoch()).count();
    itimerspec spec{};
    spec.it_value.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
    spec.it_value.tv_nsec = static_cast<long>(ns % 1'000'000'000);
    if (spec.it_value.tv_sec == 0 && spec.it_value.tv_nsec == 0) spec.it_value.tv_nsec = 1;
    if (::timerfd_settime(timer_fd_, TFD_TIMER_ABSTIME, &spec, nullptr) != 0) {
      std::fprintf(stderr, "raft-kv-bench: timerfd_settime: %s\n", std::strerror(errno));
      std::abort();
    }
    armed_ = when;
  }

  void Schedule(Conn& c, TimePoint when) {
    ++c.timer_generation;
    timers_.push(Timer{when, c.index, c.timer_generation});
  }

  void SetDone(Conn& c) {
    if (c.state != ConnState::kDone) {
      c.state = ConnState::kDone;
      ++done_;
    }
  }

  // ------------------------------------------------------------ sockets

  void CloseSocket(Conn& c) {
    if (c.fd >= 0) ::close(c.fd);
    c.fd = -1;
  }

  void StartConnect(Conn& c, TimePoint now) {
    CloseSocket(c);
    const Endpoint& e = (*shared_->endpoints)[c.endpoint];
    const int fd = ::socket(e.address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      ConnectFailed(c, now, errno);
      return;
    }
    c.fd = fd;
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.u64 = c.index;
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
      ConnectFailed(c, now, errno);
      return;
    }
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&e.address), e.address_length) == 0) {
      Connected(c, now);
      return;
    }
    if (errno != EINPROGRESS) {
      ConnectFailed(c, now, errno);
      return;
    }
    c.state = ConnState::kConnecting;
    c.connect_deadline = now + timeout_;
  }

  void FinishConnect(Conn& c, TimePoint now) {
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    if (err != 0) {
      ConnectFailed(c, now, err);
      return;
    }
    Connected(c, now);
  }

  void Connected(Conn& c, TimePoint now) {
    ++stats_.connections.opened;
    c.ever_connected = true;
    c.connect_failures = 0;
    c.state = ConnState::kIdle;
    Next(c, now);
  }

  void ConnectFailed(Conn& c, TimePoint now, int err) {
    CloseSocket(c);
    ++stats_.connections.connect_errors;
    const std::string& endpoint = (*shared_->endpoints)[c.endpoint].text;
    NoteError(fmt::format("connect to {}: {}", endpoint, std::strerror(err)));
    if (++c.connect_failures >= kMaxConnectFailures) {
      if (phase_ == Phase::kPreload) {
        shared_->FailPreload(fmt::format("cannot connect to {}: {}", endpoint, std::strerror(err)));
      }
      SetDone(c);
      return;
    }
    auto backoff = kFirstBackoff * (1 << std::min(c.connect_failures - 1, 7));
    c.state = ConnState::kBackoff;
    Schedule(c, now + std::min<Clock::duration>(backoff, kMaxBackoff));
  }

  // Opens the connection again after a close (no request is outstanding).
  void Reopen(Conn& c, TimePoint now) {
    ++stats_.connections.reconnects;
    StartConnect(c, now);
  }

  // --------------------------------------------------------- requests

  // The connection is connected and idle: send what comes next, or wait.
  void Next(Conn& c, TimePoint now) {
    const BenchConfig& config = *shared_->config;
    if (phase_ == Phase::kPreload) {
      if (!c.preload_retry) {
        const uint64_t key = shared_->next_preload_key.fetch_add(1, std::memory_order_relaxed);
        if (key >= config.keys) {
          SetDone(c);
          return;
        }
        c.key = key;
        c.preload_attempts = 0;
      }
      c.preload_retry = false;
      Send(c, Op::kWrite, c.key, now, false, now);
      return;
    }
    TimePoint due = now;
    if (config.rate > 0) {
      if (c.next_slot > now) {
        c.state = ConnState::kPaced;
        Schedule(c, c.next_slot);
        return;
      }
      due = c.next_slot;
      c.next_slot += slot_interval_;
    }
    if (!by_requests_ && due >= shared_->measure_end) {
      SetDone(c);
      return;
    }
    const bool measured = due >= shared_->measure_start;
    if (measured && by_requests_ &&
        shared_->tickets.fetch_add(1, std::memory_order_relaxed) >= config.requests) {
      SetDone(c);
      return;
    }
    const Op op = config.read_ratio > 0 && random_.Chance(config.read_ratio) ? Op::kRead : Op::kWrite;
    Send(c, op, shared_->chooser->Next(random_), due, measured, now);
  }

  void Send(Conn& c, Op op, uint64_t key, TimePoint due, bool measured, TimePoint now) {
    shared_->builders[c.endpoint].Build(op, key, &c.out);
    c.out_sent = 0;
    c.parser.Reset();
    c.op = op;
    c.key = key;
    c.start = due;
    c.measured = measured;
    c.deadline = now + timeout_;
    c.state = ConnState::kSending;
    WriteSome(c, now);
  }

  void WriteSome(Conn& c, TimePoint now) {
    while (c.out_sent < c.out.size()) {
      const ssize_t n = ::send(c.fd, c.out.data() + c.out_sent, c.out.size() - c.out_sent,
                               MSG_NOSIGNAL);
      if (n > 0) {
        c.out_sent += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;  // EPOLLOUT resumes
      Failed(c, now, Failure::kClosed, fmt::format("send: {}", std::strerror(errno)));
      return;
    }
    c.state = ConnState::kReceiving;
  }

  void OnEvent(Conn& c, uint32_t events) {
    const TimePoint now = Clock::now();
    switch (c.state) {
      case ConnState::kConnecting:
        if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) FinishConnect(c, now);
        return;
      case ConnState::kSending:
        if (events & (EPOLLERR | EPOLLHUP)) {
          Failed(c, now, Failure::kClosed, "connection reset while sending");
          return;
        }
        if (events & EPOLLOUT) WriteSome(c, now);
        // A reply may have come before the request was all sent (a 413);
        // with edge-triggered events it must be read now.
        if (c.state == ConnState::kReceiving && (events & (EPOLLIN | EPOLLRDHUP))) {
          ReadSome(c, now, events);
        }
        return;
      case ConnState::kReceiving:
        if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) ReadSome(c, now, events);
        return;
      case ConnState::kIdle:
      case ConnState::kPaced:
      case ConnState::kDone:
        if (c.fd >= 0 && (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) {
          OnIdleInput(c, now);
        }
        return;
      default:
        return;
    }
  }

  // Input with no request outstanding: the server closed the connection
  // (an idle timeout), or sent bytes nobody asked for. Either way the
  // connection is opened again.
  void OnIdleInput(Conn& c, TimePoint now) {
    const ssize_t n = ::read(c.fd, buffer_.get(), kReadBuffer);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    if (n > 0) {
      ++stats_.connections.unsolicited;
    } else {
      ++stats_.connections.server_closed;
    }
    const bool was_done = c.state == ConnState::kDone;
    const bool was_paced = c.state == ConnState::kPaced;
    CloseSocket(c);
    if (was_done) return;  // it sends nothing more anyway
    if (was_paced) ++c.timer_generation;
    c.state = ConnState::kDown;
    Reopen(c, now);
  }

  void ReadSome(Conn& c, TimePoint now, uint32_t events) {
    for (;;) {
      const ssize_t n = ::read(c.fd, buffer_.get(), kReadBuffer);
      if (n > 0) {
        const size_t got = static_cast<size_t>(n);
        const size_t used = c.parser.Feed(std::string_view(buffer_.get(), got));
        if (c.parser.state() == ResponseParser::State::kError) {
          Failed(c, now, Failure::kMalformed, "malformed reply: " + c.parser.error());
          return;
        }
        if (c.parser.state() == ResponseParser::State::kComplete) {
          const bool extra = used < got;
          if (extra) ++stats_.connections.unsolicited;
          Replied(c, Clock::now(), !extra && (events & EPOLLRDHUP) == 0);
          return;
        }
        if (got < kReadBuffer) return;  // drained; the next edge brings more
        continue;
      }
      if (n == 0) {
        c.parser.FeedEof();
        if (c.parser.state() == ResponseParser::State::kComplete) {
          Replied(c, Clock::now(), false);
        } else {
          Failed(c, now, Failure::kClosed, c.parser.error());
        }
        return;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      Failed(c, now, Failure::kClosed, fmt::format("receive: {}", std::strerror(errno)));
      return;
    }
  }

  // Whether a reply or failure at `now` of the request on `c` is counted.
  bool Counted(const Conn& c, TimePoint now) const {
    return phase_ == Phase::kLoad && c.measured && now <= shared_->measure_end;
  }

  void NoteError(std::string text) {
    if (stats_.first_error.empty()) stats_.first_error = std::move(text);
  }

  // A complete reply arrived; `reusable`: the connection may carry the next.
  void Replied(Conn& c, TimePoint now, bool reusable) {
    const int status = c.parser.status();
    const bool ok = RequestBuilder::IsSuccess(c.op, status);
    if (!ok) {
      NoteError(fmt::format("{} {}: HTTP {} {}", OpName(c.op), KeyName(c), status,
                            c.parser.body_prefix()));
    }
    if (phase_ == Phase::kPreload) {
      if (ok) {
        shared_->preload_written.fetch_add(1, std::memory_order_relaxed);
      } else {
        PreloadRetry(c, fmt::format("HTTP {} {}", status, c.parser.body_prefix()));
      }
    } else {
      ++stats_.finished_all;
      if (Counted(c, now)) {
        OpStats& s = c.op == Op::kRead ? stats_.read : stats_.write;
        if (ok) {
          ++s.ok;
          if (status == 404) ++s.not_found;
          const auto us = duration_cast<microseconds>(now - c.start).count();
          s.latency.Record(static_cast<uint64_t>(std::max<int64_t>(0, us)));
          last_measured_ = std::max(last_measured_, now);
        } else {
          ++s.errors.status[status];
          last_measured_ = std::max(last_measured_, now);
        }
      }
    }
    if (c.state == ConnState::kDone) {  // the preload failed on this key
      CloseSocket(c);
      return;
    }
    if (!reusable || !c.parser.keep_alive()) {
      CloseSocket(c);
      c.state = ConnState::kDown;
      if (c.preload_retry) {
        // Reconnect after the pause PreloadRetry chose.
        c.state = ConnState::kBackoff;
        return;
      }
      Reopen(c, now);
      return;
    }
    c.state = ConnState::kIdle;
    if (c.preload_retry) {
      c.state = ConnState::kPaced;  // PreloadRetry scheduled the retry
      return;
    }
    Next(c, now);
  }

  // The request on `c` failed without a (valid) reply.
  void Failed(Conn& c, TimePoint now, Failure failure, const std::string& why) {
    NoteError(fmt::format("{} {}: {}", OpName(c.op), KeyName(c), why));
    if (phase_ == Phase::kPreload) {
      PreloadRetry(c, why);
    } else {
      ++stats_.finished_all;
      if (Counted(c, now)) {
        OpStats& s = c.op == Op::kRead ? stats_.read : stats_.write;
        switch (failure) {
          case Failure::kClosed:
            ++s.errors.closed;
            break;
          case Failure::kTimeout:
            ++s.errors.timeout;
            break;
          case Failure::kMalformed:
            ++s.errors.malformed;
            break;
        }
        last_measured_ = std::max(last_measured_, now);
      }
    }
    CloseSocket(c);
    if (c.state == ConnState::kDone) return;  // the preload failed on this key
    c.state = ConnState::kDown;
    if (c.preload_retry) {
      c.state = ConnState::kBackoff;  // PreloadRetry scheduled the reconnect
      return;
    }
    Reopen(c, now);
  }

  // Sends the preload write of c.key again after a pause, or fails the
  // preload once it has been tried kMaxPreloadAttempts times.
  void PreloadRetry(Conn& c, const std::string& why) {
    if (++c.preload_attempts >= kMaxPreloadAttempts) {
      shared_->FailPreload(fmt::format("{} failed {} times, last: {}", KeyName(c),
                                       c.preload_attempts, why));
      SetDone(c);
      return;
    }
    shared_->preload_retries.fetch_add(1, std::memory_order_relaxed);
    c.preload_retry = true;
    Schedule(c, Clock::now() + std::chrono::milliseconds(100) * c.preload_attempts);
  }

  std::string KeyName(const Conn& c) const {
    return shared_->builders[c.endpoint].KeyName(c.key);
  }

  void ScanTimeouts(TimePoint now) {
    for (Conn& c : conns_) {
      if ((c.state == ConnState::kSending || c.state == ConnState::kReceiving) &&
          now >= c.deadline) {
        Failed(c, now, Failure::kTimeout,
               fmt::format("no reply in {:g} s", shared_->config->timeout_s));
      } else if (c.state == ConnState::kConnecting && now >= c.connect_deadline) {
        ConnectFailed(c, now, ETIMEDOUT);
      }
    }
  }

  Shared* shared_;
  Random random_;
  Phase phase_ = Phase::kLoad;
  bool by_requests_ = false;
  Clock::duration timeout_{};
  Clock::duration slot_interval_{};
  int epoll_fd_ = -1;
  int timer_fd_ = -1;
  TimePoint armed_ = TimePoint::min();
  std::vector<Conn> conns_;
  size_t done_ = 0;
  std::priority_queue<Timer, std::vector<Timer>, std::greater<Timer>> timers_;
  std::unique_ptr<char[]> buffer_;
  RunStats stats_;
  TimePoint last_measured_ = TimePoint::min();
};

// Runs `phase` on every worker, one thread each (the calling thread runs
// the first).
void RunPhase(std::vector<std::unique_ptr<Worker>>& workers, Phase phase) {
  std::vector<std::thread> threads;
  for (size_t i = 1; i < workers.size(); ++i) {
    threads.emplace_back([&workers, i, phase] { workers[i]->Run(phase); });
  }
  workers[0]->Run(phase);
  for (auto& t : threads) t.join();
}

}  // namespace

void StopLoad() { g_stop.store(true, std::memory_order_relaxed); }

Result<std::vector<Endpoint>> ResolveEndpoints(const std::vector<std::string>& endpoints) {
  std::vector<Endpoint> out;
  if (endpoints.empty()) return Status::InvalidArgument("no endpoint");
  for (const std::string& text : endpoints) {
    std::string host;
    uint16_t port = 0;
    if (!SplitHostPort(text, &host, &port) || port == 0) {
      return Status::InvalidArgument("bad endpoint '" + text + "' (want host:port)");
    }
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* result = nullptr;
    const int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &result);
    if (rc != 0 || result == nullptr) {
      return Status::InvalidArgument("cannot resolve '" + host + "': " + ::gai_strerror(rc));
    }
    Endpoint e;
    e.text = text;
    std::memcpy(&e.address, result->ai_addr, result->ai_addrlen);
    e.address_length = result->ai_addrlen;
    ::freeaddrinfo(result);
    out.push_back(std::move(e));
  }
  return out;
}

Result<LoadResult> RunLoad(const BenchConfig& config, const std::vector<Endpoint>& endpoints) {
  Shared shared;
  shared.config = &config;
  shared.endpoints = &endpoints;
  for (const Endpoint& e : endpoints) {
    RequestOptions options;
    options.api = config.api;
    options.host = e.text;
    options.key_prefix = config.key_prefix;
    options.key_width = config.key_width;
    options.value_size = config.value_size;
    options.consistency = config.consistency;
    RKV_ASSIGN_OR_RETURN(RequestBuilder builder, RequestBuilder::Create(options));
    shared.builders.push_back(std::move(builder));
  }
  shared.chooser = std::make_unique<KeyChooser>(config.distribution, config.keys, config.zipf_theta);

  const int threads = std::clamp(config.threads, 1, config.connections);
  std::vector<std::unique_ptr<Worker>> workers;
  for (int t = 0; t < threads; ++t) {
    std::vector<uint64_t> globals;
    for (int i = t; i < config.connections; i += threads) globals.push_back(static_cast<uint64_t>(i));
    workers.push_back(std::make_unique<Worker>(&shared, t));
    RKV_RETURN_IF_ERROR(workers.back()->Init(globals));
  }

  LoadResult result;
  if (config.preload) {
    const TimePoint start = Clock::now();
    RunPhase(workers, Phase::kPreload);
    result.preload.ran = true;
    result.preload.seconds = Seconds(Clock::now() - start);
    result.preload.keys = shared.preload_written.load();
    result.preload.retries = shared.preload_retries.load();
    result.preload.ok = !shared.preload_failed.load() && !g_stop.load() &&
                        result.preload.keys >= config.keys;
    if (shared.preload_failed.load()) {
      std::lock_guard<std::mutex> lock(shared.mu);
      result.preload.error = shared.preload_error;
    } else if (g_stop.load()) {
      result.preload.error = "interrupted";
    }
    for (auto& w : workers) result.stats.connections.Merge(w->stats().connections);
    if (!result.preload.ok || config.preload_only()) {
      result.interrupted = g_stop.load();
      return result;
    }
  }

  shared.load_start = Clock::now();
  shared.measure_start = AddSeconds(shared.load_start, config.warmup_s);
  shared.measure_end = config.by_requests() ? TimePoint::max()
                                            : AddSeconds(shared.measure_start, config.duration_s);
  // The workers' connection counts cover the preload too: start over.
  result.stats = RunStats();
  RunPhase(workers, Phase::kLoad);
  const TimePoint end = Clock::now();
  TimePoint last = TimePoint::min();
  for (auto& w : workers) {
    result.stats.Merge(w->stats());
    last = std::max(last, w->last_measured());
  }
  result.interrupted = g_stop.load();
  if (config.by_requests()) {
    result.elapsed_s = last > shared.measure_start ? Seconds(last - shared.measure_start) : 0.0;
  } else if (result.interrupted) {
    result.elapsed_s = end > shared.measure_start
                           ? Seconds(std::min(end, shared.measure_end) - shared.measure_start)
                           : 0.0;
  } else {
    result.elapsed_s = config.duration_s;
  }
  return result;
}

}  // namespace rkv::bench
