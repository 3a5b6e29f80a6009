#include "local_cluster.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/json.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string_view>

#include "client/http_client.h"
#include "common/result.h"
#include "common/status.h"
#include "json_render.h"
#include "kv_commands.h"

namespace rkv::cli {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr int kMaxNodes = 9;
constexpr int kPeerPortOffset = 100;
constexpr int kMaxPort = 65535;
constexpr char kConfFile[] = "cluster.conf";

// How long each node gets to write its ready file (opening a large data
// directory takes a while), to report a leader, and to stop after SIGTERM.
constexpr auto kReadyTimeout = std::chrono::seconds(60);
constexpr auto kLeaderTimeout = std::chrono::seconds(10);
constexpr auto kStopTimeout = std::chrono::seconds(10);
// How long a wait for a signal lasts before the files and processes are
// looked at again; ready files and HTTP replies come with no notification.
constexpr auto kPollInterval = milliseconds(20);
constexpr auto kLeaderPollInterval = milliseconds(100);
constexpr size_t kLogTailLines = 15;

struct Node {
  int id = 0;
  std::string http;   // 127.0.0.1:<base+id>
  std::string peer;   // 127.0.0.1:<base+100+id>
  uint16_t http_port = 0;
  std::string dir;
  std::string log;
  std::string ready_file;
  pid_t pid = -1;  // -1 once reaped
  bool ready = false;
};

std::string NodeDir(const std::string& data_dir, int id) {
  return data_dir + "/node" + std::to_string(id);
}

bool IsNodeDirName(std::string_view name) {
  if (!name.starts_with("node") || name.size() == 4) return false;
  for (char c : name.substr(4)) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

std::string ExitText(int wait_status) {
  if (WIFEXITED(wait_status)) return "exited with code " + std::to_string(WEXITSTATUS(wait_status));
  if (WIFSIGNALED(wait_status)) {
    const int sig = WTERMSIG(wait_status);
    return "was killed by signal " + std::to_string(sig) + " (" + ::strsignal(sig) + ")";
  }
  return "stopped (wait status " + std::to_string(wait_status) + ")";
}

// The last lines of a node's log, indented, for an error message.
std::string LogTail(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "  (no log at " + path + ")\n";
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  std::vector<std::string> lines;
  std::string line;
  std::istringstream lines_in(text);
  while (std::getline(lines_in, line)) lines.push_back(line);
  const size_t from = lines.size() > kLogTailLines ? lines.size() - kLogTailLines : 0;
  std::string out;
  for (size_t i = from; i < lines.size(); ++i) out += "  | " + lines[i] + "\n";
  return out.empty() ? "  (the log is empty)\n" : out;
}

std::optional<std::string> ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The path of this executable relative to the working directory when it is
// below it ("./build/bin/raft-kv-cli"), so printed commands can be pasted.
std::string SelfPathForDisplay() {
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return "raft-kv-cli";
  const fs::path relative = self.lexically_relative(fs::current_path(ec));
  if (ec || relative.empty() || *relative.begin() == "..") return self.string();
  return "./" + relative.string();
}

Status Validate(const LocalClusterOptions& o) {
  if (o.nodes < 1 || o.nodes > kMaxNodes) {
    return Status::InvalidArgument("--nodes must be between 1 and " + std::to_string(kMaxNodes) +
                                   " (got " + std::to_string(o.nodes) + ")");
  }
  const int highest = o.base_port + kPeerPortOffset + o.nodes;
  if (o.base_port < 0 || highest > kMaxPort) {
    return Status::InvalidArgument(
        "--base-port " + std::to_string(o.base_port) + " puts the ports at " +
        std::to_string(o.base_port + 1) + ".." + std::to_string(highest) + "; with " +
        std::to_string(o.nodes) + " nodes it must be between 0 and " +
        std::to_string(kMaxPort - kPeerPortOffset - o.nodes));
  }
  if (o.data_dir.empty()) return Status::InvalidArgument("--data-dir must not be empty");
  return Status::OK();
}

Result<std::string> ResolveServer(const std::string& requested) {
  std::string path = requested;
  if (path.empty()) {
    std::error_code ec;
    const fs::path self = fs::read_symlink("/proc/self/exe", ec);
    if (ec) return Status::IOError("cannot find this executable: " + ec.message());
    path = (self.parent_path() / "raft-kv").string();
  }
  if (::access(path.c_str(), X_OK) != 0) {
    return Status::InvalidArgument("no raft-kv server at " + path + " (" + std::strerror(errno) +
                                   "); build it (cmake --build --preset release --target "
                                   "raft-kv) or name one with --server");
  }
  return path;
}

// Makes DATA ready for the nodes. Sets *restarted when it already holds
// this cluster. Refuses directories local-cluster did not make: --fresh
// deletes the directory, and that must never take someone's files.
Status PrepareDataDir(const LocalClusterOptions& o, bool* restarted) {
  *restarted = false;
  const fs::path dir(o.data_dir);
  const std::string conf_path = o.data_dir + "/" + kConfFile;
  const std::string want_conf = "nodes=" + std::to_string(o.nodes) +
                                "\nbase_port=" + std::to_string(o.base_port) + "\n";
  std::error_code ec;
  if (fs::exists(dir, ec)) {
    if (!fs::is_directory(dir, ec)) return Status::InvalidArgument(o.data_dir + " is not a directory");
    bool empty = true;
    bool has_conf = false;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      empty = false;
      const std::string name = entry.path().filename().string();
      if (name == kConfFile) {
        has_conf = true;
      } else if (!IsNodeDirName(name)) {
        return Status::InvalidArgument(o.data_dir + " holds " + name +
                                       ", which local-cluster did not create; pick another "
                                       "--data-dir");
      }
    }
    if (ec) return Status::IOError("cannot list " + o.data_dir + ": " + ec.message());
    if (o.fresh) {
      fs::remove_all(dir, ec);
      if (ec) return Status::IOError("cannot delete " + o.data_dir + ": " + ec.message());
    } else if (has_conf) {
      const std::string conf = ReadWholeFile(conf_path).value_or("");
      if (conf != want_conf) {
        std::string was = conf;
        for (char& c : was) c = c == '\n' ? ' ' : c;
        return Status::InvalidArgument(
            o.data_dir + " holds a cluster started with different flags (" + was +
            "); start it with the same --nodes and --base-port, or pass --fresh (or delete " +
            o.data_dir + ") to start over");
      }
      *restarted = true;
    } else if (!empty) {
      return Status::InvalidArgument(o.data_dir + " has node directories but no " + kConfFile +
                                     "; pass --fresh to start over");
    }
  }
  fs::create_directories(dir, ec);
  if (ec) return Status::IOError("cannot create " + o.data_dir + ": " + ec.message());
  if (!*restarted) {
    std::ofstream conf(conf_path, std::ios::trunc);
    conf << want_conf;
    conf.close();
    if (!conf) return Status::IOError("cannot write " + conf_path);
  }
  for (int id = 1; id <= o.nodes; ++id) {
    fs::create_directories(NodeDir(o.data_dir, id), ec);
    if (ec) return Status::IOError("cannot create " + NodeDir(o.data_dir, id) + ": " + ec.message());
  }
  return Status::OK();
}

class LocalCluster {
 public:
  LocalCluster(const LocalClusterOptions& options, std::string server)
      : options_(options), server_(std::move(server)) {
    sigemptyset(&signals_);
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGCHLD}) sigaddset(&signals_, sig);
    for (int id = 1; id <= options_.nodes; ++id) {
      Node node;
      node.id = id;
      node.http_port = static_cast<uint16_t>(options_.base_port + id);
      node.http = "127.0.0.1:" + std::to_string(node.http_port);
      node.peer = "127.0.0.1:" + std::to_string(options_.base_port + kPeerPortOffset + id);
      node.dir = NodeDir(options_.data_dir, id);
      node.log = node.dir + "/log";
      node.ready_file = node.dir + "/ready";
      nodes_.push_back(std::move(node));
    }
  }

  int Run(bool restarted) {
    // Stop signals and child exits are taken synchronously (sigtimedwait),
    // so no handler runs between fork and exec, and waiting for a ready
    // file and for a signal is one wait.
    sigprocmask(SIG_BLOCK, &signals_, nullptr);

    for (Node& node : nodes_) {
      Status s = Spawn(&node);
      if (!s.ok()) {
        StopAll();
        return Fail(s.message());
      }
    }
    std::printf("%s the %d-node cluster in %s; waiting for every node to listen\n",
                restarted ? "restarting" : "starting", options_.nodes, options_.data_dir.c_str());
    std::fflush(stdout);

    Status ready = WaitReady();
    if (!ready.ok()) {
      const bool interrupted = interrupted_;
      StopAll();
      if (interrupted) return kExitOk;
      return Fail(ready.message());
    }
    const std::string leader = WaitLeader();
    if (interrupted_) {
      StopAll();
      return kExitOk;
    }
    PrintSummary(leader);

    while (!interrupted_) {
      WaitSignal(std::chrono::seconds(1));
      ReapAndReport();
      if (LiveNodes() == 0) {
        return Fail("every node has exited; their logs are in " + options_.data_dir +
                    "/node<i>/log");
      }
    }
    StopAll();
    return kExitOk;
  }

 private:
  std::vector<std::string> NodeArgs(const Node& node) const {
    std::string initial_cluster;
    std::string cluster_http;
    for (const Node& n : nodes_) {
      const std::string sep = n.id == 1 ? "" : ",";
      initial_cluster += sep + std::to_string(n.id) + "=" + n.peer;
      cluster_http += sep + std::to_string(n.id) + "=" + n.http;
    }
    std::vector<std::string> args = {server_,
                                     "--id", std::to_string(node.id),
                                     "--data", node.dir,
                                     "--http", node.http,
                                     "--peer-listen", node.peer,
                                     "--initial-cluster", initial_cluster,
                                     "--cluster-http", cluster_http,
                                     "--ready-file", node.ready_file};
    // Quiet logs unless the user asked for a level after --.
    const bool level_given =
        std::any_of(options_.server_args.begin(), options_.server_args.end(),
                    [](const std::string& a) { return a == "--log-level" || a.starts_with("--log-level="); });
    if (!level_given) args.insert(args.end(), {"--log-level", "warn"});
    args.insert(args.end(), options_.server_args.begin(), options_.server_args.end());
    return args;
  }

  // fork + exec rather than posix_spawn: the child joins its own process
  // group (a Ctrl-C in the terminal reaches only this supervisor, which
  // stops the nodes in order) and asks for SIGTERM if the supervisor dies
  // (so a killed supervisor leaves no nodes behind).
  Status Spawn(Node* node) {
    std::vector<std::string> args = NodeArgs(*node);
    ::unlink(node->ready_file.c_str());  // a stale one would read as ready

    const int log_fd = ::open(node->log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0) return Status::FromErrno(errno, node->log);
    std::string banner = "--- raft-kv-cli local-cluster: starting node " + std::to_string(node->id) + ":";
    for (const std::string& a : args) banner += " " + a;
    banner += "\n";
    if (::write(log_fd, banner.data(), banner.size()) < 0) {
      // The log is advisory; the node writes its own lines to it anyway.
    }
    const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    int exec_pipe[2];
    if (null_fd < 0 || ::pipe2(exec_pipe, O_CLOEXEC) != 0) {
      const int err = errno;
      ::close(log_fd);
      if (null_fd >= 0) ::close(null_fd);
      return Status::FromErrno(err, "cannot start node " + std::to_string(node->id));
    }

    // Everything the child touches is prepared here: between fork and exec
    // only async-signal-safe calls are allowed.
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    sigset_t empty_mask;
    sigemptyset(&empty_mask);
    struct sigaction default_action {};
    default_action.sa_handler = SIG_DFL;
    const pid_t parent = ::getpid();

    const pid_t pid = ::fork();
    if (pid < 0) {
      const int err = errno;
      ::close(log_fd);
      ::close(null_fd);
      ::close(exec_pipe[0]);
      ::close(exec_pipe[1]);
      return Status::FromErrno(err, "fork");
    }
    if (pid == 0) {
      ::setpgid(0, 0);
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != parent) ::_exit(127);  // the supervisor died before prctl
      ::dup2(null_fd, 0);
      ::dup2(log_fd, 1);
      ::dup2(log_fd, 2);
      ::sigaction(SIGPIPE, &default_action, nullptr);  // ignored here; the node decides
      ::sigprocmask(SIG_SETMASK, &empty_mask, nullptr);
      ::execv(argv[0], argv.data());
      const int err = errno;
      if (::write(exec_pipe[1], &err, sizeof err) < 0) {
      }
      ::_exit(127);
    }
    ::close(log_fd);
    ::close(null_fd);
    ::close(exec_pipe[1]);
    // The pipe closes on a successful exec (O_CLOEXEC) and carries errno
    // otherwise.
    int exec_errno = 0;
    ssize_t n;
    do {
      n = ::read(exec_pipe[0], &exec_errno, sizeof exec_errno);
    } while (n < 0 && errno == EINTR);
    ::close(exec_pipe[0]);
    if (n == static_cast<ssize_t>(sizeof exec_errno)) {
      int status = 0;
      ::waitpid(pid, &status, 0);
      return Status::FromErrno(exec_errno, "cannot start " + server_);
    }
    node->pid = pid;
    return Status::OK();
  }

  // Waits up to `timeout` for a stop signal or a child exit. Sets
  // interrupted_ on SIGINT, SIGTERM or SIGHUP.
  void WaitSignal(milliseconds timeout) {
    const auto secs = std::chrono::duration_cast<std::chrono::seconds>(timeout);
    timespec ts{};
    ts.tv_sec = static_cast<time_t>(secs.count());
    ts.tv_nsec = static_cast<long>(std::chrono::nanoseconds(timeout - secs).count());
    const int sig = ::sigtimedwait(&signals_, nullptr, &ts);
    if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP) interrupted_ = true;
  }

  size_t LiveNodes() const {
    size_t live = 0;
    for (const Node& node : nodes_) live += node.pid > 0 ? 1 : 0;
    return live;
  }

  // Reaps nodes that exited; returns "node i (pid p) exited with ..." for each.
  std::vector<std::pair<Node*, std::string>> Reap() {
    std::vector<std::pair<Node*, std::string>> exited;
    for (Node& node : nodes_) {
      if (node.pid <= 0) continue;
      int status = 0;
      if (::waitpid(node.pid, &status, WNOHANG) == node.pid) {
        exited.emplace_back(&node, "node " + std::to_string(node.id) + " (pid " +
                                       std::to_string(node.pid) + ") " + ExitText(status));
        node.pid = -1;
      }
    }
    return exited;
  }

  void ReapAndReport() {
    for (const auto& [node, what] : Reap()) {
      std::fprintf(stderr,
                   "raft-kv-cli: %s; the other nodes keep running. The end of %s:\n%s",
                   what.c_str(), node->log.c_str(), LogTail(node->log).c_str());
    }
    std::fflush(stderr);
  }

  Status WaitReady() {
    const auto deadline = Clock::now() + kReadyTimeout;
    while (true) {
      bool all = true;
      for (Node& node : nodes_) {
        if (node.ready) continue;
        // The node writes "host:port\n" atomically; the newline says it is whole.
        const auto text = ReadWholeFile(node.ready_file);
        node.ready = text && !text->empty() && text->back() == '\n';
        all = all && node.ready;
      }
      if (all) return Status::OK();
      for (const auto& [node, what] : Reap()) {
        return Status::Aborted(what + " before it was ready. The end of " + node->log + ":\n" +
                               LogTail(node->log));
      }
      if (Clock::now() >= deadline) {
        std::string message;
        for (const Node& node : nodes_) {
          if (node.ready) continue;
          message += "node " + std::to_string(node.id) + " did not write " + node.ready_file +
                     " within " + std::to_string(kReadyTimeout.count()) + " s. The end of " +
                     node.log + ":\n" + LogTail(node.log);
        }
        return Status::Timeout(message);
      }
      WaitSignal(kPollInterval);
      if (interrupted_) return Status::Aborted("interrupted");
    }
  }

  // Asks the nodes, in turn, who leads. Returns the leader's id; "" with
  // leader_note_ set when none is known (older servers have no
  // /v1/cluster, and an election can take longer than kLeaderTimeout).
  std::string WaitLeader() {
    const auto deadline = Clock::now() + kLeaderTimeout;
    size_t turn = 0;
    while (!interrupted_) {
      Node& node = nodes_[turn++ % nodes_.size()];
      if (node.pid > 0) {
        client::HttpClient http("127.0.0.1", node.http_port, milliseconds(1000));
        auto reply = http.Request("GET", "/v1/cluster");
        if (reply.ok() && reply->status == 404) {
          leader_note_ = "not reported (this raft-kv has no /v1/cluster)";
          return "";
        }
        if (reply.ok() && reply->status == 200) {
          boost::system::error_code ec;
          const boost::json::value doc = boost::json::parse(reply->body, ec);
          if (!ec) {
            if (auto leader = FindLeader(doc)) return *leader;
          }
        }
      }
      if (Clock::now() >= deadline) {
        leader_note_ = "none reported within " + std::to_string(kLeaderTimeout.count()) +
                       " s (the cluster keeps running; see raft-kv-cli cluster)";
        return "";
      }
      WaitSignal(kLeaderPollInterval);
      ReapAndReport();
    }
    return "";
  }

  void PrintSummary(const std::string& leader) const {
    const std::string cli = SelfPathForDisplay();
    const Node& first = nodes_.front();
    const Node& other = nodes_.size() > 1 ? nodes_[1] : first;
    std::printf("\n  %-5s %-16s %-16s %-8s %s\n", "node", "http", "peer", "pid", "data");
    for (const Node& node : nodes_) {
      const bool leads = std::to_string(node.id) == leader;
      std::printf("  %-5d %-16s %-16s %-8s %s%s\n", node.id, node.http.c_str(), node.peer.c_str(),
                  node.pid > 0 ? std::to_string(node.pid).c_str() : "exited", node.dir.c_str(),
                  leads ? "  (leader)" : "");
    }
    std::printf("\n  leader: %s\n",
                leader.empty() ? leader_note_.c_str() : ("node " + leader).c_str());
    std::printf("  logs:   %s/node<i>/log\n\n", options_.data_dir.c_str());
    std::printf("Try it:\n");
    std::printf("  export RAFT_KV_ENDPOINT=%s\n", first.http.c_str());
    std::printf("  %s put hello world\n", cli.c_str());
    std::printf("  %s get hello\n", cli.c_str());
    std::printf("  %s cluster\n", cli.c_str());
    std::printf("  curl -X POST %s/hello -d '{\"value\":\"world\"}'\n", first.http.c_str());
    std::printf("  curl %s/hello\n\n", other.http.c_str());
    std::string endpoints;
    for (const Node& node : nodes_) endpoints += (endpoints.empty() ? "" : ",") + node.http;
    // One line for scripts to wait for: everything above is already true.
    std::printf("ready: %s (Ctrl-C stops every node)\n", endpoints.c_str());
    std::fflush(stdout);
  }

  // SIGTERM to every node, SIGKILL to any still running after kStopTimeout
  // (or at once on a second Ctrl-C), and reaps them all.
  void StopAll() {
    if (LiveNodes() == 0) return;
    std::printf("stopping %zu node%s\n", LiveNodes(), LiveNodes() == 1 ? "" : "s");
    std::fflush(stdout);
    for (const Node& node : nodes_) {
      if (node.pid > 0) ::kill(node.pid, SIGTERM);
    }
    interrupted_ = false;
    const auto deadline = Clock::now() + kStopTimeout;
    std::vector<std::pair<Node*, std::string>> exits;
    while (LiveNodes() > 0 && !interrupted_ && Clock::now() < deadline) {
      WaitSignal(kPollInterval);
      for (auto& exited : Reap()) exits.push_back(std::move(exited));
    }
    for (Node& node : nodes_) {
      if (node.pid <= 0) continue;
      ::kill(node.pid, SIGKILL);
      int status = 0;
      ::waitpid(node.pid, &status, 0);
      std::fprintf(stderr, "raft-kv-cli: node %d (pid %d) did not stop in time; killed it\n",
                   node.id, node.pid);
      node.pid = -1;
    }
    for (const auto& [node, what] : exits) {
      if (what.ends_with("exited with code 0")) continue;
      std::fprintf(stderr, "raft-kv-cli: %s while stopping; see %s\n", what.c_str(),
                   node->log.c_str());
    }
    interrupted_ = true;
    std::printf("stopped\n");
    std::fflush(stdout);
  }

  const LocalClusterOptions& options_;
  const std::string server_;
  std::vector<Node> nodes_;
  sigset_t signals_{};
  bool interrupted_ = false;
  std::string leader_note_;
};

}  // namespace

int RunLocalCluster(const LocalClusterOptions& options) {
  if (Status s = Validate(options); !s.ok()) return Fail(s.message());
  Result<std::string> server = ResolveServer(options.server);
  if (!server.ok()) return Fail(server.status().message());
  bool restarted = false;
  if (Status s = PrepareDataDir(options, &restarted); !s.ok()) return Fail(s.message());
  LocalCluster cluster(options, *server);
  return cluster.Run(restarted);
}

}  // namespace rkv::cli
