#include "tests/support/redis_server.hpp"

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <stdexcept>
#include <utility>
#include <vector>

#include "tests/support/images.hpp"
#include "tests/support/server_process.hpp"
#include "tests/support/wait.hpp"

namespace pixpool::test {
namespace {

// A port the kernel just handed out on loopback (free unless taken in the
// moment between closing it and redis-server binding it).
int free_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    if (fd >= 0) close(fd);
    throw std::runtime_error("no free loopback port");
  }
  close(fd);
  return ntohs(addr.sin_port);
}

}  // namespace

bool RedisServer::available() {
  return run_command("command -v redis-server >/dev/null && command -v redis-cli >/dev/null")
             .exit_code == 0;
}

RedisServer::RedisServer(bool append_only)
    : RedisServer(RedisServerOptions{.append_only = append_only, .password = ""}) {}

RedisServer::RedisServer(RedisServerOptions options)
    : append_only_(options.append_only),
      password_(std::move(options.password)),
      dir_(make_temp_dir("redis")),
      port_(free_port()) {
  launch();
}

RedisServer::~RedisServer() {
  kill();
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

std::string RedisServer::url(int db) const {
  return "redis://127.0.0.1:" + std::to_string(port_) + "/" + std::to_string(db);
}

void RedisServer::launch() {
  const std::string port = std::to_string(port_);
  std::vector<std::string> args = {"redis-server",
                                   "--port",
                                   port,
                                   "--bind",
                                   "127.0.0.1",
                                   "--save",
                                   "",
                                   "--appendonly",
                                   append_only_ ? "yes" : "no",
                                   "--appendfsync",
                                   "always",
                                   "--dir",
                                   dir_,
                                   "--daemonize",
                                   "no",
                                   "--protected-mode",
                                   "yes",
                                   "--logfile",
                                   dir_ + "/redis.log"};
  if (!password_.empty()) {
    args.emplace_back("--requirepass");
    args.push_back(password_);
  }
  std::vector<char*> argv;
  argv.reserve(args.size() + 1);
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_ = fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    execvp(argv[0], argv.data());
    _exit(127);
  }
  const bool up = wait_until([&] { return cli("PING").find("PONG") != std::string::npos; },
                             std::chrono::seconds(10), std::chrono::milliseconds(20));
  if (!up) {
    std::string log;
    try {
      log = read_file(dir_ + "/redis.log");
    } catch (...) {
    }
    kill();
    throw std::runtime_error("redis-server did not answer PING on port " + port + "; log:\n" + log);
  }
}

void RedisServer::kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
}

void RedisServer::restart() {
  kill();
  launch();
}

std::string RedisServer::cli(const std::string& args) const {
  // The password (test-made: letters and digits) goes on the command line;
  // --no-auth-warning keeps redis-cli's warning about that off stderr.
  const std::string auth = password_.empty() ? "" : " --no-auth-warning -a " + password_;
  return run_command("redis-cli -p " + std::to_string(port_) + auth + " " + args + " 2>/dev/null")
      .output;
}

RedisServer& shared_redis_server() {
  static RedisServer server;
  return server;
}

}  // namespace pixpool::test
