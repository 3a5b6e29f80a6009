// raft-kv-cli as a user runs it: against a real raft-kv process (put, get,
// delete, exit codes, stdin, bad input), against a scripted HTTP server
// (Idempotency-Key, retries after a 503 or a lost reply, the cluster views),
// and local-cluster (option checks, a node that fails to start, a cluster
// that serves and stops on SIGINT).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "client/http_client.h"
#include "integration/cluster_process.h"
#include "integration/server_process.h"
#include "json_render.h"
#include "kv_commands.h"
#include "support/test_util.h"

extern char** environ;

namespace rkv::test {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

// ---------------------------------------------------------------------------
// Running raft-kv-cli.

// A raft-kv-cli process with its stdout and stderr read through pipes.
class CliProcess {
 public:
  CliProcess() = default;
  ~CliProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
    for (int fd : {out_fd_, err_fd_}) {
      if (fd >= 0) ::close(fd);
    }
  }
  CliProcess(const CliProcess&) = delete;
  CliProcess& operator=(const CliProcess&) = delete;

  // Starts raft-kv-cli with `args`, writes `input` to its stdin and closes
  // it. RAFT_KV_ENDPOINT is removed from the environment unless `env`
  // names it, so the caller's shell cannot steer a test.
  Status Start(const std::vector<std::string>& args, const std::string& input = "",
               const std::vector<std::string>& env = {}) {
    std::vector<std::string> argv_strings = {BinaryPath("raft-kv-cli")};
    argv_strings.insert(argv_strings.end(), args.begin(), args.end());
    std::vector<std::string> env_strings;
    for (char** e = environ; *e != nullptr; ++e) {
      if (std::string_view(*e).starts_with("RAFT_KV_ENDPOINT=")) continue;
      env_strings.emplace_back(*e);
    }
    env_strings.insert(env_strings.end(), env.begin(), env.end());
    std::vector<char*> argv;
    for (auto& a : argv_strings) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<char*> envp;
    for (auto& e : env_strings) envp.push_back(e.data());
    envp.push_back(nullptr);

    int in_pipe[2], out_pipe[2], err_pipe[2];
    if (::pipe2(in_pipe, O_CLOEXEC) != 0 || ::pipe2(out_pipe, O_CLOEXEC) != 0 ||
        ::pipe2(err_pipe, O_CLOEXEC) != 0) {
      return Status::FromErrno(errno, "pipe");
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, in_pipe[0], 0);
    posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
    posix_spawn_file_actions_adddup2(&actions, err_pipe[1], 2);
    const int rc = posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    ::close(in_pipe[0]);
    ::close(out_pipe[1]);
    ::close(err_pipe[1]);
    out_fd_ = out_pipe[0];
    err_fd_ = err_pipe[0];
    if (rc != 0) {
      ::close(in_pipe[1]);
      pid_ = -1;
      return Status::FromErrno(rc, "posix_spawn " + argv_strings[0]);
    }
    // Test inputs are small. A CLI that exits without reading its stdin
    // makes the write fail with EPIPE, not kill the test.
    ::signal(SIGPIPE, SIG_IGN);
    std::string_view rest = input;
    while (!rest.empty()) {
      const ssize_t n = ::write(in_pipe[1], rest.data(), rest.size());
      if (n <= 0) break;
      rest.remove_prefix(static_cast<size_t>(n));
    }
    ::close(in_pipe[1]);
    return Status::OK();
  }

  // Reads output until stdout contains `needle`; false if the process
  // closed its output or the deadline passed first.
  bool WaitForOutput(std::string_view needle, milliseconds deadline) {
    const auto until = Clock::now() + deadline;
    while (out_.find(needle) == std::string::npos) {
      const auto left = std::chrono::duration_cast<milliseconds>(until - Clock::now());
      if (left.count() <= 0 || !Pump(left)) return out_.find(needle) != std::string::npos;
    }
    return true;
  }

  // Reads all output, then reaps the process; its exit code, -signal, or
  // nullopt at the deadline.
  std::optional<int> WaitExit(milliseconds deadline) {
    const auto until = Clock::now() + deadline;
    while (true) {
      const auto left = std::chrono::duration_cast<milliseconds>(until - Clock::now());
      if (left.count() <= 0) return std::nullopt;
      if (!Pump(left)) break;
    }
    while (Clock::now() < until) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
      }
      // The output is closed, so the process is exiting; nothing notifies
      // its exit here but waitpid.
      std::this_thread::sleep_for(milliseconds(5));
    }
    return std::nullopt;
  }

  void Signal(int sig) {
    if (pid_ > 0) ::kill(pid_, sig);
  }
  pid_t pid() const { return pid_; }
  const std::string& out() const { return out_; }
  const std::string& err() const { return err_; }

 private:
  // Waits up to `timeout` for output and appends it; false once both
  // pipes are closed.
  bool Pump(milliseconds timeout) {
    std::vector<pollfd> fds;
    for (int fd : {out_fd_, err_fd_}) {
      if (fd >= 0) fds.push_back({fd, POLLIN, 0});
    }
    if (fds.empty()) return false;
    const int ready = ::poll(fds.data(), fds.size(), static_cast<int>(timeout.count()));
    if (ready <= 0) return true;
    for (const pollfd& p : fds) {
      if (p.revents == 0) continue;
      char buf[4096];
      const ssize_t n = ::read(p.fd, buf, sizeof buf);
      std::string& sink = p.fd == out_fd_ ? out_ : err_;
      if (n > 0) {
        sink.append(buf, static_cast<size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        ::close(p.fd);
        (p.fd == out_fd_ ? out_fd_ : err_fd_) = -1;
      }
    }
    return true;
  }

  pid_t pid_ = -1;
  int out_fd_ = -1;
  int err_fd_ = -1;
  std::string out_;
  std::string err_;
};

struct CliRun {
  int exit_code = -1000;
  std::string out;
  std::string err;
};

// Runs raft-kv-cli to completion (killed after a minute).
CliRun RunCli(const std::vector<std::string>& args, const std::string& input = "",
              const std::vector<std::string>& env = {}) {
  CliProcess process;
  CliRun run;
  if (!process.Start(args, input, env).ok()) return run;
  run.exit_code = process.WaitExit(seconds(60)).value_or(-1000);
  run.out = process.out();
  run.err = process.err();
  return run;
}

size_t Lines(const std::string& text) { return static_cast<size_t>(std::count(text.begin(), text.end(), '\n')); }

// ---------------------------------------------------------------------------
// A scripted HTTP server: records every request and answers the n-th with
// the n-th action of its script (the last one repeats). An empty action
// closes the connection without answering: a reply lost in the network.

struct RecordedRequest {
  std::string method;
  std::string target;
  std::map<std::string, std::string> headers;  // names lowercased
  std::string body;
};

std::string Reply(int status, std::string_view reason, std::string_view body,
                  std::string_view extra_headers = "") {
  return "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason) +
         "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n" + std::string(extra_headers) + "\r\n" + std::string(body);
}
const std::string kOk = Reply(200, "OK", R"({"success":true})");
const std::string kUnavailable =
    Reply(503, "Service Unavailable", R"({"error":{"code":"unavailable","message":"no leader"}})",
          "Retry-After: 1\r\n");
