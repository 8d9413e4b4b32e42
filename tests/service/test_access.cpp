// The access check on httplib requests, without a server: which paths need
// a key, the 401 answers and their challenges, preflights, and the headers
// added to requests that go on to their route.
#include <doctest/doctest.h>
#include <httplib.h>

#include <nlohmann/json.hpp>
#include <string>

#include "service/access.hpp"

using namespace pixpool;

namespace {

const std::string kKeyA = "key-a-0123456789abcdef";
const std::string kKeyB = "key-b-fedcba9876543210";

httplib::Request request(const std::string& method, const std::string& path,
                         const httplib::Headers& headers = {}) {
  httplib::Request req;
  req.method = method;
  req.path = path;
  req.headers = headers;
  return req;
}

AccessOptions keyed(bool metrics_auth = false) {
  AccessOptions options;
  options.api_keys = {kKeyA};
  options.api_file_keys = {kKeyB};
  options.metrics_auth = metrics_auth;
  return options;
}

std::string error_code(const httplib::Response& res) {
  return nlohmann::json::parse(res.body)["error"]["code"].get<std::string>();
}

}  // namespace

TEST_CASE("access: without keys every path is open and nothing is added") {
  const AccessControl access{AccessOptions{}};
  for (const char* path : {"/v1/process", "/metrics", "/healthz", "/nope"}) {
    httplib::Response res;
    CHECK_FALSE(access.handle(request("POST", path), res));
    CHECK(res.headers.empty());
  }
  CHECK(access.summary() == "API keys: none (every route open); CORS: off");
}

TEST_CASE("access: with keys every path but the probes (and open /metrics) needs one") {
  const AccessControl open_metrics{keyed()};
  CHECK_FALSE(open_metrics.needs_key("/healthz"));
  CHECK_FALSE(open_metrics.needs_key("/readyz"));
  CHECK_FALSE(open_metrics.needs_key("/metrics"));
  CHECK(open_metrics.needs_key("/v1/process"));
  CHECK(open_metrics.needs_key("/v1/jobs/abc/archive"));
  CHECK(open_metrics.needs_key("/healthz/"));
  CHECK(open_metrics.needs_key("/unknown"));
  const AccessControl keyed_metrics{keyed(true)};
  CHECK(keyed_metrics.needs_key("/metrics"));
  CHECK_FALSE(keyed_metrics.needs_key("/healthz"));
  CHECK(keyed_metrics.summary() == "API keys: 2 (/metrics keyed); CORS: off");
}

TEST_CASE("access: 401 with a challenge for a missing, malformed or wrong key") {
  const AccessControl access{keyed()};
  {
    httplib::Response res;
    REQUIRE(access.handle(request("POST", "/v1/process"), res));
    CHECK(res.status == 401);
    CHECK(error_code(res) == "unauthorized");
    CHECK(res.get_header_value("WWW-Authenticate") == R"(Bearer realm="pixpool")");
  }
  {
    httplib::Response res;
    REQUIRE(
        access.handle(request("GET", "/v1/backends", {{"Authorization", "Basic " + kKeyA}}), res));
    CHECK(res.status == 401);
    CHECK(res.get_header_value("WWW-Authenticate") == R"(Bearer realm="pixpool")");
    CHECK(res.body.find(kKeyA) == std::string::npos);
  }
  {
    const std::string wrong = "wrong-key-0123456789";
    httplib::Response res;
    REQUIRE(
        access.handle(request("GET", "/v1/backends", {{"Authorization", "Bearer " + wrong}}), res));
    CHECK(res.status == 401);
    CHECK(res.get_header_value("WWW-Authenticate") ==
          R"(Bearer realm="pixpool", error="invalid_token")");
    CHECK(res.body.find(wrong) == std::string::npos);
  }
  {  // two Authorization headers: ambiguous, refused even if one is right
    httplib::Response res;
    REQUIRE(access.handle(request("GET", "/v1/backends",
                                  {{"Authorization", "Bearer " + kKeyA},
                                   {"Authorization", "Bearer wrong-key-0123456789"}}),
                          res));
    CHECK(res.status == 401);
  }
  for (const std::string& key : {kKeyA, kKeyB}) {  // either rotated key
    httplib::Response res;
    CHECK_FALSE(
        access.handle(request("POST", "/v1/process", {{"Authorization", "Bearer " + key}}), res));
    CHECK(res.headers.empty());
  }
}

