#include "service/server.hpp"

#include <httplib.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "service/access.hpp"
#include "service/access_log.hpp"
#include "service/connection_threads.hpp"
#include "service/http_errors.hpp"
#include "service/http_metrics.hpp"
#include "service/request_guard.hpp"
#include "service/request_head_watchdog.hpp"
#include "service/routes/context.hpp"
#include "service/routes/routes.hpp"

namespace pixpool {
namespace {

using Clock = std::chrono::steady_clock;
using Handler = httplib::Server::Handler;
using HandlerResponse = httplib::Server::HandlerResponse;

// HTTP threads kept free of processing work for health and metrics.
constexpr int kReservedHttpThreads = 4;

// httplib serves a connection (every request on it, from pre-routing to
// logging) on one thread, so per-request state can be thread_local.
// When the current request started:
thread_local std::optional<Clock::time_point> request_started;
// The current request was a HEAD that close_after_response() turned into a
// GET (for the access log):
thread_local bool head_answered_as_get = false;

// --max-processing, capped so that a few connection threads stay free for
// /healthz, /readyz and /metrics.
int processing_limit(const HttpOptions& http) {
  return std::min(http.max_processing, std::max(1, http.threads - kReservedHttpThreads));
}

// Pre-routing check: cpp-httplib has parsed any Range header into
// req.ranges and would apply it to whatever the route answers (one range ->
// a slice, several -> a multipart/byteranges answer as large as the ranges
// add up to). pixpool applies ranges itself, only to stored results
// (routes/results.cpp), so httplib never does.
void ignore_ranges(httplib::Request& req) {
  req.ranges.clear();
}

// Pre-routing check: RFC 9112 says a request with neither Content-Length
// nor Transfer-Encoding has an empty body. httplib would instead read until
// the client closes (`curl -X POST` without data would hang until the read
// timeout).
void default_empty_body(httplib::Request& req) {
  if (!req.has_header("Content-Length") && !req.has_header("Transfer-Encoding")) {
    req.set_header("Content-Length", "0");
  }
}

// What httplib owns (and deletes when listening ends) in place of its
// ThreadPool: a handle on connection threads the server also holds, so
// /metrics can read their gauges.
class SharedConnectionThreads final : public httplib::TaskQueue {
 public:
  explicit SharedConnectionThreads(std::shared_ptr<ConnectionThreads> threads)
      : threads_(std::move(threads)) {}
  void enqueue(std::function<void()> fn) override { threads_->enqueue(std::move(fn)); }
  void shutdown() override { threads_->shutdown(); }

 private:
  std::shared_ptr<ConnectionThreads> threads_;
};

// Makes `res` (an error answer with its body in res.body) end its connection
// once it is written, whatever the route and the keep-alive settings: the
// request may have left bytes unread (a refused body, the rest of an
// over-long header) that must never be parsed as another request.
//
// cpp-httplib 0.11.4 closes a connection only when writing a response fails,
// so the body goes through a content provider that writes it all and then
// returns false: the client gets the whole answer, then the connection is
// shut down. "Connection: close" is announced by setting it on the request,
// the one place write_response_core looks at (a handler's own header would
// be sent next to "Keep-Alive: ..." and not close anything).
//
// HEAD answers never write a body, so a provider would never run: the
// request is answered as a GET whose provider writes nothing. The client
// gets the headers (Content-Length is the body's length, as for any HEAD),
// then the connection closes.
void close_after_response(httplib::Request& req, httplib::Response& res) {
  req.headers.erase("Connection");
  req.set_header("Connection", "close");
  res.headers.erase("Connection");
  const bool head = req.method == "HEAD";
  if (head) {
    req.method = "GET";
    head_answered_as_get = true;
  }
  auto body = std::make_shared<const std::string>(std::move(res.body));
  res.body.clear();
  std::string type = res.get_header_value("Content-Type");
  res.headers.erase("Content-Type");
  if (type.empty()) type = "application/json";
  if (body->empty()) body = std::make_shared<const std::string>("\n");
  res.set_content_provider(
      body->size(), type,
      [body, head](std::size_t offset, std::size_t length, httplib::DataSink& sink) {
        if (!head) sink.write(body->data() + offset, length);
        return false;  // ends the connection (see above)
      });
}

double ms_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

std::string utc_timestamp() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t seconds = std::chrono::system_clock::to_time_t(now);
  const auto millis =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char buf[80];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(millis));
  return buf;
}

// A route pattern compiled once, for metrics labels.
struct Label {
  std::regex pattern;
  std::string label;
};

}  // namespace

struct Server::Impl {
  Impl(const Config& c, const ServerParts& p)
      : config(c),
        replica(p.replica),
        processing(processing_limit(c.http)),
        context{config, p.backends, p.downloader, p.store, p.metrics, http_metrics, processing} {}