const std::string kUnavailableNoRetryAfter =
    Reply(503, "Service Unavailable", R"({"error":{"code":"unavailable","message":"no leader"}})");
const std::string kLoseReply;
// An action starting with this sends the rest, then closes the connection
// (a reply cut off in the middle).
constexpr std::string_view kCloseAfter = "<close-after>";

class ScriptedServer {
 public:
  explicit ScriptedServer(std::vector<std::string> script) : script_(std::move(script)) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof addr;
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(listen_fd_, 16) != 0 ||
        ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      ADD_FAILURE() << "cannot listen: " << std::strerror(errno);
      return;
    }
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~ScriptedServer() {
    stopping_ = true;
    ::shutdown(listen_fd_, SHUT_RDWR);  // wakes accept()
    if (thread_.joinable()) thread_.join();
    ::close(listen_fd_);
  }

  std::string endpoint() const { return "127.0.0.1:" + std::to_string(port_); }
  std::vector<RecordedRequest> requests() const {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }

 private:
  void Serve() {
    while (!stopping_) {
      const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) return;
      ServeConnection(fd);
      ::close(fd);
    }
  }

  // One connection at a time: the CLI opens at most one.
  void ServeConnection(int fd) {
    std::string buffer;
    while (true) {
      size_t header_end;
      while ((header_end = buffer.find("\r\n\r\n")) == std::string::npos) {
        if (!ReadMore(fd, &buffer)) return;
      }
      RecordedRequest request;
      std::istringstream head(buffer.substr(0, header_end));
      std::string line;
      std::getline(head, line);
      std::istringstream first(line);
      first >> request.method >> request.target;
      size_t content_length = 0;
      while (std::getline(head, line)) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        const size_t colon = line.find(':');
        if (colon == std::string::npos) continue;
        std::string name = line.substr(0, colon);
        for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        std::string value = line.substr(colon + 1);
        value.erase(0, value.find_first_not_of(' '));
        if (name == "content-length") content_length = std::stoul(value);
        request.headers[name] = value;
      }
      buffer.erase(0, header_end + 4);
      while (buffer.size() < content_length) {
        if (!ReadMore(fd, &buffer)) return;
      }
      request.body = buffer.substr(0, content_length);
      buffer.erase(0, content_length);
      std::string action;
      {
        std::lock_guard<std::mutex> lock(mu_);
        action = script_[std::min(requests_.size(), script_.size() - 1)];
        requests_.push_back(std::move(request));
      }
      if (action.empty()) return;  // close without answering
      const bool close_after = action.starts_with(kCloseAfter);
      if (close_after) action.erase(0, kCloseAfter.size());
      if (::send(fd, action.data(), action.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(action.size())) {
        return;
      }
      if (close_after) return;
    }
  }

  static bool ReadMore(int fd, std::string* buffer) {
    char chunk[4096];
    const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n <= 0) return false;
    buffer->append(chunk, static_cast<size_t>(n));
    return true;
  }

  const std::vector<std::string> script_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
  mutable std::mutex mu_;
  std::vector<RecordedRequest> requests_;
};

bool IsHex128(const std::string& s) {
  return s.size() == 32 &&
         std::all_of(s.begin(), s.end(), [](char c) { return std::isxdigit(c) && !std::isupper(c); });
}

// A port nothing listens on (bound, then released).
uint16_t ClosedPort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

bool CanBind(uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

// A base port whose HTTP (base+i) and peer (base+100+i) ports are free now.
int FreeBasePort(int nodes) {
  for (int attempt = 0; attempt < 100; ++attempt) {
    const int base = ClosedPort() - 1;
    if (base + 100 + nodes > 65535) continue;
    bool free = true;
    for (int i = 1; i <= nodes && free; ++i) {
      free = CanBind(static_cast<uint16_t>(base + i)) && CanBind(static_cast<uint16_t>(base + 100 + i));
    }
    if (free) return base;
  }
  ADD_FAILURE() << "no free base port";
  return 0;
}

// ---------------------------------------------------------------------------
// The pieces, directly.

TEST(CliPiecesTest, IdempotencyKeysAre128RandomBitsInHex) {
  std::set<std::string> keys;
  for (int i = 0; i < 1000; ++i) {
    const std::string key = cli::NewIdempotencyKey();
    EXPECT_TRUE(IsHex128(key)) << key;
    keys.insert(key);
  }
  EXPECT_EQ(keys.size(), 1000u);
}

TEST(CliPiecesTest, ParsesEndpoints) {
  auto plain = cli::ParseEndpoint("127.0.0.1:8080");
  ASSERT_OK(plain);
  EXPECT_EQ(plain->host, "127.0.0.1");
  EXPECT_EQ(plain->port, 8080);
  auto url = cli::ParseEndpoint("http://localhost:7001/");
  ASSERT_OK(url);
  EXPECT_EQ(url->host, "localhost");
  EXPECT_EQ(url->port, 7001);
  auto v6 = cli::ParseEndpoint("[::1]:9");
  ASSERT_OK(v6);
  EXPECT_EQ(v6->host, "::1");
  for (const char* bad : {"", "localhost", ":80", "host:", "host:0", "host:65536", "::1:80", "h:8x"}) {
    EXPECT_TRUE(cli::ParseEndpoint(bad).status().IsInvalidArgument()) << bad;
  }
}

TEST(CliPiecesTest, FindsTheLeaderInTheShapesAClusterReplyMayTake) {
  auto leader = [](const char* text) { return cli::FindLeader(boost::json::parse(text)); };
  EXPECT_EQ(leader(R"({"leader":2})"), "2");
  EXPECT_EQ(leader(R"({"leader_id":"3"})"), "3");
  EXPECT_EQ(leader(R"({"leader":{"id":1,"http":"127.0.0.1:7001"}})"), "1");
  EXPECT_EQ(leader(R"({"members":[{"id":1,"role":"follower"},{"id":4,"role":"Leader"}]})"), "4");
  EXPECT_EQ(leader(R"({"nodes":[{"id":5,"is_leader":true}]})"), "5");
  // Raft's "no leader": id 0, or nothing said.
  EXPECT_EQ(leader(R"({"leader":0,"members":[{"id":1,"role":"candidate"}]})"), std::nullopt);
  EXPECT_EQ(leader(R"({"leader":""})"), std::nullopt);
  EXPECT_EQ(leader(R"({"term":3})"), std::nullopt);
  EXPECT_EQ(leader(R"([1,2])"), std::nullopt);
}

TEST(CliPiecesTest, RendersObjectsAsLinesAndArraysOfObjectsAsTables) {
  const std::string text = cli::RenderJson(boost::json::parse(
      R"({"cluster_id":"abc","leader":2,"tags":["a","b"],)"
      R"("members":[{"id":1,"http":"127.0.0.1:7001","role":"follower"},)"
      R"({"id":2,"http":"127.0.0.1:7002","role":"leader","extra":true}],"raft":{"term":7}})"));
  EXPECT_EQ(text,
            "cluster_id: abc\n"
            "leader: 2\n"
            "tags: a, b\n"
            "members:\n"
            "  id  http            role      extra\n"
            "  1   127.0.0.1:7001  follower  -\n"
            "  2   127.0.0.1:7002  leader    true\n"
            "raft:\n"
            "  term: 7\n");
}

// ---------------------------------------------------------------------------
// Against a real raft-kv.

class CliServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<ServerProcess>(dir_.path(), dir_.Join("data"));
    ASSERT_OK(server_->Start());
    endpoint_ = server_->host() + ":" + std::to_string(server_->port());
  }

  // raft-kv-cli --endpoint <the server> args...
  CliRun Cli(std::vector<std::string> args, const std::string& input = "") {
    args.insert(args.begin(), {"--endpoint", endpoint_});
    return RunCli(args, input);
  }

  TempDir dir_;
  std::unique_ptr<ServerProcess> server_;
  std::string endpoint_;
};

