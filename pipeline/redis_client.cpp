#include "pipeline/redis_client.hpp"

#include <hiredis/hiredis.h>

#include <algorithm>
#include <charconv>
#include <condition_variable>
#include <map>
#include <mutex>

namespace pixpool {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::chrono::milliseconds kFirstBackoff{100};
constexpr std::chrono::milliseconds kMaxBackoff{5000};

struct ContextDeleter {
  void operator()(redisContext* c) const { redisFree(c); }
};
using Context = std::unique_ptr<redisContext, ContextDeleter>;

struct ReplyDeleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

timeval to_timeval(std::chrono::milliseconds ms) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
  return tv;
}

RedisValue convert(const redisReply& r) {
  RedisValue v;
  switch (r.type) {
    case REDIS_REPLY_STRING:
      v.type = RedisValue::Type::string;
      v.str.assign(r.str, r.len);
      break;
    case REDIS_REPLY_STATUS:
      v.type = RedisValue::Type::status;
      v.str.assign(r.str, r.len);
      break;
    case REDIS_REPLY_ERROR:
      v.type = RedisValue::Type::error;
      v.str.assign(r.str, r.len);
      break;
    case REDIS_REPLY_INTEGER:
      v.type = RedisValue::Type::integer;
      v.integer = r.integer;
      break;
    case REDIS_REPLY_ARRAY:
      v.type = RedisValue::Type::array;
      v.elements.reserve(r.elements);
      for (std::size_t i = 0; i < r.elements; ++i) v.elements.push_back(convert(*r.element[i]));
      break;
    default:
      v.type = RedisValue::Type::nil;
  }
  return v;
}

std::vector<const char*> pointers(const std::vector<std::string_view>& args,
                                  std::vector<std::size_t>& lengths) {
  std::vector<const char*> out;
  out.reserve(args.size());
  lengths.clear();
  for (auto a : args) {
    out.push_back(a.data());
    lengths.push_back(a.size());
  }
  return out;
}

}  // namespace

const RedisValue& RedisValue::at(std::size_t i) const {
  static const RedisValue nil;
  return type == Type::array && i < elements.size() ? elements[i] : nil;
}

std::string redis_text(const RedisValue& value) {
  switch (value.type) {
    case RedisValue::Type::string:
    case RedisValue::Type::status:
      return value.str;
    case RedisValue::Type::integer:
      return std::to_string(value.integer);
    default:
      return "";
  }
}

std::string RedisEndpoint::display() const {
  return "redis://" + host + ":" + std::to_string(port) + "/" + std::to_string(db);
}

Result<RedisEndpoint> parse_redis_url(std::string_view url) {
  // The URL as errors show it: a password (anything before '@') masked.
  std::string shown(url);
  if (const auto at = shown.rfind('@'), scheme = shown.find("://");
      at != std::string::npos && scheme != std::string::npos && scheme + 3 <= at) {
    shown.replace(scheme + 3, at - scheme - 3, "***");
  }
  auto bad = [&](const std::string& why) -> Error {
    return Error{
        ErrorCode::invalid_parameter,
        "store URL '" + shown + "': " + why + " (expected redis://[:password@]host[:port][/db])"};
  };
  constexpr std::string_view kScheme = "redis://";
  if (url.substr(0, kScheme.size()) != kScheme) return bad("must start with redis://");
  std::string_view rest = url.substr(kScheme.size());
  if (rest.find_first_of("?#") != std::string_view::npos) {
    return bad("query strings and fragments are not supported");
  }
  RedisEndpoint e;
  if (const auto at = rest.rfind('@'); at != std::string_view::npos) {
    const std::string_view userinfo = rest.substr(0, at);
    if (userinfo.empty() || userinfo.front() != ':') {
      return bad("only a password is supported before '@' (redis://:password@host)");
    }
    e.password = std::string(userinfo.substr(1));
    if (e.password.empty()) return bad("empty password");
    rest = rest.substr(at + 1);
  }
  std::string_view hostport = rest;
  if (const auto slash = rest.find('/'); slash != std::string_view::npos) {
    hostport = rest.substr(0, slash);
    const std::string_view db = rest.substr(slash + 1);
    if (!db.empty()) {
      int n = -1;
      const auto [end, ec] = std::from_chars(db.data(), db.data() + db.size(), n);
      if (ec != std::errc{} || end != db.data() + db.size() || n < 0 || n > 10000) {
        return bad("the database must be a number 0..10000");
      }
      e.db = n;
    }
  }
  std::string_view host = hostport;
  if (!hostport.empty() && hostport.front() == '[') {  // [::1]:6379
    const auto close = hostport.find(']');
    if (close == std::string_view::npos) return bad("unclosed '[' in the host");
    host = hostport.substr(1, close - 1);
    hostport = hostport.substr(close + 1);
    if (!hostport.empty() && hostport.front() != ':') return bad("junk after ']'");
    if (!hostport.empty())
      hostport = hostport.substr(1);
    else
      hostport = {};
  } else if (const auto colon = hostport.rfind(':'); colon != std::string_view::npos) {
    host = hostport.substr(0, colon);
    hostport = hostport.substr(colon + 1);
  } else {
    hostport = {};
  }
  if (host.empty()) return bad("no host");
  e.host = std::string(host);
  if (!hostport.empty()) {
    int port = 0;
    const auto [end, ec] =
        std::from_chars(hostport.data(), hostport.data() + hostport.size(), port);
    if (ec != std::errc{} || end != hostport.data() + hostport.size() || port < 1 || port > 65535) {
      return bad("the port must be a number 1..65535");
    }
    e.port = port;
  }
  return e;
}

