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

#include "filters/op_registry.hpp"
#include "service/config.hpp"
#include "tests/service/parse_config.hpp"

using namespace pixpool;
using pixpool::test::parse;

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

TEST_CASE("help lists the registry's ops, and never the test-only ones") {
  const std::string help = help_text();
  CHECK(help.find(default_registry().help_text()) != std::string::npos);
  CHECK(help.find("  blur:sigma") != std::string::npos);
  CHECK(help.find("  contour") != std::string::npos);
  CHECK(help.find("  sleep:ms") == std::string::npos);  // the registry line of the test op
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
  CHECK(c.http.read_timeout == std::chrono::seconds{10});
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

TEST_CASE("a flag wins over a bad variable it overrides") {
  auto cli = parse({"--port", "9000"}, {{"PIXPOOL_PORT", "abc"}});
  REQUIRE(cli.ok());
  CHECK(cli->config.http.port == 9000);

  auto eq = parse({"--access-log=on"}, {{"PIXPOOL_ACCESS_LOG", "maybe"}});
  REQUIRE(eq.ok());
  CHECK(eq->config.http.access_log);

  // A bad variable no flag overrides is still fatal, and named.
  auto other = parse({"--port", "9000"}, {{"PIXPOOL_PORT", "abc"}, {"PIXPOOL_WORKERS", "-1"}});
  REQUIRE_FALSE(other.ok());
  CHECK(other.error().message.find("PIXPOOL_WORKERS") != std::string::npos);
  auto alone = parse({}, {{"PIXPOOL_PORT", "abc"}});
  REQUIRE_FALSE(alone.ok());
  CHECK(alone.error().message.find("PIXPOOL_PORT=abc") != std::string::npos);
  // A bad flag is fatal even over a good variable.
  CHECK_FALSE(parse({"--port", "abc"}, {{"PIXPOOL_PORT", "9000"}}).ok());
}

TEST_CASE("unknown PIXPOOL_ variables get a warning with the likely intended one") {
  const std::map<std::string, std::string> env = {{"PIXPOOL_WORKER", "4"}, {"PIXPOOL_PORT", "1"}};
  auto cli = parse_command_line({},
                                [&env](const char* name) -> const char* {
                                  auto it = env.find(name);
                                  return it == env.end() ? nullptr : it->second.c_str();
                                },
                                {"PATH", "PIXPOOL_WORKER", "PIXPOOL_PORT", "PIXPOOL_max_body_bytes",
                                 "PIXPOOL_MAX_BODY", "PIXPOOL_QQQQQQQQQQQQ", "PIXPOOL_BIN",
                                 "PIXPOOL_STACK_DIR", "PIXPOOL_LB_LISTEN", "XPIXPOOL_WORKER"});
  REQUIRE(cli.ok());
  CHECK(cli->config.process.workers == 0);  // the typo set nothing
  CHECK(cli->config.http.port == 1);
  REQUIRE(cli->warnings.size() == 4);
  CHECK(cli->warnings[0].find("PIXPOOL_WORKER ") != std::string::npos);
  CHECK(cli->warnings[0].find("did you mean PIXPOOL_WORKERS?") != std::string::npos);
  CHECK(cli->warnings[1].find("did you mean PIXPOOL_MAX_BODY_BYTES?") != std::string::npos);
  CHECK(cli->warnings[2].find("did you mean PIXPOOL_MAX_BODY_BYTES?") != std::string::npos);
  CHECK(cli->warnings[3].find("PIXPOOL_QQQQQQQQQQQQ") != std::string::npos);
  CHECK(cli->warnings[3].find("did you mean") == std::string::npos);

  CHECK(parse({}, {{"PIXPOOL_PORT", "1"}})->warnings.empty());
}

TEST_CASE("an unknown flag suggests the likely intended one") {
  auto cli = parse({"--worker", "4"});
  REQUIRE_FALSE(cli.ok());
  CHECK(cli.error().message.find("unknown flag --worker") != std::string::npos);
  CHECK(cli.error().message.find("did you mean --workers?") != std::string::npos);
}

TEST_CASE("a bare on/off flag means on, and a value word or --flag after it is handled") {
  auto bare = parse({"--access-log"}, {{"PIXPOOL_ACCESS_LOG", "off"}});
  REQUIRE(bare.ok());
  CHECK(bare->config.http.access_log);

  auto then_flag = parse({"--enable-test-ops", "--port", "9000"});
  REQUIRE(then_flag.ok());
  CHECK(then_flag->config.enable_test_ops);
  CHECK(then_flag->config.http.port == 9000);

  auto last = parse({"--port", "9000", "--allow-private-sources"});
  REQUIRE(last.ok());
  CHECK(last->config.download.allow_private);

  for (const char* off : {"off", "false", "no", "0"}) {
    CAPTURE(off);
    auto separate = parse({"--access-log", off});
    REQUIRE(separate.ok());
    CHECK_FALSE(separate->config.http.access_log);
  }
  auto separate_on = parse({"--access-log", "on"}, {{"PIXPOOL_ACCESS_LOG", "off"}});
  REQUIRE(separate_on.ok());
  CHECK(separate_on->config.http.access_log);
  auto joined = parse({"--access-log=off"});
  REQUIRE(joined.ok());
  CHECK_FALSE(joined->config.http.access_log);

  // Not a value word: the switch is on and the word is a stray argument.
  auto stray = parse({"--access-log", "maybe"});
  REQUIRE_FALSE(stray.ok());
  CHECK(stray.error().message.find("'maybe'") != std::string::npos);
  CHECK_FALSE(parse({"--access-log=maybe"}).ok());

  // Flags that need a value do not take the next flag as one.
  auto missing = parse({"--host", "--port", "9000"});
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().message.find("--host needs a value") != std::string::npos);
}

