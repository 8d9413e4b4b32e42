#include "service/http_errors.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <string_view>

namespace pixpool {

int http_status(ErrorCode code) {
  switch (code) {
    case ErrorCode::invalid_parameter:
    case ErrorCode::invalid_ops:
    case ErrorCode::unknown_backend:
    case ErrorCode::empty_body:
    case ErrorCode::missing_image:
      return 400;
    case ErrorCode::not_found:
      return 404;
    case ErrorCode::method_not_allowed:
      return 405;
    case ErrorCode::source_forbidden:
      return 403;
    case ErrorCode::body_too_large:
    case ErrorCode::source_too_large:
      return 413;
    case ErrorCode::origin_failed:
      return 502;
    case ErrorCode::unsupported_image:
      return 415;
    case ErrorCode::too_many_pixels:
    case ErrorCode::too_large_for_format:
      return 422;
    case ErrorCode::queue_full:
    case ErrorCode::download_queue_full:
      return 429;
    case ErrorCode::client_gone:
      return 499;  // nginx's "client closed request": only the access log sees it
    case ErrorCode::shutting_down:
    case ErrorCode::unavailable:
    case ErrorCode::store_unavailable:
      return 503;
    case ErrorCode::timeout:
      return 504;
    case ErrorCode::out_of_memory:
      return 507;
    case ErrorCode::worker_crashed:
    case ErrorCode::internal:
      return 500;
    case ErrorCode::unauthorized:
      return 401;
    case ErrorCode::forbidden_origin:
      return 403;
  }
  return 500;
}

std::string error_body(const Error& error) {
  nlohmann::json body = {
      {"error", {{"code", std::string(code_name(error.code))}, {"message", error.message}}}};
  // Replace invalid UTF-8 (messages may quote user input) rather than throw.
  return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

long long retry_after_of(const Error& error) {
  // pipeline/backend.hpp's unavailable_error() ends the message with the
  // backend's estimate: "... (retry after N s)".
  constexpr std::string_view kMarker = "(retry after ";
  const std::string& m = error.message;
  const auto at = m.rfind(kMarker);
  if (at == std::string::npos) return 1;
  long long seconds = 0;
  std::size_t i = at + kMarker.size();
  for (; i < m.size() && m[i] >= '0' && m[i] <= '9' && seconds < 86400; ++i) {
    seconds = seconds * 10 + (m[i] - '0');
  }
  if (m.compare(i, 3, " s)") != 0) return 1;
  return std::clamp<long long>(seconds, 1, 86400);
}

void send_error(httplib::Response& res, const Error& error) {
  res.status = http_status(error.code);
  if (is_retryable(error.code)) {
    res.set_header("Retry-After", std::to_string(retry_after_of(error)));
  }
  res.set_content(error_body(error), "application/json");
}

void fill_error_body(httplib::Response& res) {
  if (!res.body.empty()) return;
  Error error{ErrorCode::internal, "internal error"};
  switch (res.status) {
    case 400:
      error = {ErrorCode::invalid_parameter, "malformed HTTP request"};
      break;
    case 404:
      error = {ErrorCode::not_found, "no such route"};
      break;
    case 405:
      error = {ErrorCode::method_not_allowed, "method not allowed"};
      break;
    case 413:
      error = {ErrorCode::body_too_large, "request body is larger than the limit"};
      break;
    case 414:
      error = {ErrorCode::invalid_parameter, "request URI too long"};
      break;
    case 416:
      error = {ErrorCode::invalid_parameter, "range not satisfiable"};
      break;
    default:
      break;
  }
  res.set_content(error_body(error), "application/json");
}

}  // namespace pixpool
