// Configuration: defaults, flags, environment, precedence and bad values.
#include <doctest/doctest.h>

#include <map>
#include <string>

#include "service/config.hpp"

using namespace pixpool;

namespace {

Result<CommandLine> parse(std::vector<std::string> args,
                          std::map<std::string, std::string> env = {}) {
  return parse_command_line(args, [&env](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  });
}

}  // namespace

TEST_CASE("defaults") {
  auto cli = parse({});
  REQUIRE(cli.ok());
  CHECK(cli->config.port == 8080);
  CHECK(cli->config.max_body_bytes == 64u * 1024 * 1024);
  CHECK(cli->config.max_pixels == 50'000'000u);
  CHECK(cli->config.default_backend == "tbb");
  CHECK_FALSE(cli->help);
}

TEST_CASE("flags in both spellings, environment, and flag-over-environment precedence") {
  auto cli = parse(
      {"--port", "9000", "--tbb-threads=3", "--max-body-bytes", "2MiB"},
      {{"PIXPOOL_PORT", "7000"}, {"PIXPOOL_MAX_PIXELS", "1234"}, {"PIXPOOL_ACCESS_LOG", "off"}});
  REQUIRE(cli.ok());
  CHECK(cli->config.port == 9000);
  CHECK(cli->config.tbb_threads == 3);
  CHECK(cli->config.max_body_bytes == 2u * 1024 * 1024);
  CHECK(cli->config.max_pixels == 1234u);
  CHECK_FALSE(cli->config.access_log);
}

TEST_CASE("bad values name the flag or variable") {
  auto bad_port = parse({"--port", "70000"});
  REQUIRE_FALSE(bad_port.ok());
  CHECK(bad_port.error().message.find("--port") != std::string::npos);

  auto bad_env = parse({}, {{"PIXPOOL_TBB_THREADS", "many"}});
  REQUIRE_FALSE(bad_env.ok());
  CHECK(bad_env.error().message.find("PIXPOOL_TBB_THREADS") != std::string::npos);

  CHECK_FALSE(parse({"--nope"}).ok());
  CHECK_FALSE(parse({"--port"}).ok());
  CHECK_FALSE(parse({"stray"}).ok());
  CHECK_FALSE(parse({"--max-body-bytes", "12 parsecs"}).ok());
  CHECK_FALSE(parse({"--default-backend", "gpu"}).ok());
  CHECK(parse({"--help"})->help);
}

TEST_CASE("parse_byte_size") {
  CHECK(parse_byte_size("1048576") == 1048576u);
  CHECK(parse_byte_size("64MiB") == 64u << 20);
  CHECK(parse_byte_size("512k") == 512u << 10);
  CHECK(parse_byte_size("1G") == 1u << 30);
  CHECK_FALSE(parse_byte_size("").has_value());
  CHECK_FALSE(parse_byte_size("MiB").has_value());
  CHECK_FALSE(parse_byte_size("5 potatoes").has_value());
  CHECK_FALSE(parse_byte_size("99999999999999999999G").has_value());
}

TEST_CASE("help lists every flag with its environment variable") {
  const std::string help = help_text();
  for (const char* flag :
       {"--host", "--port", "--http-threads", "--tbb-threads", "--max-queue", "--max-body-bytes",
        "--max-pixels", "--default-backend", "--read-timeout", "--access-log"}) {
    CAPTURE(flag);
    CHECK(help.find(flag) != std::string::npos);
  }
  CHECK(help.find("PIXPOOL_PORT") != std::string::npos);
}