TEST_CASE("help: aligned columns, defaults as sizes and durations") {
  const std::string help = help_text();
  std::istringstream lines(help);
  std::string line;
  std::size_t column = 0;
  int flag_lines = 0;
  int env_lines = 0;
  while (std::getline(lines, line)) {
    if (line.starts_with("  -")) {
      // "  --flag HINT   description": the description follows the first gap.
      const auto gap = line.find("  ", 2);
      REQUIRE(gap != std::string::npos);
      const auto start = line.find_first_not_of(' ', gap);
      CAPTURE(line);
      if (column == 0) column = start;
      CHECK(start == column);
      ++flag_lines;
    } else if (line.find("[env ") != std::string::npos) {
      CAPTURE(line);
      CHECK(line.find_first_not_of(' ') == column);
      ++env_lines;
    }
  }
  CHECK(flag_lines == env_lines + 2);  // -h/--help and --version have no variable
  CHECK(help.find("  -h, --help") != std::string::npos);
  CHECK(help.find("  --version") != std::string::npos);
  CHECK(help.find("--access-log [on|off]") != std::string::npos);

  CHECK(help.find("PIXPOOL_MAX_BODY_BYTES, default 64MiB]") != std::string::npos);
  CHECK(help.find("PIXPOOL_RESULTS_MAX_BYTES, default 1GiB]") != std::string::npos);
  CHECK(help.find("PIXPOOL_BUFFER_POOL_BYTES, default 256MiB]") != std::string::npos);
  CHECK(help.find("PIXPOOL_JOB_TIMEOUT, default 30s]") != std::string::npos);
  CHECK(help.find("PIXPOOL_ADMISSION_WAIT, default 10s]") != std::string::npos);
  CHECK(help.find("PIXPOOL_RESULTS_TTL, default 3600s]") != std::string::npos);
  CHECK(help.find("PIXPOOL_RESULTS_MAX_ENTRIES, default 100000]") != std::string::npos);
  CHECK(help.find("PIXPOOL_DOWNLOAD_CA_FILE, default none]") != std::string::npos);
  CHECK(help.find("67108864") == std::string::npos);
  CHECK(help.find("1073741824") == std::string::npos);
}

TEST_CASE("format_byte_size and format_duration") {
  CHECK(format_byte_size(0) == "0");
  CHECK(format_byte_size(64u << 20) == "64MiB");
  CHECK(format_byte_size(std::uint64_t{1} << 30) == "1GiB");
  CHECK(format_byte_size(std::uint64_t{16} << 30) == "16GiB");
  CHECK(format_byte_size(1024) == "1KiB");
  CHECK(format_byte_size(1536u << 20) == "1536MiB");
  CHECK(format_byte_size(1000) == "1000");
  for (std::uint64_t v : {std::uint64_t{1} << 20, std::uint64_t{3} << 30, std::uint64_t{5}}) {
    CHECK(parse_byte_size(format_byte_size(v)) == v);  // what --help shows parses back
  }
  CHECK(format_duration(std::chrono::seconds{30}) == "30s");
  CHECK(format_duration(std::chrono::milliseconds{500}) == "500ms");
  CHECK(format_duration(std::chrono::milliseconds{1500}) == "1500ms");
  CHECK(format_duration(std::chrono::milliseconds{0}) == "0s");
  CHECK(parse_duration_ms(format_duration(std::chrono::milliseconds{1500})) == 1500);
}

