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
#include <random>
#include <string>
#include <string_view>

#include "api/http/http_handler.h"
#include "api/http/http_server.h"
#include "client/http_client.h"
#include "common/coding.h"
#include "common/host_port.h"
#include "common/logging.h"
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
  std::string sync = "always";
  uint32_t tick_ms = 50;
  uint32_t election_ticks = 10;
  uint64_t compact_entries = 10'000;
  uint64_t data_file_size_mb = 64;
  uint32_t max_key_bytes = 4096;
  uint32_t max_value_bytes = 16u << 20;
  size_t max_connections = 10000;
  int http_threads = 1;
  std::string log_level = "info";
  std::string log_format = "text";
  std::string ready_file;
};

// Parses "1=host:port,2=host:port" into id -> address.
bool ParseMembers(std::string_view text, std::map<uint64_t, std::string>* out, std::string* error) {
  while (!text.empty()) {
    const size_t comma = text.find(',');
    std::string_view item = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
    const size_t eq = item.find('=');
    if (eq == std::string_view::npos || eq == 0 || eq + 1 == item.size()) {
      *error = "expected ID=HOST:PORT, got \"" + std::string(item) + "\"";
      return false;
    }
    uint64_t id = 0;
    for (char c : item.substr(0, eq)) {
      if (c < '0' || c > '9' || id > (UINT64_MAX - 9) / 10) {
        *error = "bad member id in \"" + std::string(item) + "\"";
        return false;
      }
      id = id * 10 + static_cast<uint64_t>(c - '0');
    }
    std::string address(item.substr(eq + 1));
    std::string host;
    uint16_t port = 0;
    if (id == 0 || !rkv::SplitHostPort(address, &host, &port) || port == 0) {
      *error = "bad member \"" + std::string(item) + "\" (ids start at 1; HOST:PORT with a port)";
      return false;
    }
    if (!out->emplace(id, std::move(address)).second) {
      *error = "member " + std::to_string(id) + " is listed twice";
      return false;
    }
  }
  return true;
}

// The cluster id in every peer frame: a hash of the token and the initial
// members, so nodes started with different member lists never talk.
uint64_t ClusterId(const std::string& token, const std::map<uint64_t, std::string>& members) {
  uint64_t h = rkv::kFnv1a64Offset;
  // Each piece ends with a 0xff byte, which no text here contains.
  auto mix = [&h](std::string_view text) { h = rkv::Fnv1a64("\xff", rkv::Fnv1a64(text, h)); };
  mix(token);
  for (const auto& [id, address] : members) {
    mix(std::to_string(id));
    mix(address);
  }
  return h;
}

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
      "or simply: raft-kv-cli local-cluster --nodes 3"};
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
  if (!ParseMembers(flags.initial_cluster, &peers, &error)) return Fail("--initial-cluster: " + error);
  if (!ParseMembers(flags.cluster_http, &http_addresses, &error)) return Fail("--cluster-http: " + error);
  if (!peers.empty() && peers.count(flags.id) == 0) {
    return Fail("--initial-cluster does not list this node's --id " + std::to_string(flags.id));
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
  if (peers.empty()) {
    node.initial_members.voters = {rkv::NodeId{flags.id}};
  } else {
    for (const auto& [id, address] : peers) node.initial_members.voters.push_back(rkv::NodeId{id});
  }
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
  host_options.cluster_id = ClusterId(flags.cluster_token, peers);
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
  rkv::http::HttpHandler handler(service.get(), server_options.limits);
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

  int signal_number = 0;
  while (sigwait(&stop_signals, &signal_number) != 0) {
  }
  RKV_LOG_INFO("event=shutdown signal={}", signal_number == SIGTERM ? "SIGTERM" : "SIGINT");
  server.Stop();
  rkv::Status closed = shutdown_node();
  RKV_LOG_INFO("event=stopped clean={}", closed.ok());
  rkv::log::Flush();
  return closed.ok() ? 0 : 1;
}
