// raft-kv: the server. Today one node serving the HTTP API straight from its
// Bitcask engine (LocalService); replication arrives behind the same
// KvService interface.
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

#include "api/http/http_handler.h"
#include "api/http/http_server.h"
#include "common/logging.h"
#include "node/local_service.h"
#include "storage/engine.h"
#include "storage/options.h"

namespace {

struct Flags {
  std::string data_dir = "./data";
  std::string http_address = "127.0.0.1:8080";
  std::string sync = "group";
  uint32_t sync_interval_ms = 1000;
  uint64_t data_file_size_mb = 64;
  uint32_t max_key_bytes = 4096;
  uint32_t max_value_bytes = 16u << 20;
  size_t max_connections = 10000;
  int http_threads = 1;
  int writer_threads = 64;
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

}  // namespace

int main(int argc, char** argv) {
  Flags flags;
  CLI::App app{
      "raft-kv: a replicated key-value store with the HTTP/JSON API of the original raft-kv.\n"
      "Today it runs as a single node serving straight from its Bitcask storage engine.\n"
      "  curl -X POST localhost:8080/hello -d '{\"value\":\"world\"}'\n"
      "  curl localhost:8080/hello"};
  app.set_version_flag("--version", std::string("raft-kv ") + RKV_VERSION);
  app.add_option("--data", flags.data_dir,
                 "Directory holding the data files; created if missing and locked while the "
                 "server runs")
      ->capture_default_str();
  app.add_option("--http", flags.http_address,
                 "HOST:PORT to serve HTTP on; port 0 picks a free port (see --ready-file)")
      ->capture_default_str();
  app.add_option("--sync", flags.sync,
                 "When a write is durable before it is acknowledged: always (fdatasync per "
                 "write), group (concurrent writes share one fdatasync), interval (every "
                 "--sync-interval-ms; a crash may lose the last interval), none (only on "
                 "shutdown)")
      ->check(CLI::IsMember({"always", "group", "interval", "none"}))
      ->capture_default_str();
  app.add_option("--sync-interval-ms", flags.sync_interval_ms,
                 "Milliseconds between background syncs with --sync interval")
      ->check(CLI::Range(1u, 3'600'000u))
      ->capture_default_str();
  app.add_option("--data-file-size-mb", flags.data_file_size_mb,
                 "A data file is closed and a new one started past this size (MiB, 1-1024)")
      ->check(CLI::Range(uint64_t{1}, uint64_t{1024}))
      ->capture_default_str();
  app.add_option("--max-key-bytes", flags.max_key_bytes,
                 "Longest key accepted (bytes, 1-65535); longer keys get 413")
      ->check(CLI::Range(1u, 65535u))
      ->capture_default_str();
  app.add_option("--max-value-bytes", flags.max_value_bytes,
                 "Largest value accepted (bytes, up to 256 MiB); larger values get 413. The "
                 "request body may be 1 MiB more, for JSON framing and escapes")
      ->check(CLI::Range(0u, 256u << 20))
      ->capture_default_str();
  app.add_option("--max-connections", flags.max_connections,
                 "Open HTTP connections beyond this are answered 503 and closed")
      ->check(CLI::Range(size_t{1}, size_t{1} << 20))
      ->capture_default_str();
  app.add_option("--http-threads", flags.http_threads, "Threads serving HTTP connections")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  app.add_option("--writer-threads", flags.writer_threads,
                 "Threads applying writes; with --sync group their fdatasyncs are shared, so "
                 "more threads mean more writes per sync")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  app.add_option("--log-level", flags.log_level, "debug, info, warn, error or off")
      ->check(CLI::IsMember({"debug", "info", "warn", "error", "off"}))
      ->capture_default_str();
  app.add_option("--log-format", flags.log_format,
                 "text (event=... key=value lines) or json (one object per line)")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  app.add_option("--ready-file", flags.ready_file,
                 "Once listening, write \"host:port\\n\" of the bound address to this file "
                 "(atomically, via a temporary file and rename)");
  CLI11_PARSE(app, argc, argv);

  rkv::log::Level level = rkv::log::Level::kInfo;
  rkv::log::ParseLevel(flags.log_level, &level);
  rkv::log::SetLevel(level);
  rkv::log::SetJson(flags.log_format == "json");

  // Signals are taken synchronously by the main thread (sigwait); every
  // thread started from here on inherits the mask.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  rkv::storage::Options engine_options;
  rkv::storage::ParseSyncMode(flags.sync, &engine_options.sync_mode);
  engine_options.sync_interval_ms = flags.sync_interval_ms;
  engine_options.data_file_size_max = flags.data_file_size_mb << 20;
  engine_options.key_size_max = flags.max_key_bytes;
  engine_options.value_size_max = flags.max_value_bytes;

  auto opened = rkv::storage::Engine::Open(engine_options, flags.data_dir);
  if (!opened.ok()) {
    const rkv::Status& s = opened.status();
    if (s.IsBusy()) {
      return Fail("data directory " + flags.data_dir +
                  " is locked by another raft-kv process (" + s.message() + ")");
    }
    return Fail("cannot open data directory " + flags.data_dir + ": " + s.ToString());
  }
  std::unique_ptr<rkv::storage::Engine> engine = std::move(*opened);
  RKV_LOG_INFO("event=node_start dir={} sync={} version={}", flags.data_dir, flags.sync, RKV_VERSION);

  rkv::LocalServiceOptions service_options;
  service_options.writer_threads = flags.writer_threads;
  auto service = std::make_unique<rkv::LocalService>(engine.get(), service_options);

  rkv::http::HttpServerOptions server_options;
  server_options.threads = flags.http_threads;
  server_options.limits.max_key_bytes = flags.max_key_bytes;
  server_options.limits.max_value_bytes = flags.max_value_bytes;
  server_options.limits.max_body_bytes = size_t{flags.max_value_bytes} + (1u << 20);
  server_options.limits.max_connections = flags.max_connections;
  rkv::http::HttpHandler handler(service.get(), server_options.limits);
  rkv::http::HttpServer server(&handler, server_options);

  auto shutdown_storage = [&] {
    service->Stop();
    rkv::Status s = engine->Close();
    if (!s.ok()) RKV_LOG_ERROR("event=engine_close_failed error=\"{}\"", s.ToString());
    return s;
  };

  rkv::Status started = server.Start(flags.http_address);
  if (!started.ok()) {
    (void)shutdown_storage();
    return Fail(started.message());
  }
  const std::string bound = (server.host().find(':') != std::string::npos
                                 ? "[" + server.host() + "]"
                                 : server.host()) +
                            ":" + std::to_string(server.port());
  RKV_LOG_INFO("event=listening http={} pid={}", bound, ::getpid());

  if (!flags.ready_file.empty()) {
    std::string error;
    if (!WriteFileAtomically(flags.ready_file, bound + "\n", &error)) {
      server.Stop();
      (void)shutdown_storage();
      return Fail("cannot write ready file " + error);
    }
  }

  int signal_number = 0;
  while (sigwait(&stop_signals, &signal_number) != 0) {
  }
  RKV_LOG_INFO("event=shutdown signal={}", signal_number == SIGTERM ? "SIGTERM" : "SIGINT");
  server.Stop();
  rkv::Status closed = shutdown_storage();
  RKV_LOG_INFO("event=stopped clean={}", closed.ok());
  rkv::log::Flush();
  return closed.ok() ? 0 : 1;
}