struct RedisClient::State {
  RedisEndpoint endpoint;
  RedisClientOptions options;

  mutable std::mutex mutex;  // guards everything below
  std::condition_variable returned;
  std::vector<Context> idle;
  std::size_t open = 0;  // connections in use or idle
  bool up = false;
  std::string error = "not connected yet";
  Clock::time_point next_attempt{};
  std::chrono::milliseconds backoff = kFirstBackoff;
  bool failed_before = false;
  std::uint64_t errors = 0;
  std::uint64_t reconnects = 0;
  Histogram round_trip;
  std::map<std::string, std::string> shas;  // script source -> SHA1 from SCRIPT LOAD

  Error unavailable(const std::string& why) const {
    return Error{ErrorCode::store_unavailable, "job store " + endpoint.display() + ": " + why};
  }

  // A connection: an idle one, a new one, or an error. Waits (up to the
  // command timeout) when all max_connections are in use.
  Result<Context> acquire();
  // `seconds` < 0: not a round trip to record.
  void release(Context c, bool broken, const std::string& why, double seconds);
  Result<Context> connect();
};

Result<Context> RedisClient::State::connect() {
  Context c(redisConnectWithTimeout(endpoint.host.c_str(), endpoint.port,
                                    to_timeval(options.connect_timeout)));
  auto fail = [&](const std::string& why) -> Error { return unavailable(why); };
  if (!c) return fail("out of memory for a connection");
  if (c->err != 0) return fail(std::string("cannot connect: ") + c->errstr);
  redisSetTimeout(c.get(), to_timeval(options.command_timeout));
  redisEnableKeepAlive(c.get());
  auto run = [&](std::vector<std::string_view> args) -> Result<void> {
    std::vector<std::size_t> lengths;
    auto argv = pointers(args, lengths);
    Reply r(static_cast<redisReply*>(
        redisCommandArgv(c.get(), static_cast<int>(argv.size()), argv.data(), lengths.data())));
    if (!r) return fail(std::string("connection lost: ") + c->errstr);
    if (r->type == REDIS_REPLY_ERROR) {
      return fail(std::string(args[0]) + " refused: " + std::string(r->str, r->len));
    }
    return {};
  };
  if (!endpoint.password.empty()) {
    if (auto ok = run({"AUTH", endpoint.password}); !ok) return ok.error();
  }
  if (endpoint.db != 0) {
    const std::string db = std::to_string(endpoint.db);
    if (auto ok = run({"SELECT", db}); !ok) return ok.error();
  }
  return c;
}

