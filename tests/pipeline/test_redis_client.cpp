// RedisClient (pipeline/redis_client.hpp): parse_redis_url's accepted and
// refused forms, then a real redis-server (tests/support/redis_server.hpp):
// every reply type through command() and pipeline(), scripts loaded again
// after SCRIPT FLUSH, AUTH and SELECT from the URL, and the failure model
// (store_unavailable naming the store, "retry after" while backing off,
// reconnection by itself once Redis is back). Every wait has a deadline.
#include <doctest/doctest.h>
#include <sys/types.h>

#include <chrono>
#include <csignal>
#include <future>
#include <string>
#include <string_view>
#include <vector>

#include "pipeline/redis_client.hpp"
#include "tests/support/redis_server.hpp"
#include "tests/support/wait.hpp"

namespace {

using namespace std::chrono_literals;
using namespace pixpool;
using pixpool::test::RedisServer;
using pixpool::test::RedisServerOptions;
using pixpool::test::wait_until;

bool contains(std::string_view text, std::string_view part) {
  return text.find(part) != std::string_view::npos;
}

RedisEndpoint endpoint_of(const std::string& url) {
  auto parsed = parse_redis_url(url);
  REQUIRE_MESSAGE(parsed.ok(), url);
  return *parsed;
}

// Calls `client` while Redis is down until one call is refused because the
// client is backing off ("retry after N s"); every call must fail with
// store_unavailable naming the store. A call that lands after the backoff
// (100 ms at first, doubling) has passed tries to connect again and fails
// without the hint, so a few calls are allowed: true when one said it.
bool refused_with_retry_after(RedisClient& client, const std::string& url) {
  for (int call = 0; call < 8; ++call) {
    auto refused = client.command({"PING"});
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.error().code == ErrorCode::store_unavailable);
    CHECK(contains(refused.error().message, url));
    if (contains(refused.error().message, "retry after")) return true;
  }
  return false;
}

// redis-cli's answer without its trailing newline.
std::string trimmed(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  return text;
}

}  // namespace

TEST_CASE("redis client: parse_redis_url accepts host, port, db, password and [IPv6]") {
  SUBCASE("host alone: port 6379, db 0, no password") {
    const RedisEndpoint e = endpoint_of("redis://cache.internal");
    CHECK(e.host == "cache.internal");
    CHECK(e.port == 6379);
    CHECK(e.db == 0);
    CHECK(e.password.empty());
    CHECK(e.display() == "redis://cache.internal:6379/0");
  }
  SUBCASE(":port") {
    const RedisEndpoint e = endpoint_of("redis://127.0.0.1:6380");
    CHECK(e.host == "127.0.0.1");
    CHECK(e.port == 6380);
    CHECK(e.db == 0);
  }
  SUBCASE("/db, with and without a port") {
    CHECK(endpoint_of("redis://redis:7000/3").db == 3);
    CHECK(endpoint_of("redis://redis:7000/3").port == 7000);
    CHECK(endpoint_of("redis://redis/15").db == 15);
    CHECK(endpoint_of("redis://redis/15").port == 6379);
    CHECK(endpoint_of("redis://redis/").db == 0);  // an empty db is the default
  }
  SUBCASE("the bounds of port and db") {
    CHECK(endpoint_of("redis://h:1").port == 1);
    CHECK(endpoint_of("redis://h:65535").port == 65535);
    CHECK(endpoint_of("redis://h/10000").db == 10000);
  }
  SUBCASE(":password@, kept out of display()") {
    const RedisEndpoint e = endpoint_of("redis://:s3cret@redis.example:6390/2");
    CHECK(e.password == "s3cret");
    CHECK(e.host == "redis.example");
    CHECK(e.port == 6390);
    CHECK(e.db == 2);
    CHECK(e.display() == "redis://redis.example:6390/2");
    CHECK_FALSE(contains(e.display(), "s3cret"));
  }
  SUBCASE("a password may hold '@' and ':' (the last '@' ends it)") {
    const RedisEndpoint e = endpoint_of("redis://:p@ss:w0rd@h:1234");
    CHECK(e.password == "p@ss:w0rd");
    CHECK(e.host == "h");
    CHECK(e.port == 1234);
  }
  SUBCASE("[::1]:6380 and [::1]") {
    const RedisEndpoint e = endpoint_of("redis://[::1]:6380");
    CHECK(e.host == "::1");
    CHECK(e.port == 6380);
    const RedisEndpoint bare = endpoint_of("redis://[::1]/4");
    CHECK(bare.host == "::1");
    CHECK(bare.port == 6379);
    CHECK(bare.db == 4);
  }
}