  const Config config;
  const std::string replica;
  const AccessControl access{config.access};  // API keys and CORS, before routing
  // Header deadline and size limit; started by bind(), once the socket exists.
  std::unique_ptr<RequestHeadWatchdog> head_watchdog;
  HttpMetrics http_metrics;
  ProcessingLimit processing;
  RouteContext context;
  httplib::Server http;
  std::vector<Label> labels;  // from route_table(), in its order
  std::mutex log_mutex;

  void install();
  void install_routes();
  HandlerResponse before_routing(httplib::Request& req, httplib::Response& res);
  void start_head_watchdog(int listen_fd);
  std::string label_of(const std::string& path) const;
  void log_access(const httplib::Request& req, const httplib::Response& res);
};

// Installs route_table(): each entry on its method, and for every pattern a
// 405 with Allow (the pattern's methods, in alphabetical order) on the
// methods it does not list.
void Server::Impl::install_routes() {
  static const char* const kMethods[] = {"GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"};
  std::vector<std::string_view> patterns;
  std::map<std::string_view, std::vector<std::string_view>> methods_of;
  for (const Route& route : route_table()) {
    if (!methods_of.contains(route.pattern)) {
      patterns.push_back(route.pattern);
      labels.push_back(Label{std::regex(std::string(route.pattern)), std::string(route.label)});
    }
    methods_of[route.pattern].push_back(route.method);
    const std::string pattern(route.pattern);
    if (const auto* upload = std::get_if<UploadHandler>(&route.handler)) {
      http.Post(pattern, [this, h = *upload](const httplib::Request& req, httplib::Response& res,
                                             const httplib::ContentReader& reader) {
        h(context, req, res, reader);
      });
      continue;
    }
    const Handler handler = [this, h = std::get<PlainHandler>(route.handler)](
                                const httplib::Request& req, httplib::Response& res) {
      h(context, req, res);
    };
    if (route.method == "GET") http.Get(pattern, handler);
    if (route.method == "POST") http.Post(pattern, handler);
    if (route.method == "DELETE") http.Delete(pattern, handler);
  }
  for (const std::string_view pattern : patterns) {
    auto methods = methods_of[pattern];
    std::sort(methods.begin(), methods.end());
    std::string allow;
    for (const auto method : methods) allow += (allow.empty() ? "" : ", ") + std::string(method);
    for (const char* method : kMethods) {
      if (std::find(methods.begin(), methods.end(), method) != methods.end()) continue;
      const Handler refuse = [allow, method](const httplib::Request&, httplib::Response& res) {
        res.set_header("Allow", allow);
        send_error(res, {ErrorCode::method_not_allowed,
                         std::string(method) + " is not allowed here (allowed: " + allow + ")"});
      };
      const std::string p(pattern);
      const std::string_view m = method;
      if (m == "GET") http.Get(p, refuse);
      if (m == "POST") http.Post(p, refuse);
      if (m == "PUT") http.Put(p, refuse);
      if (m == "DELETE") http.Delete(p, refuse);
      if (m == "PATCH") http.Patch(p, refuse);
      if (m == "OPTIONS") http.Options(p, refuse);
    }
  }
}

// The metrics label of the route whose pattern matches `path` (whatever the
// method), "other" for unknown paths.
std::string Server::Impl::label_of(const std::string& path) const {
  for (const Label& l : labels) {
    if (std::regex_match(path, l.pattern)) return l.label;
  }
  return "other";
}

// Runs before routing and before any body byte is read: a short sequence
// of named checks, each of which may answer the request itself.
HandlerResponse Server::Impl::before_routing(httplib::Request& req, httplib::Response& res) {
  request_started = Clock::now();
  // Which replica answered: through a load balancer, clients and tests can
  // tell them apart (and find the one that accepted a job).
  if (!replica.empty()) res.set_header("X-Pixpool-Replica", replica);
  if (head_watchdog) head_watchdog->head_done(req.remote_addr, req.remote_port);
  ignore_ranges(req);
  if (auto refusal = check_framing(req)) {
    send_error(res, *refusal);
    return HandlerResponse::Handled;
  }
  if (access.handle(req, res)) return HandlerResponse::Handled;  // API keys, CORS preflight
  default_empty_body(req);
  return HandlerResponse::Unhandled;
}

// Before run(): no request is served yet, so no thread reads head_watchdog.
void Server::Impl::start_head_watchdog(int listen_fd) {
  head_watchdog = std::make_unique<RequestHeadWatchdog>(
      listen_fd, RequestHeadLimits{.timeout = config.http.header_timeout,
                                   .max_bytes = config.http.max_header_bytes});
  http_metrics.set_head_cut_source([w = head_watchdog.get()] { return w->stats(); });
}