TEST_CASE("--download-ca-file must name a readable PEM file") {
  char dir_template[] = "/tmp/pixpool-config-XXXXXX";
  REQUIRE(mkdtemp(dir_template) != nullptr);
  const std::string dir = dir_template;
  const std::string good = dir + "/ca.pem";
  const std::string junk = dir + "/junk.txt";
  std::ofstream(good) << "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
  std::ofstream(junk) << "not a certificate\n";

  auto ok = parse({"--download-ca-file", good});
  REQUIRE(ok.ok());
  CHECK(ok->config.download.ca_file == good);
  auto from_env = parse({}, {{"PIXPOOL_DOWNLOAD_CA_FILE", good}});
  REQUIRE(from_env.ok());
  CHECK(from_env->config.download.ca_file == good);

  auto missing = parse({"--download-ca-file", dir + "/nope.pem"});
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().message.find("--download-ca-file") != std::string::npos);
  CHECK(missing.error().message.find("No such file") != std::string::npos);
  auto missing_env = parse({}, {{"PIXPOOL_DOWNLOAD_CA_FILE", dir + "/nope.pem"}});
  REQUIRE_FALSE(missing_env.ok());
  CHECK(missing_env.error().message.find("PIXPOOL_DOWNLOAD_CA_FILE") != std::string::npos);

  auto directory = parse({"--download-ca-file", dir});
  REQUIRE_FALSE(directory.ok());
  CHECK(directory.error().message.find("not a regular file") != std::string::npos);
  auto not_pem = parse({"--download-ca-file", junk});
  REQUIRE_FALSE(not_pem.ok());
  CHECK(not_pem.error().message.find("no PEM certificate") != std::string::npos);

  std::remove(good.c_str());
  std::remove(junk.c_str());
  rmdir(dir.c_str());
}

// The job store's flags (--store, --reclaim-after, --max-queued-bytes). Case
// names start with "config:" so `ctest -R config` finds them.

TEST_CASE("config: --store is memory by default, with the cluster settings' defaults") {
  auto cli = parse({});
  REQUIRE(cli.ok());
  const Config& c = cli->config;
  CHECK(c.store == "memory");
  CHECK_FALSE(c.store_endpoint.has_value());
  CHECK(c.reclaim_after == std::chrono::seconds{30});
  CHECK(c.batches.max_queued_bytes == BatchRunnerOptions{}.max_queued_bytes);
  CHECK(c.batches.max_queued_bytes == std::size_t{512} << 20);

  // Saying memory explicitly is the same.
  auto memory = parse({"--store", "memory"});
  REQUIRE(memory.ok());
  CHECK(memory->config.store == "memory");
  CHECK_FALSE(memory->config.store_endpoint.has_value());
}

TEST_CASE("config: --store redis://... is parsed into its endpoint") {
  auto cli = parse({"--store", "redis://:s3cret@redis.internal:6380/2"});
  REQUIRE(cli.ok());
  const Config& c = cli->config;
  REQUIRE(c.store_endpoint.has_value());
  CHECK(c.store_endpoint->host == "redis.internal");
  CHECK(c.store_endpoint->port == 6380);
  CHECK(c.store_endpoint->db == 2);
  CHECK(c.store_endpoint->password == "s3cret");
  CHECK(c.store_endpoint->display() == "redis://redis.internal:6380/2");

  auto defaults = parse({"--store=redis://cache"});
  REQUIRE(defaults.ok());
  REQUIRE(defaults->config.store_endpoint.has_value());
  CHECK(defaults->config.store_endpoint->host == "cache");
  CHECK(defaults->config.store_endpoint->port == 6379);
  CHECK(defaults->config.store_endpoint->db == 0);
  CHECK(defaults->config.store_endpoint->password.empty());

  auto ipv6 = parse({"--store", "redis://[::1]:7000/1"});
  REQUIRE(ipv6.ok());
  REQUIRE(ipv6->config.store_endpoint.has_value());
  CHECK(ipv6->config.store_endpoint->host == "::1");
  CHECK(ipv6->config.store_endpoint->port == 7000);
}