TEST_F(CliServerTest, PutGetDeleteWithTheirExitCodesAndOutput) {
  CliRun put = Cli({"put", "hello", "world"});
  EXPECT_EQ(put.exit_code, 0) << put.err;
  EXPECT_EQ(put.out, "OK\n");
  EXPECT_EQ(put.err, "");

  CliRun get = Cli({"get", "hello"});
  EXPECT_EQ(get.exit_code, 0) << get.err;
  EXPECT_EQ(get.out, "world\n");

  CliRun del = Cli({"delete", "hello"});
  EXPECT_EQ(del.exit_code, 0) << del.err;
  EXPECT_EQ(del.out, "OK\n");

  CliRun missing = Cli({"get", "hello"});
  EXPECT_EQ(missing.exit_code, 1) << missing.err;
  EXPECT_EQ(missing.out, "");
  EXPECT_NE(missing.err.find("not found: hello"), std::string::npos) << missing.err;
  EXPECT_EQ(Lines(missing.err), 1u) << missing.err;

  // Deleting what is absent succeeds, as the API does.
  EXPECT_EQ(Cli({"delete", "hello"}).exit_code, 0);
}

TEST_F(CliServerTest, AWriteAppliedTwiceFromTwoInvocationsTakesTheLastValue) {
  // Each invocation is its own logical write (its own Idempotency-Key), so
  // the second one is applied, not answered from the first.
  ASSERT_EQ(Cli({"put", "k", "one"}).exit_code, 0);
  ASSERT_EQ(Cli({"put", "k", "two"}).exit_code, 0);
  EXPECT_EQ(Cli({"get", "k"}).out, "two\n");
  ASSERT_EQ(Cli({"put", "k", "one"}).exit_code, 0);
  EXPECT_EQ(Cli({"get", "k"}).out, "one\n");
}

TEST_F(CliServerTest, PutReadsStdinByteForByteWhenTheValueIsADash) {
  const std::string value = "line one\nline \"two\" \xc3\xa9\t\n";
  CliRun put = Cli({"put", "note", "-"}, value);
  ASSERT_EQ(put.exit_code, 0) << put.err;
  EXPECT_EQ(Cli({"get", "note"}).out, value + "\n");
  // Through the HTTP API too: the CLI stored exactly these bytes.
  client::HttpClient http(server_->host(), server_->port());
  auto stored = http.Get("note");
  ASSERT_OK(stored);
  EXPECT_EQ(*stored, value);
}

TEST_F(CliServerTest, KeysAndValuesWithAwkwardBytesRoundTrip) {
  for (const std::string key : {"a b", "a/b/c", "100%", "\xe2\x82\xac", "-dash", "q?x=1#f"}) {
    CliRun put = Cli({"put", "--", key, "-value-" + key});
    ASSERT_EQ(put.exit_code, 0) << key << ": " << put.err;
    CliRun get = Cli({"get", "--", key});
    EXPECT_EQ(get.exit_code, 0) << key << ": " << get.err;
    EXPECT_EQ(get.out, "-value-" + key + "\n") << key;
  }
}

