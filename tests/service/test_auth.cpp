// API keys: validation, list and file parsing, the Bearer header, and the
// constant-time comparison (correctness; its timing is by construction).
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "service/auth.hpp"

using namespace pixpool;

namespace {

const std::string kKeyA = "key-a-0123456789abcdef";
const std::string kKeyB = "key-b-fedcba9876543210";

}  // namespace

TEST_CASE("api keys: 16 to 256 printable ASCII characters, no space or comma") {
  CHECK(api_key_problem(std::string(16, 'k')).empty());
  CHECK(api_key_problem(std::string(256, '~')).empty());
  CHECK(api_key_problem("!#$%&'()*+-./09:;<=>?@AZ[]^_`az{|}").empty());
  CHECK(api_key_problem(std::string(15, 'k')).find("shorter than 16") != std::string::npos);
  CHECK(api_key_problem(std::string(257, 'k')).find("longer than 256") != std::string::npos);
  CHECK_FALSE(api_key_problem("0123456789 abcdefgh").empty());
  CHECK_FALSE(api_key_problem("0123456789\tabcdefgh").empty());
  CHECK_FALSE(api_key_problem("0123456789\x7f"
                              "abcdefgh")
                  .empty());
  CHECK_FALSE(api_key_problem("0123456789\xc3\xa9"
                              "abcdefgh")
                  .empty());
  CHECK(api_key_problem("0123456789,abcdefgh").find("comma") != std::string::npos);
}

TEST_CASE("api keys: a comma-separated list, errors name the position and never the key") {
  auto keys = parse_api_key_list(kKeyA + "," + kKeyB + ",");
  REQUIRE(keys.ok());
  CHECK(*keys == std::vector<std::string>{kKeyA, kKeyB});
  CHECK(parse_api_key_list("").ok());
  CHECK(parse_api_key_list("")->empty());

  const std::string short_key = "tooshort-secret";
  auto bad = parse_api_key_list(kKeyA + "," + short_key);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().code == ErrorCode::invalid_parameter);
  CHECK(bad.error().message.find("key 2 is shorter than 16") != std::string::npos);
  CHECK(bad.error().message.find(short_key) == std::string::npos);
  CHECK(bad.error().message.find(kKeyA) == std::string::npos);
}

TEST_CASE("api keys: a file has one key per line, comments and blank lines ignored") {
  auto keys = parse_api_key_file("# rotated 2026-11\n\n  " + kKeyA + "  \r\n\t" + kKeyB +
                                 "\r\n   # old key retired\n");
  REQUIRE(keys.ok());
  CHECK(*keys == std::vector<std::string>{kKeyA, kKeyB});

  auto bad = parse_api_key_file("# header\n" + kKeyA + "\nsecret with space ok?\n");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().message.find("line 3") != std::string::npos);
  CHECK(bad.error().message.find("secret") == std::string::npos);

  CHECK_FALSE(read_api_key_file("/nonexistent/pixpool-keys").ok());
  CHECK(read_api_key_file("/").error().message.find("not a regular file") != std::string::npos);
}

TEST_CASE("constant_time_equal is plain equality") {
  CHECK(constant_time_equal("", ""));
  CHECK(constant_time_equal(kKeyA, kKeyA));
  CHECK_FALSE(constant_time_equal(kKeyA, kKeyB));
  CHECK_FALSE(constant_time_equal(kKeyA, kKeyA + "x"));
  CHECK_FALSE(constant_time_equal(kKeyA.substr(1), kKeyA));
  std::string last = kKeyA;
  last.back() = 'g';
  CHECK_FALSE(constant_time_equal(last, kKeyA));
}

TEST_CASE("ApiKeySet matches exactly one of its keys, whichever it is") {
  const ApiKeySet keys({kKeyA, kKeyB, kKeyA});
  CHECK(keys.size() == 2);
  CHECK(keys.matches(kKeyA));
  CHECK(keys.matches(kKeyB));
  CHECK_FALSE(keys.matches(""));
  CHECK_FALSE(keys.matches(kKeyA.substr(0, kKeyA.size() - 1)));  // a prefix
  CHECK_FALSE(keys.matches(kKeyA + "0"));                        // an extension
  CHECK_FALSE(keys.matches(kKeyA + std::string(1, '\0')));       // zero padding is not a match
  std::string flipped = kKeyB;
  flipped[0] = 'K';
  CHECK_FALSE(keys.matches(flipped));
  CHECK_FALSE(keys.matches(std::string(300, 'k')));
  const std::string longest(kMaxApiKeyLength, 'z');
  CHECK(ApiKeySet({longest}).matches(longest));
  CHECK_FALSE(ApiKeySet({longest}).matches(std::string(kMaxApiKeyLength - 1, 'z')));
  CHECK(ApiKeySet().empty());
  CHECK_FALSE(ApiKeySet().matches(""));
}

TEST_CASE("bearer_token reads `Bearer <token>`, scheme in any case") {
  CHECK(bearer_token("Bearer " + kKeyA) == kKeyA);
  CHECK(bearer_token("bearer   " + kKeyA + " ") == kKeyA);
  CHECK(bearer_token("BEARER " + kKeyA) == kKeyA);
  CHECK_FALSE(bearer_token(kKeyA).has_value());
  CHECK_FALSE(bearer_token("Bearer").has_value());
  CHECK_FALSE(bearer_token("Bearer    ").has_value());
  CHECK_FALSE(bearer_token("Basic dXNlcjpwYXNz").has_value());
  CHECK_FALSE(bearer_token("Bearer" + kKeyA).has_value());
}