void Server::Impl::install() {
  // One set of connection threads per listen (httplib asks once per run()).
  http.new_task_queue = [this] {
    auto threads =
        std::make_shared<ConnectionThreads>(static_cast<std::size_t>(config.http.threads));
    http_metrics.set_connection_source([threads] { return threads->stats(); });
    return new SharedConnectionThreads(threads);
  };
  http.set_payload_max_length(config.http.max_body_bytes);
  http.set_read_timeout(config.http.read_timeout);
  http.set_write_timeout(config.http.read_timeout);
  http.set_keep_alive_max_count(static_cast<std::size_t>(config.http.keep_alive_requests));
  http.set_keep_alive_timeout(config.http.keep_alive_timeout.count());
  http.set_tcp_nodelay(true);

  // A refused client is told before it sends its body (curl waits for 100).
  // httplib asks this before pre-routing, so the framing is checked here too.
  http.set_expect_100_continue_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (auto refusal = check_framing(req)) {
      send_error(res, *refusal);
      return res.status;
    }
    return access.expect_continue(req, res);
  });
  // Handlers get a const Request; the object itself is not const.
  http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    return before_routing(const_cast<httplib::Request&>(req), res);
  });
  // Every status >= 400, httplib's own (400 malformed, 413, 414, 416
  // unparsable Range) included: a JSON body, no range applied to it, and
  // the connection closed after it.
  http.set_error_handler(
      httplib::Server::HandlerWithResponse([](const httplib::Request& req, httplib::Response& res) {
        auto& request = const_cast<httplib::Request&>(req);
        ignore_ranges(request);
        fill_error_body(res);
        close_after_response(request, res);
        return HandlerResponse::Handled;
      }));
  http.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, const std::exception_ptr& ep) {
        std::string what = "unknown exception";
        try {
          if (ep) std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        send_error(res, {ErrorCode::internal, "internal error: " + what});
      });
  http.set_logger(
      [this](const httplib::Request& req, const httplib::Response& res) { log_access(req, res); });

  install_routes();
}

void Server::Impl::log_access(const httplib::Request& req, const httplib::Response& res) {
  if (head_watchdog) head_watchdog->response_done(req.remote_addr, req.remote_port);
  const std::string_view method = head_answered_as_get ? "HEAD" : std::string_view(req.method);
  head_answered_as_get = false;
  http_metrics.record_request(label_of(req.path), res.status);
  std::string duration;
  if (request_started) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.3f", ms_between(*request_started, Clock::now()));
    duration = buf;
    request_started.reset();
  }
  if (!config.http.access_log) return;
  const std::string bytes_in = req.get_header_value("Content-Length");
  const std::string backend = res.get_header_value("X-Pixpool-Backend");
  const std::string timestamp = utc_timestamp();
  const std::string line =
      access_log_line(AccessLogEntry{.timestamp = timestamp,
                                     .method = method,
                                     .path = req.path,
                                     .status = res.status,
                                     .bytes_in = bytes_in,
                                     .bytes_out = res.body.size() + res.content_length_,
                                     .backend = backend,
                                     .duration = duration});
  std::lock_guard lock(log_mutex);
  std::fputs(line.c_str(), stderr);
}

Server::Server(const Config& config, const ServerParts& parts)
    : impl_(std::make_unique<Impl>(config, parts)) {
  impl_->install();
}

Server::~Server() = default;

Result<int> Server::bind() {
  const HttpOptions& c = impl_->config.http;
  // Debian's cpp-httplib 0.11 library listens with a compiled-in backlog of
  // 5: a burst of new connections beyond that (64 clients at once in the
  // memory test) had some of them reset mid-upload. listen() again on a
  // listening socket only changes its backlog, so raise it after binding.
  int listen_fd = -1;
  impl_->http.set_socket_options([&listen_fd](socket_t sock) {
    httplib::default_socket_options(sock);
    listen_fd = sock;
  });
  struct RestoreOptions {
    httplib::Server& http;
    ~RestoreOptions() { http.set_socket_options(httplib::default_socket_options); }
  } restore{impl_->http};
  int port = -1;
  if (c.port == 0) {
    port = impl_->http.bind_to_any_port(c.host);
  } else if (impl_->http.bind_to_port(c.host, c.port)) {
    port = c.port;
  }
  if (port > 0) {
    ::listen(listen_fd, SOMAXCONN);
    impl_->start_head_watchdog(listen_fd);
    return port;
  }
  return Error{ErrorCode::internal, "cannot listen on " + c.host + ":" + std::to_string(c.port) +
                                        " (address in use or not available?)"};
}

bool Server::run() {
  return impl_->http.listen_after_bind();
}

void Server::stop() {
  impl_->http.stop();
}

}  // namespace pixpool
