// GET /v1/results/{id}: one stored output of a batch item.
#include <string>

#include "service/http_errors.hpp"
#include "service/routes/routes.hpp"

namespace pixpool {

void result_get(RouteContext& ctx, const httplib::Request& req, httplib::Response& res) {
  auto stored = ctx.results.get(req.matches[1]);
  if (!stored) {
    return send_error(res, {ErrorCode::not_found, "no result '" + std::string(req.matches[1]) +
                                                      "' (unknown, evicted or expired)"});
  }
  res.status = 200;
  res.set_header("Content-Type", stored->content_type);
  res.set_header("Content-Disposition", "inline; filename=\"" + stored->name + "\"");
  res.body = stored->bytes;
}

}  // namespace pixpool
