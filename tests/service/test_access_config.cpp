// The access-control flags: --api-keys, --api-keys-file, --metrics-auth and
// --cors-origins with their variables, and that no error ever echoes a key.
#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "service/config.hpp"
#include "tests/service/parse_config.hpp"

using namespace pixpool;
using pixpool::test::parse;

namespace {

const std::string kKeyA = "key-a-0123456789abcdef";
const std::string kKeyB = "key-b-fedcba9876543210";
const std::string kKeyC = "key-c-from-the-file-0001";

// A temporary key file, removed at scope exit.
struct KeyFile {
  std::string path;
  explicit KeyFile(const std::string& text) {
    char name[] = "/tmp/pixpool-keys-XXXXXX";
    const int fd = ::mkstemp(name);
    REQUIRE(fd >= 0);
    ::close(fd);
    path = name;
    std::ofstream(path) << text;
  }
  ~KeyFile() { std::remove(path.c_str()); }
  KeyFile(const KeyFile&) = delete;
  KeyFile& operator=(const KeyFile&) = delete;
};

}  // namespace

TEST_CASE("access flags: off by default") {
  auto cli = parse({});
  REQUIRE(cli.ok());
  CHECK(cli->config.access.api_keys.empty());
  CHECK(cli->config.access.api_file_keys.empty());
  CHECK_FALSE(cli->config.access.metrics_auth);
  CHECK(cli->config.access.cors_origins.empty());
}

TEST_CASE("access flags: keys from the flag, the variable, and a file (union)") {
  auto flag = parse({"--api-keys", kKeyA + "," + kKeyB});
  REQUIRE(flag.ok());
  CHECK(flag->config.access.api_keys == std::vector<std::string>{kKeyA, kKeyB});

  auto env = parse({}, {{"PIXPOOL_API_KEYS", kKeyB}});
  REQUIRE(env.ok());
  CHECK(env->config.access.api_keys == std::vector<std::string>{kKeyB});

  const KeyFile file("# keys\n" + kKeyC + "\n\n");
  auto both =
      parse({"--api-keys-file", file.path, "--metrics-auth"}, {{"PIXPOOL_API_KEYS", kKeyA}});
  REQUIRE(both.ok());
  CHECK(both->config.access.api_keys == std::vector<std::string>{kKeyA});
  CHECK(both->config.access.api_file_keys == std::vector<std::string>{kKeyC});
  CHECK(both->config.access.metrics_auth);
}

TEST_CASE("access flags: a bad key is a startup error naming the flag, never the key") {
  const std::string short_key = "short-secret";
  auto flag = parse({"--api-keys=" + kKeyA + "," + short_key});
  REQUIRE_FALSE(flag.ok());
  CHECK(flag.error().message.starts_with("--api-keys: key 2 is shorter than 16"));
  CHECK(flag.error().message.find(short_key) == std::string::npos);
  CHECK(flag.error().message.find(kKeyA) == std::string::npos);

  auto env = parse({}, {{"PIXPOOL_API_KEYS", kKeyA + " " + kKeyB}});
  REQUIRE_FALSE(env.ok());
  CHECK(env.error().message.starts_with("PIXPOOL_API_KEYS: key 1 holds a space"));
  CHECK(env.error().message.find(kKeyA) == std::string::npos);

  const KeyFile file(kKeyA + "\nshort-secret\n");
  auto from_file = parse({"--api-keys-file", file.path});
  REQUIRE_FALSE(from_file.ok());
  CHECK(from_file.error().message.find("--api-keys-file") != std::string::npos);
  CHECK(from_file.error().message.find("line 2") != std::string::npos);
  CHECK(from_file.error().message.find(short_key) == std::string::npos);

  const KeyFile empty("# nothing yet\n");
  auto no_keys = parse({"--api-keys-file", empty.path});
  REQUIRE_FALSE(no_keys.ok());
  CHECK(no_keys.error().message.find("holds no key") != std::string::npos);
  CHECK_FALSE(parse({"--api-keys-file", "/nonexistent/keys"}).ok());
}

TEST_CASE("access flags: --metrics-auth needs keys, and CORS origins are checked") {
  auto lonely = parse({"--metrics-auth"});
  REQUIRE_FALSE(lonely.ok());
  CHECK(lonely.error().message.find("--metrics-auth needs API keys") != std::string::npos);
  CHECK_FALSE(parse({}, {{"PIXPOOL_METRICS_AUTH", "on"}}).ok());
  CHECK(parse({"--metrics-auth", "off"}).ok());

  auto cors = parse({}, {{"PIXPOOL_CORS_ORIGINS", "https://a.example,http://localhost:3000"}});
  REQUIRE(cors.ok());
  CHECK(cors->config.access.cors_origins ==
        std::vector<std::string>{"https://a.example", "http://localhost:3000"});
  auto bad = parse({"--cors-origins", "https://a.example/"});
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().message.find("--cors-origins=https://a.example/: ") == 0);
}

TEST_CASE("access flags: --help lists them without any key") {
  const std::string help = help_text();
  for (const char* flag : {"--api-keys KEY,KEY", "--api-keys-file PATH", "--metrics-auth [on|off]",
                           "--cors-origins ORIGINS", "PIXPOOL_API_KEYS", "PIXPOOL_CORS_ORIGINS"}) {
    INFO(flag);
    CHECK(help.find(flag) != std::string::npos);
  }
}