TEST_CASE("config: a bad --store URL is refused at startup, naming the flag and the problem") {
  struct Bad {
    const char* url;
    const char* names;
  };
  for (const Bad& bad :
       {Bad{"postgres://db:5432", "redis://"}, Bad{"redis://", "no host"},
        Bad{"redis://h:0", "port"}, Bad{"redis://h:65536", "port"},
        Bad{"redis://h:6379/x", "database"}, Bad{"redis://u:p@h", "password"},
        Bad{"redis://h?db=1", "query"}, Bad{"Memory", "redis://"}, Bad{"", "redis://"}}) {
    CAPTURE(bad.url);
    auto cli = parse({std::string("--store=") + bad.url});
    REQUIRE_FALSE(cli.ok());
    CHECK(cli.error().code == ErrorCode::invalid_parameter);
    CAPTURE(cli.error().message);
    CHECK(cli.error().message.find("--store") != std::string::npos);
    CHECK(cli.error().message.find(bad.names) != std::string::npos);
  }
  // The flag needs a value.
  auto missing = parse({"--store"});
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().message.find("--store needs a value") != std::string::npos);
}

TEST_CASE("config: PIXPOOL_STORE sets the store, and --store wins over it") {
  auto env = parse({}, {{"PIXPOOL_STORE", "redis://:pw@10.0.0.5:6390/4"}});
  REQUIRE(env.ok());
  REQUIRE(env->config.store_endpoint.has_value());
  CHECK(env->config.store_endpoint->host == "10.0.0.5");
  CHECK(env->config.store_endpoint->port == 6390);
  CHECK(env->config.store_endpoint->db == 4);
  CHECK(env->config.store_endpoint->password == "pw");

  auto flag_wins = parse({"--store", "memory"}, {{"PIXPOOL_STORE", "redis://10.0.0.5"}});
  REQUIRE(flag_wins.ok());
  CHECK(flag_wins->config.store == "memory");
  CHECK_FALSE(flag_wins->config.store_endpoint.has_value());

  // Even over a bad variable, as for every flag.
  auto over_bad = parse({"--store", "redis://good"}, {{"PIXPOOL_STORE", "redis://bad:0"}});
  REQUIRE(over_bad.ok());
  CHECK(over_bad->config.store_endpoint->host == "good");

  auto bad_env = parse({}, {{"PIXPOOL_STORE", "redis://h:99999"}});
  REQUIRE_FALSE(bad_env.ok());
  CHECK(bad_env.error().message.find("PIXPOOL_STORE") != std::string::npos);
  CHECK(bad_env.error().message.find("port") != std::string::npos);
}

TEST_CASE("config: --reclaim-after takes a duration between 300ms and 24 hours") {
  auto ms = parse({"--reclaim-after", "300ms"});
  REQUIRE(ms.ok());
  CHECK(ms->config.reclaim_after == std::chrono::milliseconds{300});
  auto seconds = parse({"--reclaim-after=5s"});
  REQUIRE(seconds.ok());
  CHECK(seconds->config.reclaim_after == std::chrono::seconds{5});
  auto minutes = parse({"--reclaim-after", "2m"});
  REQUIRE(minutes.ok());
  CHECK(minutes->config.reclaim_after == std::chrono::minutes{2});
  auto day = parse({"--reclaim-after", "1440m"});
  REQUIRE(day.ok());
  CHECK(day->config.reclaim_after == std::chrono::hours{24});
  auto env = parse({}, {{"PIXPOOL_RECLAIM_AFTER", "45s"}});
  REQUIRE(env.ok());
  CHECK(env->config.reclaim_after == std::chrono::seconds{45});

  for (const char* bad : {"299ms", "0", "1441m", "86401s", "soon", "-5s", "1h"}) {
    CAPTURE(bad);
    auto cli = parse({"--reclaim-after", bad});
    REQUIRE_FALSE(cli.ok());
    CAPTURE(cli.error().message);
    CHECK(cli.error().message.find("--reclaim-after") != std::string::npos);
    CHECK(cli.error().message.find("between 300ms and 86400s") != std::string::npos);
  }
  auto bad_env = parse({}, {{"PIXPOOL_RECLAIM_AFTER", "100ms"}});
  REQUIRE_FALSE(bad_env.ok());
  CHECK(bad_env.error().message.find("PIXPOOL_RECLAIM_AFTER") != std::string::npos);
}

