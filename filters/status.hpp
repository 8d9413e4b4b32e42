#pragma once
// Errors as values, shared by every layer. A code + message pair can cross a
// process boundary (the process-pool backend's pipe), an exception cannot.
// service/http_errors.cpp maps each code to an HTTP status in one place.

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace pixpool {

enum class ErrorCode {
  invalid_parameter,     // a query/body parameter is malformed or out of range
  invalid_ops,           // the op chain does not parse
  unknown_backend,       // backend= names no configured backend
  empty_body,            // no image bytes were sent
  missing_image,         // multipart request without an `image` field
  not_found,             // no such route or resource
  method_not_allowed,    // route exists, method does not
  body_too_large,        // request body over --max-body-bytes
  unsupported_image,     // bytes are not a decodable JPEG/PNG/WebP/BMP/TIFF
  too_many_pixels,       // header dimensions over --max-pixels
  too_large_for_format,  // the output format cannot hold the image dimensions
  source_forbidden,      // a download URL is not allowed (scheme, address, allowlist)
  source_too_large,      // a download exceeded --max-download-bytes
  origin_failed,         // the download origin failed (HTTP error, refused, reset)
  queue_full,            // backend admission refused; retry later
  timeout,               // the job exceeded its deadline
  worker_crashed,        // a worker process died while running the job
  out_of_memory,         // the job needed more memory than it may use
  shutting_down,         // the server is draining
  unavailable,           // the backend cannot run jobs now (e.g. no workers)
  internal,              // a bug
};

// Stable snake_case name used in JSON error bodies and logs.
std::string_view code_name(ErrorCode code);

struct Error {
  ErrorCode code;
  std::string message;
};

// Either a T or an Error. Small on purpose: no monadic helpers, just checks.
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}      // NOLINT(google-explicit-constructor)
  Result(Error error) : v_(std::move(error)) {}  // NOLINT(google-explicit-constructor)
  Result(ErrorCode code, std::string message) : v_(Error{code, std::move(message)}) {}

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

// Result<void>: success or an Error.
template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)) {}  // NOLINT(google-explicit-constructor)
  Result(ErrorCode code, std::string message) : error_(Error{code, std::move(message)}) {}

  bool ok() const { return !error_.has_value(); }
  explicit operator bool() const { return ok(); }
  const Error& error() const { return *error_; }

 private:
  std::optional<Error> error_;
};

}  // namespace pixpool
