#include "tests/support/server_process.hpp"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <regex>
#include <stdexcept>

#include "tests/support/images.hpp"
#include "tests/support/redis_server.hpp"
#include "tests/support/wait.hpp"

#ifndef PIXPOOL_BINARY
#error "PIXPOOL_BINARY must be defined by the build"
#endif

namespace pixpool::test {

std::string pixpool_binary() {
  return PIXPOOL_BINARY;
}

ServerProcess::ServerProcess(const std::vector<std::string>& extra_args) {
  log_path_ = make_temp_dir("server") + "/pixpool.log";
  std::vector<std::string> args = {pixpool_binary(), "--host", "127.0.0.1", "--port", "0"};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  // The store contract: the same job tests against a Redis store. Each
  // server gets a database of its own (emptied first), so servers of one
  // test do not share work unless the test gives them one --store itself.
  const char* store = std::getenv("PIXPOOL_TEST_STORE");
  if (store != nullptr && std::string(store) == "redis" &&
      std::find(args.begin(), args.end(), "--store") == args.end()) {
    static int next_db = 0;
    const int db = next_db++ % 16;
    RedisServer& redis = shared_redis_server();
    redis.cli("-n " + std::to_string(db) + " FLUSHDB");
    args.insert(args.end(), {"--store", redis.url(db)});
  }
  // argv is built before fork: the child only makes async-signal-safe calls.
  std::vector<char*> argv;
  argv.reserve(args.size() + 1);
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  pid_ = fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    const int fd = open(log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      dup2(fd, STDOUT_FILENO);
      dup2(fd, STDERR_FILENO);
      close(fd);
    }
    execv(argv[0], argv.data());
    _exit(127);
  }

  // Up to 20 s for the "listening on" line; give up at once if it exits.
  const std::regex listening(R"(listening on http://127\.0\.0\.1:(\d+))");
  (void)wait_until(
      [&] {
        std::smatch m;
        const std::string text = log();
        if (std::regex_search(text, m, listening)) {
          port_ = std::stoi(m[1]);
          return true;
        }
        return !running();
      },
      std::chrono::seconds(20), std::chrono::milliseconds(10));
  if (port_ > 0) return;
  const std::string text = log();
  const bool exited = !running();
  if (!exited) stop(SIGKILL);
  throw std::runtime_error(std::string("pixpool did not start (") +
                           (exited ? "it exited" : "no \"listening on\" line within 20 s") +
                           "); log:\n" + text);
}

ServerProcess::~ServerProcess() {
  if (pid_ > 0 && running()) stop(SIGKILL, 5.0);
  std::error_code ignored;
  std::filesystem::remove_all(std::filesystem::path(log_path_).parent_path(), ignored);
}

std::string ServerProcess::log() const {
  try {
    return read_file(log_path_);
  } catch (...) {
    return {};
  }
}

bool ServerProcess::running() {
  if (exit_status_ >= 0) return false;
  int status = 0;
  const pid_t r = waitpid(pid_, &status, WNOHANG);
  if (r == 0) return true;
  exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return false;
}

int ServerProcess::stop(int signal_number, double timeout_s) {
  if (!running()) return exit_status_;
  kill(pid_, signal_number);
  const auto timeout = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::duration<double>(timeout_s));
  if (wait_until([this] { return !running(); }, timeout, std::chrono::milliseconds(10))) {
    return exit_status_;
  }
  kill(pid_, SIGKILL);
  // SIGKILL cannot be ignored; only a process stuck in the kernel outlives
  // it. Past 30 s, give up rather than hang the test (it stays a child).
  if (!wait_until([this] { return !running(); }, std::chrono::seconds(30),
                  std::chrono::milliseconds(10))) {
    std::fprintf(stderr, "pixpool pid %d did not exit 30 s after SIGKILL\n",
                 static_cast<int>(pid_));
  }
  return -1;
}

CommandResult run_command(const std::string& command) {
  CommandResult result;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return result;
  char buffer[4096];
  std::size_t n = 0;
  while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) result.output.append(buffer, n);
  const int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

}  // namespace pixpool::test