TEST_CASE("redis client: parse_redis_url refuses bad URLs, each error naming the problem") {
  struct Bad {
    const char* url;
    const char* names;            // a part of the message that says what is wrong
    const char* shown = nullptr;  // the URL as the message shows it, when not as given
  };
  const Bad cases[] = {
      {"http://localhost:6379", "must start with redis://"},
      {"rediss://localhost:6379", "must start with redis://"},
      {"localhost:6379", "must start with redis://"},
      {"", "must start with redis://"},
      {"redis://", "no host"},
      {"redis://:6379", "no host"},
      {"redis:///0", "no host"},
      {"redis://[]:6379", "no host"},
      {"redis://:pw@:6379", "no host", "redis://***@:6379"},
      {"redis://h:0", "port must be a number 1..65535"},
      {"redis://h:65536", "port must be a number 1..65535"},
      {"redis://h:abc", "port must be a number 1..65535"},
      {"redis://h:-1", "port must be a number 1..65535"},
      {"redis://h:63 79", "port must be a number 1..65535"},
      {"redis://h:6379/-1", "database must be a number 0..10000"},
      {"redis://h:6379/abc", "database must be a number 0..10000"},
      {"redis://h:6379/10001", "database must be a number 0..10000"},
      {"redis://h:6379/0/1", "database must be a number 0..10000"},
      {"redis://user:pass@h:6379", "only a password is supported", "redis://***@h:6379"},
      {"redis://user@h", "only a password is supported", "redis://***@h"},
      {"redis://@h", "only a password is supported", "redis://***@h"},
      {"redis://:@h", "empty password", "redis://***@h"},
      {"redis://h:6379/0?timeout=5", "query strings"},
      {"redis://h:6379?db=1", "query strings"},
      {"redis://h:6379/0#frag", "fragments"},
      {"redis://[::1", "unclosed '['"},
      {"redis://[::1]x:6379", "junk after ']'"},
  };
  for (const Bad& bad : cases) {
    CAPTURE(bad.url);
    const auto parsed = parse_redis_url(bad.url);
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.error().code == ErrorCode::invalid_parameter);
    const std::string& message = parsed.error().message;
    CAPTURE(message);
    CHECK(contains(message, bad.names));
    // The URL (anything before '@' masked: it may be a password) and the
    // accepted form, so the operator sees what to fix.
    CHECK(contains(message, "'" + std::string(bad.shown != nullptr ? bad.shown : bad.url) + "'"));
    if (bad.shown != nullptr) CHECK_FALSE(contains(message, bad.url));
    CHECK(contains(message, "redis://[:password@]host[:port][/db]"));
  }
}

