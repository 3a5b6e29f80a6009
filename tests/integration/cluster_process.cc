#include "integration/cluster_process.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <utility>

#include "api/http/http_handler.h"
#include "support/test_util.h"

namespace rkv::test {
namespace {

using Clock = std::chrono::steady_clock;

// The pause between two polls of a member's status; only under a deadline.
constexpr auto kPollInterval = std::chrono::milliseconds(10);

std::string Address(uint16_t port) { return "127.0.0.1:" + std::to_string(port); }

std::optional<std::string> ReadWholeFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

ClusterProcess::ClusterProcess(std::string root, int nodes, std::vector<std::string> extra_args)
    : root_(std::move(root)), nodes_(nodes), extra_args_(std::move(extra_args)) {
  for (int i = 1; i <= nodes_; ++i) members_[static_cast<uint64_t>(i)];
  PickPorts();
}

ClusterProcess::~ClusterProcess() {
  for (auto& [id, m] : members_) {
    if (m.process && m.process->running()) {
      if (m.paused) ::kill(m.process->pid(), SIGCONT);
      ::kill(m.process->pid(), SIGTERM);
    }
  }
  for (auto& [id, m] : members_) {
    if (m.process && m.process->running()) m.process->Stop(std::chrono::seconds(10));
  }
}

void ClusterProcess::PickPorts() {
  std::vector<uint16_t> ports = FreePorts(2 * nodes_);
  size_t i = 0;
  for (auto& [id, m] : members_) {
    m.http_port = ports[i++];
    m.peer_port = ports[i++];
    m.process.reset();
    m.starts = 0;
  }
}

std::string ClusterProcess::WorkDir(uint64_t id) const {
  return root_ + "/node" + std::to_string(id);
}

std::string ClusterProcess::data_dir(uint64_t id) const { return WorkDir(id) + "/data"; }

std::vector<std::string> ClusterProcess::ArgsFor(uint64_t id) const {
  if (!members_.at(id).args.empty()) return members_.at(id).args;
  std::string peers;
  std::string https;
  for (const auto& [other, m] : members_) {
    if (!peers.empty()) peers += ',';
    if (!https.empty()) https += ',';
    peers += std::to_string(other) + "=" + Address(m.peer_port);
    https += std::to_string(other) + "=" + Address(m.http_port);
  }
  const Member& m = members_.at(id);
  std::vector<std::string> args = {
      "--id", std::to_string(id),
      "--http", Address(m.http_port),
      "--peer-listen", Address(m.peer_port),
      "--initial-cluster", peers,
      "--cluster-http", https,
  };
  args.insert(args.end(), extra_args_.begin(), extra_args_.end());
  return args;
}

Status ClusterProcess::Start(uint64_t id) {
  Member& m = members_.at(id);
  if (!m.process) {
    std::filesystem::create_directories(WorkDir(id));
    m.process = std::make_unique<ServerProcess>(WorkDir(id), data_dir(id), ArgsFor(id));
  }
  m.paused = false;
  ++m.starts;
  Status s = m.process->Start();
  if (!s.ok()) return Status::Aborted("node " + std::to_string(id) + ": " + s.ToString());
  return Status::OK();
}

Status ClusterProcess::StartJoining(uint64_t id, uint64_t via, std::vector<std::string> extra) {
  Member& m = members_[id];
  std::vector<uint16_t> ports = FreePorts(2);
  m.http_port = ports[0];
  m.peer_port = ports[1];
  m.args = {"--id", std::to_string(id), "--http", Address(m.http_port), "--peer-listen",
            Address(m.peer_port), "--join", Address(members_.at(via).http_port)};
  m.args.insert(m.args.end(), extra.begin(), extra.end());
  m.args.insert(m.args.end(), extra_args_.begin(), extra_args_.end());
  return Start(id);
}

Status ClusterProcess::StartAll() {
  constexpr int kAttempts = 3;
  Status last;
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    bool fresh = true;
    for (const auto& [id, m] : members_) fresh = fresh && m.starts == 0;
    last = Status::OK();
    for (const auto& [id, m] : members_) {
      if (running(id)) continue;
      last = Start(id);
      if (!last.ok()) break;
    }
    if (last.ok() || !fresh) return last;
    // A port was taken between choosing it and binding it: start over.
    for (auto& [id, m] : members_) {
      if (m.process) m.process->Kill();
    }
    std::error_code ec;
    for (const auto& [id, m] : members_) std::filesystem::remove_all(WorkDir(id), ec);
    PickPorts();
  }
  return last;
}

void ClusterProcess::Kill(uint64_t id) {
  Member& m = members_.at(id);
  if (m.process) m.process->Kill();
  m.paused = false;
}

void ClusterProcess::KillAll() {
  for (auto& [id, m] : members_) {
    if (m.process && m.process->running()) ::kill(m.process->pid(), SIGKILL);
  }
  for (const auto& [id, m] : members_) Kill(id);
}

std::optional<int> ClusterProcess::Stop(uint64_t id) {
  Member& m = members_.at(id);
  if (!m.process) return std::nullopt;
  if (m.paused) Resume(id);
  return m.process->Stop();
}

void ClusterProcess::Pause(uint64_t id) {
  Member& m = members_.at(id);
  if (m.process && m.process->running()) {
    ::kill(m.process->pid(), SIGSTOP);
    m.paused = true;
  }
}

void ClusterProcess::Resume(uint64_t id) {
  Member& m = members_.at(id);
  if (m.process && m.process->running()) ::kill(m.process->pid(), SIGCONT);
  m.paused = false;
}

std::vector<uint64_t> ClusterProcess::ids() const {
  std::vector<uint64_t> out;
  for (const auto& [id, m] : members_) out.push_back(id);
  return out;
}

std::vector<uint64_t> ClusterProcess::running_ids() const {
  std::vector<uint64_t> out;
  for (const auto& [id, m] : members_) {
    if (running(id)) out.push_back(id);
  }
  return out;
}

bool ClusterProcess::running(uint64_t id) const {
  const Member& m = members_.at(id);
  return m.process && m.process->running();
}

std::unique_ptr<client::HttpClient> ClusterProcess::Client(
    uint64_t id, std::chrono::milliseconds timeout) const {
  return std::make_unique<client::HttpClient>("127.0.0.1", http_port(id), timeout);
}

Result<ServiceStatus> ClusterProcess::NodeStatus(uint64_t id,
                                                 std::chrono::milliseconds timeout) const {
  client::HttpClient c("127.0.0.1", http_port(id), timeout);
  RKV_ASSIGN_OR_RETURN(client::HttpReply reply, c.Request("GET", "/v1/status"));
  if (reply.status != 200) {
    return Status::IOError("GET /v1/status: HTTP " + std::to_string(reply.status) + " " +
                           reply.body);
  }
  return http::ParseServiceStatus(reply.body);
}

Result<uint64_t> ClusterProcess::WaitForLeader(std::chrono::milliseconds deadline,
                                               std::set<uint64_t> among) const {
  if (among.empty()) {
    for (uint64_t id : running_ids()) among.insert(id);
  }
  const auto until = Clock::now() + deadline;
  std::string last;
  for (;;) {
    std::map<uint64_t, ServiceStatus> seen;
    for (uint64_t id : among) {
      Result<ServiceStatus> s = NodeStatus(id, std::chrono::milliseconds(1000));
      if (s.ok()) seen[id] = *s;
    }
    uint64_t leader = 0;
    int leaders = 0;
    for (const auto& [id, s] : seen) {
      if (s.role == "leader" && s.leader == id) {
        leader = id;
        ++leaders;
      }
    }
    bool agreed = leaders == 1 && seen.size() == among.size();
    for (const auto& [id, s] : seen) agreed = agreed && s.leader == leader;
    if (agreed) return leader;
    last.clear();
    for (const auto& [id, s] : seen) {
      last += " node " + std::to_string(id) + ": role=" + s.role +
              " leader=" + std::to_string(s.leader) + " term=" + std::to_string(s.term) + ";";
    }
    if (Clock::now() >= until) return Status::Timeout("no agreed leader in time:" + last);
    std::this_thread::sleep_for(kPollInterval);
  }
}

Status ClusterProcess::WaitForApplied(uint64_t id, uint64_t index,
                                      std::chrono::milliseconds deadline) const {
  const auto until = Clock::now() + deadline;
  uint64_t applied = 0;
  for (;;) {
    Result<ServiceStatus> s = NodeStatus(id, std::chrono::milliseconds(1000));
    if (s.ok()) {
      applied = s->applied_index;
      if (applied >= index) return Status::OK();
    }
    if (Clock::now() >= until) {
      return Status::Timeout("node " + std::to_string(id) + " applied " + std::to_string(applied) +
                             ", not " + std::to_string(index) + ", in time");
    }
    std::this_thread::sleep_for(kPollInterval);
  }
}

std::string ClusterProcess::Logs(uint64_t id) const {
  std::string out;
  const int starts = members_.at(id).starts;
  for (int generation = 1; generation <= starts; ++generation) {
    out +=
        ReadWholeFile(WorkDir(id) + "/server." + std::to_string(generation) + ".log").value_or("");
  }
  return out;
}

std::string ClusterProcess::LogTails(size_t bytes) const {
  std::string out;
  for (const auto& [id, m] : members_) {
    std::string log = Logs(id);
    if (log.size() > bytes) log = "..." + log.substr(log.size() - bytes);
    out += "---- node " + std::to_string(id) + " (http " + Address(m.http_port) + ", peer " +
           Address(m.peer_port) + ") ----\n" + log + "\n";
  }
  return out;
}

}  // namespace rkv::test
