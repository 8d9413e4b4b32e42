#pragma once
// A real redis-server (Debian's package) on a free loopback port, in its own
// temporary folder, for tests of the Redis job store. Nothing is shared with
// a system Redis; the process dies with the fixture.

#include <sys/types.h>

#include <string>

namespace pixpool::test {

struct RedisServerOptions {
  // AOF on (fsync every write), so restart() keeps the data.
  bool append_only = false;
  // requirepass: clients must AUTH with it ("" = none). cli() authenticates
  // with it; url() still leaves it out (redis://:password@... is the caller's).
  std::string password;
};

class RedisServer {
 public:
  // True when redis-server and redis-cli are installed (scripts/setup test).
  static bool available();

  // Starts redis-server and waits (up to 10 s) until it answers PING.
  // `append_only`: AOF on (fsync every write), so restart() keeps the data.
  // Throws std::runtime_error with its log when it does not come up.
  explicit RedisServer(bool append_only = false);
  explicit RedisServer(RedisServerOptions options);
  ~RedisServer();  // SIGKILLs it, removes its folder
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  // "redis://127.0.0.1:PORT/DB"
  std::string url(int db = 0) const;

  // SIGKILL, as a crash or an OOM kill would; waits until it is gone.
  void kill();
  // Starts it again on the same port and folder (AOF replayed when on).
  void restart();

  // Runs `redis-cli -p PORT ARGS` and returns its stdout (e.g. "DBSIZE").
  std::string cli(const std::string& args) const;

 private:
  void launch();
  bool append_only_;
  std::string password_;
  std::string dir_;
  int port_ = 0;
  pid_t pid_ = -1;
};

// A process-wide server, started on first use; for ServerProcess under
// PIXPOOL_TEST_STORE=redis (tests/support/server_process.hpp).
RedisServer& shared_redis_server();

}  // namespace pixpool::test
