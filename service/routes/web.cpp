// GET /, /assets/{name} and /openapi.json: the web page, its scripts and
// styles (Chart.js among them) and the OpenAPI document, all embedded in
// the binary (service/web_assets.hpp). They need no API key: the page asks
// for one when the API does (every /v1 call it makes carries it).

#include "service/http_errors.hpp"
#include "service/routes/routes.hpp"
#include "service/web_assets.hpp"

namespace pixpool {
namespace {

// The page loads only its own files and calls only this server; images it
// shows are blob: URLs of results. No inline script or style anywhere.
constexpr char kPagePolicy[] =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'";

// Sends `asset`, or 304 when the client's If-None-Match names its ETag.
// Caches revalidate every time (no-cache): a new build's page takes at once,
// and an unchanged one costs a 304.
void send_asset(const WebAsset& asset, const httplib::Request& req, httplib::Response& res) {
  res.set_header("ETag", std::string(asset.etag));
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Content-Type-Options", "nosniff");
  if (asset.content_type.starts_with("text/html")) {
    res.set_header("Content-Security-Policy", kPagePolicy);
    res.set_header("Referrer-Policy", "no-referrer");
  }
  const std::string match = req.get_header_value("If-None-Match");
  if (!match.empty() && (match == "*" || match.find(asset.etag) != std::string::npos)) {
    res.status = 304;
    return;
  }
  res.set_content(asset.body.data(), asset.body.size(), std::string(asset.content_type));
}

void send_named(std::string_view name, const httplib::Request& req, httplib::Response& res) {
  const WebAsset* asset = find_web_asset(name);
  if (asset == nullptr) {
    send_error(res, {ErrorCode::not_found, "no asset named " + std::string(name)});
    return;
  }
  send_asset(*asset, req, res);
}

}  // namespace

void web_index(RouteContext&, const httplib::Request& req, httplib::Response& res) {
  send_named("index.html", req, res);
}

void web_asset(RouteContext&, const httplib::Request& req, httplib::Response& res) {
  send_named(req.matches[1].str(), req, res);
}

void openapi_json(RouteContext&, const httplib::Request& req, httplib::Response& res) {
  send_named("openapi.json", req, res);
}

}  // namespace pixpool