Result<Context> RedisClient::State::acquire() {
  std::unique_lock lock(mutex);
  const auto deadline = Clock::now() + options.command_timeout;
  for (;;) {
    if (!idle.empty()) {
      Context c = std::move(idle.back());
      idle.pop_back();
      return c;
    }
    if (!up && Clock::now() < next_attempt) {
      const auto wait = std::chrono::ceil<std::chrono::seconds>(next_attempt - Clock::now());
      return unavailable(error + " (retry after " +
                         std::to_string(std::max<long long>(1, wait.count())) + " s)");
    }
    if (open < options.max_connections) break;
    if (returned.wait_until(lock, deadline) == std::cv_status::timeout) {
      ++errors;
      return unavailable("all " + std::to_string(options.max_connections) +
                         " connections busy (retry after 1 s)");
    }
  }
  ++open;
  lock.unlock();
  auto c = connect();
  lock.lock();
  if (!c) {
    --open;
    ++errors;
    up = false;
    error = c.error().message.substr(c.error().message.find(": ") + 2);
    next_attempt = Clock::now() + backoff;
    backoff = std::min(backoff * 2, kMaxBackoff);
    failed_before = true;
    returned.notify_one();
    return c.error();
  }
  if (failed_before) ++reconnects;
  failed_before = false;
  up = true;
  error.clear();
  backoff = kFirstBackoff;
  return c;
}

void RedisClient::State::release(Context c, bool broken, const std::string& why, double seconds) {
  std::lock_guard lock(mutex);
  if (broken) {
    --open;
    ++errors;
    up = false;
    error = why;
    // Reconnect at once (Redis may be fine and only this socket bad); a
    // failed connect then backs off.
    next_attempt = Clock::now();
    failed_before = true;
    // Other idle connections likely share the fate (a restarted Redis):
    // drop them so no caller trips over each in turn.
    open -= idle.size();
    idle.clear();
  } else {
    if (seconds >= 0) round_trip.observe(seconds);
    idle.push_back(std::move(c));
  }
  returned.notify_one();
}

RedisClient::RedisClient(RedisEndpoint endpoint, RedisClientOptions options)
    : state_(std::make_unique<State>()) {
  state_->endpoint = std::move(endpoint);
  state_->options = options;
}

RedisClient::~RedisClient() = default;

const RedisEndpoint& RedisClient::endpoint() const {
  return state_->endpoint;
}

Result<std::vector<RedisValue>> RedisClient::pipeline(
    const std::vector<std::vector<std::string_view>>& commands) {
  auto acquired = state_->acquire();
  if (!acquired) return acquired.error();
  Context c = std::move(acquired.value());
  const auto started = Clock::now();
  std::vector<std::size_t> lengths;
  for (const auto& args : commands) {
    auto argv = pointers(args, lengths);
    if (redisAppendCommandArgv(c.get(), static_cast<int>(argv.size()), argv.data(),
                               lengths.data()) != REDIS_OK) {
      const std::string why = std::string("cannot send: ") + c->errstr;
      state_->release(std::move(c), true, why, 0);
      return state_->unavailable(why);
    }
  }
  std::vector<RedisValue> out;
  out.reserve(commands.size());
  for (std::size_t i = 0; i < commands.size(); ++i) {
    void* raw = nullptr;
    if (redisGetReply(c.get(), &raw) != REDIS_OK || raw == nullptr) {
      const std::string why = c->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK)
                                  ? std::string("no answer within ") +
                                        std::to_string(state_->options.command_timeout.count()) +
                                        " ms"
                                  : std::string("connection lost: ") + c->errstr;
      state_->release(std::move(c), true, why, 0);
      return state_->unavailable(why);
    }
    Reply reply(static_cast<redisReply*>(raw));
    out.push_back(convert(*reply));
  }
  state_->release(std::move(c), false, "",
                  std::chrono::duration<double>(Clock::now() - started).count());
  return out;
}

Result<RedisValue> RedisClient::command(const std::vector<std::string_view>& args,
                                        std::chrono::milliseconds extra_wait) {
  if (extra_wait.count() <= 0) {
    auto replies = pipeline({args});
    if (!replies) return replies.error();
    return std::move(replies->front());
  }
  auto acquired = state_->acquire();
  if (!acquired) return acquired.error();
  Context c = std::move(acquired.value());
  redisSetTimeout(c.get(), to_timeval(state_->options.command_timeout + extra_wait));
  std::vector<std::size_t> lengths;
  auto argv = pointers(args, lengths);
  Reply r(static_cast<redisReply*>(
      redisCommandArgv(c.get(), static_cast<int>(argv.size()), argv.data(), lengths.data())));
  if (!r) {
    const std::string why = std::string("connection lost: ") + c->errstr;
    state_->release(std::move(c), true, why, 0);
    return state_->unavailable(why);
  }
  redisSetTimeout(c.get(), to_timeval(state_->options.command_timeout));
  RedisValue value = convert(*r);
  // A blocking call's wait is not a round trip: not recorded.
  state_->release(std::move(c), false, "", -1);
  return value;
}