TEST_CASE("config: --max-queued-bytes takes a size between 1MiB and 1TiB") {
  auto cli = parse({"--max-queued-bytes", "64MiB"});
  REQUIRE(cli.ok());
  CHECK(cli->config.batches.max_queued_bytes == std::size_t{64} << 20);
  auto plain = parse({"--max-queued-bytes=1048576"});
  REQUIRE(plain.ok());
  CHECK(plain->config.batches.max_queued_bytes == std::size_t{1} << 20);
  auto big = parse({"--max-queued-bytes", "1024G"});
  REQUIRE(big.ok());
  CHECK(big->config.batches.max_queued_bytes == std::size_t{1} << 40);
  auto env = parse({}, {{"PIXPOOL_MAX_QUEUED_BYTES", "2G"}});
  REQUIRE(env.ok());
  CHECK(env->config.batches.max_queued_bytes == std::size_t{2} << 30);

  for (const char* bad : {"1048575", "512k", "1025G", "lots", "-1", ""}) {
    CAPTURE(bad);
    auto refused = parse({std::string("--max-queued-bytes=") + bad});
    REQUIRE_FALSE(refused.ok());
    CAPTURE(refused.error().message);
    CHECK(refused.error().message.find("--max-queued-bytes") != std::string::npos);
    CHECK(refused.error().message.find("between 1MiB and 1024GiB") != std::string::npos);
  }
}

TEST_CASE("config: --help shows the store flags and never a password") {
  const std::string help = help_text();
  for (const char* part : {"--store URL", "PIXPOOL_STORE", "redis://[:password@]host[:port][/db]",
                           "--reclaim-after DURATION", "PIXPOOL_RECLAIM_AFTER",
                           "--max-queued-bytes BYTES", "PIXPOOL_MAX_QUEUED_BYTES"}) {
    CAPTURE(part);
    CHECK(help.find(part) != std::string::npos);
  }
  // The defaults as --help prints them.
  CHECK(help.find("[env PIXPOOL_STORE, default memory]") != std::string::npos);
  CHECK(help.find("[env PIXPOOL_RECLAIM_AFTER, default 30s]") != std::string::npos);
  CHECK(help.find("[env PIXPOOL_MAX_QUEUED_BYTES, default 512MiB]") != std::string::npos);

  // With a password in the environment, --help still parses and prints the
  // same text, and the endpoint shows itself as redis://host:port/db.
  auto cli = parse({"--help"}, {{"PIXPOOL_STORE", "redis://:hunter2@redis.internal:6380/1"}});
  REQUIRE(cli.ok());
  CHECK(cli->help);
  CHECK(help_text().find("hunter2") == std::string::npos);
  REQUIRE(cli->config.store_endpoint.has_value());
  CHECK(cli->config.store_endpoint->display() == "redis://redis.internal:6380/1");
  CHECK(cli->config.store_endpoint->display().find("hunter2") == std::string::npos);
}

// A refused store URL must not put its password in the startup error (which
// main() prints, also for `pixpool --help` with a bad PIXPOOL_STORE): the
// store option is secret, and parse_redis_url masks what precedes '@'.
TEST_CASE("config: a refused store URL never echoes its password") {
  auto flag = parse({"--store", "redis://:hunter2@redis.internal:0"});
  REQUIRE_FALSE(flag.ok());
  CHECK(flag.error().message.find("--store") != std::string::npos);
  CHECK(flag.error().message.find("hunter2") == std::string::npos);

  auto help_with_bad_env = parse({"--help"}, {{"PIXPOOL_STORE", "redis://:hunter2@redis:abc"}});
  REQUIRE_FALSE(help_with_bad_env.ok());
  CHECK(help_with_bad_env.error().message.find("PIXPOOL_STORE") != std::string::npos);
  CHECK(help_with_bad_env.error().message.find("hunter2") == std::string::npos);
}