TEST_CASE("access: Expect 100-continue is refused before the body, and passes when keyed") {
  const AccessControl access{keyed()};
  httplib::Response refused;
  CHECK(access.expect_continue(request("POST", "/v1/process", {{"Expect", "100-continue"}}),
                               refused) == 401);
  CHECK(refused.status == 401);
  CHECK(refused.has_header("WWW-Authenticate"));
  httplib::Response passed;
  CHECK(access.expect_continue(
            request("POST", "/v1/process",
                    {{"Expect", "100-continue"}, {"Authorization", "Bearer " + kKeyB}}),
            passed) == 100);
  CHECK(passed.headers.empty());
}

TEST_CASE("access: CORS preflights are answered without a key, per origin") {
  AccessOptions options = keyed();
  options.cors_origins = {"https://a.example"};
  const AccessControl access{options};
  const httplib::Headers preflight = {{"Origin", "https://a.example"},
                                      {"Access-Control-Request-Method", "POST"},
                                      {"Access-Control-Request-Headers", "authorization"}};
  {
    httplib::Response res;
    REQUIRE(access.handle(request("OPTIONS", "/v1/process", preflight), res));
    CHECK(res.status == 204);
    CHECK(res.get_header_value("Access-Control-Allow-Origin") == "https://a.example");
    CHECK(res.get_header_value("Access-Control-Allow-Methods") == "GET, POST");
    CHECK(res.get_header_value("Vary") == "Origin");
    CHECK(res.body.empty());
  }
  {
    httplib::Response res;
    REQUIRE(access.handle(
        request("OPTIONS", "/v1/jobs/r1-abc",
                {{"Origin", "https://a.example"}, {"Access-Control-Request-Method", "DELETE"}}),
        res));
    CHECK(res.get_header_value("Access-Control-Allow-Methods") == "DELETE, GET");
  }
  {
    httplib::Response res;
    REQUIRE(access.handle(
        request("OPTIONS", "/v1/process",
                {{"Origin", "https://evil.example"}, {"Access-Control-Request-Method", "POST"}}),
        res));
    CHECK(res.status == 403);
    CHECK(error_code(res) == "forbidden_origin");
    CHECK_FALSE(res.has_header("Access-Control-Allow-Origin"));
  }
  {  // an unknown path is not a preflight target: it goes on to 401 (keyed)
    httplib::Response res;
    REQUIRE(access.handle(request("OPTIONS", "/nope", preflight), res));
    CHECK(res.status == 401);
  }
  {  // a plain OPTIONS (no preflight headers) is an ordinary request
    httplib::Response res;
    REQUIRE(access.handle(request("OPTIONS", "/v1/process"), res));
    CHECK(res.status == 401);
  }
}

TEST_CASE("access: an allowed origin's 401 carries CORS headers so its script can read it") {
  AccessOptions options = keyed();
  options.cors_origins = {"https://a.example"};
  const AccessControl access{options};
  httplib::Response res;
  REQUIRE(access.handle(request("POST", "/v1/process", {{"Origin", "https://a.example"}}), res));
  CHECK(res.status == 401);
  CHECK(res.get_header_value("Access-Control-Allow-Origin") == "https://a.example");
  httplib::Response passed;
  CHECK_FALSE(access.handle(
      request("POST", "/v1/process",
              {{"Origin", "https://a.example"}, {"Authorization", "Bearer " + kKeyA}}),
      passed));
  CHECK(passed.get_header_value("Access-Control-Allow-Origin") == "https://a.example");
  CHECK(passed.get_header_value_count("Access-Control-Allow-Origin") == 1);
}

TEST_CASE("access: with CORS off a preflight is an ordinary request (405 from its route)") {
  const AccessControl access{AccessOptions{}};
  httplib::Response res;
  CHECK_FALSE(access.handle(
      request("OPTIONS", "/v1/process",
              {{"Origin", "https://a.example"}, {"Access-Control-Request-Method", "POST"}}),
      res));
  CHECK(res.headers.empty());
}