TEST_F(CliServerTest, EveryConsistencyLevelReadsAndOthersAreRefused) {
  ASSERT_EQ(Cli({"put", "c", "v"}).exit_code, 0);
  for (const char* level : {"linearizable", "lease", "stale"}) {
    CliRun get = Cli({"get", "c", "--consistency", level});
    EXPECT_EQ(get.exit_code, 0) << level << ": " << get.err;
    EXPECT_EQ(get.out, "v\n") << level;
  }
  CliRun bad = Cli({"get", "c", "--consistency", "eventual"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("--consistency"), std::string::npos) << bad.err;
  EXPECT_EQ(Lines(bad.err), 1u) << bad.err;
}

TEST_F(CliServerTest, TheEndpointComesFromTheEnvironmentUnlessGiven) {
  CliRun put = RunCli({"put", "env", "yes"}, "", {"RAFT_KV_ENDPOINT=" + endpoint_});
  EXPECT_EQ(put.exit_code, 0) << put.err;
  CliRun get = RunCli({"get", "env"}, "", {"RAFT_KV_ENDPOINT=" + endpoint_});
  EXPECT_EQ(get.out, "yes\n") << get.err;
  // The flag wins over the environment.
  const std::string closed = "127.0.0.1:" + std::to_string(ClosedPort());
  CliRun flag = RunCli({"--endpoint", endpoint_, "get", "env"}, "", {"RAFT_KV_ENDPOINT=" + closed});
  EXPECT_EQ(flag.out, "yes\n") << flag.err;
  // Global options may follow the subcommand.
  CliRun after = RunCli({"get", "env", "--endpoint", endpoint_});
  EXPECT_EQ(after.out, "yes\n") << after.err;
}

TEST_F(CliServerTest, BadInputExitsTwoAndAnUnreachableClusterFourWithOneLineOnStderr) {
  const std::vector<std::vector<std::string>> cases = {
      {},                                  // no subcommand
      {"frob"},                            // unknown subcommand
      {"get"},                             // no key
      {"put", "k"},                        // no value
      {"get", ""},                         // the empty key has no route
      {"put", "", "v"},                    //
      {"put", std::string(5000, 'k'), "v"},  // over the key limit: the server's 413
      {"--attempts", "0", "get", "k"},     //
  };
  for (const auto& args : cases) {
    CliRun run = Cli(args);
    std::string joined;
    for (const auto& a : args) joined += a.substr(0, 20) + " ";
    EXPECT_EQ(run.exit_code, 2) << joined << run.err;
    EXPECT_EQ(Lines(run.err), 1u) << joined << run.err;
    EXPECT_EQ(run.err.rfind("raft-kv-cli: error: ", 0), 0u) << joined << run.err;
  }
  CliRun too_long = Cli({"put", std::string(5000, 'k'), "v"});
  EXPECT_NE(too_long.err.find("413"), std::string::npos) << too_long.err;


  CliRun bad_endpoint = RunCli({"--endpoint", "no-port", "get", "k"});
  EXPECT_EQ(bad_endpoint.exit_code, 2);
  EXPECT_NE(bad_endpoint.err.find("HOST:PORT"), std::string::npos) << bad_endpoint.err;

  // Nothing listens: a transport error, retried, then reported.
  CliRun unreachable = RunCli(
      {"--endpoint", "127.0.0.1:" + std::to_string(ClosedPort()), "--attempts", "2", "get", "k"});
  EXPECT_EQ(unreachable.exit_code, 4);
  EXPECT_NE(unreachable.err.find("cannot reach"), std::string::npos) << unreachable.err;
  EXPECT_NE(unreachable.err.find("2 attempts"), std::string::npos) << unreachable.err;
  EXPECT_EQ(Lines(unreachable.err), 1u) << unreachable.err;

  // None of it stored anything.
  EXPECT_EQ(Cli({"get", "k"}).exit_code, 1);
}

// A one-member cluster that can grow: it listens for peers.
TEST(CliMemberTest, ListAddRemoveOnAOneMemberCluster) {
  TempDir dir;
  const std::vector<uint16_t> ports = FreePorts(1);
  ServerProcess server(dir.path(), dir.Join("data"),
                       {"--peer-listen", "127.0.0.1:" + std::to_string(ports[0])});
  ASSERT_OK(server.Start());
  const std::string endpoint = server.host() + ":" + std::to_string(server.port());
  auto cli = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {"--endpoint", endpoint});
    return RunCli(args);
  };

  // The node announces its own peer address; poll until the table has it.
  CliRun list;
  for (int i = 0; i < 500; ++i) {
    list = cli({"member", "list"});
    if (list.out.find("127.0.0.1:" + std::to_string(ports[0])) != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(list.exit_code, 0) << list.err;
  EXPECT_NE(list.out.find("ID     ROLE"), std::string::npos) << list.out;
  EXPECT_NE(list.out.find("1      voter    127.0.0.1:" + std::to_string(ports[0])), std::string::npos)
      << list.out;

  // A learner that never starts: the one voter still commits alone.
  CliRun add = cli({"member", "add", "2", "127.0.0.1:1", "--http", "127.0.0.1:2"});
  EXPECT_EQ(add.exit_code, 0) << add.err;
  EXPECT_NE(add.out.find("2      learner  127.0.0.1:1"), std::string::npos) << add.out;
  CliRun json = cli({"member", "list", "--json"});
  EXPECT_NE(json.out.find(R"({"id":2,"voter":false,"peer":"127.0.0.1:1","http":"127.0.0.1:2"})"),
            std::string::npos)
      << json.out;
  EXPECT_EQ(cli({"put", "still", "writable"}).exit_code, 0);

  // The same id at another address is refused; removing works once.
  CliRun clash = cli({"member", "add", "2", "127.0.0.1:3"});
  EXPECT_EQ(clash.exit_code, 2);
  EXPECT_NE(clash.err.find("member 2 already exists"), std::string::npos) << clash.err;
  CliRun remove = cli({"member", "remove", "2"});
  EXPECT_EQ(remove.exit_code, 0) << remove.err;
  EXPECT_EQ(remove.out.find("learner"), std::string::npos) << remove.out;
  CliRun again = cli({"member", "remove", "2"});
  EXPECT_EQ(again.exit_code, 2);
  EXPECT_NE(again.err.find("no member 2"), std::string::npos) << again.err;
}

TEST(CliMemberTest, ANodeWithoutAPeerAddressCannotGrow) {
  TempDir dir;
  ServerProcess server(dir.path(), dir.Join("data"));
  ASSERT_OK(server.Start());
  CliRun add = RunCli({"--endpoint", server.host() + ":" + std::to_string(server.port()), "member",
                       "add", "2", "127.0.0.1:1"});
  EXPECT_EQ(add.exit_code, 2);
  EXPECT_NE(add.err.find("--peer-listen"), std::string::npos) << add.err;
}

TEST(CliHelpTest, HelpNamesEverySubcommandWithAnExample) {
  CliRun help = RunCli({"--help"});
  EXPECT_EQ(help.exit_code, 0);
  for (const char* text : {"get", "put", "del", "scan", "txn", "cluster", "status", "local-cluster",
                           "member", "leader", "snapshot", "raft-kv-cli put hello world",
                           "raft-kv-cli local-cluster --nodes 3", "RAFT_KV_ENDPOINTS", "--json",
                           "Exit codes", "3 a condition did not hold"}) {
    EXPECT_NE(help.out.find(text), std::string::npos) << text;
  }
  CliRun sub = RunCli({"local-cluster", "--help"});
  EXPECT_EQ(sub.exit_code, 0);
  EXPECT_NE(sub.out.find("--base-port"), std::string::npos) << sub.out;
}

// ---------------------------------------------------------------------------
// Against a scripted server: what goes over the wire, and the retries.

TEST(CliWireTest, AWriteRetriedAfterA503CarriesTheSameIdempotencyKey) {
  ScriptedServer server({kUnavailable, kUnavailableNoRetryAfter, kOk});
  CliRun put = RunCli({"--endpoint", server.endpoint(), "put", "k", "v"});
  EXPECT_EQ(put.exit_code, 0) << put.err;
  EXPECT_EQ(put.out, "OK\n");
  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 3u);
  const std::string key = requests[0].headers.count("idempotency-key")
                              ? requests[0].headers.at("idempotency-key")
                              : "";
  EXPECT_TRUE(IsHex128(key)) << key;
  for (const auto& r : requests) {
    EXPECT_EQ(r.method, "PUT");
    EXPECT_EQ(r.target, "/v1/kv/k");
    EXPECT_EQ(r.body, "v");
    EXPECT_EQ(r.headers.count("idempotency-key") ? r.headers.at("idempotency-key") : "", key);
  }
}

TEST(CliWireTest, AWriteWhoseReplyWasLostIsSentAgainUnderTheSameKey) {
  ScriptedServer server({kLoseReply, kLoseReply, kOk});
  CliRun del = RunCli({"--endpoint", server.endpoint(), "delete", "gone"});
  EXPECT_EQ(del.exit_code, 0) << del.err;
  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 3u);
  for (const auto& r : requests) {
    EXPECT_EQ(r.method, "DELETE");
    EXPECT_EQ(r.target, "/v1/kv/gone");
    EXPECT_EQ(r.headers.at("idempotency-key"), requests[0].headers.at("idempotency-key"));
  }
}

TEST(CliWireTest, EachInvocationIsANewWriteWithANewKey) {
  ScriptedServer server({kOk});
  ASSERT_EQ(RunCli({"--endpoint", server.endpoint(), "put", "k", "v"}).exit_code, 0);
  ASSERT_EQ(RunCli({"--endpoint", server.endpoint(), "put", "k", "v"}).exit_code, 0);
  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_NE(requests[0].headers.at("idempotency-key"), requests[1].headers.at("idempotency-key"));
}

TEST(CliWireTest, RetriesAreBoundedByAttempts) {
  ScriptedServer server({kUnavailableNoRetryAfter});
  CliRun put = RunCli({"--endpoint", server.endpoint(), "--attempts", "3", "put", "k", "v"});
  EXPECT_EQ(put.exit_code, 4);
  EXPECT_NE(put.err.find("503"), std::string::npos) << put.err;
  EXPECT_NE(put.err.find("no leader"), std::string::npos) << put.err;
  EXPECT_EQ(Lines(put.err), 1u) << put.err;
  EXPECT_EQ(server.requests().size(), 3u);
}

