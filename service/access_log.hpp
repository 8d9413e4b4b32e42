#pragma once
// The access log's line format, kept safe against what clients send: method,
// path and header-derived fields are client bytes (the path is %-decoded by
// cpp-httplib, so "%0a" arrives as a newline). Escaped here, one request is
// always exactly one line and no client can forge or split one.

#include <cstddef>
#include <string>
#include <string_view>

namespace pixpool {

// `text` with every byte outside printable ASCII (controls, DEL, bytes >=
// 0x80), the space and the backslash written as \xNN; cut to
// `max_bytes` input bytes with "..." appended when longer.
std::string escape_for_log(std::string_view text, std::size_t max_bytes = 1024);

struct AccessLogEntry {
  std::string_view timestamp;  // UTC, e.g. 2026-01-01T00:00:00.000Z
  std::string_view method;
  std::string_view path;
  int status = 0;
  std::string_view bytes_in;  // the Content-Length header as sent ("" = none)
  std::size_t bytes_out = 0;
  std::string_view backend;   // "" = none
  std::string_view duration;  // milliseconds, or "" = unknown
};

// "<timestamp> <method> <path> <status> in=<n> out=<n> backend=<b> ms=<t>\n",
// every client-supplied field escaped. An empty method and path (a request
// line cpp-httplib could not parse) stay empty: "<timestamp>   400".
std::string access_log_line(const AccessLogEntry& entry);

}  // namespace pixpool
