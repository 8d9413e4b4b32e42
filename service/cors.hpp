#pragma once
// CORS (cross-origin requests from browsers): which origins may call the API
// and which headers their requests and preflights get. Off unless
// --cors-origins is set; then only the listed origins get Access-Control-*
// headers, or every origin with "*" (as `Access-Control-Allow-Origin: *`,
// never by reflecting the request's Origin). Credentials (cookies) are never
// allowed: pixpool's keys travel in the Authorization header, which a page's
// script sets explicitly, so `*` does not hand any key to another site.

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/result.hpp"

namespace pixpool {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

// Response headers a cross-origin script may read.
inline constexpr std::string_view kCorsExposedHeaders =
    "Content-Length, Content-Range, Content-Disposition, Retry-After, Server-Timing, "
    "Location, ETag, X-Pixpool-Backend, X-Pixpool-Image-Size, X-Pixpool-Replica";
// Request headers a preflight allows (beyond the CORS-safelisted ones):
// Last-Event-ID lets a page resume a job's event stream read with fetch.
inline constexpr std::string_view kCorsAllowedHeaders =
    "Authorization, Content-Type, Range, Last-Event-ID";
// How long a browser may cache a preflight answer, in seconds.
inline constexpr int kCorsMaxAgeSeconds = 600;

// "https://a.example,http://localhost:3000" or "*" -> the origins. Each must
// be scheme://host[:port] with scheme http or https and no path, query or
// trailing slash; scheme and host are lower-cased and a default port (:80
// for http, :443 for https) is dropped, as browsers send them. "*" must
// stand alone. Errors: invalid_parameter naming the bad item.
Result<std::vector<std::string>> parse_cors_origins(std::string_view text);

class CorsPolicy {
 public:
  CorsPolicy() = default;  // off
  // `origins` as parse_cors_origins returns them; empty = off.
  explicit CorsPolicy(std::vector<std::string> origins);

  bool enabled() const { return any_ || !origins_.empty(); }

  // The Access-Control-Allow-Origin value for a request whose Origin header
  // is `origin` ("*" or the origin itself), or "" when it gets none.
  std::string allow_origin(std::string_view origin) const;

  // Headers for an actual (non-preflight) response to a request with this
  // Origin (`has_origin` false: no Origin header). Empty when CORS is off.
  // With a list of origins every response says `Vary: Origin`, so a cache
  // never serves one origin's answer to another.
  HeaderList response_headers(bool has_origin, std::string_view origin) const;

  // Headers of the 204 answer to a preflight from an allowed `origin` for a
  // route that takes `methods` (e.g. "GET, POST").
  HeaderList preflight_headers(std::string_view origin, std::string_view methods) const;

 private:
  std::vector<std::string> origins_;
  bool any_ = false;
};

}  // namespace pixpool
