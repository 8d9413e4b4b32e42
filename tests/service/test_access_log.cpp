#include <doctest/doctest.h>

#include <algorithm>
#include <string>

#include "service/access_log.hpp"

using namespace pixpool;

TEST_CASE("escape_for_log writes control and non-ASCII bytes, space and backslash as \\xNN") {
  CHECK(escape_for_log("/v1/process") == "/v1/process");
  CHECK(escape_for_log("/a\nb\r") == "/a\\x0ab\\x0d");
  CHECK(escape_for_log("a b\\c") == "a\\x20b\\x5cc");
  CHECK(escape_for_log(std::string("\x1b[31m\x7f\xc3\xa9", 8)) == "\\x1b[31m\\x7f\\xc3\\xa9");
  CHECK(escape_for_log(std::string(1, '\0')) == "\\x00");
  CHECK(escape_for_log("").empty());
  CHECK(escape_for_log("abcdef", 3) == "abc...");
}

TEST_CASE("access_log_line is always exactly one line, whatever the client sent") {
  const std::string path =
      "/x\n2026-01-01T00:00:00.000Z GET /forged 200\r\n" + std::string(5000, 'a');
  const std::string line = access_log_line(AccessLogEntry{.timestamp = "2026-01-01T00:00:00.000Z",
                                                          .method = "GET\n",
                                                          .path = path,
                                                          .status = 404,
                                                          .bytes_in = "5\x01",
                                                          .bytes_out = 12,
                                                          .backend = "",
                                                          .duration = "1.500"});
  CHECK(std::count(line.begin(), line.end(), '\n') == 1);
  CHECK(line.back() == '\n');
  CHECK(line.find('\r') == std::string::npos);
  CHECK(line.size() < 1300);
  CHECK(line.starts_with("2026-01-01T00:00:00.000Z GET\\x0a /x\\x0a2026"));
  CHECK(line.ends_with(" 404 in=5\\x01 out=12 backend=- ms=1.500\n"));
}

TEST_CASE("access_log_line keeps an unparsable request's empty method and path") {
  const std::string line = access_log_line(AccessLogEntry{.timestamp = "T",
                                                          .method = "",
                                                          .path = "",
                                                          .status = 400,
                                                          .bytes_in = "",
                                                          .bytes_out = 0,
                                                          .backend = "",
                                                          .duration = ""});
  CHECK(line == "T   400 in=0 out=0 backend=- ms=-\n");
}
