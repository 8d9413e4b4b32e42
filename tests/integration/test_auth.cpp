// API keys and CORS against the real server, with real curl and a raw
// socket: 401s and their challenges, rotated keys, open probes, keyed
// /metrics, keys from the variable and from a file, an unauthenticated
// upload refused without reading its body, and CORS on and off.
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/images.hpp"
#include "tests/support/server_process.hpp"

using namespace pixpool;
using namespace std::chrono_literals;

namespace {

const std::string kKeyA = "test-key-a-0123456789abcdef";
const std::string kKeyB = "test-key-b-from-file-987654";

struct Reply {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;

  // The header's value ("" when absent); `name` in lower case.
  std::string header(const std::string& name) const {
    const auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
};

// Runs curl with `args` against `url`; the reply's status, headers and body.
Reply curl(const std::string& args, const std::string& url) {
  const std::string dir = test::make_temp_dir("pixpool-auth");
  const auto r = test::run_command("curl -s -m 60 -D " + dir + "/h -o " + dir + "/b " + args +
                                   " '" + url + "'");
  REQUIRE(r.exit_code == 0);
  Reply reply;
  reply.body = test::read_file(dir + "/b");
  std::istringstream in(test::read_file(dir + "/h"));
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.starts_with("HTTP/")) {  // a new block (after a 100 Continue)
      reply.status = std::stoi(line.substr(line.find(' ') + 1));
      reply.headers.clear();
      continue;
    }
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string name = line.substr(0, colon);
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    reply.headers[name] = line.substr(std::min(line.size(), colon + 2));
  }
  test::run_command("rm -rf " + dir);
  return reply;
}

std::string error_code(const Reply& reply) {
  return nlohmann::json::parse(reply.body)["error"]["code"].get<std::string>();
}

bool has_cors_header(const Reply& reply) {
  return std::any_of(reply.headers.begin(), reply.headers.end(),
                     [](const auto& h) { return h.first.starts_with("access-control-"); });
}

std::string photo_file(const std::string& dir) {
  std::string path = dir + "/photo.jpg";
  test::write_file(path, test::read_test_data("fruits_320x240.jpg"));
  return path;
}

// A key file holding kKeyB (with a comment), for --api-keys-file.
std::string key_file(const std::string& dir) {
  std::string path = dir + "/keys";
  test::write_file(path, "# pixpool API keys, one per line\n\n" + kKeyB + "\n");
  return path;
}

// Sends `request` on a new loopback connection and returns what arrives up
// to the end of the first response's head (10 s receive timeout).
std::string response_head(int port, const std::string& request) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  timeval timeout{.tv_sec = 10, .tv_usec = 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
          static_cast<ssize_t>(request.size()));
  std::string answer;
  char buffer[4096];
  while (answer.find("\r\n\r\n") == std::string::npos) {
    const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n <= 0) break;
    answer.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return answer;
}

}  // namespace

