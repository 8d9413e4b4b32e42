#pragma once
// Starts the real `pixpool` binary on a free loopback port for integration
// tests, and runs shell commands (curl) against it.

#include <sys/types.h>

#include <string>
#include <vector>

namespace pixpool::test {

class ServerProcess {
 public:
  // Starts pixpool with --host 127.0.0.1 --port 0 plus `extra_args` (plus
  // --store redis://... of a test Redis, tests/support/redis_server.hpp,
  // when PIXPOOL_TEST_STORE=redis and the args name no store), waits
  // (up to 20 s) for its "listening on" line, and reads the port from it.
  // Throws std::runtime_error with the log when it does not come up.
  explicit ServerProcess(const std::vector<std::string>& extra_args = {});
  ~ServerProcess();  // SIGKILLs the server if still running
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::string log() const;  // everything the server wrote to stderr/stdout
  bool running();           // false once the process has exited

  // Sends `signal` and waits up to `timeout_s` for exit; returns the exit
  // status (128+signal if killed), or -1 on timeout (then SIGKILLs it).
  int stop(int signal_number, double timeout_s = 20.0);

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  std::string log_path_;
  int exit_status_ = -1;
};

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout
};

// Runs `command` through /bin/sh and captures stdout.
CommandResult run_command(const std::string& command);

// Absolute path of the built pixpool binary.
std::string pixpool_binary();

}  // namespace pixpool::test
