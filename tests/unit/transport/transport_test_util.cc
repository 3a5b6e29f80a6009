#include "transport_test_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <limits>
#include <utility>

namespace rkv::transport::test {

namespace {

// Small values most of the time, the extremes now and then: varints of
// every length get exercised.
uint64_t RandomU64(Random& rng) {
  switch (rng.Uniform(4)) {
    case 0:
      return rng.Uniform(128);
    case 1:
      return rng.Uniform(1u << 20);
    case 2:
      return rng.OneIn(2) ? std::numeric_limits<uint64_t>::max() : 0;
    default:
      return rng.Next();
  }
}

NodeId RandomNode(Random& rng) { return NodeId{1 + rng.Uniform(rng.OneIn(4) ? ~uint64_t{0} - 1 : 9)}; }

raft::Configuration RandomConfiguration(Random& rng) {
  // Distinct ids, then split into voters and learners; both lists sorted.
  std::vector<uint64_t> ids;
  const size_t n = rng.Uniform(7);
  while (ids.size() < n) {
    const uint64_t id = 1 + rng.Uniform(rng.OneIn(3) ? ~uint64_t{0} - 1 : 20);
    if (std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(id);
  }
  raft::Configuration c;
  for (uint64_t id : ids) (rng.OneIn(3) ? c.learners : c.voters).push_back(NodeId{id});
  std::sort(c.voters.begin(), c.voters.end());
  std::sort(c.learners.begin(), c.learners.end());
  return c;
}

size_t RandomSize(Random& rng) {
  switch (rng.Uniform(4)) {
    case 0:
      return 0;
    case 1:
      return rng.Uniform(16);
    case 2:
      return rng.Uniform(300);  // crosses the one-byte varint boundary
    default:
      return rng.Uniform(5000);
  }
}

}  // namespace

std::string RandomBytes(Random& rng, size_t n) {
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng.Uniform(256));
  return s;
}

raft::Message RandomMessage(Random& rng, size_t type) {
  raft::Message m;
  m.from = RandomNode(rng);
  m.to = RandomNode(rng);
  m.term = Term{RandomU64(rng)};
  switch (type) {
    case 0: {
      raft::RequestVoteRequest r;
      r.last_log_index = LogIndex{RandomU64(rng)};
      r.last_log_term = Term{RandomU64(rng)};
      r.pre_vote = rng.OneIn(2);
      r.leadership_transfer = rng.OneIn(2);
      m.body = r;
      break;
    }
    case 1: {
      raft::RequestVoteResponse r;
      r.vote_granted = rng.OneIn(2);
      r.pre_vote = rng.OneIn(2);
      m.body = r;
      break;
    }
    case 2: {
      raft::AppendEntriesRequest r;
      r.prev_log_index = LogIndex{RandomU64(rng)};
      r.prev_log_term = Term{RandomU64(rng)};
      r.leader_commit = LogIndex{RandomU64(rng)};
      const size_t n = rng.Uniform(6);
      for (size_t i = 0; i < n; ++i) {
        raft::Entry e;
        e.term = Term{RandomU64(rng)};
        e.index = LogIndex{RandomU64(rng)};
        e.type = rng.OneIn(4) ? raft::EntryType::kConfChange : raft::EntryType::kNormal;
        e.data = RandomBytes(rng, RandomSize(rng));
        r.entries.push_back(std::move(e));
      }
      m.body = std::move(r);
      break;
    }
    case 3: {
      raft::AppendEntriesResponse r;
      r.success = rng.OneIn(2);
      r.match_index = LogIndex{RandomU64(rng)};
      r.rejected_index = LogIndex{RandomU64(rng)};
      r.conflict_term = Term{RandomU64(rng)};
      r.conflict_index = LogIndex{RandomU64(rng)};
      m.body = r;
      break;
    }
    case 4: {
      raft::HeartbeatRequest r;
      r.leader_commit = LogIndex{RandomU64(rng)};
      r.read_round = RandomU64(rng);
      m.body = r;
      break;
    }
    case 5: {
      raft::HeartbeatResponse r;
      r.read_round = RandomU64(rng);
      m.body = r;
      break;
    }
    case 6: {
      raft::InstallSnapshotRequest r;
      r.metadata.last_index = LogIndex{RandomU64(rng)};
      r.metadata.last_term = Term{RandomU64(rng)};
      r.metadata.configuration = RandomConfiguration(rng);
      r.offset = RandomU64(rng);
      r.data = RandomBytes(rng, RandomSize(rng));
      r.done = rng.OneIn(2);
      m.body = std::move(r);
      break;
    }
    case 7: {
      raft::InstallSnapshotResponse r;
      r.snapshot_index = LogIndex{RandomU64(rng)};
      r.next_offset = RandomU64(rng);
      r.done = rng.OneIn(2);
      r.match_index = LogIndex{RandomU64(rng)};
      m.body = r;
      break;
    }
    case 8:
      m.body = raft::TimeoutNowRequest{};
      break;
    case 9: {
      raft::ReadIndexRequest r;
      r.request_id = RandomU64(rng);
      m.body = r;
      break;
    }
    case 10: {
      raft::ReadIndexResponse r;
      r.request_id = RandomU64(rng);
      r.index = LogIndex{RandomU64(rng)};
      m.body = r;
      break;
    }
    case 11: {
      raft::ProposeRequest r;
      const size_t n = rng.Uniform(4);
      for (size_t i = 0; i < n; ++i) r.commands.push_back(std::string(rng.Uniform(40), 'p'));
      m.body = r;
      break;
    }
    default:
      ADD_FAILURE() << "no message type " << type;
  }
  return m;
}

namespace {

struct SameBody {
  // Each returns a description of the first difference, or "".
  template <typename T>
  std::string operator()(const T& a, const raft::MessageBody& other) const {
    const T* b = std::get_if<T>(&other);
    if (b == nullptr) return "different types";
    return Compare(a, *b);
  }

#define RKV_FIELD(f) \
  if (!(a.f == b.f)) return "field " #f " differs"
  static std::string Compare(const raft::RequestVoteRequest& a, const raft::RequestVoteRequest& b) {
    RKV_FIELD(last_log_index);
    RKV_FIELD(last_log_term);
    RKV_FIELD(pre_vote);
    RKV_FIELD(leadership_transfer);
    return {};
  }
  static std::string Compare(const raft::RequestVoteResponse& a,
                             const raft::RequestVoteResponse& b) {
    RKV_FIELD(vote_granted);
    RKV_FIELD(pre_vote);
    return {};
  }
  static std::string Compare(const raft::AppendEntriesRequest& a,
                             const raft::AppendEntriesRequest& b) {
    RKV_FIELD(prev_log_index);
    RKV_FIELD(prev_log_term);
    RKV_FIELD(leader_commit);
    RKV_FIELD(entries);  // Entry has operator==: term, index, type, data
    return {};
  }
  static std::string Compare(const raft::AppendEntriesResponse& a,
                             const raft::AppendEntriesResponse& b) {
    RKV_FIELD(success);
    RKV_FIELD(match_index);
    RKV_FIELD(rejected_index);
    RKV_FIELD(conflict_term);
    RKV_FIELD(conflict_index);
    return {};
  }
  static std::string Compare(const raft::HeartbeatRequest& a, const raft::HeartbeatRequest& b) {
    RKV_FIELD(leader_commit);
    RKV_FIELD(read_round);
    return {};
  }
  static std::string Compare(const raft::HeartbeatResponse& a, const raft::HeartbeatResponse& b) {
    RKV_FIELD(read_round);
    return {};
  }
  static std::string Compare(const raft::InstallSnapshotRequest& a,
                             const raft::InstallSnapshotRequest& b) {
    RKV_FIELD(metadata);  // last index, last term, configuration
    RKV_FIELD(offset);
    RKV_FIELD(data);
    RKV_FIELD(done);
    return {};
  }
  static std::string Compare(const raft::InstallSnapshotResponse& a,
                             const raft::InstallSnapshotResponse& b) {
    RKV_FIELD(snapshot_index);
    RKV_FIELD(next_offset);
    RKV_FIELD(done);
    RKV_FIELD(match_index);
    return {};
  }
  static std::string Compare(const raft::TimeoutNowRequest&, const raft::TimeoutNowRequest&) {
    return {};
  }
  static std::string Compare(const raft::ReadIndexRequest& a, const raft::ReadIndexRequest& b) {
    RKV_FIELD(request_id);
    return {};
  }
  static std::string Compare(const raft::ReadIndexResponse& a, const raft::ReadIndexResponse& b) {
    RKV_FIELD(request_id);
    RKV_FIELD(index);
    return {};
  }
  static std::string Compare(const raft::ProposeRequest& a, const raft::ProposeRequest& b) {
    RKV_FIELD(commands);
    return {};
  }
#undef RKV_FIELD
};

}  // namespace

::testing::AssertionResult SameMessage(const raft::Message& a, const raft::Message& b) {
  std::string diff;
  if (a.from != b.from) {
    diff = "from differs";
  } else if (a.to != b.to) {
    diff = "to differs";
  } else if (a.term != b.term) {
    diff = "term differs";
  } else {
    diff = std::visit([&](const auto& body) { return SameBody{}(body, b.body); }, a.body);
  }
  if (diff.empty()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << diff << ": " << raft::DescribeMessage(a) << " vs "
                                       << raft::DescribeMessage(b);
}

raft::Message Heartbeat(NodeId from, NodeId to, uint64_t round) {
  raft::Message m;
  m.from = from;
  m.to = to;
  m.term = Term{7};
  m.body = raft::HeartbeatRequest{LogIndex{3}, round};
  return m;
}

raft::Message SnapshotChunk(NodeId from, NodeId to, uint64_t offset, std::string data) {
  raft::Message m;
  m.from = from;
  m.to = to;
  m.term = Term{7};
  raft::InstallSnapshotRequest r;
  r.metadata.last_index = LogIndex{1000};
  r.metadata.last_term = Term{6};
  r.metadata.configuration.voters = {NodeId{1}, NodeId{2}, NodeId{3}};
  r.offset = offset;
  r.data = std::move(data);
  r.done = false;
  m.body = std::move(r);
  return m;
}

int64_t RoundOf(const raft::Message& m) {
  const auto* h = std::get_if<raft::HeartbeatRequest>(&m.body);
  return h == nullptr ? -1 : static_cast<int64_t>(h->read_round);
}

// ---- Inbox. ----

void Inbox::Deliver(raft::Message m) {
  std::lock_guard lock(mu_);
  messages_.push_back(std::move(m));
  cv_.notify_all();
}

bool Inbox::WaitUntil(const std::function<bool(const std::vector<raft::Message>&)>& done,
                      std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return done(messages_); });
}