TEST(CliWireTest, OtherErrorsAreNotRetried) {
  ScriptedServer server(
      {Reply(500, "Internal Server Error", R"({"error":{"code":"internal","message":"disk"}})")});
  CliRun put = RunCli({"--endpoint", server.endpoint(), "put", "k", "v"});
  EXPECT_EQ(put.exit_code, 2);
  EXPECT_NE(put.err.find("HTTP 500 internal: disk"), std::string::npos) << put.err;
  EXPECT_EQ(server.requests().size(), 1u);
}

TEST(CliWireTest, ClusterAndStatusRenderTheServersJsonOrPrintItRaw) {
  const std::string cluster_json =
      R"({"leader":2,"members":[{"id":1,"http":"127.0.0.1:7001","role":"follower"},)"
      R"({"id":2,"http":"127.0.0.1:7002","role":"leader"}]})";
  ScriptedServer server({Reply(200, "OK", cluster_json)});
  CliRun pretty = RunCli({"--endpoint", server.endpoint(), "cluster"});
  EXPECT_EQ(pretty.exit_code, 0) << pretty.err;
  EXPECT_NE(pretty.out.find("leader: 2\n"), std::string::npos) << pretty.out;
  EXPECT_NE(pretty.out.find("  2   127.0.0.1:7002  leader"), std::string::npos) << pretty.out;
  CliRun raw = RunCli({"--endpoint", server.endpoint(), "cluster", "--json"});
  EXPECT_EQ(raw.out, cluster_json + "\n");
  CliRun status = RunCli({"--endpoint", server.endpoint(), "status", "--json"});
  EXPECT_EQ(status.exit_code, 0);
  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(requests[0].target, "/v1/cluster");
  EXPECT_EQ(requests[2].target, "/v1/status");
  EXPECT_EQ(requests[0].headers.count("idempotency-key"), 0u);  // reads carry none
}