TEST_CASE("redis client: command and pipeline return every reply type as a value") {
  RedisServer redis;
  RedisClient client(endpoint_of(redis.url()));

  SUBCASE("command: status, string, integer, nil, array, error") {
    auto set = client.command({"SET", "greeting", "hello"});
    REQUIRE(set.ok());
    CHECK(set->type == RedisValue::Type::status);
    CHECK(set->str == "OK");
    CHECK(redis_text(*set) == "OK");

    auto get = client.command({"GET", "greeting"});
    REQUIRE(get.ok());
    CHECK(get->type == RedisValue::Type::string);
    CHECK(get->str == "hello");

    // Binary-safe both ways: a NUL and high bytes survive.
    const std::string binary("a\0b\xff", 4);
    REQUIRE(client.command({"SET", "binary", binary}).ok());
    auto got_binary = client.command({"GET", "binary"});
    REQUIRE(got_binary.ok());
    CHECK(got_binary->str == binary);

    auto incr = client.command({"INCRBY", "counter", "41"});
    REQUIRE(incr.ok());
    CHECK(incr->type == RedisValue::Type::integer);
    CHECK(incr->integer == 41);
    CHECK(redis_text(*incr) == "41");

    auto missing = client.command({"GET", "no-such-key"});
    REQUIRE(missing.ok());
    CHECK(missing->is_nil());
    CHECK(redis_text(*missing).empty());

    REQUIRE(client.command({"RPUSH", "list", "x", "y", "z"}).ok());
    auto list = client.command({"LRANGE", "list", "0", "-1"});
    REQUIRE(list.ok());
    CHECK(list->type == RedisValue::Type::array);
    REQUIRE(list->elements.size() == 3);
    CHECK(list->at(0).str == "x");
    CHECK(list->at(2).str == "z");
    CHECK(list->at(3).is_nil());        // out of range: nil, not a crash
    CHECK(list->at(0).at(0).is_nil());  // not an array: nil
    auto nested = client.command({"MGET", "greeting", "no-such-key"});
    REQUIRE(nested.ok());
    REQUIRE(nested->elements.size() == 2);
    CHECK(nested->at(0).str == "hello");
    CHECK(nested->at(1).is_nil());

    // A Redis error reply is a value the caller inspects, not an Error.
    auto wrong_type = client.command({"INCR", "greeting"});
    REQUIRE(wrong_type.ok());
    CHECK(wrong_type->is_error());
    CHECK(contains(wrong_type->str, "not an integer"));
    auto unknown = client.command({"NOSUCHCOMMAND", "x"});
    REQUIRE(unknown.ok());
    CHECK(unknown->is_error());
    CHECK(redis_text(*unknown).empty());

    // The client is still usable after error replies.
    auto ping = client.command({"PING"});
    REQUIRE(ping.ok());
    CHECK(ping->str == "PONG");
  }

  SUBCASE("pipeline: replies in order, an error reply in the middle does not stop the rest") {
    auto replies = client.pipeline({{"SET", "k", "v"},
                                    {"GET", "k"},
                                    {"INCR", "k"},  // error: not an integer
                                    {"INCR", "n"},
                                    {"GET", "absent"},
                                    {"LRANGE", "absent-list", "0", "-1"}});
    REQUIRE(replies.ok());
    REQUIRE(replies->size() == 6);
    const auto& r = *replies;
    CHECK(r[0].type == RedisValue::Type::status);
    CHECK(r[1].str == "v");
    CHECK(r[2].is_error());
    CHECK(r[3].type == RedisValue::Type::integer);
    CHECK(r[3].integer == 1);
    CHECK(r[4].is_nil());
    CHECK(r[5].type == RedisValue::Type::array);
    CHECK(r[5].elements.empty());
  }

  SUBCASE("a blocking command waits past the command timeout when given extra_wait") {
    RedisClient quick(endpoint_of(redis.url()), RedisClientOptions{.max_connections = 4,
                                                                   .connect_timeout = 1000ms,
                                                                   .command_timeout = 200ms});
    // BLPOP for 1 s on an empty list: nil after the block, not a timeout.
    auto blocked = quick.command({"BLPOP", "empty-list", "1"}, 1500ms);
    REQUIRE(blocked.ok());
    CHECK(blocked->is_nil());
    CHECK(quick.status().up);
  }

  REQUIRE(client.command({"PING"}).ok());
  const auto status = client.status();
  CHECK(status.up);
  CHECK(status.error.empty());
  CHECK(status.round_trip.count >= 1);
  CHECK(client.endpoint().port == redis.port());
}

TEST_CASE("redis client: eval loads a script, and loads it again after SCRIPT FLUSH") {
  RedisServer redis;
  RedisClient client(endpoint_of(redis.url()));
  const RedisScript script{"add",
                           "return {redis.call('INCRBY', KEYS[1], ARGV[1]), KEYS[1], ARGV[1]}"};

  auto first = client.eval(script, {"total"}, {"5"});
  REQUIRE(first.ok());
  REQUIRE_FALSE(first->is_error());
  REQUIRE(first->elements.size() == 3);
  CHECK(first->at(0).integer == 5);
  CHECK(first->at(1).str == "total");
  CHECK(first->at(2).str == "5");

  // SCRIPT LOAD is idempotent: it only tells us the SHA the client used.
  auto sha = client.command({"SCRIPT", "LOAD", script.source});
  REQUIRE(sha.ok());
  REQUIRE(sha->type == RedisValue::Type::string);
  auto exists = [&] {
    auto reply = client.command({"SCRIPT", "EXISTS", sha->str});
    REQUIRE(reply.ok());
    return reply->at(0).integer == 1;
  };
  CHECK(exists());

  // Redis forgets every script (as after a restart): EVALSHA answers
  // NOSCRIPT, and the client loads the script again and runs it.
  CHECK(contains(redis.cli("SCRIPT FLUSH"), "OK"));
  CHECK_FALSE(exists());
  auto second = client.eval(script, {"total"}, {"2"});
  REQUIRE(second.ok());
  REQUIRE_FALSE(second->is_error());
  CHECK(second->at(0).integer == 7);  // ran exactly once more
  CHECK(exists());
  CHECK(trimmed(redis.cli("GET total")) == "7");

  // A script's own error is a value, like any error reply.
  const RedisScript failing{"fail", "return redis.error_reply('BROKEN on purpose')"};
  auto failed = client.eval(failing, {}, {});
  REQUIRE(failed.ok());
  CHECK(failed->is_error());
  CHECK(contains(failed->str, "BROKEN on purpose"));
}

