#include "integration/server_process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <thread>
#include <utility>

extern char** environ;

namespace rkv::test {
namespace {

using Clock = std::chrono::steady_clock;

// The pause between two checks of a condition that has no notification
// (a file appearing, a child exiting). Only ever used under a deadline.
constexpr auto kPollInterval = std::chrono::milliseconds(5);

std::optional<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int DecodeWaitStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return -WTERMSIG(status);
  return -1000;
}

}  // namespace

std::string BinaryPath(const std::string& name) { return std::string(RKV_BIN_DIR) + "/" + name; }

ServerProcess::ServerProcess(std::string work_dir, std::string data_dir,
                             std::vector<std::string> extra_args)
    : work_dir_(std::move(work_dir)),
      data_dir_(std::move(data_dir)),
      extra_args_(std::move(extra_args)) {}

ServerProcess::~ServerProcess() {
  if (pid_ > 0) Stop(std::chrono::seconds(10));
}

Status ServerProcess::Spawn() {
  ++generation_;
  ready_file_ = work_dir_ + "/ready." + std::to_string(generation_);
  log_file_ = work_dir_ + "/server." + std::to_string(generation_) + ".log";
  ::unlink(ready_file_.c_str());

  std::vector<std::string> args = {BinaryPath("raft-kv"), "--data", data_dir_, "--ready-file",
                                   ready_file_};
  if (std::find(extra_args_.begin(), extra_args_.end(), "--http") == extra_args_.end()) {
    args.insert(args.end(), {"--http", "127.0.0.1:0"});
  }
  args.insert(args.end(), extra_args_.begin(), extra_args_.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, log_file_.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return Status::FromErrno(rc, "posix_spawn " + args[0]);
  pid_ = pid;
  return Status::OK();
}

Status ServerProcess::Start(std::chrono::milliseconds deadline) {
  RKV_RETURN_IF_ERROR(Spawn());
  const auto until = Clock::now() + deadline;
  while (Clock::now() < until) {
    if (auto text = ReadFile(ready_file_); text && !text->empty() && text->back() == '\n') {
      std::string address = text->substr(0, text->size() - 1);
      size_t colon = address.rfind(':');
      host_ = address.substr(0, colon);
      port_ = static_cast<uint16_t>(std::stoi(address.substr(colon + 1)));
      return Status::OK();
    }
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return Status::Aborted("raft-kv exited with " + std::to_string(DecodeWaitStatus(status)) +
                             " before listening: " + Log());
    }
    std::this_thread::sleep_for(kPollInterval);
  }
  Kill();
  return Status::Timeout("raft-kv did not write its ready file in time: " + Log());
}

std::optional<int> ServerProcess::RunToExit(std::chrono::milliseconds deadline) {
  if (!Spawn().ok()) return std::nullopt;
  return WaitExit(deadline);
}

std::optional<int> ServerProcess::WaitExit(std::chrono::milliseconds deadline) {
  const auto until = Clock::now() + deadline;
  while (pid_ > 0) {
    int status = 0;
    pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      pid_ = -1;
      return DecodeWaitStatus(status);
    }
    if (Clock::now() >= until) return std::nullopt;
    std::this_thread::sleep_for(kPollInterval);
  }
  return std::nullopt;
}

std::optional<int> ServerProcess::Stop(std::chrono::milliseconds deadline) {
  if (pid_ <= 0) return std::nullopt;
  ::kill(pid_, SIGTERM);
  std::optional<int> code = WaitExit(deadline);
  if (!code) Kill();
  return code;
}

void ServerProcess::Kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
}

std::string ServerProcess::Log() const { return ReadFile(log_file_).value_or(""); }

}  // namespace rkv::test
