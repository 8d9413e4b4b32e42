#include "service/access.hpp"

#include <algorithm>
#include <map>
#include <utility>

#include "service/http_errors.hpp"
#include "service/routes/routes.hpp"

namespace pixpool {
namespace {

constexpr char kChallenge[] = R"(Bearer realm="pixpool")";
constexpr char kInvalidTokenChallenge[] = R"(Bearer realm="pixpool", error="invalid_token")";

void add_headers(httplib::Response& res, const HeaderList& headers) {
  for (const auto& [name, value] : headers) res.set_header(name, value);
}

bool is_preflight(const httplib::Request& req) {
  return req.method == "OPTIONS" && req.has_header("Origin") &&
         req.has_header("Access-Control-Request-Method");
}

}  // namespace

AccessControl::AccessControl(const AccessOptions& options)
    : metrics_auth_(options.metrics_auth), cors_(options.cors_origins) {
  std::vector<std::string> keys = options.api_keys;
  keys.insert(keys.end(), options.api_file_keys.begin(), options.api_file_keys.end());
  keys_ = ApiKeySet(keys);
  std::map<std::string_view, std::vector<std::string_view>> methods_of;
  std::vector<std::string_view> patterns;
  for (const Route& route : route_table()) {
    if (!methods_of.contains(route.pattern)) patterns.push_back(route.pattern);
    methods_of[route.pattern].push_back(route.method);
  }
  for (const std::string_view pattern : patterns) {
    auto methods = methods_of[pattern];
    std::sort(methods.begin(), methods.end());
    std::string list;
    for (const auto m : methods) list += (list.empty() ? "" : ", ") + std::string(m);
    routes_.push_back(RouteMethods{std::regex(std::string(pattern)), std::move(list)});
  }
}

bool AccessControl::needs_key(const std::string& path) const {
  if (keys_.empty()) return false;
  if (path == "/healthz" || path == "/readyz") return false;
  // The page, its assets and the API description: nothing secret, and the
  // page must load to ask for a key.
  if (path == "/" || path == "/openapi.json" || path.starts_with("/assets/")) return false;
  if (path == "/metrics") return metrics_auth_;
  return true;
}

const AccessControl::RouteMethods* AccessControl::route_of(const std::string& path) const {
  for (const RouteMethods& route : routes_) {
    if (std::regex_match(path, route.pattern)) return &route;
  }
  return nullptr;
}

bool AccessControl::answer_preflight(const httplib::Request& req, httplib::Response& res) const {
  const std::string origin = req.get_header_value("Origin");
  if (cors_.allow_origin(origin).empty()) {
    add_headers(res, cors_.response_headers(true, origin));  // Vary only
    send_error(res, {ErrorCode::forbidden_origin,
                     "origin " + origin + " may not call this server (see --cors-origins)"});
    return true;
  }
  const RouteMethods* route = route_of(req.path);
  if (route == nullptr) return false;  // unknown path: 401 or 404 as for any request
  add_headers(res, cors_.preflight_headers(origin, route->methods));
  res.status = 204;
  return true;
}

bool AccessControl::handle(const httplib::Request& req, httplib::Response& res) const {
  if (cors_.enabled() && is_preflight(req) && answer_preflight(req, res)) return true;
  add_headers(res,
              cors_.response_headers(req.has_header("Origin"), req.get_header_value("Origin")));
  if (!needs_key(req.path)) return false;

  const std::size_t count = req.get_header_value_count("Authorization");
  if (count == 0) {
    res.set_header("WWW-Authenticate", kChallenge);
    send_error(res, {ErrorCode::unauthorized,
                     "this server needs an API key: send Authorization: Bearer <key>"});
    return true;
  }
  const std::string authorization = req.get_header_value("Authorization");
  const auto token = bearer_token(authorization);  // a view into `authorization`
  if (count > 1 || !token) {
    res.set_header("WWW-Authenticate", kChallenge);
    send_error(res, {ErrorCode::unauthorized,
                     "send the API key as one header: Authorization: Bearer <key>"});
    return true;
  }
  if (!keys_.matches(*token)) {
    res.set_header("WWW-Authenticate", kInvalidTokenChallenge);
    send_error(res, {ErrorCode::unauthorized, "the API key is not valid"});
    return true;
  }
  return false;
}

int AccessControl::expect_continue(const httplib::Request& req, httplib::Response& res) const {
  // On a scratch response: when the request passes, pre-routing runs
  // handle() again and must not find its headers there twice.
  httplib::Response answer;
  if (!handle(req, answer)) return 100;
  res.status = answer.status;
  res.body = std::move(answer.body);
  for (auto& header : answer.headers) res.headers.insert(std::move(header));
  return res.status;
}

std::string AccessControl::summary() const {
  std::string out = "API keys: ";
  if (keys_.empty()) {
    out += "none (every route open)";
  } else {
    out +=
        std::to_string(keys_.size()) + (metrics_auth_ ? " (/metrics keyed)" : " (/metrics open)");
  }
  out += "; CORS: ";
  if (!cors_.enabled()) {
    out += "off";
  } else {
    out += cors_.allow_origin("*") == "*" ? "any origin" : "listed origins";
  }
  return out;
}

}  // namespace pixpool