TEST_CASE("api keys: 401 without or with a wrong key, 200 with either rotated key") {
  const std::string dir = test::make_temp_dir("pixpool-auth");
  test::ServerProcess server({"--api-keys", kKeyA, "--api-keys-file", key_file(dir)});
  const std::string photo = photo_file(dir);
  const std::string upload = "--data-binary @" + photo + " -H 'Content-Type: image/jpeg'";
  const std::string url = server.base_url() + "/v1/process";

  const Reply none = curl(upload, url);
  CHECK(none.status == 401);
  CHECK(error_code(none) == "unauthorized");
  CHECK(none.header("www-authenticate") == R"(Bearer realm="pixpool")");

  const std::string wrong_key = "wrong-key-0123456789abcdef";
  const Reply wrong = curl(upload + " -H 'Authorization: Bearer " + wrong_key + "'", url);
  CHECK(wrong.status == 401);
  CHECK(error_code(wrong) == "unauthorized");
  CHECK(wrong.header("www-authenticate") == R"(Bearer realm="pixpool", error="invalid_token")");
  CHECK(wrong.body.find(wrong_key) == std::string::npos);

  for (const std::string& key : {kKeyA, kKeyB}) {
    const Reply ok = curl(upload + " -H 'Authorization: Bearer " + key + "'", url);
    CHECK(ok.status == 200);
    CHECK(ok.header("content-type") == "image/jpeg");
    CHECK(test::decode_with_opencv(ok.body).cols == 320);
  }
  // Every /v1 route and unknown paths are keyed; the probes and /metrics are not.
  CHECK(curl("", server.base_url() + "/v1/backends").status == 401);
  CHECK(curl("", server.base_url() + "/v1/jobs/r1-abc").status == 401);
  CHECK(curl("", server.base_url() + "/no/such/route").status == 401);
  CHECK(
      curl("-H 'Authorization: Bearer " + kKeyA + "'", server.base_url() + "/v1/backends").status ==
      200);
  CHECK(curl("", server.base_url() + "/healthz").status == 200);
  CHECK(curl("", server.base_url() + "/readyz").status == 200);
  CHECK(curl("", server.base_url() + "/metrics").status == 200);
  // The server never logs a key.
  CHECK(server.log().find(kKeyA) == std::string::npos);
  CHECK(server.log().find(kKeyB) == std::string::npos);
  CHECK(server.log().find(wrong_key) == std::string::npos);
  test::run_command("rm -rf " + dir);
}

TEST_CASE("api keys: from PIXPOOL_API_KEYS, and --metrics-auth keys /metrics") {
  ::setenv("PIXPOOL_API_KEYS", (kKeyA + "," + kKeyB).c_str(), 1);
  test::ServerProcess server({"--metrics-auth"});
  ::unsetenv("PIXPOOL_API_KEYS");
  const std::string metrics = server.base_url() + "/metrics";
  const Reply refused = curl("", metrics);
  CHECK(refused.status == 401);
  CHECK(refused.header("www-authenticate") == R"(Bearer realm="pixpool")");
  CHECK(curl("-H 'Authorization: Bearer " + kKeyB + "'", metrics).status == 200);
  CHECK(curl("-H 'Authorization: bearer " + kKeyA + "'", metrics).status == 200);
  CHECK(curl("", server.base_url() + "/healthz").status == 200);
}

TEST_CASE("api keys: a bad key stops startup with the flag named and the key not shown") {
  const std::string secret = "short-secret";
  auto bad = test::run_command(test::pixpool_binary() + " --port 0 --api-keys " + kKeyA + "," +
                               secret + " 2>&1");
  CHECK(bad.exit_code == 2);
  CHECK(bad.output.find("--api-keys: key 2 is shorter than 16") != std::string::npos);
  CHECK(bad.output.find(secret) == std::string::npos);
  CHECK(bad.output.find(kKeyA) == std::string::npos);
  auto lonely = test::run_command(test::pixpool_binary() + " --port 0 --metrics-auth 2>&1");
  CHECK(lonely.exit_code == 2);
  CHECK(lonely.output.find("--metrics-auth needs API keys") != std::string::npos);
}

