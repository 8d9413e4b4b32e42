#pragma once
// A small synchronous Redis client over hiredis (Debian's libhiredis-dev): a
// bounded pool of connections with timeouts, reconnection with backoff, and
// scripts run by SHA. It speaks Redis's own protocol through hiredis only; no
// wire code of ours. Used by the Redis job store (pipeline/redis_job_store.hpp).
//
// Failure model: every call either gets Redis's answer or fails with
// store_unavailable naming the store, within its timeout, never hangs. After
// a failed connect the client refuses at once ("retry after N s") until its
// backoff (100 ms doubling to 5 s) has passed, so a dead Redis costs callers
// nothing and is not hammered; the first successful connect resets it.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"
#include "pipeline/metrics.hpp"

namespace pixpool {

// Where the store is: redis://[:password@]host[:port][/db].
struct RedisEndpoint {
  std::string host;
  int port = 6379;
  int db = 0;
  std::string password;  // "" = no AUTH

  // "redis://host:port/db", without the password (for logs, errors, /readyz).
  std::string display() const;
};

// Errors: invalid_parameter saying what is wrong (scheme, empty host, port
// outside 1..65535, db not a number 0..10000, user names, query strings).
Result<RedisEndpoint> parse_redis_url(std::string_view url);

// One reply, copied out of hiredis's reply tree.
struct RedisValue {
  enum class Type { nil, string, integer, array, status, error };
  Type type = Type::nil;
  std::string str;  // string, status and error replies
  long long integer = 0;
  std::vector<RedisValue> elements;

  bool is_nil() const { return type == Type::nil; }
  bool is_error() const { return type == Type::error; }
  // Element i, or a nil value when out of range or not an array.
  const RedisValue& at(std::size_t i) const;
};

// A Lua script, run with EVALSHA; the client loads it (SCRIPT LOAD) on
// first use and again after Redis answers NOSCRIPT (e.g. after a restart).
struct RedisScript {
  std::string name;  // for error messages
  std::string source;
};

struct RedisClientOptions {
  std::size_t max_connections = 128;  // blocking reads (SSE, consumers) each hold one
  std::chrono::milliseconds connect_timeout{1000};
  std::chrono::milliseconds command_timeout{3000};
};

class RedisClient {
 public:
  RedisClient(RedisEndpoint endpoint, RedisClientOptions options = {});
  ~RedisClient();
  RedisClient(const RedisClient&) = delete;
  RedisClient& operator=(const RedisClient&) = delete;

  // Runs one command. A Redis error reply is a value (type error), not an
  // Error: the caller knows what it asked. `extra_wait` lengthens the socket
  // timeout for blocking commands (XREADGROUP/XREAD BLOCK ms). Errors:
  // store_unavailable (cannot connect, timed out, connection lost, every
  // connection busy for longer than the command timeout).
  Result<RedisValue> command(const std::vector<std::string_view>& args,
                             std::chrono::milliseconds extra_wait = {});

  // Several commands in one round trip, replies in order.
  Result<std::vector<RedisValue>> pipeline(
      const std::vector<std::vector<std::string_view>>& commands);

  // EVALSHA script keys... args..., loading the script when Redis lacks it.
  Result<RedisValue> eval(const RedisScript& script, const std::vector<std::string_view>& keys,
                          const std::vector<std::string_view>& args);

  // `before`, then EVALSHA script keys... args..., then `after`, in one
  // round trip; inside MULTI/EXEC when `atomic` (nothing else runs between
  // them). Returns one reply per command, the script's at before.size().
  // Reloads the script and sends everything again on NOSCRIPT (the commands
  // must be safe to repeat). Errors: store_unavailable, also when Redis
  // refused the transaction.
  Result<std::vector<RedisValue>> eval_with(
      const RedisScript& script, const std::vector<std::string_view>& keys,
      const std::vector<std::string_view>& args,
      const std::vector<std::vector<std::string_view>>& before,
      const std::vector<std::vector<std::string_view>>& after, bool atomic);

  // The SHA1 Redis knows `script` by, loading it first if this client has
  // not yet (for EVALSHA inside MULTI, where a NOSCRIPT cannot be retried).
  // forget_script() after Redis answered NOSCRIPT (it restarted).
  Result<std::string> script_sha(const RedisScript& script);
  void forget_script(const RedisScript& script);

  struct Status {
    bool up = false;                        // the last attempt to talk to Redis worked
    std::string error;                      // why not, when down
    std::chrono::milliseconds retry_in{0};  // until the next connect attempt
    std::uint64_t errors = 0;               // failed calls so far
    std::uint64_t reconnects = 0;           // connections opened after a failure
    Histogram round_trip;                   // seconds per successful call
  };
  Status status() const;
  const RedisEndpoint& endpoint() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// A reply's string form for integers and strings alike ("" otherwise).
std::string redis_text(const RedisValue& value);

}  // namespace pixpool