bool Inbox::WaitForCount(size_t n, std::chrono::milliseconds timeout) {
  return WaitUntil([n](const std::vector<raft::Message>& got) { return got.size() >= n; }, timeout);
}

std::vector<raft::Message> Inbox::Take() {
  std::lock_guard lock(mu_);
  return std::exchange(messages_, {});
}

size_t Inbox::size() const {
  std::lock_guard lock(mu_);
  return messages_.size();
}

// ---- LogCapture. ----

LogCapture::LogCapture() {
  log::SetSink([this](log::Level level, std::string_view line) {
    std::lock_guard lock(mu_);
    lines_.emplace_back(level, std::string(line));
    cv_.notify_all();
  });
}

LogCapture::~LogCapture() { log::SetSink({}); }

size_t LogCapture::CountLocked(const std::vector<std::string>& parts, log::Level level) const {
  size_t n = 0;
  for (const auto& [line_level, line] : lines_) {
    if (static_cast<int>(line_level) < static_cast<int>(level)) continue;
    bool all = true;
    for (const std::string& part : parts) all = all && line.find(part) != std::string::npos;
    if (all) ++n;
  }
  return n;
}

bool LogCapture::WaitForLine(std::vector<std::string> parts, size_t count, log::Level level,
                             std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return CountLocked(parts, level) >= count; });
}

