// ServerProcess: a real raft-kv process for integration tests.
//
// Started with --ready-file, and --http 127.0.0.1:0 unless the extra
// arguments name --http; Start() polls for the ready file under a deadline. The destructor always stops the process (SIGTERM,
// then SIGKILL after a bounded wait).
#ifndef RKV_TESTS_INTEGRATION_SERVER_PROCESS_H_
#define RKV_TESTS_INTEGRATION_SERVER_PROCESS_H_

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace rkv::test {

// Path of a binary built into the build's bin directory.
std::string BinaryPath(const std::string& name);

class ServerProcess {
 public:
  // `work_dir` holds the ready file and the server's log.
  ServerProcess(std::string work_dir, std::string data_dir, std::vector<std::string> extra_args = {});
  ~ServerProcess();
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  // Starts and waits until the server is listening. Fails if the process
  // exits first or the deadline passes.
  Status Start(std::chrono::milliseconds deadline = std::chrono::seconds(20));

  // Starts, expecting the process to exit on its own; returns its exit code
  // (or -signal), nullopt if it is still running at the deadline.
  std::optional<int> RunToExit(std::chrono::milliseconds deadline = std::chrono::seconds(20));

  // SIGTERM, then waits for exit; returns the exit code (SIGKILL and
  // nullopt after the deadline).
  std::optional<int> Stop(std::chrono::milliseconds deadline = std::chrono::seconds(20));
  // SIGKILL and reap.
  void Kill();

  bool running() const { return pid_ > 0; }
  // The process id while running (for signals such as SIGSTOP), else -1.
  pid_t pid() const { return pid_; }
  uint16_t port() const { return port_; }
  const std::string& host() const { return host_; }
  // Everything the process wrote to stdout and stderr so far.
  std::string Log() const;

 private:
  Status Spawn();
  std::optional<int> WaitExit(std::chrono::milliseconds deadline);

  std::string work_dir_;
  std::string data_dir_;
  std::vector<std::string> extra_args_;
  std::string ready_file_;
  std::string log_file_;
  pid_t pid_ = -1;
  std::string host_;
  uint16_t port_ = 0;
  int generation_ = 0;
};

}  // namespace rkv::test

#endif  // RKV_TESTS_INTEGRATION_SERVER_PROCESS_H_