TEST(CliWireTest, ASnapshotIsStreamedToItsFileAndACutOffOneStartsOver) {
  TempDir dir;
  const std::string file = dir.Join("backup.snap");
  // More than one of the client's 256 KiB pieces, and not a multiple of it.
  std::string backup;
  for (int i = 0; backup.size() < 700'000; ++i) backup += "record " + std::to_string(i) + "\n";
  const std::string head = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                           "X-Raft-Applied-Index: 7\r\nX-Raft-Applied-Term: 2\r\nContent-Length: ";
  const std::string cut_off =
      std::string(kCloseAfter) + head + std::to_string(backup.size()) + "\r\n\r\n" + backup.substr(0, 300'000);
  const std::string whole = head + std::to_string(backup.size()) + "\r\n\r\n" + backup;
  {
    ScriptedServer server({cut_off, whole});
    CliRun save = RunCli({"--endpoint", server.endpoint(), "snapshot", "save", file});
    ASSERT_EQ(save.exit_code, 0) << save.err;
    EXPECT_EQ(save.out, "saved " + file + ": " + std::to_string(backup.size()) +
                            " bytes, applied index 7 (term 2), from " + server.endpoint() + "\n");
    EXPECT_EQ(server.requests().size(), 2u);
    EXPECT_EQ(server.requests()[1].target, "/v1/snapshot");
  }
  std::ifstream in(file, std::ios::binary);
  const std::string saved((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(saved.size(), backup.size());
  EXPECT_TRUE(saved == backup);
  EXPECT_FALSE(fs::exists(file + ".tmp"));

  // A cluster without a leader: exit 4, the old backup kept, nothing left behind.
  {
    ScriptedServer server({kUnavailableNoRetryAfter});
    CliRun save = RunCli({"--endpoint", server.endpoint(), "--attempts", "2", "snapshot", "save", file});
    EXPECT_EQ(save.exit_code, 4) << save.err;
    EXPECT_NE(save.err.find("no leader"), std::string::npos) << save.err;
  }
  EXPECT_EQ(fs::file_size(file), backup.size());
  EXPECT_FALSE(fs::exists(file + ".tmp"));

  // A file that cannot be written: exit 4, said once, not retried.
  {
    ScriptedServer server({whole});
    CliRun save = RunCli({"--endpoint", server.endpoint(), "snapshot", "save", dir.Join("no/such/dir/x.snap")});
    EXPECT_EQ(save.exit_code, 4) << save.err;
    EXPECT_NE(save.err.find("cannot write"), std::string::npos) << save.err;
    EXPECT_EQ(Lines(save.err), 1u) << save.err;
    EXPECT_EQ(server.requests().size(), 0u);
  }
}

TEST(CliWireTest, AServerWithoutTheClusterViewsIsNamed) {
  ScriptedServer server(
      {Reply(404, "Not Found", R"({"error":{"code":"not_found","message":"key not found"}})")});
  CliRun cluster = RunCli({"--endpoint", server.endpoint(), "cluster"});
  EXPECT_EQ(cluster.exit_code, 2);
  EXPECT_NE(cluster.err.find("does not serve /v1/cluster"), std::string::npos) << cluster.err;
}

// ---------------------------------------------------------------------------
// local-cluster.

// Whether the raft-kv beside the CLI takes the cluster flags local-cluster
// passes (a single-node raft-kv predates them).
bool ServerTakesClusterFlags() {
  static const bool takes = [] {
    std::string out;
    FILE* p = ::popen((BinaryPath("raft-kv") + " --help 2>&1").c_str(), "r");
    if (p == nullptr) return false;
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    ::pclose(p);
    return out.find("--initial-cluster") != std::string::npos &&
           out.find("--cluster-http") != std::string::npos &&
           out.find("--peer-listen") != std::string::npos;
  }();
  return takes;
}

class LocalClusterTest : public ::testing::Test {
 protected:
  std::string data() const { return dir_.Join("cluster"); }
  TempDir dir_;
};

TEST_F(LocalClusterTest, RejectsBadOptionsClearly) {
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{"--nodes", "0"}, "--nodes must be between 1 and 9"},
      {{"--nodes", "10"}, "--nodes must be between 1 and 9"},
      {{"--nodes", "3", "--base-port", "65500"}, "must be between 0 and 65432"},
      {{"--base-port", "-5"}, "--base-port"},
      {{"--server", dir_.Join("no-such-raft-kv")}, "no raft-kv server at"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> args = {"local-cluster", "--data-dir", data()};
    args.insert(args.end(), c.args.begin(), c.args.end());
    CliRun run = RunCli(args);
    EXPECT_EQ(run.exit_code, 2) << c.message;
    EXPECT_NE(run.err.find(c.message), std::string::npos) << run.err;
    EXPECT_EQ(Lines(run.err), 1u) << run.err;
    EXPECT_FALSE(fs::exists(data())) << c.message;  // refused before touching anything
  }
}

TEST_F(LocalClusterTest, NeverDeletesADirectoryItDidNotMake) {
  fs::create_directories(data());
  std::ofstream(data() + "/precious.txt") << "keep me";
  CliRun run = RunCli({"local-cluster", "--data-dir", data(), "--fresh", "--nodes", "1"});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_NE(run.err.find("precious.txt"), std::string::npos) << run.err;
  EXPECT_TRUE(fs::exists(data() + "/precious.txt"));
}

TEST_F(LocalClusterTest, NamesANodeThatExitsBeforeItIsReadyWithItsLog) {
  // A "server" that exits at once, as a raft-kv does on a bad flag or a
  // taken port.
  const std::string server = dir_.Join("failing-server");
  std::ofstream(server) << "#!/bin/sh\necho \"cannot listen on $6: address in use\" >&2\nexit 3\n";
  fs::permissions(server, fs::perms::owner_all);
  CliRun run = RunCli({"local-cluster", "--data-dir", data(), "--nodes", "2", "--base-port",
                       std::to_string(FreeBasePort(2)), "--server", server});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_NE(run.err.find("exited with code 3 before it was ready"), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("/log"), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("address in use"), std::string::npos) << run.err;  // the log's tail
  EXPECT_EQ(run.out.find("ready:"), std::string::npos) << run.out;
}

TEST_F(LocalClusterTest, RefusesToRestartWithOtherFlags) {
  fs::create_directories(data() + "/node1");
  std::ofstream(data() + "/cluster.conf") << "nodes=3\nbase_port=7000\n";
  CliRun run = RunCli({"local-cluster", "--data-dir", data(), "--nodes", "1"});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_NE(run.err.find("different flags"), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("--fresh"), std::string::npos) << run.err;
}

// The endpoint and pid of node 1 from local-cluster's table.
struct PrintedNode {
  std::string http;
  pid_t pid = -1;
};
std::optional<PrintedNode> FindNode(const std::string& out, int id) {
  std::smatch m;
  const std::regex row("\\n  " + std::to_string(id) + " +(\\S+) +(\\S+) +([0-9]+) ");
  if (!std::regex_search(out, m, row)) return std::nullopt;
  return PrintedNode{m[1].str(), static_cast<pid_t>(std::stol(m[3].str()))};
}

bool ProcessGone(pid_t pid) { return ::kill(pid, 0) != 0 && errno == ESRCH; }

TEST_F(LocalClusterTest, ServesUntilSigintThenStopsItsNodes) {
  if (!ServerTakesClusterFlags()) GTEST_SKIP() << "this raft-kv does not take the cluster flags yet";
  const std::string base = std::to_string(FreeBasePort(1));
  std::string first_value;
  for (int run = 0; run < 2; ++run) {
    // The second run restarts the cluster from its data.
    CliProcess cluster;
    std::vector<std::string> args = {"local-cluster", "--nodes", "1", "--base-port", base,
                                     "--data-dir", data()};
    if (run == 0) args.push_back("--fresh");
    ASSERT_OK(cluster.Start(args));
    ASSERT_TRUE(cluster.WaitForOutput("\nready: ", seconds(60))) << cluster.out() << cluster.err();
    EXPECT_NE(cluster.out().find(run == 0 ? "starting the 1-node" : "restarting the 1-node"),
              std::string::npos)
        << cluster.out();
    auto node = FindNode(cluster.out(), 1);
    ASSERT_TRUE(node.has_value()) << cluster.out();
    EXPECT_EQ(node->http, "127.0.0.1:" + std::to_string(std::stoi(base) + 1));
    EXPECT_NE(cluster.out().find("ready: " + node->http), std::string::npos) << cluster.out();

    if (run == 0) {
      CliRun put = RunCli({"--endpoint", node->http, "put", "through", "the cluster"});
      EXPECT_EQ(put.exit_code, 0) << put.err << cluster.err();
    }
    CliRun get = RunCli({"--endpoint", node->http, "get", "through"});
    EXPECT_EQ(get.exit_code, 0) << get.err;
    EXPECT_EQ(get.out, "the cluster\n");

    cluster.Signal(SIGINT);
    EXPECT_EQ(cluster.WaitExit(seconds(30)), 0) << cluster.out() << cluster.err();
    EXPECT_TRUE(ProcessGone(node->pid)) << "node pid " << node->pid;
    auto closed = cli::ParseEndpoint(node->http);
    ASSERT_OK(closed);
    client::HttpClient http(closed->host, closed->port, seconds(5));
    EXPECT_FALSE(http.Request("GET", "/healthz").ok()) << "node 1 still serves";
  }
  EXPECT_TRUE(fs::exists(data() + "/node1/log"));
}

TEST_F(LocalClusterTest, ThreeNodesElectALeaderAndReplicate) {
  if (!ServerTakesClusterFlags()) GTEST_SKIP() << "this raft-kv does not take the cluster flags yet";
  CliProcess cluster;
  // A log level after -- replaces local-cluster's own quiet default.
  ASSERT_OK(cluster.Start({"local-cluster", "--nodes", "3", "--base-port",
                           std::to_string(FreeBasePort(3)), "--data-dir", data(), "--", "--log-level",
                           "info"}));
  ASSERT_TRUE(cluster.WaitForOutput("\nready: ", seconds(60))) << cluster.out() << cluster.err();
  std::vector<PrintedNode> nodes;
  for (int id = 1; id <= 3; ++id) {
    auto node = FindNode(cluster.out(), id);
    ASSERT_TRUE(node.has_value()) << cluster.out();
    nodes.push_back(*node);
  }
  {
    std::ifstream log(data() + "/node1/log");
    const std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
    EXPECT_NE(text.find(" info event=node_start"), std::string::npos) << text.substr(0, 2000);
  }
  // local-cluster waited for /v1/cluster to name a leader, and printed it.
  EXPECT_TRUE(std::regex_search(cluster.out(), std::regex("leader: node [123]\\n"))) << cluster.out();

  // A write through one node is read through another (linearizable reads
  // go through the leader's read index, so the follower has it).
  CliRun put = RunCli({"--endpoint", nodes[1].http, "put", "replicated", "yes"});
  ASSERT_EQ(put.exit_code, 0) << put.err;
  CliRun get = RunCli({"--endpoint", nodes[2].http, "get", "replicated"});
  EXPECT_EQ(get.exit_code, 0) << get.err;
  EXPECT_EQ(get.out, "yes\n");
  CliRun view = RunCli({"--endpoint", nodes[0].http, "cluster", "--json"});
  ASSERT_EQ(view.exit_code, 0) << view.err;
  EXPECT_TRUE(cli::FindLeader(boost::json::parse(view.out)).has_value()) << view.out;

  cluster.Signal(SIGTERM);
  EXPECT_EQ(cluster.WaitExit(seconds(30)), 0) << cluster.out() << cluster.err();
  for (const PrintedNode& node : nodes) EXPECT_TRUE(ProcessGone(node.pid)) << node.pid;
}

// ---------------------------------------------------------------------------
// Against a real three-node cluster: every subcommand, with the endpoints
// list, the redirects to the leader, and a backup restored into a new
// cluster with the CLI alone.

const std::vector<std::string> kClusterTiming = {"--tick-ms", "50", "--election-ticks", "10"};

class CliClusterTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    cluster_ = new ClusterProcess(dir_->Join("cluster"), 3, kClusterTiming);
    Status s = cluster_->StartAll();
    if (!s.ok()) {
      ADD_FAILURE() << s.ToString();
      return;
    }
    if (!cluster_->WaitForLeader(seconds(15)).ok()) ADD_FAILURE() << cluster_->LogTails();
  }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
    delete dir_;
    dir_ = nullptr;
  }

  static std::string Http(uint64_t id) { return "127.0.0.1:" + std::to_string(cluster_->http_port(id)); }
  static std::string AllEndpoints() { return Http(1) + "," + Http(2) + "," + Http(3); }

  uint64_t Leader() {
    auto leader = cluster_->WaitForLeader(seconds(15));
    EXPECT_TRUE(leader.ok()) << cluster_->LogTails();
    return leader.ok() ? *leader : 1;
  }
  uint64_t AFollower() {
    const uint64_t leader = Leader();
    return leader == 1 ? 2 : 1;
  }

  // raft-kv-cli with RAFT_KV_ENDPOINTS naming all three nodes.
  CliRun Cli(const std::vector<std::string>& args, const std::string& input = "") {
    return RunCli(args, input, {"RAFT_KV_ENDPOINTS=" + AllEndpoints()});
  }

  static TempDir* dir_;
  static ClusterProcess* cluster_;
};
TempDir* CliClusterTest::dir_ = nullptr;
ClusterProcess* CliClusterTest::cluster_ = nullptr;

