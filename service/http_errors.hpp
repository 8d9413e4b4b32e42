#pragma once
// The one place where error values become HTTP responses:
// {"error":{"code":"...","message":"..."}} with a fitting status.

#include <httplib.h>

#include "core/result.hpp"

namespace pixpool {

// 400 bad parameters, 401 (no valid API key), 403 (SSRF, CORS origin), 404, 405, 413, 415, 422,
// 429 (queue_full, download_queue_full), 499 (client_gone: nginx's "client closed request", seen
// only in logs), 500 (bugs, crashed workers), 503 (draining), 504 (timeouts).
int http_status(ErrorCode code);

// The JSON error body.
std::string error_body(const Error& error);

// Seconds for Retry-After: the estimate a backend put at the end of the
// message ("(retry after N s)", see pipeline/backend.hpp unavailable_error),
// else 1. Range 1..86400.
long long retry_after_of(const Error& error);

// Sets status, JSON body and (for retryable codes) Retry-After on `res`.
void send_error(httplib::Response& res, const Error& error);

// Fills in a JSON body for an error status that has none yet (httplib's own
// 400/404/413 answers). Leaves responses that already have a body alone.
void fill_error_body(httplib::Response& res);

}  // namespace pixpool
