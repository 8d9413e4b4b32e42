// GET /v1/results/{id}: one stored output of a batch item, whole or one byte
// range of it (RFC 9110 section 14; see range_for() for what is served).
// cpp-httplib's own range handling is off on every route (server.cpp), so a
// response is never larger than the stored object.
#include <string>

#include "service/http_errors.hpp"
#include "service/request_guard.hpp"
#include "service/routes/routes.hpp"

namespace pixpool {
namespace {

// The Range to apply: none when absent, sent twice, or conditional on an
// If-Range validator (pixpool sends no ETag or Last-Modified, so none can
// match: RFC 9110 13.1.5 says to send the whole object then).
std::string range_header(const httplib::Request& req) {
  if (req.get_header_value_count("Range") != 1 || req.has_header("If-Range")) return "";
  return req.get_header_value("Range");
}

}  // namespace

void result_get(RouteContext& ctx, const httplib::Request& req, httplib::Response& res) {
  auto fetched = ctx.store.result(req.matches[1]);
  if (!fetched) return send_error(res, fetched.error());
  std::shared_ptr<const StoredResult> stored = std::move(fetched.value());
  if (!stored) {
    return send_error(res, {ErrorCode::not_found, "no result '" + std::string(req.matches[1]) +
                                                      "' (unknown, evicted or expired)"});
  }
  const std::size_t size = stored->bytes.size();
  const ByteRange range = range_for(range_header(req), size);
  res.set_header("Accept-Ranges", "bytes");
  if (range.kind == ByteRange::Kind::unsatisfiable) {
    // The JSON error body is filled in by the server's error handler.
    res.status = 416;
    res.set_header("Content-Range", "bytes */" + std::to_string(size));
    return;
  }
  res.set_header("Content-Disposition", "inline; filename=\"" + stored->name + "\"");
  std::size_t offset = 0;
  std::size_t length = size;
  res.status = 200;
  if (range.kind == ByteRange::Kind::part) {
    offset = range.offset;
    length = range.length;
    res.status = 206;
    res.set_header("Content-Range", "bytes " + std::to_string(offset) + "-" +
                                        std::to_string(offset + length - 1) + "/" +
                                        std::to_string(size));
  }
  if (length == 0) {  // an empty object: httplib's providers need a length
    res.set_content("", stored->content_type);
    return;
  }
  // Served from the stored object itself (no copy per request). The
  // provider's offsets run from 0 to `length`.
  res.set_content_provider(
      length, stored->content_type,
      [stored, offset](std::size_t at, std::size_t n, httplib::DataSink& sink) {
        return sink.write(stored->bytes.data() + offset + at, n);
      });
}

}  // namespace pixpool