TEST_F(CliClusterTest, AnEndpointThatIsDownIsPassedOver) {
  const std::string endpoints = "127.0.0.1:" + std::to_string(ClosedPort()) + "," + Http(2);
  CliRun put = RunCli({"--endpoints", endpoints, "put", "passover", "yes"});
  ASSERT_EQ(put.exit_code, 0) << put.err;
  CliRun get = RunCli({"get", "passover"}, "", {"RAFT_KV_ENDPOINTS=" + endpoints});
  EXPECT_EQ(get.exit_code, 0) << get.err;
  EXPECT_EQ(get.out, "yes\n");
}

TEST_F(CliClusterTest, ConditionalWritesExitThreeWhenTheRevisionDiffers) {
  CliRun first = Cli({"put", "cas", "one", "--json"});
  ASSERT_EQ(first.exit_code, 0) << first.err;
  const uint64_t revision = boost::json::parse(first.out).at("revision").to_number<uint64_t>();
  ASSERT_GT(revision, 0u);

  CliRun stale = Cli({"put", "cas", "two", "--if-revision", std::to_string(revision + 1000)});
  EXPECT_EQ(stale.exit_code, 3) << stale.err;
  EXPECT_NE(stale.err.find("409"), std::string::npos) << stale.err;
  EXPECT_EQ(Lines(stale.err), 1u) << stale.err;
  EXPECT_EQ(Cli({"get", "cas"}).out, "one\n");

  CliRun swap = Cli({"put", "cas", "two", "--if-revision", std::to_string(revision)});
  EXPECT_EQ(swap.exit_code, 0) << swap.err;
  EXPECT_EQ(Cli({"get", "cas"}).out, "two\n");

  EXPECT_EQ(Cli({"put", "cas-new", "x", "--if-revision", "0"}).exit_code, 0);
  EXPECT_EQ(Cli({"put", "cas-new", "y", "--if-revision", "0"}).exit_code, 3);
  EXPECT_EQ(Cli({"del", "cas-new", "--if-revision", "1"}).exit_code, 3);
  EXPECT_EQ(Cli({"get", "cas-new"}).out, "x\n");
  CliRun get = Cli({"get", "cas-new", "--json"});
  ASSERT_EQ(get.exit_code, 0) << get.err;
  const uint64_t now = boost::json::parse(get.out).at("revision").to_number<uint64_t>();
  EXPECT_EQ(Cli({"del", "cas-new", "--if-revision", std::to_string(now)}).exit_code, 0);
  EXPECT_EQ(Cli({"get", "cas-new"}).exit_code, 1);
}

TEST_F(CliClusterTest, BinaryValuesRoundTripAndShowAsBase64InJson) {
  const std::string bytes("\xff\x00\xfe\n", 4);
  ASSERT_EQ(Cli({"put", "bin", "-"}, bytes).exit_code, 0);
  CliRun get = Cli({"get", "bin"});
  EXPECT_EQ(get.exit_code, 0) << get.err;
  EXPECT_EQ(get.out, bytes + "\n");
  CliRun json = Cli({"get", "bin", "--json"});
  EXPECT_EQ(boost::json::parse(json.out).at("value_base64").as_string(), "/wD+Cg==") << json.out;
}

TEST_F(CliClusterTest, ScanPagesThroughEveryKeyInOrder) {
  // 1100 keys, more than one page of the CLI's 1000, written in batches.
  auto http = cluster_->Client(Leader());
  for (int batch = 0; batch < 11; ++batch) {
    boost::json::array ops;
    for (int i = batch * 100; i < (batch + 1) * 100; ++i) {
      char key[16];
      std::snprintf(key, sizeof key, "scan/%04d", i);
      ops.push_back(boost::json::object{{"op", "put"}, {"key", key}, {"value", "v" + std::to_string(i)}});
    }
    auto r = http->Request("POST", "/v1/txn", boost::json::serialize(boost::json::object{{"ops", ops}}));
    ASSERT_OK(r);
    ASSERT_EQ(r->status, 200) << r->body;
  }
  CliRun all = Cli({"scan", "--prefix", "scan/", "--keys-only"});
  ASSERT_EQ(all.exit_code, 0) << all.err;
  std::string expected;
  for (int i = 0; i < 1100; ++i) {
    char key[16];
    std::snprintf(key, sizeof key, "scan/%04d", i);
    expected += std::string(key) + "\n";
  }
  EXPECT_EQ(all.out, expected);

  CliRun some = Cli({"scan", "--start", "scan/0998", "--end", "scan/1001"});
  EXPECT_EQ(some.out, "scan/0998\tv998\nscan/0999\tv999\nscan/1000\tv1000\n") << some.err;
  CliRun limited = Cli({"scan", "--prefix", "scan/", "--limit", "3", "--json"});
  ASSERT_EQ(limited.exit_code, 0) << limited.err;
  const boost::json::value doc = boost::json::parse(limited.out);
  EXPECT_EQ(doc.at("count").to_number<uint64_t>(), 3u);
  EXPECT_EQ(doc.at("kvs").as_array()[2].at("key").as_string(), "scan/0002");
  EXPECT_EQ(doc.at("kvs").as_array()[2].at("value").as_string(), "v2");

  CliRun unbounded = Cli({"scan"});
  EXPECT_EQ(unbounded.exit_code, 2);
  EXPECT_NE(unbounded.err.find("--prefix"), std::string::npos) << unbounded.err;
}