TEST_CASE("api keys: an unauthenticated upload is refused without reading its body") {
  test::ServerProcess server({"--api-keys", kKeyA, "--read-timeout", "20s"});
  // Raw socket: announce 20 MiB and send none of it. A server that read the
  // body before checking the key would wait for it (up to --read-timeout).
  const std::string head =
      "POST /v1/process HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/jpeg\r\n"
      "Content-Length: 20971520\r\n";
  const auto started = std::chrono::steady_clock::now();
  CHECK(response_head(server.port(), head + "\r\n").starts_with("HTTP/1.1 401 "));
  CHECK(std::chrono::steady_clock::now() - started < 5s);
  // With Expect: 100-continue the 401 comes instead of "100 Continue", so
  // the client is told not to send the body at all.
  const std::string expecting = response_head(server.port(), head + "Expect: 100-continue\r\n\r\n");
  CHECK(expecting.starts_with("HTTP/1.1 401 "));
  CHECK(expecting.find("WWW-Authenticate: Bearer") != std::string::npos);

  // curl with a real 20 MiB body (it announces Expect: 100-continue): the
  // 401 arrives before curl sends any of it.
  const std::string dir = test::make_temp_dir("pixpool-auth");
  test::write_file(dir + "/big.bin", std::string(std::size_t{20} << 20, 'x'));
  const auto r = test::run_command(
      "curl -s -m 60 -o /dev/null -w '%{http_code} %{size_upload}' "
      "--data-binary @" +
      dir + "/big.bin '" + server.base_url() + "/v1/process'");
  CHECK(r.output == "401 0");
  test::run_command("rm -rf " + dir);
}

TEST_CASE("cors: listed origins get headers and preflights, others get none") {
  test::ServerProcess server(
      {"--api-keys", kKeyA, "--cors-origins", "https://app.example,http://localhost:3000"});
  const std::string url = server.base_url() + "/v1/process";
  const std::string preflight =
      "-X OPTIONS -H 'Access-Control-Request-Method: POST' "
      "-H 'Access-Control-Request-Headers: authorization,content-type' ";

  const Reply allowed = curl(preflight + "-H 'Origin: https://app.example'", url);
  CHECK(allowed.status == 204);  // no key: browsers send none on a preflight
  CHECK(allowed.header("access-control-allow-origin") == "https://app.example");
  CHECK(allowed.header("access-control-allow-methods") == "GET, POST");
  CHECK(allowed.header("access-control-allow-headers").find("Authorization") != std::string::npos);
  CHECK(allowed.header("access-control-max-age") == "600");
  CHECK(allowed.header("vary") == "Origin");

  const Reply refused = curl(preflight + "-H 'Origin: https://evil.example'", url);
  CHECK(refused.status == 403);
  CHECK(error_code(refused) == "forbidden_origin");
  CHECK_FALSE(has_cors_header(refused));

  // Actual requests: the allowed origin can read the answer (and its 401).
  const std::string backends = server.base_url() + "/v1/backends";
  const Reply simple =
      curl("-H 'Origin: http://localhost:3000' -H 'Authorization: Bearer " + kKeyA + "'", backends);
  CHECK(simple.status == 200);
  CHECK(simple.header("access-control-allow-origin") == "http://localhost:3000");
  CHECK(simple.header("access-control-expose-headers").find("X-Pixpool-Backend") !=
        std::string::npos);
  CHECK(simple.header("vary") == "Origin");
  CHECK(!simple.headers.contains("access-control-allow-credentials"));
  const Reply unkeyed = curl("-H 'Origin: http://localhost:3000'", backends);
  CHECK(unkeyed.status == 401);
  CHECK(unkeyed.header("access-control-allow-origin") == "http://localhost:3000");
  const Reply other =
      curl("-H 'Origin: https://evil.example' -H 'Authorization: Bearer " + kKeyA + "'", backends);
  CHECK(other.status == 200);
  CHECK_FALSE(has_cors_header(other));
}

TEST_CASE("cors: off by default, no Access-Control headers and OPTIONS stays 405") {
  test::ServerProcess server;
  const Reply preflight =
      curl("-X OPTIONS -H 'Origin: https://app.example' -H 'Access-Control-Request-Method: POST'",
           server.base_url() + "/v1/process");
  CHECK(preflight.status == 405);
  CHECK(preflight.header("allow") == "GET, POST");
  CHECK_FALSE(has_cors_header(preflight));
  const Reply simple = curl("-H 'Origin: https://app.example'", server.base_url() + "/v1/backends");
  CHECK(simple.status == 200);
  CHECK_FALSE(has_cors_header(simple));
  CHECK(!simple.headers.contains("vary"));
}
