// CORS decisions: parsing --cors-origins, and which headers a request from a
// given origin gets.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "service/cors.hpp"

using namespace pixpool;

namespace {

std::string header(const HeaderList& headers, const std::string& name) {
  for (const auto& [n, v] : headers) {
    if (n == name) return v;
  }
  return "";
}

}  // namespace

TEST_CASE("cors origins: scheme://host[:port], normalised as browsers send them") {
  auto origins = parse_cors_origins(
      "https://A.Example, http://localhost:3000,https://a.example:443,http://b.example:80,"
      "http://[::1]:8080,");
  REQUIRE(origins.ok());
  CHECK(*origins == std::vector<std::string>{"https://a.example", "http://localhost:3000",
                                             "http://b.example", "http://[::1]:8080"});
  CHECK(parse_cors_origins("")->empty());
  CHECK(*parse_cors_origins("*") == std::vector<std::string>{"*"});
  for (const char* bad :
       {"a.example", "https://a.example/", "https://a.example/app", "ftp://a.example", "https://",
        "https://a.example:99999", "https://a.example:", "https://a b.example", "null",
        "https://a.example?x=1"}) {
    INFO(bad);
    auto err = parse_cors_origins(bad);
    REQUIRE_FALSE(err.ok());
    CHECK(err.error().message.find("is not an origin") != std::string::npos);
  }
  auto mixed = parse_cors_origins("*,https://a.example");
  REQUIRE_FALSE(mixed.ok());
  CHECK(mixed.error().message.find("cannot be combined") != std::string::npos);
}

TEST_CASE("cors off: no headers at all") {
  const CorsPolicy off;
  CHECK_FALSE(off.enabled());
  CHECK(off.response_headers(true, "https://a.example").empty());
  CHECK(off.response_headers(false, "").empty());
  CHECK(off.allow_origin("https://a.example").empty());
}

TEST_CASE("cors list: only listed origins, echoed exactly, and always Vary: Origin") {
  const CorsPolicy cors(*parse_cors_origins("https://a.example,https://b.example"));
  CHECK(cors.enabled());
  CHECK(cors.allow_origin("https://a.example") == "https://a.example");
  CHECK(cors.allow_origin("https://b.example") == "https://b.example");
  CHECK(cors.allow_origin("https://evil.example").empty());
  CHECK(cors.allow_origin("https://a.example.evil.example").empty());
  CHECK(cors.allow_origin("null").empty());
  CHECK(cors.allow_origin("*").empty());

  const HeaderList allowed = cors.response_headers(true, "https://b.example");
  CHECK(header(allowed, "Access-Control-Allow-Origin") == "https://b.example");
  CHECK(header(allowed, "Vary") == "Origin");
  CHECK(header(allowed, "Access-Control-Expose-Headers").find("Server-Timing") !=
        std::string::npos);
  CHECK(header(allowed, "Access-Control-Expose-Headers").find("X-Pixpool-Backend") !=
        std::string::npos);
  // which replica answered, and the validator of the page's assets
  CHECK(header(allowed, "Access-Control-Expose-Headers").find("X-Pixpool-Replica") !=
        std::string::npos);
  CHECK(header(allowed, "Access-Control-Expose-Headers").find("ETag") != std::string::npos);
  CHECK(header(allowed, "Access-Control-Allow-Credentials").empty());

  const HeaderList refused = cors.response_headers(true, "https://evil.example");
  CHECK(refused == HeaderList{{"Vary", "Origin"}});
  CHECK(cors.response_headers(false, "") == HeaderList{{"Vary", "Origin"}});

  const HeaderList preflight = cors.preflight_headers("https://a.example", "GET, POST");
  CHECK(header(preflight, "Access-Control-Allow-Origin") == "https://a.example");
  CHECK(header(preflight, "Access-Control-Allow-Methods") == "GET, POST");
  CHECK(header(preflight, "Access-Control-Allow-Headers").find("Authorization") !=
        std::string::npos);
  CHECK(header(preflight, "Access-Control-Max-Age") == "600");
  CHECK(
      header(cors.preflight_headers("https://evil.example", "GET"), "Access-Control-Allow-Methods")
          .empty());
}

TEST_CASE("cors *: every origin gets `*`, never its own origin reflected") {
  const CorsPolicy any(*parse_cors_origins("*"));
  CHECK(any.allow_origin("https://whoever.example") == "*");
  const HeaderList headers = any.response_headers(true, "https://whoever.example");
  CHECK(header(headers, "Access-Control-Allow-Origin") == "*");
  CHECK(header(headers, "Vary").empty());
  CHECK(header(headers, "Access-Control-Allow-Credentials").empty());
}