Result<std::string> RedisClient::script_sha(const RedisScript& script) {
  {
    std::lock_guard lock(state_->mutex);
    if (auto it = state_->shas.find(script.source); it != state_->shas.end()) return it->second;
  }
  auto loaded = command({"SCRIPT", "LOAD", script.source});
  if (!loaded) return loaded.error();
  if (loaded->type != RedisValue::Type::string) {
    return state_->unavailable("cannot load script " + script.name + ": " + loaded->str);
  }
  std::lock_guard lock(state_->mutex);
  state_->shas[script.source] = loaded->str;
  return loaded->str;
}

void RedisClient::forget_script(const RedisScript& script) {
  std::lock_guard lock(state_->mutex);
  state_->shas.erase(script.source);
}

Result<RedisValue> RedisClient::eval(const RedisScript& script,
                                     const std::vector<std::string_view>& keys,
                                     const std::vector<std::string_view>& args) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto sha = script_sha(script);
    if (!sha) return sha.error();
    const std::string nkeys = std::to_string(keys.size());
    std::vector<std::string_view> argv{"EVALSHA", *sha, nkeys};
    argv.insert(argv.end(), keys.begin(), keys.end());
    argv.insert(argv.end(), args.begin(), args.end());
    auto reply = command(argv);
    if (!reply) return reply.error();
    if (reply->is_error() && reply->str.rfind("NOSCRIPT", 0) == 0) {
      forget_script(script);
      continue;  // Redis restarted without our scripts: load and retry
    }
    return reply;
  }
  return state_->unavailable("script " + script.name + " could not be loaded");
}

Result<std::vector<RedisValue>> RedisClient::eval_with(
    const RedisScript& script, const std::vector<std::string_view>& keys,
    const std::vector<std::string_view>& args,
    const std::vector<std::vector<std::string_view>>& before,
    const std::vector<std::vector<std::string_view>>& after, bool atomic) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto sha = script_sha(script);
    if (!sha) return sha.error();
    const std::string nkeys = std::to_string(keys.size());
    std::vector<std::string_view> eval{"EVALSHA", *sha, nkeys};
    eval.insert(eval.end(), keys.begin(), keys.end());
    eval.insert(eval.end(), args.begin(), args.end());
    std::vector<std::vector<std::string_view>> commands;
    commands.reserve(before.size() + after.size() + 3);
    if (atomic) commands.push_back({"MULTI"});
    commands.insert(commands.end(), before.begin(), before.end());
    commands.push_back(std::move(eval));
    commands.insert(commands.end(), after.begin(), after.end());
    if (atomic) commands.push_back({"EXEC"});
    auto replies = pipeline(commands);
    if (!replies) return replies.error();
    std::vector<RedisValue> out;
    if (atomic) {
      RedisValue& exec = replies->back();
      if (exec.type != RedisValue::Type::array) {
        return state_->unavailable("transaction refused: " +
                                   (exec.is_error() ? exec.str : std::string("EXEC gave nil")));
      }
      out = std::move(exec.elements);
    } else {
      out = std::move(replies.value());
    }
    if (out.size() != before.size() + 1 + after.size()) {
      return state_->unavailable("unexpected reply count from a transaction");
    }
    const RedisValue& result = out[before.size()];
    if (result.is_error() && result.str.rfind("NOSCRIPT", 0) == 0) {
      forget_script(script);
      continue;  // Redis restarted without our scripts: load and send again
    }
    return out;
  }
  return state_->unavailable("script " + script.name + " could not be loaded");
}

RedisClient::Status RedisClient::status() const {
  std::lock_guard lock(state_->mutex);
  Status s;
  s.up = state_->up;
  s.error = state_->error;
  const auto now = Clock::now();
  if (!state_->up && now < state_->next_attempt) {
    s.retry_in = std::chrono::ceil<std::chrono::milliseconds>(state_->next_attempt - now);
  }
  s.errors = state_->errors;
  s.reconnects = state_->reconnects;
  s.round_trip = state_->round_trip;
  return s;
}

}  // namespace pixpool
