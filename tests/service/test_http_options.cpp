// The HTTP edge's options (issue 11): connection threads, processing slots,
// keep-alive, timeouts.
#include <doctest/doctest.h>

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "service/config.hpp"
#include "tests/service/parse_config.hpp"

using namespace pixpool;
using pixpool::test::parse;

TEST_CASE("HTTP edge defaults: safe for clients talking to pixpool directly") {
  auto cli = parse({});
  REQUIRE(cli.ok());
  const HttpOptions& http = cli->config.http;
  CHECK(http.threads == 512);
  CHECK(http.max_processing == 28);
  CHECK(http.keep_alive_requests == 1);
  CHECK(http.keep_alive_timeout == std::chrono::seconds{5});
  CHECK(http.read_timeout == std::chrono::seconds{10});
}

TEST_CASE("HTTP edge flags and their variables") {
  auto cli = parse({"--keep-alive-requests", "1000", "--keep-alive-timeout", "30s",
                    "--max-processing", "8", "--http-threads", "64"});
  REQUIRE(cli.ok());
  CHECK(cli->config.http.keep_alive_requests == 1000);
  CHECK(cli->config.http.keep_alive_timeout == std::chrono::seconds{30});
  CHECK(cli->config.http.max_processing == 8);
  CHECK(cli->config.http.threads == 64);
  auto env = parse({}, {{"PIXPOOL_KEEP_ALIVE_REQUESTS", "50"},
                        {"PIXPOOL_KEEP_ALIVE_TIMEOUT", "2s"},
                        {"PIXPOOL_MAX_PROCESSING", "3"}});
  REQUIRE(env.ok());
  CHECK(env->config.http.keep_alive_requests == 50);
  CHECK(env->config.http.keep_alive_timeout == std::chrono::seconds{2});
  CHECK(env->config.http.max_processing == 3);
  for (const auto& bad : std::vector<std::vector<std::string>>{{"--keep-alive-requests", "0"},
                                                               {"--keep-alive-timeout", "500ms"},
                                                               {"--max-processing", "0"}}) {
    CAPTURE(bad[0]);
    auto r = parse(bad);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message.find(bad[0]) != std::string::npos);
  }
  const std::string help = help_text();
  for (const char* flag : {"--keep-alive-requests", "--keep-alive-timeout", "--max-processing",
                           "PIXPOOL_KEEP_ALIVE_REQUESTS"}) {
    CAPTURE(flag);
    CHECK(help.find(flag) != std::string::npos);
  }
}

TEST_CASE("the request head's deadline and size limit: defaults, flags, ranges") {
  auto cli = parse({});
  REQUIRE(cli.ok());
  CHECK(cli->config.http.header_timeout == std::chrono::seconds{10});
  CHECK(cli->config.http.max_header_bytes == 64 * 1024);
  auto set = parse({"--header-timeout", "2s", "--max-header-bytes", "16KiB"});
  REQUIRE(set.ok());
  CHECK(set->config.http.header_timeout == std::chrono::seconds{2});
  CHECK(set->config.http.max_header_bytes == 16 * 1024);
  auto env = parse({}, {{"PIXPOOL_HEADER_TIMEOUT", "750ms"}, {"PIXPOOL_MAX_HEADER_BYTES", "8k"}});
  REQUIRE(env.ok());
  CHECK(env->config.http.header_timeout == std::chrono::milliseconds{750});
  CHECK(env->config.http.max_header_bytes == 8 * 1024);
  for (const auto& bad : std::vector<std::vector<std::string>>{{"--header-timeout", "10ms"},
                                                               {"--max-header-bytes", "100"}}) {
    CAPTURE(bad[0]);
    auto r = parse(bad);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message.find(bad[0]) != std::string::npos);
  }
}
