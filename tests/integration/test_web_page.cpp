// GET /, /assets/{name} and /openapi.json on the real server: the page with
// its security headers, 304 on a matching ETag, HEAD, 404 for an unknown
// asset, 405 for other methods, and no API key needed when keys are set
// (while /v1 still needs one).
#include <doctest/doctest.h>
#include <httplib.h>

#include <nlohmann/json.hpp>
#include <string>

#include "tests/support/server_process.hpp"

using namespace pixpool;

TEST_CASE("web page: the page, its assets and the OpenAPI document are served with their headers") {
  test::ServerProcess server;
  httplib::Client client("127.0.0.1", server.port());

  const auto page = client.Get("/");
  REQUIRE(page);
  CHECK(page->status == 200);
  CHECK(page->get_header_value("Content-Type") == "text/html; charset=utf-8");
  CHECK(page->body.find("<title>pixpool") != std::string::npos);
  const std::string policy = page->get_header_value("Content-Security-Policy");
  CHECK(policy.find("default-src 'none'") != std::string::npos);
  CHECK(policy.find("script-src 'self'") != std::string::npos);
  CHECK(policy.find("frame-ancestors 'none'") != std::string::npos);
  CHECK(page->get_header_value("X-Content-Type-Options") == "nosniff");
  CHECK(page->get_header_value("Cache-Control") == "no-cache");

  const std::string etag = page->get_header_value("ETag");
  REQUIRE(etag.size() > 2);
  const auto again = client.Get("/", {{"If-None-Match", etag}});
  REQUIRE(again);
  CHECK(again->status == 304);
  CHECK(again->body.empty());
  const auto other = client.Get("/", {{"If-None-Match", "\"0000000000000000\""}});
  REQUIRE(other);
  CHECK(other->status == 200);

  const auto chart = client.Get("/assets/chart.min.js");
  REQUIRE(chart);
  CHECK(chart->status == 200);
  CHECK(chart->get_header_value("Content-Type") == "text/javascript; charset=utf-8");
  CHECK(chart->body.find("Chart.js v3.") != std::string::npos);
  const auto head = client.Head("/assets/app.js");
  REQUIRE(head);
  CHECK(head->status == 200);

  const auto missing = client.Get("/assets/missing.js");
  REQUIRE(missing);
  CHECK(missing->status == 404);
  CHECK(nlohmann::json::parse(missing->body)["error"]["code"] == "not_found");
  const auto traversal = client.Get("/assets/..%2Fmain.cpp");
  REQUIRE(traversal);
  CHECK(traversal->status == 404);

  const auto post = client.Post("/", "x", "text/plain");
  REQUIRE(post);
  CHECK(post->status == 405);
  CHECK(post->get_header_value("Allow") == "GET");

  const auto doc = client.Get("/openapi.json");
  REQUIRE(doc);
  CHECK(doc->status == 200);
  CHECK(doc->get_header_value("Content-Type") == "application/json");
  CHECK(nlohmann::json::parse(doc->body)["openapi"] == "3.1.0");
}

TEST_CASE("web page: with API keys the page loads without one and /v1 still needs one") {
  test::ServerProcess server({"--api-keys", "web-page-key-0123456789"});
  httplib::Client client("127.0.0.1", server.port());
  for (const char* path : {"/", "/assets/app.js", "/assets/chart.min.js", "/openapi.json"}) {
    const auto open = client.Get(path);
    REQUIRE(open);
    CHECK_MESSAGE(open->status == 200, path);
  }
  const auto keyed = client.Get("/v1/backends");
  REQUIRE(keyed);
  CHECK(keyed->status == 401);
  const auto with_key =
      client.Get("/v1/backends", {{"Authorization", "Bearer web-page-key-0123456789"}});
  REQUIRE(with_key);
  CHECK(with_key->status == 200);
}
