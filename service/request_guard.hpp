#pragma once
// Checks on a request's framing, run before routing (before any body byte is
// read), so a request whose body length the server and a proxy in front
// could disagree on is refused at once instead of read or skipped.
//
// RFC 9112 section 6: Content-Length must be one run of digits, given once;
// Transfer-Encoding may only be "chunked" (the one coding cpp-httplib
// decodes), never with Content-Length, never on HTTP/1.0. Methods without a
// body (GET, HEAD, OPTIONS, DELETE, ...) must not send one: cpp-httplib
// never reads it, so its bytes would be parsed as the next request.

#include <httplib.h>

#include <cstddef>
#include <optional>
#include <string_view>

#include "core/result.hpp"

namespace pixpool {

// Why `req` must be refused (invalid_parameter -> 400), or nullopt when its
// framing is sound. Reads headers only.
std::optional<Error> check_framing(const httplib::Request& req);

// A Range header applied to a stored object of `size` bytes (RFC 9110
// section 14). Only single byte ranges are served; see range_for().
struct ByteRange {
  enum class Kind {
    whole,          // serve the whole object (200): no Range, or one pixpool ignores
    part,           // serve [offset, offset + length) as 206
    unsatisfiable,  // 416 with Content-Range: bytes */size
  };
  Kind kind = Kind::whole;
  std::size_t offset = 0;
  std::size_t length = 0;
};

// What to serve for `range_header` ("" = none) on an object of `size` bytes.
// "bytes=first-last", "bytes=first-" and "bytes=-suffix" are served (the end
// clipped to the object); a start at or past the end, or a zero suffix, is
// unsatisfiable. Anything else is ignored (whole object): other units,
// malformed values, and more than one range (never a multipart answer, so a
// response is never larger than the object).
ByteRange range_for(std::string_view range_header, std::size_t size);

}  // namespace pixpool
