#pragma once
// The access check at the HTTP edge: API keys (service/auth.hpp) and CORS
// (service/cors.hpp) applied to httplib requests. It runs in the server's
// pre-routing handler (and its Expect: 100-continue handler), so a request
// without a valid key is refused before any byte of its body is read.
//
// Which paths need a key, when keys are configured: every path except the
// health probes /healthz and /readyz, and /metrics unless --metrics-auth.
// Unknown paths need one too (401, not 404), so routes are not discoverable
// without a key. CORS preflights (OPTIONS with Origin and
// Access-Control-Request-Method) never need a key: browsers send none.

#include <httplib.h>

#include <regex>
#include <string>
#include <vector>

#include "service/auth.hpp"
#include "service/config.hpp"
#include "service/cors.hpp"

namespace pixpool {

class AccessControl {
 public:
  explicit AccessControl(const AccessOptions& options);

  // For the pre-routing handler. Adds the CORS headers `res` needs, then
  // answers the request itself when it should not reach a route: a preflight
  // (204 for an allowed origin on a known route, 403 forbidden_origin for an
  // origin not allowed) or a request without a valid key (401 unauthorized,
  // with WWW-Authenticate). Returns true when it answered (the handler must
  // then return Handled), false to let routing go on.
  bool handle(const httplib::Request& req, httplib::Response& res) const;

  // For the Expect: 100-continue handler: 100 to let the client send its
  // body, or the status of the answer handle() would give (then `res` holds
  // it), so a refused client is told before it sends the body at all.
  int expect_continue(const httplib::Request& req, httplib::Response& res) const;

  // One line for the startup log, e.g. "API keys: 2 (metrics open); CORS:
  // https://a.example". Never shows a key.
  std::string summary() const;

  // Whether a request for `path` must carry a valid key: /v1 routes (and
  // /metrics with --metrics-auth) do; the probes, the page, its assets and
  // /openapi.json never.
  bool needs_key(const std::string& path) const;

 private:
  struct RouteMethods {
    std::regex pattern;
    std::string methods;  // "GET, POST"
  };

  bool answer_preflight(const httplib::Request& req, httplib::Response& res) const;
  const RouteMethods* route_of(const std::string& path) const;

  ApiKeySet keys_;
  bool metrics_auth_ = false;
  CorsPolicy cors_;
  std::vector<RouteMethods> routes_;  // from route_table(), for preflights
};

}  // namespace pixpool
