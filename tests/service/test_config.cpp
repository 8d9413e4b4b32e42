// Configuration: defaults, flags, environment, precedence and bad values.
#include <doctest/doctest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

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
  CHECK(cli->config.http.port == 8080);
  CHECK(cli->config.http.max_body_bytes == 64u * 1024 * 1024);
  CHECK(cli->config.max_pixels == 50'000'000u);
  CHECK(cli->config.default_backend == "tbb");
  CHECK_FALSE(cli->help);
}

TEST_CASE("flags in both spellings, environment, and flag-over-environment precedence") {
  auto cli = parse(
      {"--port", "9000", "--tbb-threads=3", "--max-body-bytes", "2MiB"},
      {{"PIXPOOL_PORT", "7000"}, {"PIXPOOL_MAX_PIXELS", "1234"}, {"PIXPOOL_ACCESS_LOG", "off"}});
  REQUIRE(cli.ok());
  CHECK(cli->config.http.port == 9000);
  CHECK(cli->config.tbb.threads == 3);
  CHECK(cli->config.http.max_body_bytes == 2u * 1024 * 1024);
  CHECK(cli->config.max_pixels == 1234u);
  CHECK_FALSE(cli->config.http.access_log);
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

TEST_CASE("defaults come from the parts' options structs") {
  auto cli = parse({});
  REQUIRE(cli.ok());
  const Config& c = cli->config;
  CHECK(c.tbb.threads == TbbBackendOptions{}.threads);
  CHECK(c.tbb.max_pending == TbbBackendOptions{}.max_pending);
  CHECK(c.process.max_pending == ProcessPoolOptions{}.max_pending);
  CHECK(c.process.job_timeout == ProcessPoolOptions{}.job_timeout);
  CHECK(c.download.timeout == DownloadOptions{}.timeout);
  CHECK(c.download.max_redirects == DownloadOptions{}.max_redirects);
  CHECK(c.batches.max_items == BatchRunnerOptions{}.max_items);
  CHECK(c.batches.max_batches == BatchRunnerOptions{}.max_batches);
  CHECK(c.results.max_entries == ResultStoreOptions{}.max_entries);
  CHECK(c.results.ttl == ResultStoreOptions{}.ttl);
  // The documented values (README's configuration table).
  CHECK(c.results.max_entries == 100000u);
  CHECK(c.results.max_bytes == std::size_t{1} << 30);
  CHECK(c.results.ttl == std::chrono::hours{1});
  CHECK(c.process.job_timeout == std::chrono::seconds{30});
  CHECK(c.download.timeout == std::chrono::seconds{10});
  CHECK(c.admission.wait == std::chrono::seconds{10});
  CHECK(c.admission.max_inflight_pixels == 100'000'000u);
  CHECK(c.http.read_timeout == std::chrono::seconds{30});
  CHECK(c.http.shutdown_timeout == std::chrono::seconds{30});
  CHECK(c.batches.max_items == 1000u);
  CHECK(c.download.ca_file.empty());
}

TEST_CASE("flags land in the parts' options, durations as std::chrono") {
  auto cli = parse({"--max-queue",
                    "7",
                    "--job-timeout",
                    "500ms",
                    "--results-ttl",
                    "2m",
                    "--admission-wait=0",
                    "--download-timeout",
                    "1500ms",
                    "--read-timeout",
                    "5s",
                    "--workers",
                    "3",
                    "--results-max-entries",
                    "9",
                    "--max-batch-items",
                    "4",
                    "--io-threads",
                    "2",
                    "--allowed-sources",
                    "http://a/,https://b/"});
  REQUIRE(cli.ok());
  const Config& c = cli->config;
  CHECK(c.tbb.max_pending == 7u);
  CHECK(c.process.max_pending == 7u);
  CHECK(c.process.job_timeout == std::chrono::milliseconds{500});
  CHECK(c.results.ttl == std::chrono::seconds{120});
  CHECK(c.admission.wait == std::chrono::milliseconds{0});
  CHECK(c.download.timeout == std::chrono::milliseconds{1500});
  CHECK(c.http.read_timeout == std::chrono::seconds{5});
  CHECK(c.process.workers == 3);
  CHECK(c.results.max_entries == 9u);
  CHECK(c.batches.max_items == 4u);
  CHECK(c.download.io_threads == 2);
  CHECK(c.download.allowed_prefixes == std::vector<std::string>{"http://a/", "https://b/"});

  // Settings kept in seconds take whole seconds only.
  auto fractional = parse({"--results-ttl", "1500ms"});
  REQUIRE_FALSE(fractional.ok());
  CHECK(fractional.error().message.find("whole seconds") != std::string::npos);
}