TEST_CASE("redis client: AUTH with the URL's password, refused with a wrong one") {
  RedisServer redis(RedisServerOptions{.append_only = false, .password = "letmein42"});
  const std::string with_password =
      "redis://:letmein42@127.0.0.1:" + std::to_string(redis.port()) + "/0";

  RedisClient client(endpoint_of(with_password));
  auto set = client.command({"SET", "authed", "yes"});
  REQUIRE(set.ok());
  CHECK(set->str == "OK");
  CHECK(trimmed(redis.cli("GET authed")) == "yes");

  SUBCASE("a wrong password: store_unavailable naming the store, never the password") {
    RedisClient wrong(endpoint_of("redis://:nottheone@127.0.0.1:" + std::to_string(redis.port())));
    auto refused = wrong.command({"PING"});
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.error().code == ErrorCode::store_unavailable);
    CHECK(contains(refused.error().message, "AUTH"));
    CHECK(contains(refused.error().message, redis.url()));
    CHECK_FALSE(contains(refused.error().message, "nottheone"));
    CHECK_FALSE(wrong.status().up);
  }
  SUBCASE("no password: Redis's NOAUTH is an error reply") {
    RedisClient anonymous(endpoint_of(redis.url()));
    auto denied = anonymous.command({"GET", "authed"});
    REQUIRE(denied.ok());
    CHECK(denied->is_error());
    CHECK(contains(denied->str, "NOAUTH"));
  }
}

TEST_CASE("redis client: the URL's /db selects the database on every connection") {
  RedisServer redis;
  RedisClient client(endpoint_of(redis.url(3)));
  auto replies = client.pipeline({{"SET", "where", "db3"}, {"CLIENT", "INFO"}});
  REQUIRE(replies.ok());
  CHECK(contains((*replies)[1].str, "db=3"));
  CHECK(trimmed(redis.cli("-n 3 GET where")) == "db3");
  CHECK(trimmed(redis.cli("-n 0 EXISTS where")) == "0");

  // A blocked command holds the first connection; the next command opens a
  // second one, which must have run SELECT 3 too.
  auto blocked = std::async(std::launch::async, [&] {
    return client.command({"BLPOP", "wake", "5"}, 6000ms);
  });
  REQUIRE(wait_until([&] { return contains(redis.cli("CLIENT LIST"), "cmd=blpop"); }, 10s, 10ms));
  auto second = client.command({"GET", "where"});
  REQUIRE(second.ok());
  CHECK(second->str == "db3");
  CHECK(contains(redis.cli("-n 3 RPUSH wake now"), "1"));
  auto woke = blocked.get();
  REQUIRE(woke.ok());
  CHECK(woke->at(0).str == "wake");
  CHECK(woke->at(1).str == "now");
}

TEST_CASE("redis client: a dead Redis gives store_unavailable and backoff, then it reconnects") {
  RedisServer redis;
  RedisClient client(endpoint_of(redis.url()));
  REQUIRE(client.command({"SET", "before", "1"}).ok());
  REQUIRE(client.status().up);
  const auto errors_before = client.status().errors;

  redis.kill();

  // The first call trips over the dead connection; it fails (it never
  // hangs: the test would time out) with store_unavailable naming the URL.
  auto first = client.command({"GET", "before"});
  REQUIRE_FALSE(first.ok());
  CHECK(first.error().code == ErrorCode::store_unavailable);
  CHECK(contains(first.error().message, redis.url()));

  // Then the client connects again, which fails, and backs off: a call
  // while the backoff runs is refused at once with "retry after N s".
  CHECK(refused_with_retry_after(client, redis.url()));
  // pipeline and eval fail the same way.
  auto piped = client.pipeline({{"PING"}, {"PING"}});
  REQUIRE_FALSE(piped.ok());
  CHECK(piped.error().code == ErrorCode::store_unavailable);
  auto evaluated = client.eval(RedisScript{"one", "return 1"}, {}, {});
  REQUIRE_FALSE(evaluated.ok());
  CHECK(evaluated.error().code == ErrorCode::store_unavailable);

  const auto down = client.status();
  CHECK_FALSE(down.up);
  CHECK_FALSE(down.error.empty());
  CHECK(down.errors > errors_before);

  redis.restart();
  // Nobody tells the client: it reconnects on a call once its backoff (at
  // most 5 s) has passed.
  REQUIRE(wait_until([&] { return client.command({"PING"}).ok(); }, 30s, 50ms));
  const auto up = client.status();
  CHECK(up.up);
  CHECK(up.error.empty());
  CHECK(up.retry_in == 0ms);
  CHECK(up.reconnects >= 1);
  // The data died with the server (no AOF); the client works normally.
  auto after = client.command({"GET", "before"});
  REQUIRE(after.ok());
  CHECK(after->is_nil());
  auto evaluated_again = client.eval(RedisScript{"one", "return 1"}, {}, {});
  REQUIRE(evaluated_again.ok());
  CHECK(evaluated_again->integer == 1);
}

