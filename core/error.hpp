#pragma once
// Errors as values, shared by every layer. Each code is listed exactly once,
// in PIXPOOL_ERROR_CODES below (ClickHouse's ErrorCodes is the model), with
// its stable snake_case name and whether it is retryable: the same request
// may succeed later without change, because the refusal was about the
// server's load or state, not the request. service/http_errors.cpp maps codes
// to HTTP statuses, in one place. A code + message pair can cross a process
// boundary (the process pool's socket, as a number checked by
// error_code_from_int); an exception cannot.

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>

namespace pixpool {

// X(name, retryable): the whole table. Append new codes at the end: the
// numbers cross the worker socket, and tests and logs use the names.
#define PIXPOOL_ERROR_CODES(X)                                                             \
  /* request: the client asked for something malformed or not allowed */                   \
  X(invalid_parameter, false)  /* a query/body parameter is malformed or out of range */   \
  X(invalid_ops, false)        /* the op chain does not parse */                           \
  X(unknown_backend, false)    /* backend= names no configured backend */                  \
  X(empty_body, false)         /* no image bytes were sent */                              \
  X(missing_image, false)      /* multipart request without an `image` field */            \
  X(not_found, false)          /* no such route or resource */                             \
  X(method_not_allowed, false) /* route exists, method does not */                         \
  X(body_too_large, false)     /* request body over --max-body-bytes */                    \
  /* pixels: raised by filters/ (decode, limits, encode) */                                \
  X(unsupported_image, false)    /* bytes are not a decodable JPEG/PNG/WebP/BMP/TIFF */    \
  X(too_many_pixels, false)      /* header dimensions over --max-pixels */                 \
  X(too_large_for_format, false) /* the output format cannot hold the dimensions */        \
  /* sources: downloads of url= items */                                                   \
  X(source_forbidden, false) /* a download URL is not allowed (scheme, address) */         \
  X(source_too_large, false) /* a download exceeded --max-download-bytes */                \
  X(origin_failed, false)    /* the origin failed (HTTP error, refused, reset) */          \
  /* capacity and faults: the server's state, not the request */                           \
  X(queue_full, true)      /* admission refused; retry later */                            \
  X(timeout, false)        /* the job exceeded its deadline */                             \
  X(worker_crashed, false) /* a worker process died while running the job */               \
  X(out_of_memory, false)  /* the job needed more memory than it may use */                \
  X(shutting_down, true)   /* the server is draining; another replica can serve */         \
  X(unavailable, true)     /* the backend cannot run jobs now (e.g. no workers) */         \
  X(internal, false)       /* a bug */                                                     \
  /* access: API keys and CORS (service/access.hpp) */                                     \
  X(unauthorized, false)     /* no valid API key (Authorization: Bearer) */                \
  X(forbidden_origin, false) /* a CORS preflight from an origin not in --cors-origins */   \
  /* issue 11, downloads and abandoned work */                                             \
  X(download_queue_full, true) /* every I/O thread busy and --download-queue waiting */    \
  X(client_gone, false)        /* the client closed its connection while the job waited */ \
  /* issue 13, the cluster's job store */                                                  \
  X(store_unavailable, true) /* the job store (Redis) cannot be reached or answered badly */

enum class ErrorCode : std::int32_t {
#define PIXPOOL_ERROR_ENUM(name, retryable) name,
  PIXPOOL_ERROR_CODES(PIXPOOL_ERROR_ENUM)
#undef PIXPOOL_ERROR_ENUM
};

// Every code, in table order.
inline constexpr ErrorCode kAllErrorCodes[] = {
#define PIXPOOL_ERROR_LIST(name, retryable) ErrorCode::name,
    PIXPOOL_ERROR_CODES(PIXPOOL_ERROR_LIST)
#undef PIXPOOL_ERROR_LIST
};
inline constexpr std::size_t kErrorCodeCount = std::size(kAllErrorCodes);

// Stable snake_case name used in JSON error bodies, logs and metrics labels.
std::string_view code_name(ErrorCode code);

// True for codes where retrying the same request later may succeed
// (queue_full, shutting_down, unavailable, download_queue_full,
// store_unavailable); HTTP adds
// Retry-After to them.
bool is_retryable(ErrorCode code);

// The code with this number (as sent over the worker socket), or nullopt when
// it is out of range: a number from another process is untrusted input.
std::optional<ErrorCode> error_code_from_int(std::int64_t number);

// The code with this name, or nullopt.
std::optional<ErrorCode> error_code_from_name(std::string_view name);

struct Error {
  ErrorCode code;
  std::string message;
};

}  // namespace pixpool
