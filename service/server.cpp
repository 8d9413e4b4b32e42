#include "service/server.hpp"

#include <httplib.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <map>
#include <mutex>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "service/access.hpp"
#include "service/http_errors.hpp"
#include "service/http_metrics.hpp"
#include "service/routes/context.hpp"
#include "service/routes/routes.hpp"

namespace pixpool {
namespace {

using Clock = std::chrono::steady_clock;
using Handler = httplib::Server::Handler;

// HTTP threads kept free of processing work for health and metrics.
constexpr int kReservedHttpThreads = 4;

// When the current request started; httplib serves a request on one thread
// from pre-routing to logging, so a thread_local is enough.
thread_local std::optional<Clock::time_point> request_started;

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
  Impl(const Config& c, ServerParts p)
      : config(c),
        processing(c.http.threads - kReservedHttpThreads),
        context{config,    p.backends, p.downloader, p.results,
                p.batches, p.metrics,  http_metrics, processing} {}

  const Config config;
  const AccessControl access{config.access};  // API keys and CORS, before routing
  HttpMetrics http_metrics;
  ProcessingLimit processing;
  RouteContext context;
  httplib::Server http;
  std::vector<Label> labels;  // from route_table(), in its order
  std::mutex log_mutex;

  void install();
  void install_routes();
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

void Server::Impl::install() {
  http.new_task_queue = [n = config.http.threads] {
    return new httplib::ThreadPool(static_cast<std::size_t>(n));
  };
  http.set_payload_max_length(config.http.max_body_bytes);
  http.set_read_timeout(config.http.read_timeout);
  http.set_write_timeout(config.http.read_timeout);
  http.set_keep_alive_max_count(100);
  // Each idle keep-alive connection holds an HTTP thread: do not keep it long.
  http.set_keep_alive_timeout(2);
  http.set_tcp_nodelay(true);

  // A refused client is told before it sends its body (curl waits for 100).
  http.set_expect_100_continue_handler([this](const httplib::Request& req, httplib::Response& res) {
    return access.expect_continue(req, res);
  });
  http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    request_started = Clock::now();
    if (access.handle(req, res)) return httplib::Server::HandlerResponse::Handled;
    // RFC 9112: a request with neither Content-Length nor Transfer-Encoding
    // has an empty body. httplib would instead read until the client closes
    // (`curl -X POST` without data would hang until the read timeout).
    if (!req.has_header("Content-Length") && !req.has_header("Transfer-Encoding")) {
      const_cast<httplib::Request&>(req).set_header("Content-Length", "0");
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  http.set_error_handler(
      httplib::Server::HandlerWithResponse([](const httplib::Request&, httplib::Response& res) {
        fill_error_body(res);
        return httplib::Server::HandlerResponse::Handled;
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
  http_metrics.record_request(label_of(req.path), res.status);
  if (!config.http.access_log) return;
  std::string duration = "-";
  if (request_started) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.3f", ms_between(*request_started, Clock::now()));
    duration = buf;
    request_started.reset();
  }
  const std::string bytes_in =
      req.has_header("Content-Length") ? req.get_header_value("Content-Length") : "0";
  const std::string backend =
      res.has_header("X-Pixpool-Backend") ? res.get_header_value("X-Pixpool-Backend") : "-";
  char line[2048];
  std::snprintf(line, sizeof line, "%s %s %s %d in=%s out=%zu backend=%s ms=%s\n",
                utc_timestamp().c_str(), req.method.c_str(), req.path.c_str(), res.status,
                bytes_in.c_str(), res.body.size(), backend.c_str(), duration.c_str());
  std::lock_guard lock(log_mutex);
  std::fputs(line, stderr);
}

Server::Server(const Config& config, ServerParts parts)
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
  if (c.port == 0) {
    const int port = impl_->http.bind_to_any_port(c.host);
    if (port > 0) {
      ::listen(listen_fd, SOMAXCONN);
      return port;
    }
  } else if (impl_->http.bind_to_port(c.host, c.port)) {
    ::listen(listen_fd, SOMAXCONN);
    return c.port;
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