TEST_CASE(
    "redis client: a client that never reached Redis refuses with retry after, then connects") {
  RedisServer redis;
  RedisClient client(endpoint_of(redis.url()));
  redis.kill();

  auto first = client.command({"PING"});
  REQUIRE_FALSE(first.ok());
  CHECK(first.error().code == ErrorCode::store_unavailable);
  CHECK(contains(first.error().message, redis.url()));
  CHECK(contains(first.error().message, "cannot connect"));
  CHECK_FALSE(client.status().up);
  CHECK(client.status().retry_in <= 5000ms);
  CHECK(refused_with_retry_after(client, redis.url()));

  redis.restart();
  REQUIRE(wait_until([&] { return client.command({"PING"}).ok(); }, 30s, 50ms));
  CHECK(client.status().up);
  CHECK(client.status().reconnects >= 1);
}

TEST_CASE("redis client: every connection busy: store_unavailable after the command timeout") {
  RedisServer redis;
  RedisClient client(endpoint_of(redis.url()), RedisClientOptions{.max_connections = 1,
                                                                  .connect_timeout = 1000ms,
                                                                  .command_timeout = 300ms});
  // The only connection blocks in BLPOP until the list gets an element.
  auto blocked = std::async(std::launch::async, [&] {
    return client.command({"BLPOP", "wake", "20"}, 21000ms);
  });
  REQUIRE(wait_until([&] { return contains(redis.cli("CLIENT LIST"), "cmd=blpop"); }, 10s, 10ms));

  auto busy = client.command({"PING"});
  REQUIRE_FALSE(busy.ok());
  CHECK(busy.error().code == ErrorCode::store_unavailable);
  CHECK(contains(busy.error().message, "all 1 connections busy"));
  CHECK(contains(busy.error().message, "retry after"));
  CHECK(contains(busy.error().message, redis.url()));
  // Busy is not down.
  CHECK(client.status().up);

  CHECK(contains(redis.cli("RPUSH wake now"), "1"));
  auto woke = blocked.get();
  REQUIRE(woke.ok());
  CHECK(woke->at(1).str == "now");
  auto ping = client.command({"PING"});
  REQUIRE(ping.ok());
  CHECK(ping->str == "PONG");
}

TEST_CASE("redis client: a Redis that stops answering gives store_unavailable, not a hang") {
  RedisServer redis;
  RedisClient client(
      endpoint_of(redis.url()),
      RedisClientOptions{.max_connections = 4, .connect_timeout = 300ms, .command_timeout = 300ms});
  REQUIRE(client.command({"PING"}).ok());

  // Stopped, not dead: the kernel still accepts connections, nobody answers.
  REQUIRE(::kill(redis.pid(), SIGSTOP) == 0);
  struct Continue {
    pid_t pid;
    ~Continue() { ::kill(pid, SIGCONT); }
  } resume{redis.pid()};

  auto stalled = client.command({"PING"});
  REQUIRE_FALSE(stalled.ok());
  CHECK(stalled.error().code == ErrorCode::store_unavailable);
  CHECK(contains(stalled.error().message, "no answer within 300 ms"));
  CHECK(contains(stalled.error().message, redis.url()));
  CHECK_FALSE(client.status().up);
  auto piped = client.pipeline({{"PING"}, {"PING"}});
  REQUIRE_FALSE(piped.ok());
  CHECK(piped.error().code == ErrorCode::store_unavailable);

  ::kill(redis.pid(), SIGCONT);
  REQUIRE(wait_until([&] { return client.command({"PING"}).ok(); }, 30s, 50ms));
  CHECK(client.status().up);
  CHECK(client.status().reconnects >= 1);
}
