// raft-kv: the server. One member of a Raft cluster (NodeHost) serving the
// HTTP API; with no flags, a one-member cluster on 127.0.0.1:8080 with its
// data in ./data.
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "api/http/http_handler.h"
#include "api/http/http_server.h"
#include "client/http_client.h"
#include "client/membership.h"
#include "common/coding.h"
#include "common/host_port.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "node/initial_cluster.h"
#include "node/node_host.h"

namespace {

struct Flags {
  uint64_t id = 1;
  std::string data_dir = "./data";
  std::string http_address = "127.0.0.1:8080";
  std::string peer_listen;
  std::string initial_cluster;
  std::string cluster_http;
  std::string cluster_token;
  std::vector<std::string> join;
  bool learner = false;
  std::string sync = "always";
  uint32_t tick_ms = 50;
  uint32_t election_ticks = 10;
  uint64_t compact_entries = 10'000;
  uint64_t data_file_size_mb = 64;
  uint32_t max_key_bytes = 4096;
  uint32_t max_value_bytes = 16u << 20;
  size_t max_connections = 10000;
  size_t max_txn_ops = 128;
  int http_threads = 1;
  std::string log_level = "info";
  std::string log_format = "text";
  std::string ready_file;
};

// Prints one line to stderr and returns the exit code for startup failures.
int Fail(const std::string& message) {
  std::fprintf(stderr, "raft-kv: error: %s\n", message.c_str());
  return 1;
}

// Writes `contents` to `path` atomically (temporary file + rename).
bool WriteFileAtomically(const std::string& path, const std::string& contents, std::string* error) {
  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    *error = tmp + ": " + std::strerror(errno);
    return false;
  }
  size_t done = 0;
  while (done < contents.size()) {
    ssize_t n = ::write(fd, contents.data() + done, contents.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      *error = tmp + ": " + std::strerror(errno);
      ::close(fd);
      return false;
    }
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    *error = path + ": " + std::strerror(errno);
    return false;
  }
  return true;
}

// A HOST:PORT other machines can dial: a wildcard host would not do.
bool Reachable(const std::string& address) {
  std::string host;
  uint16_t port = 0;
  return rkv::SplitHostPort(address, &host, &port) && port != 0 && !host.empty() &&
         host != "0.0.0.0" && host != "::";
}

