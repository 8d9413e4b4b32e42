#include <doctest/doctest.h>

#include <string>

#include "service/request_guard.hpp"

using namespace pixpool;
using Kind = ByteRange::Kind;

namespace {

httplib::Request request(std::string method, httplib::Headers headers,
                         std::string version = "HTTP/1.1") {
  httplib::Request req;
  req.method = std::move(method);
  req.version = std::move(version);
  req.headers = std::move(headers);
  return req;
}

bool refused(const httplib::Request& req) {
  return check_framing(req).has_value();
}

}  // namespace

TEST_CASE("check_framing accepts ordinary requests") {
  CHECK_FALSE(refused(request("GET", {})));
  CHECK_FALSE(refused(request("GET", {{"Content-Length", "0"}})));
  CHECK_FALSE(refused(request("POST", {{"Content-Length", "1234"}})));
  CHECK_FALSE(refused(request("POST", {{"Transfer-Encoding", "chunked"}})));
  CHECK_FALSE(refused(request("POST", {{"Transfer-Encoding", "CHUNKED"}})));
  CHECK_FALSE(refused(request("POST", {{"Content-Length", "10"}}, "HTTP/1.0")));
  CHECK_FALSE(refused(request("PUT", {{"Content-Length", "10"}})));
}

TEST_CASE("check_framing refuses Content-Length that is not one run of digits") {
  for (const char* value : {"1e3", "0x10", "+5", "-1", "", " ", "5 5", "5,5", "5, 5", "1.0",
                            "18446744073709551616", "99999999999999999999999"}) {
    CAPTURE(value);
    const auto error = check_framing(request("POST", {{"Content-Length", value}}));
    REQUIRE(error);
    CHECK(error->code == ErrorCode::invalid_parameter);
  }
  CHECK(refused(request("POST", {{"Content-Length", "5"}, {"Content-Length", "5"}})));
  CHECK(refused(request("POST", {{"Content-Length", "5"}, {"Content-Length", "6"}})));
}

TEST_CASE("check_framing allows only chunked, on HTTP/1.1, without Content-Length") {
  CHECK(refused(request("POST", {{"Transfer-Encoding", "gzip"}})));
  CHECK(refused(request("POST", {{"Transfer-Encoding", "gzip, chunked"}})));
  CHECK(refused(request("POST", {{"Transfer-Encoding", "chunked, chunked"}})));
  CHECK(refused(request("POST", {{"Transfer-Encoding", "identity"}})));
  CHECK(refused(
      request("POST", {{"Transfer-Encoding", "chunked"}, {"Transfer-Encoding", "chunked"}})));
  CHECK(refused(request("POST", {{"Transfer-Encoding", "chunked"}, {"Content-Length", "5"}})));
  CHECK(refused(request("POST", {{"Transfer-Encoding", "chunked"}}, "HTTP/1.0")));
}

TEST_CASE("check_framing refuses bodies on methods that take none") {
  for (const char* method : {"GET", "HEAD", "OPTIONS", "DELETE", "TRACE"}) {
    CAPTURE(method);
    CHECK(refused(request(method, {{"Content-Length", "1"}})));
    CHECK(refused(request(method, {{"Transfer-Encoding", "chunked"}})));
    CHECK_FALSE(refused(request(method, {{"Content-Length", "0"}})));
  }
}

TEST_CASE("range_for serves one byte range, clipped to the object") {
  auto part = [](std::size_t offset, std::size_t length) {
    return ByteRange{.kind = Kind::part, .offset = offset, .length = length};
  };
  auto same = [](const ByteRange& a, const ByteRange& b) {
    return a.kind == b.kind &&
           (a.kind != Kind::part || (a.offset == b.offset && a.length == b.length));
  };
  CHECK(same(range_for("bytes=0-9", 100), part(0, 10)));
  CHECK(same(range_for("bytes=90-", 100), part(90, 10)));
  CHECK(same(range_for("bytes=90-1000", 100), part(90, 10)));
  CHECK(same(range_for("bytes=-10", 100), part(90, 10)));
  CHECK(same(range_for("bytes=-1000", 100), part(0, 100)));
  CHECK(same(range_for("bytes=99-99", 100), part(99, 1)));
  CHECK(same(range_for("Bytes=0-0", 100), part(0, 1)));
}

TEST_CASE("range_for: unsatisfiable and ignored ranges") {
  CHECK(range_for("bytes=100-", 100).kind == Kind::unsatisfiable);
  CHECK(range_for("bytes=100-200", 100).kind == Kind::unsatisfiable);
  CHECK(range_for("bytes=-0", 100).kind == Kind::unsatisfiable);
  CHECK(range_for("bytes=0-", 0).kind == Kind::unsatisfiable);
  for (const char* ignored : {"", "bytes=", "bytes=-", "bytes=5-3", "bytes=a-b", "items=0-5",
                              "bytes=0-1,2-3", "bytes=0-,0-,0-", "bytes= 0-5", "bytes=0x1-5",
                              "bytes=+1-5", "bytes=99999999999999999999999-"}) {
    CAPTURE(ignored);
    CHECK(range_for(ignored, 100).kind == Kind::whole);
  }
}
