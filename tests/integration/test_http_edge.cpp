// pixpool's own HTTP edge, attacked directly over raw loopback sockets (no
// proxy in front): no response amplification through Range, every refused
// request closes its connection so no unread byte is ever served as a
// request, strict Content-Length/Transfer-Encoding, explicit close instead
// of dropped pipelined requests, one log line per request, and health probes
// that answer while idle and slow connections pile up.
#include <doctest/doctest.h>
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/raw_connection.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/images.hpp"
#include "tests/support/server_process.hpp"
#include "tests/support/wait.hpp"

using namespace pixpool;
using pixpool::test::body_of;
using pixpool::test::client_for;
using pixpool::test::count_responses;
using pixpool::test::first_status;
using pixpool::test::header_of;
using pixpool::test::RawConnection;
using pixpool::test::wait_until;
using namespace std::chrono_literals;

namespace {

// Long enough for a loaded 2-core machine; an answer that waits for a body
// or a keep-alive timeout (5 s) or a read timeout (10 s) still misses it.
constexpr auto kPrompt = 3000ms;

std::size_t occurrences(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// Stores one PNG result through /v1/batch; returns its /v1/results/... path
// and its size.
std::pair<std::string, std::size_t> store_result(const test::ServerProcess& server) {
  const std::string photo = test::read_test_data("baboon_320x240.jpg");
  auto res = client_for(server).Post(
      "/v1/batch?ops=contour&format=png",
      httplib::MultipartFormDataItems{{"image", photo, "a.jpg", "image/jpeg"}});
  REQUIRE(res);
  REQUIRE(res->status == 200);
  const auto item = nlohmann::json::parse(res->body)["items"][0];
  return {item["result"].get<std::string>(), item["bytes"].get<std::size_t>()};
}

// One request on a fresh connection; everything the server sends until it
// closes (or kPrompt passes).
RawConnection::Received exchange(int port, const std::string& request) {
  RawConnection conn(port);
  conn.send(request);
  return conn.read_until_close(kPrompt);
}

// `request` carries "GET /SMUGGLED-<tag>" where a body or a header would be.
// The server must answer it once with `status`, close the connection
// promptly, and never serve the smuggled request.
void check_refused_and_closed(const test::ServerProcess& server, const std::string& request,
                              int status) {
  const auto got = exchange(server.port(), request);
  CAPTURE(got.bytes);
  CHECK(first_status(got.bytes) == status);
  CHECK(count_responses(got.bytes) == 1);
  CHECK(got.closed);
  CHECK(header_of(got.bytes, "Connection") == "close");
  CHECK(got.bytes.find("SMUGGLED") == std::string::npos);
}

std::string smuggled(const std::string& tag) {
  return "GET /SMUGGLED-" + tag + " HTTP/1.1\r\nHost: x\r\n\r\n";
}

}  // namespace

TEST_CASE("Range is never applied by httplib: processing routes answer whole") {
  test::ServerProcess server({"--keep-alive-requests", "100"});
  const std::string photo = test::read_test_data("fruits_320x240.jpg");
  auto client = client_for(server);
  auto whole = client.Post("/v1/process", photo, "image/jpeg");
  REQUIRE(whole);
  REQUIRE(whole->status == 200);
  const httplib::Headers one_range = {{"Range", "bytes=0-9"}};
  auto ranged = client.Post("/v1/process", one_range, photo, "image/jpeg");
  REQUIRE(ranged);
  CHECK(ranged->status == 200);
  CHECK(ranged->body.size() == whole->body.size());
  CHECK_FALSE(ranged->has_header("Content-Range"));
  std::string many = "bytes=0-";
  for (int i = 0; i < 99; ++i) many += ",0-";
  auto metrics = client.Get("/metrics", {{"Range", many}});
  REQUIRE(metrics);
  CHECK(metrics->status == 200);
  CHECK(metrics->get_header_value("Content-Type").find("multipart") == std::string::npos);
  CHECK(metrics->body.size() < 1'000'000);
  // An error body is never sliced either.
  auto missing = client.Get("/v1/jobs/nope", {{"Range", "bytes=0-0"}});
  REQUIRE(missing);
  CHECK(missing->status == 404);
  CHECK(missing->body.find("\"not_found\"") != std::string::npos);
}

TEST_CASE("100 overlapping ranges on a stored result return at most the object's size") {
  test::ServerProcess server;
  const auto [path, size] = store_result(server);
  REQUIRE(size > 1000);
  std::string many = "bytes=0-";
  for (int i = 0; i < 99; ++i) many += ",0-";
  const auto got = exchange(server.port(),
                            "GET " + path + " HTTP/1.1\r\nHost: x\r\nRange: " + many + "\r\n\r\n");
  CHECK(first_status(got.bytes) == 200);  // several ranges: the whole object, once
  CHECK(body_of(got.bytes).size() == size);
  CHECK(got.bytes.size() < size + 1000);
  CHECK(header_of(got.bytes, "Content-Type") == "image/png");
}

TEST_CASE("a stored result serves one byte range as 206 and an unsatisfiable one as 416") {
  test::ServerProcess server({"--keep-alive-requests", "100"});
  const auto [path, size] = store_result(server);
  auto client = client_for(server);
  auto whole = client.Get(path);
  REQUIRE(whole);
  CHECK(whole->status == 200);
  CHECK(whole->get_header_value("Accept-Ranges") == "bytes");
  REQUIRE(whole->body.size() == size);

  auto first = client.Get(path, {{"Range", "bytes=0-9"}});
  REQUIRE(first);
  CHECK(first->status == 206);
  CHECK(first->get_header_value("Content-Range") == "bytes 0-9/" + std::to_string(size));
  CHECK(first->body == whole->body.substr(0, 10));

  auto tail = client.Get(path, {{"Range", "bytes=-5"}});
  REQUIRE(tail);
  CHECK(tail->status == 206);
  CHECK(tail->body == whole->body.substr(size - 5));

  auto open_end = client.Get(path, {{"Range", "bytes=10-"}});
  REQUIRE(open_end);
  CHECK(open_end->status == 206);
  CHECK(open_end->body == whole->body.substr(10));

  auto clipped = client.Get(path, {{"Range", "bytes=5-99999999"}});
  REQUIRE(clipped);
  CHECK(clipped->status == 206);
  CHECK(clipped->body == whole->body.substr(5));

  const auto past = exchange(
      server.port(),
      "GET " + path + " HTTP/1.1\r\nHost: x\r\nRange: bytes=" + std::to_string(size) + "-\r\n\r\n");
  CHECK(first_status(past.bytes) == 416);
  CHECK(header_of(past.bytes, "Content-Range") == "bytes */" + std::to_string(size));
  CHECK(past.closed);
  CHECK(body_of(past.bytes).size() < 200);

  // A Range that cpp-httplib cannot parse is refused before routing, on any
  // route: a small error, the connection closed, nothing after it served.
  for (const std::string& target : {path, std::string("/healthz")}) {
    check_refused_and_closed(
        server,
        "GET " + target + " HTTP/1.1\r\nHost: x\r\nRange: bytes=9-1\r\n\r\n" + smuggled("r"), 416);
  }
  CHECK(server.log().find("SMUGGLED") == std::string::npos);
}

TEST_CASE("requests that must not carry a body are refused and their connection closed") {
  // Keep-alive on, as behind a front: the closing comes from the refusal.
  test::ServerProcess server({"--keep-alive-requests", "100", "--access-log", "on"});
  const std::string body = smuggled("body");
  const std::string length = std::to_string(body.size());
  for (const std::string method : {"GET", "OPTIONS", "DELETE"}) {
    CAPTURE(method);
    check_refused_and_closed(server,
                             method + " /v1/jobs/abc HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                                 length + "\r\n\r\n" + body,
                             400);
  }
  check_refused_and_closed(
      server,
      "GET /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
          std::to_string(body.size()) + "\r\n" + body + "\r\n0\r\n\r\n",
      400);
  // HEAD: headers only, then closed; the body's bytes never served.
  const auto head =
      exchange(server.port(), "HEAD /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: " + length +
                                  "\r\n\r\n" + body);
  CAPTURE(head.bytes);
  CHECK(first_status(head.bytes) == 400);
  CHECK(count_responses(head.bytes) == 1);
  CHECK(head.closed);
  CHECK(body_of(head.bytes).empty());
  // A GET without a body (or with an empty one) is fine, and keeps alive.
  RawConnection conn(server.port());
  conn.send(
      "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
      "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  const auto first = conn.read_until(
      [](const std::string& b) { return b.find("\"ok\"") != std::string::npos; }, kPrompt);
  CHECK(first_status(first.bytes) == 200);
  CHECK_FALSE(first.closed);

  REQUIRE(wait_until([&] { return occurrences(server.log(), "HEAD /healthz 400") == 1; }, 10s));
  const std::string log = server.log();
  CHECK(log.find("SMUGGLED") == std::string::npos);
  CHECK(occurrences(log, " 400 ") == 5);
}

TEST_CASE("Content-Length must be one run of digits, refused at once otherwise") {
  test::ServerProcess server({"--keep-alive-requests", "100", "--access-log", "on"});
  const std::string head = "POST /v1/process HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n";
  for (const std::string value :
       {"1e3", "0x10", "+5", "-1", "5 5", "5, 5", "", "99999999999999999999"}) {
    CAPTURE(value);
    // No body follows: an answer must not wait for one.
    const auto got = exchange(server.port(), head + "Content-Length: " + value + "\r\n\r\n");
    CAPTURE(got.bytes);
    CHECK(first_status(got.bytes) == 400);
    CHECK(got.closed);
    CHECK(got.elapsed < kPrompt);
  }
  for (const std::string twice : {"Content-Length: 5\r\nContent-Length: 5\r\n",
                                  "Content-Length: 5\r\nContent-Length: 6\r\n"}) {
    CAPTURE(twice);
    check_refused_and_closed(server, head + twice + "\r\n" + smuggled("cl"), 400);
  }
}

TEST_CASE("Transfer-Encoding: only chunked, only on HTTP/1.1, never with Content-Length") {
  test::ServerProcess server({"--keep-alive-requests", "100", "--access-log", "on"});
  const std::string post = "POST /v1/process HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n";
  const std::string chunk = "5\r\nhello\r\n0\r\n\r\n";
  check_refused_and_closed(server, post + "Transfer-Encoding: gzip\r\n\r\n" + smuggled("te"), 400);
  check_refused_and_closed(
      server, post + "Transfer-Encoding: gzip, chunked\r\n\r\n" + chunk + smuggled("te"), 400);
  check_refused_and_closed(
      server,
      post + "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n" + chunk + smuggled("te"),
      400);
  check_refused_and_closed(
      server, post + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk,
      400);
  check_refused_and_closed(server,
                           "POST /v1/process HTTP/1.0\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
                           "Transfer-Encoding: chunked\r\n\r\n" +
                               chunk + smuggled("te"),
                           400);
  // "Chunked" in any case is chunked: read, then refused as not an image.
  const auto got = exchange(server.port(), post + "Transfer-Encoding: Chunked\r\n\r\n" + chunk);
  CHECK(first_status(got.bytes) == 415);
  CHECK(server.log().find("SMUGGLED") == std::string::npos);
}

TEST_CASE(
    "malformed requests close their connection: over-long header, no boundary, over-limit "
    "chunked upload") {
  test::ServerProcess server(
      {"--keep-alive-requests", "100", "--access-log", "on", "--max-body-bytes", "4KiB"});
  check_refused_and_closed(server,
                           "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Long: " + std::string(9000, 'a') +
                               "\r\n\r\n" + smuggled("long"),
                           400);
  const std::string body = smuggled("boundary");
  check_refused_and_closed(server,
                           "POST /v1/process HTTP/1.1\r\nHost: x\r\n"
                           "Content-Type: multipart/form-data\r\nContent-Length: " +
                               std::to_string(body.size()) + "\r\n\r\n" + body,
                           400);
  std::string chunks;
  for (int i = 0; i < 8; ++i) chunks += "400\r\n" + std::string(1024, 'x') + "\r\n";
  check_refused_and_closed(server,
                           "POST /v1/process HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
                           "Transfer-Encoding: chunked\r\n\r\n" +
                               chunks + "0\r\n\r\n" + smuggled("chunked"),
                           413);
  const std::string log = server.log();
  CHECK(log.find("SMUGGLED") == std::string::npos);
  CHECK(log.find("GET /healthz 400") != std::string::npos);
  CHECK(log.find("POST /v1/process 413") != std::string::npos);
}

TEST_CASE("pipelined requests get an explicit close, not a silent drop") {
  test::ServerProcess server;  // the default: one request per connection
  RawConnection conn(server.port());
  conn.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /readyz HTTP/1.1\r\nHost: x\r\n\r\n");
  const auto got = conn.read_until_close(kPrompt);
  CAPTURE(got.bytes);
  CHECK(first_status(got.bytes) == 200);
  CHECK(count_responses(got.bytes) == 1);
  CHECK(header_of(got.bytes, "Connection") == "close");
  CHECK(got.closed);
  MESSAGE("pipelined pair: closed after " << got.elapsed.count() << " ms");
  CHECK(got.elapsed < 1000ms);
}

TEST_CASE("--keep-alive-requests keeps connections open for a front that reuses them") {
  test::ServerProcess server({"--keep-alive-requests", "3"});
  RawConnection conn(server.port());
  std::string all;
  for (int i = 0; i < 3; ++i) {
    REQUIRE(conn.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
    const auto got = conn.read_until(
        [&](const std::string& b) { return occurrences(b, "\"ok\"") == 1; }, kPrompt);
    CHECK(first_status(got.bytes) == 200);
    all += got.bytes;
  }
  CHECK(occurrences(all, "Connection: close") == 1);  // the third, the last allowed
  CHECK(conn.read_until_close(kPrompt).closed);
}

TEST_CASE("control characters in a path cannot forge or split an access-log line") {
  test::ServerProcess server({"--access-log", "on"});
  REQUIRE(wait_until([&] { return !server.log().empty(); }, 10s));
  const auto lines_before = occurrences(server.log(), "\n");
  const auto got = exchange(server.port(),
                            "GET /a%0a%0d2026-01-01T00:00:00.000Z%20GET%20/forged%20200%1b[0m\\x "
                            "HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(first_status(got.bytes) == 404);
  REQUIRE(wait_until([&] { return server.log().find(" 404 ") != std::string::npos; }, 10s));
  const std::string log = server.log();
  CHECK(occurrences(log, "\n") == lines_before + 1);
  CHECK(
      log.find("GET /a\\x0a\\x0d2026-01-01T00:00:00.000Z\\x20GET\\x20/forged\\x20200\\x1b[0m\\x5cx "
               "404") != std::string::npos);
}

TEST_CASE("/healthz and /readyz answer while idle connections and slow uploads pile up") {
  test::ServerProcess server;
  std::vector<RawConnection> idle;
  idle.reserve(200);
  for (int i = 0; i < 200; ++i) idle.emplace_back(server.port());
  std::vector<RawConnection> slow;
  slow.reserve(50);
  for (int i = 0; i < 50; ++i) {
    slow.emplace_back(server.port());
    slow.back().send(
        "POST /v1/process HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
        "Content-Length: 100000\r\n\r\n");
  }
  std::atomic<bool> stop{false};
  std::jthread feeder([&] {  // one byte per connection every 100 ms
    while (!stop) {
      for (auto& s : slow) s.send("x");
      std::this_thread::sleep_for(100ms);
    }
  });
  // Every one of them holds a connection thread; none waits for one.
  auto metrics = client_for(server).Get("/metrics");
  REQUIRE(metrics);
  const auto gauge = [&](const std::string& name) {
    const auto at = metrics->body.find("\n" + name + " ");
    return at == std::string::npos ? -1 : std::stol(metrics->body.substr(at + name.size() + 2));
  };
  CHECK(gauge("pixpool_http_connections_served") >= 250);
  CHECK(gauge("pixpool_http_connections_waiting") == 0);
  std::vector<double> ms;
  for (int i = 0; i < 20; ++i) {
    const auto start = std::chrono::steady_clock::now();
    const auto got =
        exchange(server.port(), std::string("GET ") + (i % 2 ? "/readyz" : "/healthz") +
                                    " HTTP/1.1\r\nHost: x\r\n\r\n");
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                     .count());
    CHECK(first_status(got.bytes) == 200);
    CHECK(ms.back() < 1000.0);
  }
  stop = true;
  std::sort(ms.begin(), ms.end());
  MESSAGE("health probes with 200 idle + 50 slow connections: p50 "
          << ms[ms.size() / 2] << " ms, max " << ms.back() << " ms");
}

namespace {

// The value of `pixpool_http_request_heads_cut_total{reason="<reason>"}`.
long heads_cut(const test::ServerProcess& server, const std::string& reason) {
  auto res = client_for(server).Get("/metrics");
  if (!res) return -1;
  const std::string name = "pixpool_http_request_heads_cut_total{reason=\"" + reason + "\"} ";
  const auto at = res->body.find(name);
  return at == std::string::npos ? -1 : std::stol(res->body.substr(at + name.size()));
}

}  // namespace

TEST_CASE("a request head that never ends is cut at --max-header-bytes") {
  // httplib keeps every header line in memory and has no limit of its own:
  // before the watchdog, four such connections took the server to 3.4 GB.
  test::ServerProcess server({"--max-header-bytes", "64KiB"});
  REQUIRE(heads_cut(server, "too_large") == 0);
  RawConnection conn(server.port());
  REQUIRE(conn.send("GET /healthz HTTP/1.1\r\nHost: x\r\n"));
  std::string lines;
  for (int i = 0; i < 1000; ++i) lines += "X-Flood-" + std::to_string(i) + ": y\r\n";
  std::size_t sent = 0;
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  // Stream header lines until the server cuts the connection (a send fails);
  // at most 64 MiB, far past what the kernel's buffers can hide.
  while (sent < (std::size_t{64} << 20) && std::chrono::steady_clock::now() < deadline) {
    if (!conn.send(lines)) break;
    sent += lines.size();
  }
  MESSAGE("header bytes sent before the cut: " << sent);
  CHECK(sent < (std::size_t{64} << 20));
  CHECK(wait_until([&] { return heads_cut(server, "too_large") == 1; }, 5s));
  CHECK(heads_cut(server, "timeout") == 0);
  // The server is fine and answers the next client at once.
  const auto got = exchange(server.port(), "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(first_status(got.bytes) == 200);
}

TEST_CASE("a request head slower than --header-timeout is cut, a slow body is not") {
  test::ServerProcess server({"--header-timeout", "500ms"});
  SUBCASE("headers trickling in one byte every 50 ms (slowloris)") {
    RawConnection conn(server.port());
    const std::string request =
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + std::string(200, 'a') + "\r\n\r\n";
    const auto start = std::chrono::steady_clock::now();
    bool cut = false;
    for (const char c : request) {  // 10+ s of trickle if nothing cuts it
      if (!conn.send(std::string(1, c))) {
        cut = true;
        break;
      }
      std::this_thread::sleep_for(50ms);
    }
    const auto got = conn.read_until_close(kPrompt);
    const auto took = std::chrono::steady_clock::now() - start;
    MESSAGE("slow head cut after "
            << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms");
    CHECK((cut || got.closed));
    CHECK(first_status(got.bytes) != 200);  // never served
    CHECK(took < 5s);
    CHECK(wait_until([&] { return heads_cut(server, "timeout") == 1; }, 5s));
  }
  SUBCASE("the body may take longer than the head's deadline") {
    const std::string photo = test::read_test_data("fruits_320x240.jpg");
    RawConnection conn(server.port());
    REQUIRE(
        conn.send("POST /v1/process?ops=contour HTTP/1.1\r\nHost: x\r\n"
                  "Content-Type: image/jpeg\r\nContent-Length: " +
                  std::to_string(photo.size()) + "\r\n\r\n"));
    const std::size_t third = photo.size() / 3;
    for (std::size_t at = 0; at < photo.size(); at += third) {
      REQUIRE(conn.send(photo.substr(at, third)));
      std::this_thread::sleep_for(400ms);  // 1.2 s in all, past the 500 ms deadline
    }
    const auto got = conn.read_until_close(10s);
    CHECK(first_status(got.bytes) == 200);
    CHECK(heads_cut(server, "timeout") == 0);
  }
}