size_t LogCapture::CountLines(const std::vector<std::string>& parts, log::Level level) const {
  std::lock_guard lock(mu_);
  return CountLocked(parts, level);
}

std::string LogCapture::Dump() const {
  std::lock_guard lock(mu_);
  std::string out;
  for (const auto& [level, line] : lines_) out += line + "\n";
  return out;
}

// ---- Raw sockets. ----

namespace {

int RemainingMs(std::chrono::steady_clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  return static_cast<int>(std::max<int64_t>(0, left.count()));
}

}  // namespace

uint16_t FreePort() {
  RawListener listener;
  return listener.port();
}

RawClient::RawClient(uint16_t port) {
  fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd_ < 0) return;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

RawClient::~RawClient() {
  if (fd_ >= 0) ::close(fd_);
}

bool RawClient::SendAll(std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

bool RawClient::WaitClosed(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  char buf[4096];
  for (;;) {
    pollfd p{fd_, POLLIN, 0};
    const int ready = ::poll(&p, 1, RemainingMs(deadline));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) return false;  // still open at the deadline
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return true;  // end of stream or reset
  }
}

RawListener::RawListener() {
  fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = 0;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(fd_, 16) != 0 || ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ADD_FAILURE() << "cannot listen: errno " << errno;
    return;
  }
  port_ = ntohs(addr.sin_port);
}

RawListener::~RawListener() {
  for (int fd : accepted_) ::close(fd);
  if (fd_ >= 0) ::close(fd_);
}

int RawListener::Accept(std::chrono::milliseconds timeout) {
  pollfd p{fd_, POLLIN, 0};
  const int ready = ::poll(&p, 1, static_cast<int>(timeout.count()));
  if (ready <= 0) return -1;
  const int fd = ::accept(fd_, nullptr, nullptr);
  if (fd >= 0) accepted_.push_back(fd);
  return fd;
}

bool RawListener::ReadExactly(int fd, size_t n, std::string* out,
                              std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  out->clear();
  out->reserve(n);
  char buf[64 << 10];
  while (out->size() < n) {
    pollfd p{fd, POLLIN, 0};
    const int ready = ::poll(&p, 1, RemainingMs(deadline));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) return false;
    const ssize_t got = ::recv(fd, buf, std::min(sizeof buf, n - out->size()), 0);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return false;
    out->append(buf, static_cast<size_t>(got));
  }
  return true;
}

}  // namespace rkv::transport::test
