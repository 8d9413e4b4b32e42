#include "service/cors.hpp"

#include <algorithm>
#include <cctype>

namespace pixpool {
namespace {

Error invalid(std::string message) {
  return Error{ErrorCode::invalid_parameter, std::move(message)};
}

// "" when `host` is a plausible host name, IPv4 address or [IPv6] literal.
bool plausible_host(std::string_view host) {
  if (host.empty()) return false;
  if (host.front() == '[') {
    return host.size() > 2 && host.back() == ']' &&
           std::all_of(host.begin() + 1, host.end() - 1, [](char c) {
             return std::isxdigit(static_cast<unsigned char>(c)) || c == ':' || c == '.';
           });
  }
  return std::all_of(host.begin(), host.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.';
  });
}

// The origin as browsers serialise it, or "" when `item` is not an origin.
std::string normalise_origin(std::string_view item) {
  std::string lowered;
  for (const char c : item)
    lowered += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  std::string_view rest = lowered;
  std::string_view scheme;
  for (const std::string_view s : {std::string_view("http://"), std::string_view("https://")}) {
    if (rest.starts_with(s)) scheme = s;
  }
  if (scheme.empty()) return "";
  rest.remove_prefix(scheme.size());
  std::string_view host = rest;
  std::string_view port;
  const auto colon = rest.rfind(':');
  if (colon != std::string_view::npos && rest.find(']', colon) == std::string_view::npos) {
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
    if (port.empty() || port.size() > 5 ||
        !std::all_of(port.begin(), port.end(),
                     [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }) ||
        std::stoi(std::string(port)) > 65535) {
      return "";
    }
  }
  if (!plausible_host(host)) return "";
  const bool default_port =
      (scheme == "http://" && port == "80") || (scheme == "https://" && port == "443");
  std::string out = std::string(scheme) + std::string(host);
  if (!port.empty() && !default_port) out += ":" + std::string(port);
  return out;
}

}  // namespace

Result<std::vector<std::string>> parse_cors_origins(std::string_view text) {
  std::vector<std::string> origins;
  bool any = false;
  for (;;) {
    const auto comma = text.find(',');
    std::string_view item = text.substr(0, comma);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (item == "*") {
      any = true;
    } else if (!item.empty()) {
      std::string origin = normalise_origin(item);
      if (origin.empty()) {
        return invalid("'" + std::string(item) +
                       "' is not an origin: write scheme://host[:port] with http or https "
                       "and no path or trailing slash (e.g. https://app.example), or * alone");
      }
      if (std::find(origins.begin(), origins.end(), origin) == origins.end()) {
        origins.push_back(std::move(origin));
      }
    }
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  if (any && !origins.empty()) {
    return invalid("* allows every origin and cannot be combined with a list of origins");
  }
  if (any) return std::vector<std::string>{"*"};
  return origins;
}

CorsPolicy::CorsPolicy(std::vector<std::string> origins) {
  if (origins.size() == 1 && origins.front() == "*") {
    any_ = true;
  } else {
    origins_ = std::move(origins);
  }
}

std::string CorsPolicy::allow_origin(std::string_view origin) const {
  if (any_) return "*";
  // Browsers send the origin already serialised: an exact match is right.
  if (std::find(origins_.begin(), origins_.end(), origin) != origins_.end()) {
    return std::string(origin);
  }
  return "";
}

HeaderList CorsPolicy::response_headers(bool has_origin, std::string_view origin) const {
  HeaderList headers;
  if (!enabled()) return headers;
  if (!any_) headers.emplace_back("Vary", "Origin");
  if (!has_origin) return headers;
  if (std::string allowed = allow_origin(origin); !allowed.empty()) {
    headers.emplace_back("Access-Control-Allow-Origin", std::move(allowed));
    headers.emplace_back("Access-Control-Expose-Headers", std::string(kCorsExposedHeaders));
  }
  return headers;
}

HeaderList CorsPolicy::preflight_headers(std::string_view origin, std::string_view methods) const {
  HeaderList headers = response_headers(true, origin);
  if (allow_origin(origin).empty()) return headers;
  headers.emplace_back("Access-Control-Allow-Methods", std::string(methods));
  headers.emplace_back("Access-Control-Allow-Headers", std::string(kCorsAllowedHeaders));
  headers.emplace_back("Access-Control-Max-Age", std::to_string(kCorsMaxAgeSeconds));
  return headers;
}

}  // namespace pixpool