TEST_F(CliClusterTest, TxnAppliesAllOrNothing) {
  const std::string file = dir_->Join("txn.json");
  std::ofstream(file) << R"({"compare":[{"key":"txn/a","revision":0}],)"
                      << R"("ops":[{"op":"put","key":"txn/a","value":"1"},{"op":"put","key":"txn/b","value":"2"}]})";
  CliRun first = Cli({"txn", file});
  ASSERT_EQ(first.exit_code, 0) << first.err;
  EXPECT_EQ(first.out.rfind("OK revision ", 0), 0u) << first.out;
  EXPECT_EQ(Cli({"get", "txn/b"}).out, "2\n");

  // Now txn/a exists: the compare fails and nothing is written.
  ASSERT_EQ(Cli({"del", "txn/b"}).exit_code, 0);
  CliRun again = Cli({"txn", "-"}, R"({"compare":[{"key":"txn/a","revision":0}],"ops":[{"op":"put","key":"txn/b","value":"3"}]})");
  EXPECT_EQ(again.exit_code, 3) << again.err;
  EXPECT_NE(again.err.find("compare 0 failed"), std::string::npos) << again.err;
  EXPECT_EQ(Cli({"get", "txn/b"}).exit_code, 1);

  CliRun bad = Cli({"txn", "-"}, "not json");
  EXPECT_EQ(bad.exit_code, 2);
  CliRun missing = Cli({"txn", dir_->Join("no-such-file.json")});
  EXPECT_EQ(missing.exit_code, 4);
}

TEST_F(CliClusterTest, ClusterStatusShowsEveryMemberTheLeaderAndTheLag) {
  const uint64_t leader = Leader();
  CliRun view = Cli({"cluster", "status"});
  ASSERT_EQ(view.exit_code, 0) << view.err;
  EXPECT_NE(view.out.find("leader: " + std::to_string(leader) + "\n"), std::string::npos) << view.out;
  for (uint64_t id : {uint64_t{1}, uint64_t{2}, uint64_t{3}}) EXPECT_NE(view.out.find(Http(id)), std::string::npos) << view.out;
  EXPECT_NE(view.out.find("lag"), std::string::npos) << view.out;
  CliRun json = Cli({"cluster", "--json"});
  EXPECT_EQ(cli::FindLeader(boost::json::parse(json.out)), std::to_string(leader)) << json.out;
}

TEST_F(CliClusterTest, LeaderTransferAndMembershipChangesFollowTheLeader) {
  // Sent to a follower only: its 307s lead the CLI to the leader.
  const uint64_t follower = AFollower();
  uint64_t target = 0;
  for (uint64_t id : {uint64_t{1}, uint64_t{2}, uint64_t{3}}) {
    if (id != follower && id != Leader()) target = id;
  }
  ASSERT_NE(target, 0u);
  CliRun transfer = RunCli({"--endpoints", Http(follower), "leader", "transfer", std::to_string(target)});
  ASSERT_EQ(transfer.exit_code, 0) << transfer.err << cluster_->LogTails();
  EXPECT_EQ(transfer.out.rfind("leader is " + std::to_string(target) + " (term ", 0), 0u) << transfer.out;
  EXPECT_EQ(Leader(), target);

  const uint64_t not_leader = target == 1 ? 2 : 1;
  CliRun add = RunCli({"--endpoints", Http(not_leader), "member", "add", "9", "127.0.0.1:1"});
  ASSERT_EQ(add.exit_code, 0) << add.err;
  EXPECT_NE(add.out.find("9      learner  127.0.0.1:1"), std::string::npos) << add.out;
  EXPECT_EQ(Cli({"put", "with-learner", "ok"}).exit_code, 0);
  CliRun remove = RunCli({"--endpoints", Http(not_leader), "member", "remove", "9"});
  ASSERT_EQ(remove.exit_code, 0) << remove.err;
  EXPECT_EQ(remove.out.find("127.0.0.1:1 "), std::string::npos) << remove.out;

  CliRun no_such = Cli({"leader", "transfer", "42"});
  EXPECT_EQ(no_such.exit_code, 2) << no_such.err;
}

TEST_F(CliClusterTest, ABackupSavedAndRestoredWithTheCliHoldsEveryKey) {
  for (int i = 0; i < 50; ++i) {
    ASSERT_EQ(Cli({"put", "backup/" + std::to_string(i), "value " + std::to_string(i)}).exit_code, 0);
  }
  const std::string file = dir_->Join("backup.snap");
  CliRun save = Cli({"snapshot", "save", file});
  ASSERT_EQ(save.exit_code, 0) << save.err;
  EXPECT_EQ(save.out.rfind("saved " + file + ": ", 0), 0u) << save.out;
  ASSERT_TRUE(fs::exists(file));

  // A damaged copy is refused before anything is written.
  const std::string damaged = dir_->Join("damaged.snap");
  fs::copy_file(file, damaged);
  {
    std::fstream f(damaged, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(fs::file_size(damaged) / 2));
    f.put('\x5a');
  }
  CliRun refused = RunCli({"snapshot", "restore", damaged, "--data", dir_->Join("refused")});
  EXPECT_EQ(refused.exit_code, 2) << refused.err;
  EXPECT_FALSE(fs::exists(dir_->Join("refused") + "/wal"));

  ClusterProcess restored(dir_->Join("restored"), 3, kClusterTiming);
  std::string peers, https;
  for (uint64_t id : restored.ids()) {
    peers += (peers.empty() ? "" : ",") + std::to_string(id) + "=127.0.0.1:" + std::to_string(restored.peer_port(id));
    https += (https.empty() ? "" : ",") + std::to_string(id) + "=127.0.0.1:" + std::to_string(restored.http_port(id));
  }
  for (uint64_t id : restored.ids()) {
    fs::create_directories(fs::path(restored.data_dir(id)).parent_path());
    CliRun restore = RunCli({"snapshot", "restore", file, "--data", restored.data_dir(id), "--id",
                             std::to_string(id), "--initial-cluster", peers, "--cluster-http", https});
    ASSERT_EQ(restore.exit_code, 0) << restore.err;
    EXPECT_NE(restore.out.find("start it with: raft-kv --id " + std::to_string(id)), std::string::npos)
        << restore.out;
  }
  ASSERT_OK(restored.StartAll());
  ASSERT_TRUE(restored.WaitForLeader(seconds(15)).ok()) << restored.LogTails();
  const std::string endpoints = "127.0.0.1:" + std::to_string(restored.http_port(1)) + ",127.0.0.1:" +
                                std::to_string(restored.http_port(2));
  CliRun keys = RunCli({"scan", "--prefix", "backup/", "--keys-only", "--json"}, "",
                       {"RAFT_KV_ENDPOINTS=" + endpoints});
  ASSERT_EQ(keys.exit_code, 0) << keys.err;
  EXPECT_EQ(boost::json::parse(keys.out).at("count").to_number<uint64_t>(), 50u) << keys.out;
  CliRun one = RunCli({"get", "backup/17"}, "", {"RAFT_KV_ENDPOINTS=" + endpoints});
  EXPECT_EQ(one.out, "value 17\n") << one.err;
  EXPECT_EQ(RunCli({"put", "after", "restore"}, "", {"RAFT_KV_ENDPOINTS=" + endpoints}).exit_code, 0);
}

}  // namespace
}  // namespace rkv::test