// Asks the cluster at `endpoints` to add this node as a learner; retries
// while the cluster has no leader or cannot be reached (up to a minute).
rkv::Result<rkv::client::Membership> Join(const std::vector<std::string>& endpoints, uint64_t id,
                                           const std::string& peer, const std::string& http) {
  const std::string body = rkv::client::MemberRequestBody(id, peer, http, /*learner=*/true);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  for (;;) {
    rkv::Result<rkv::client::HttpReply> reply = rkv::client::RequestLeader(
        endpoints, "POST", "/v1/cluster/members", body, std::chrono::seconds(15));
    if (reply.ok() && reply->status == 200) return rkv::client::ParseMembership(reply->body);
    rkv::Status why = reply.ok() ? rkv::client::ReplyToStatus(*reply) : reply.status();
    const bool retry = !reply.ok() || reply->status == 503 || reply->status == 307;
    if (!retry || std::chrono::steady_clock::now() > deadline) return why;
    RKV_LOG_INFO("event=join_retry error=\"{}\"", why.ToString());
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
}

// After --join: asks the leader to promote this learner until it has (the
// leader waits until the learner has caught up). Stops with Stop().
class Promoter {
 public:
  Promoter(rkv::NodeHost* host, std::vector<std::string> endpoints, uint64_t id)
      : host_(host), endpoints_(std::move(endpoints)), id_(id), thread_([this] { Run(); }) {}
  ~Promoter() { Stop(); }
  void Stop() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

 private:
  void Run() {
    const std::string target = "/v1/cluster/members/" + std::to_string(id_) + "/promote";
    for (;;) {
      const rkv::ServiceStatus status = host_->NodeStatus();
      if (std::find(status.voters.begin(), status.voters.end(), id_) != status.voters.end()) {
        RKV_LOG_INFO("event=promoted id={}", id_);
        return;
      }
      // The leader first (this node knows it once it has caught up), then
      // the addresses the node joined through.
      std::vector<std::string> endpoints;
      if (!status.leader_http.empty()) endpoints.push_back(status.leader_http);
      endpoints.insert(endpoints.end(), endpoints_.begin(), endpoints_.end());
      auto reply = rkv::client::RequestLeader(endpoints, "POST", target, "", std::chrono::seconds(15));
      if (reply.ok() && reply->status == 200) {
        RKV_LOG_INFO("event=promoted id={}", id_);
        return;
      }
      {
        RKV_LOG_INFO("event=promote_retry error=\"{}\"",
                     (reply.ok() ? rkv::client::ReplyToStatus(*reply) : reply.status()).ToString());
      }
      std::unique_lock lock(mu_);
      if (cv_.wait_for(lock, std::chrono::seconds(1), [&] { return stop_; })) return;
    }
  }

  rkv::NodeHost* host_;
  std::vector<std::string> endpoints_;
  uint64_t id_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace

int main(int argc, char** argv) {
  Flags flags;
  CLI::App app{
      "raft-kv: a replicated, strongly consistent key-value store with the HTTP/JSON API of the\n"
      "original raft-kv. Raft orders every write; each node keeps the data in a Bitcask engine.\n"
      "\n"
      "With no flags: a one-member cluster serving 127.0.0.1:8080, data in ./data.\n"
      "  curl -X POST localhost:8080/hello -d '{\"value\":\"world\"}'\n"
      "  curl localhost:8080/hello\n"
      "\n"
      "A three-node cluster on one machine (run each line in its own terminal):\n"
      "  raft-kv --id 1 --data n1 --http 127.0.0.1:8081 --initial-cluster "
      "1=127.0.0.1:7081,2=127.0.0.1:7082,3=127.0.0.1:7083\n"
      "  raft-kv --id 2 --data n2 --http 127.0.0.1:8082 --initial-cluster ...same list...\n"
      "  raft-kv --id 3 --data n3 --http 127.0.0.1:8083 --initial-cluster ...same list...\n"
      "or simply: raft-kv-cli local-cluster --nodes 3\n"
      "\n"
      "A fourth node for that running cluster (it joins as a learner, catches up, becomes a voter):\n"
      "  raft-kv --id 4 --data n4 --http 127.0.0.1:8084 --peer-listen 127.0.0.1:7084 "
      "--join 127.0.0.1:8081"};
  app.set_version_flag("--version", std::string("raft-kv ") + RKV_VERSION);
  app.set_config("--config", "",
                 "Read options from a TOML file: one `name = value` line per long option, "
                 "e.g. id = 2, initial-cluster = \"1=h1:7001,2=h2:7001,3=h3:7001\"");
  // A misspelt option in the file is an error, not silently ignored.
  app.allow_config_extras(false);
  app.add_option("--id", flags.id, "This node's member id (1, 2, ...)")
      ->check(CLI::Range(uint64_t{1}, uint64_t{1} << 62))
      ->capture_default_str();
  app.add_option("--data", flags.data_dir,
                 "Directory holding this node's Raft log (wal/) and data (kv/); created if "
                 "missing and locked while the server runs")
      ->capture_default_str();
  app.add_option("--http", flags.http_address,
                 "HOST:PORT to serve HTTP on; port 0 picks a free port (see --ready-file)")
      ->capture_default_str();
  app.add_option("--initial-cluster", flags.initial_cluster,
                 "The members of a new cluster and their peer addresses, "
                 "ID=HOST:PORT,ID=HOST:PORT,... Every member is started with the same list. "
                 "Used to create the cluster; once a node has data, its log knows the members. "
                 "Empty: a one-member cluster of --id");
  app.add_option("--join", flags.join,
                 "Join a running cluster: the HTTP address (HOST:PORT) of one or more of its "
                 "members, comma-separated. The node asks to be added as a learner, starts, "
                 "catches up, and is then promoted to voter (unless --learner). Needs --id, "
                 "--peer-listen and --http with addresses the members can reach. Used only "
                 "while the data directory is empty; afterwards the node knows its cluster")
      ->delimiter(',');
  app.add_flag("--learner", flags.learner,
               "With --join: stay a learner (receives the log and serves reads, never votes)");
  app.add_option("--peer-listen", flags.peer_listen,
                 "HOST:PORT to accept peer connections on; default: this node's address in "
                 "--initial-cluster");
  app.add_option("--cluster-http", flags.cluster_http,
                 "The members' HTTP addresses, ID=HOST:PORT,... (optional: GET /v1/cluster then "
                 "shows every member's own status)");
  app.add_option("--cluster-token", flags.cluster_token,
                 "Mixed into the cluster id, so two clusters with the same member list do not "
                 "talk to each other");
  app.add_option("--sync", flags.sync,
                 "always (or group): a write is acknowledged once a majority has it on disk "
                 "(fdatasync; concurrent writes share one); none: never fdatasync the Raft log "
                 "(for experiments: a power loss may lose acknowledged writes)")
      ->check(CLI::IsMember({"always", "group", "none"}))
      ->capture_default_str();
  app.add_option("--tick-ms", flags.tick_ms,
                 "Raft timer period: leaders send heartbeats every tick")
      ->check(CLI::Range(1u, 10'000u))
      ->capture_default_str();
  app.add_option("--election-ticks", flags.election_ticks,
                 "A follower that hears no leader for this many ticks (times 1 to 2, at random) "
                 "starts an election")
      ->check(CLI::Range(3u, 10'000u))
      ->capture_default_str();
  app.add_option("--compact-entries", flags.compact_entries,
                 "Checkpoint the data and drop the Raft log behind it every this many entries")
      ->check(CLI::Range(uint64_t{100}, uint64_t{1} << 40))
      ->capture_default_str();
  app.add_option("--data-file-size-mb", flags.data_file_size_mb,
                 "A data file is closed and a new one started past this size (MiB, 1-1024)")
      ->check(CLI::Range(uint64_t{1}, uint64_t{1024}))
      ->capture_default_str();
  app.add_option("--max-key-bytes", flags.max_key_bytes,
                 "Longest key accepted (bytes, 1-65000); longer keys get 413. Every member "
                 "must use the same limits")
      ->check(CLI::Range(1u, 65000u))
      ->capture_default_str();
  app.add_option("--max-value-bytes", flags.max_value_bytes,
                 "Largest value accepted (bytes, up to 64 MiB); larger values get 413. The "
                 "request body may be 1 MiB more, for JSON framing and escapes")
      ->check(CLI::Range(0u, 64u << 20))
      ->capture_default_str();
  app.add_option("--max-connections", flags.max_connections,
                 "Open HTTP connections beyond this are answered 503 and closed")
      ->check(CLI::Range(size_t{1}, size_t{1} << 20))
      ->capture_default_str();
  app.add_option("--max-txn-ops", flags.max_txn_ops,
                 "Most compares, and most operations, one POST /v1/txn may hold (each)")
      ->check(CLI::Range(size_t{1}, size_t{100000}))
      ->capture_default_str();
  app.add_option("--http-threads", flags.http_threads, "Threads serving HTTP connections")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  app.add_option("--log-level", flags.log_level, "debug, info, warn, error or off")
      ->check(CLI::IsMember({"debug", "info", "warn", "error", "off"}))
      ->capture_default_str();
  app.add_option("--log-format", flags.log_format,
                 "text (event=... key=value lines) or json (one object per line)")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  app.add_option("--ready-file", flags.ready_file,
                 "Once listening, write \"host:port\\n\" of the bound HTTP address to this file "
                 "(atomically, via a temporary file and rename)");
  CLI11_PARSE(app, argc, argv);

  rkv::log::Level level = rkv::log::Level::kInfo;
  rkv::log::ParseLevel(flags.log_level, &level);
  rkv::log::SetLevel(level);
  rkv::log::SetJson(flags.log_format == "json");

  std::map<uint64_t, std::string> peers;
  std::map<uint64_t, std::string> http_addresses;
  std::string error;
  if (!rkv::ParseMemberList(flags.initial_cluster, &peers, &error)) return Fail("--initial-cluster: " + error);
  if (!rkv::ParseMemberList(flags.cluster_http, &http_addresses, &error)) return Fail("--cluster-http: " + error);
  if (!peers.empty() && peers.count(flags.id) == 0) {
    return Fail("--initial-cluster does not list this node's --id " + std::to_string(flags.id));
  }
  // This node's addresses as the other members should use them.
  std::string advertise_peer = flags.peer_listen;
  if (advertise_peer.empty() && peers.count(flags.id) != 0) advertise_peer = peers[flags.id];
  std::string advertise_http;
  if (Reachable(flags.http_address)) advertise_http = flags.http_address;
  if (http_addresses.count(flags.id) != 0) advertise_http = http_addresses[flags.id];

  // --join matters only for a node that has no Raft log yet.
  std::error_code fs_error;
  const bool has_log = std::filesystem::exists(flags.data_dir + "/wal", fs_error);
  rkv::client::Membership joined;
  bool joining = false;
  if (!flags.join.empty() && !has_log) {
    if (!peers.empty()) {
      return Fail("give either --join (a new node for a running cluster) or --initial-cluster "
                  "(the members of a new cluster), not both");
    }
    if (!Reachable(advertise_peer)) {
      return Fail("--join needs --peer-listen HOST:PORT with an address the members can dial "
                  "(not 0.0.0.0 and not port 0)");
    }
    if (advertise_http.empty()) {
      return Fail("--join needs --http HOST:PORT with an address clients can reach (not "
                  "0.0.0.0 and not port 0)");
    }
    RKV_LOG_INFO("event=joining id={} via={} peer={} http={}", flags.id, flags.join[0],
                 advertise_peer, advertise_http);
    auto answer = Join(flags.join, flags.id, advertise_peer, advertise_http);
    if (!answer.ok()) {
      return Fail("cannot join the cluster at " + flags.join[0] + ": " + answer.status().ToString());
    }
    joined = std::move(*answer);
    joining = true;
  }

  // Signals are taken synchronously by the main thread (sigwait); every
  // thread started from here on inherits the mask.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  rkv::NodeHostOptions host_options;
  rkv::NodeOptions& node = host_options.node;
  node.id = rkv::NodeId{flags.id};
  node.data_dir = flags.data_dir;
  if (joining) {
    // Start as the member the cluster just made of us, knowing everyone.
    for (const rkv::client::Member& m : joined.members) {
      (m.voter ? node.initial_members.voters : node.initial_members.learners)
          .push_back(rkv::NodeId{m.id});
      node.initial_addresses[m.id] = rkv::MemberAddress{m.peer, m.http};
      peers[m.id] = m.peer;
      if (!m.http.empty()) http_addresses[m.id] = m.http;
    }
  } else if (peers.empty()) {
    node.initial_members.voters = {rkv::NodeId{flags.id}};
    if (!advertise_peer.empty()) {
      node.initial_addresses[flags.id] = rkv::MemberAddress{advertise_peer, advertise_http};
    }
  } else {
    for (const auto& [id, address] : peers) {
      node.initial_members.voters.push_back(rkv::NodeId{id});
      const auto http = http_addresses.find(id);
      node.initial_addresses[id] =
          rkv::MemberAddress{address, http != http_addresses.end() ? http->second : ""};
    }
  }
  node.self_address = rkv::MemberAddress{advertise_peer, advertise_http};
  node.election_timeout_ticks = flags.election_ticks;
  node.heartbeat_interval_ticks = 1;
  // Requests wait up to 10 s; a lost proposal is retried after an election
  // timeout (by then a new leader is usually known).
  node.request_timeout_ticks = std::max<uint64_t>(10'000 / flags.tick_ms, 4 * flags.election_ticks);
  node.retry_ticks = flags.election_ticks;
  node.compact_every_entries = flags.compact_entries;
  node.sync_wal = flags.sync != "none";
  node.state_machine.max_key_size = flags.max_key_bytes;
  node.state_machine.max_value_size = flags.max_value_bytes;
  node.engine.data_file_size_max = flags.data_file_size_mb << 20;
  node.raft.read_mode = rkv::raft::ReadMode::kLease;
  node.random_seed = std::random_device{}() ^ (uint64_t{std::random_device{}()} << 32);
  host_options.peer_addresses = peers;
  host_options.http_addresses = http_addresses;
  host_options.peer_listen = flags.peer_listen;
  // A joining node takes the cluster's id; a node with data uses the one
  // it recorded (NodeHost), whatever the flags say now.
  host_options.cluster_id = joining ? joined.cluster_id : rkv::ClusterIdFor(flags.cluster_token, peers);
  host_options.tick = std::chrono::milliseconds(flags.tick_ms);
  host_options.fetch_status = [](const std::string& address) -> rkv::Result<rkv::ServiceStatus> {
    std::string host;
    uint16_t port = 0;
    if (!rkv::SplitHostPort(address, &host, &port)) return rkv::Status::InvalidArgument(address);
    rkv::client::HttpClient client(host, port, std::chrono::milliseconds(500));
    RKV_ASSIGN_OR_RETURN(rkv::client::HttpReply reply, client.Request("GET", "/v1/status"));
    if (reply.status != 200) {
      return rkv::Status::IOError("HTTP " + std::to_string(reply.status) + " from " + address);
    }
    return rkv::http::ParseServiceStatus(reply.body);
  };

  // Every metric of the process: the node's (collectors the host adds) and
  // the HTTP front end's. Outlives both.
  rkv::metrics::Registry metrics;
  host_options.metrics = &metrics;

  RKV_LOG_INFO("event=node_start id={} dir={} members={} sync={} version={}", flags.id,
               flags.data_dir, peers.empty() ? 1 : peers.size(), flags.sync, RKV_VERSION);
  auto started_host = rkv::NodeHost::Start(std::move(host_options));
  if (!started_host.ok()) {
    const rkv::Status& s = started_host.status();
    if (s.IsBusy()) {
      return Fail("data directory " + flags.data_dir + " is locked by another raft-kv process (" +
                  s.message() + ")");
    }
    return Fail("cannot start node " + std::to_string(flags.id) + " with data directory " +
                flags.data_dir + ": " + s.ToString());
  }
  std::unique_ptr<rkv::NodeHost> service = std::move(*started_host);

  rkv::http::HttpServerOptions server_options;
  server_options.threads = flags.http_threads;
  server_options.limits.max_key_bytes = flags.max_key_bytes;
  server_options.limits.max_value_bytes = flags.max_value_bytes;
  server_options.limits.max_body_bytes = size_t{flags.max_value_bytes} + (1u << 20);
  server_options.limits.max_connections = flags.max_connections;
  server_options.limits.max_txn_ops = flags.max_txn_ops;
  rkv::http::HttpHandler handler(service.get(), server_options.limits, &metrics);
  rkv::http::HttpServer server(&handler, server_options);

  auto shutdown_node = [&] {
    rkv::Status s = service->Stop();
    if (!s.ok()) RKV_LOG_ERROR("event=node_close_failed error=\"{}\"", s.ToString());
    return s;
  };

  rkv::Status started = server.Start(flags.http_address);
  if (!started.ok()) {
    (void)shutdown_node();
    return Fail(started.message());
  }
  const std::string bound = (server.host().find(':') != std::string::npos
                                 ? "[" + server.host() + "]"
                                 : server.host()) +
                            ":" + std::to_string(server.port());
  RKV_LOG_INFO("event=listening http={} pid={}", bound, ::getpid());

  if (!flags.ready_file.empty()) {
    if (!WriteFileAtomically(flags.ready_file, bound + "\n", &error)) {
      server.Stop();
      (void)shutdown_node();
      return Fail("cannot write ready file " + error);
    }
  }

  // A node that joined as a learner asks to become a voter (also after a
  // restart before that happened).
  std::unique_ptr<Promoter> promoter;
  if (!flags.join.empty() && !flags.learner) {
    const rkv::ServiceStatus status = service->NodeStatus();
    if (std::find(status.voters.begin(), status.voters.end(), flags.id) == status.voters.end()) {
      promoter = std::make_unique<Promoter>(service.get(), flags.join, flags.id);
    }
  }

  int signal_number = 0;
  while (sigwait(&stop_signals, &signal_number) != 0) {
  }
  RKV_LOG_INFO("event=shutdown signal={}", signal_number == SIGTERM ? "SIGTERM" : "SIGINT");
  if (promoter) promoter->Stop();
  server.Stop();
  rkv::Status closed = shutdown_node();
  RKV_LOG_INFO("event=stopped clean={}", closed.ok());
  rkv::log::Flush();
  return closed.ok() ? 0 : 1;
}
