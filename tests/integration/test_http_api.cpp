// The HTTP contract, against the real pixpool binary on a loopback port,
// with a real HTTP client (cpp-httplib's).
#include <doctest/doctest.h>
#include <httplib.h>

#include <atomic>
#include <csignal>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>
#include <thread>
#include <vector>

#include "filters/op_chain.hpp"
#include "pipeline/job.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/images.hpp"
#include "tests/support/server_process.hpp"
#include "tests/support/wait.hpp"

using namespace pixpool;
using pixpool::test::client_for;
using pixpool::test::wait_until;
using namespace std::chrono_literals;

namespace {

// Asserts a JSON error body with the given status and code; returns the message.
std::string expect_error(const httplib::Result& res, int status, const std::string& code) {
  REQUIRE(res);
  CHECK(res->status == status);
  CHECK(res->get_header_value("Content-Type") == "application/json");
  const auto body = nlohmann::json::parse(res->body, nullptr, false);
  REQUIRE_FALSE(body.is_discarded());
  CHECK(body["error"]["code"] == code);
  REQUIRE(body["error"]["message"].is_string());
  CHECK_FALSE(body["error"]["message"].get<std::string>().empty());
  return body["error"]["message"].get<std::string>();
}

std::string png_claiming(unsigned width, unsigned height) {
  std::string png = test::encode_with_opencv(test::synthetic_image(4, 4, 3), ".png");
  for (int i = 0; i < 4; ++i) {
    png[16 + i] = static_cast<char>((width >> (24 - 8 * i)) & 0xFF);
    png[20 + i] = static_cast<char>((height >> (24 - 8 * i)) & 0xFF);
  }
  return png;
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

}  // namespace

TEST_CASE("POST a JPEG to either backend: the same processed JPEG comes back, with headers") {
  test::ServerProcess server({"--workers", "2"});
  auto client = client_for(server);
  const std::string photo = test::read_test_data("fruits_320x240.jpg");
  // Exactly what the pipeline computes in-process for the default chain.
  JobSpec job;
  job.input = photo;
  job.params.ops = *parse_ops(kDefaultOps);
  auto expected = run_job(job);
  REQUIRE(expected.ok());

  for (const std::string backend : {"", "tbb", "process"}) {
    CAPTURE(backend);
    auto res = client.Post("/v1/process" + (backend.empty() ? "" : "?backend=" + backend), photo,
                           "image/jpeg");
    REQUIRE(res);
    CHECK(res->status == 200);
    CHECK(res->get_header_value("Content-Type") == "image/jpeg");
    CHECK(res->get_header_value("X-Pixpool-Backend") == (backend.empty() ? "tbb" : backend));
    CHECK(res->get_header_value("X-Pixpool-Image-Size") == "320x240");
    const std::string timing = res->get_header_value("Server-Timing");
    for (const char* stage :
         {"queue;dur=", "decode;dur=", "filter;dur=", "encode;dur=", "total;dur="}) {
      CAPTURE(stage);
      CHECK(contains(timing, stage));
    }
    CHECK(res->body == expected->bytes);  // both backends: byte-identical output
    // blur:5 on a 320x240 JPEG decodes at 1/4 (filters/band_limited.hpp).
    CHECK(res->get_header_value("X-Pixpool-Decode-Scale") == "4");
    CHECK(contains(timing, "decode;dur="));
    CHECK(contains(timing, ";desc=\"1/4\""));
  }
}

TEST_CASE("exact=true decodes at full size, on both backends and as the server's default") {
  const std::string photo = test::read_test_data("fruits_320x240.jpg");
  JobSpec job;
  job.input = photo;
  job.params.ops = *parse_ops(kDefaultOps);
  job.params.exact = true;
  auto expected = run_job(job);
  REQUIRE(expected.ok());
  {
    test::ServerProcess server({"--workers", "1"});
    auto client = client_for(server);
    for (const std::string backend : {"tbb", "process"}) {
      CAPTURE(backend);
      auto res = client.Post("/v1/process?exact=true&backend=" + backend, photo, "image/jpeg");
      REQUIRE(res);
      CHECK(res->status == 200);
      CHECK(res->get_header_value("X-Pixpool-Decode-Scale") == "1");
      CHECK(contains(res->get_header_value("Server-Timing"), ";desc=\"1/1\""));
      CHECK(res->body == expected->bytes);
    }
    auto bad = client.Post("/v1/process?exact=maybe", photo, "image/jpeg");
    REQUIRE(bad);
    CHECK(bad->status == 400);
    CHECK(contains(bad->body, "exact must be true or false"));
  }
  test::ServerProcess exact_server({"--workers", "1", "--exact"});
  auto client = client_for(exact_server);
  auto res = client.Post("/v1/process", photo, "image/jpeg");
  REQUIRE(res);
  CHECK(res->get_header_value("X-Pixpool-Decode-Scale") == "1");
  CHECK(res->body == expected->bytes);
  auto opted_out = client.Post("/v1/process?exact=false", photo, "image/jpeg");
  REQUIRE(opted_out);
  CHECK(opted_out->get_header_value("X-Pixpool-Decode-Scale") == "4");
}

TEST_CASE("the image type is judged by its bytes, never by Content-Type, and multipart works") {
  test::ServerProcess server;
  auto client = client_for(server);
  const std::string photo = test::read_test_data("baboon_320x240.jpg");

  auto lying_type = client.Post("/v1/process", photo, "text/plain");
  REQUIRE(lying_type);
  CHECK(lying_type->status == 200);
  CHECK(lying_type->get_header_value("Content-Type") == "image/jpeg");

  httplib::MultipartFormDataItems items = {{"image", photo, "photo.jpg", "image/jpeg"}};
  auto multipart = client.Post("/v1/process?format=png", items);
  REQUIRE(multipart);
  CHECK(multipart->status == 200);
  CHECK(multipart->get_header_value("Content-Type") == "image/png");
  CHECK(test::decode_with_opencv(multipart->body).size() == cv::Size(320, 240));
}

TEST_CASE("valid edge-case images are processed, not refused, by both backends") {
  test::ServerProcess server({"--workers", "2"});
  auto client = client_for(server);
  struct Case {
    std::string name;
    std::string body;
    std::string query;
    std::string content_type;
    cv::Size size;
    int channels;
  };
  const cv::Mat bgra = test::synthetic_image(60, 40, 4);
  std::vector<Case> cases = {
      {"1x1 png",
       test::encode_with_opencv(test::synthetic_image(1, 1, 3), ".png"),
       "",
       "image/png",
       {1, 1},
       3},
      {"100000x1 png",
       test::encode_with_opencv(test::synthetic_image(100000, 1, 3), ".png"),
       "",
       "image/png",
       {100000, 1},
       3},
      {"1x100000 png",
       test::encode_with_opencv(test::synthetic_image(1, 100000, 1), ".png"),
       "",
       "image/png",
       {1, 100000},
       1},
      {"greyscale jpeg",
       test::encode_with_opencv(test::synthetic_image(64, 48, 1), ".jpg"),
       "",
       "image/jpeg",
       {64, 48},
       1},
      {"png with alpha", test::encode_with_opencv(bgra, ".png"), "", "image/png", {60, 40}, 4},
      {"webp with alpha",
       test::encode_with_opencv(bgra, ".png"),
       "?format=webp",
       "image/webp",
       {60, 40},
       4},
      {"alpha dropped for jpeg",
       test::encode_with_opencv(bgra, ".png"),
       "?format=jpeg",
       "image/jpeg",
       {60, 40},
       3},
      {"bmp becomes png",
       test::encode_with_opencv(test::synthetic_image(30, 20, 3), ".bmp"),
       "",
       "image/png",
       {30, 20},
       3},
      {"tiff becomes png",
       test::encode_with_opencv(test::synthetic_image(30, 20, 3), ".tiff"),
       "",
       "image/png",
       {30, 20},
       3},
      {"webp input",
       test::encode_with_opencv(test::synthetic_image(30, 20, 3), ".webp"),
       "?quality=50",
       "image/webp",
       {30, 20},
       3},
  };
  for (const std::string backend : {"tbb", "process"}) {
    for (const Case& c : cases) {
      CAPTURE(backend);
      CAPTURE(c.name);
      const std::string query = (c.query.empty() ? "?" : c.query + "&") + "backend=" + backend;
      auto res = client.Post("/v1/process" + query, c.body, "application/octet-stream");
      REQUIRE(res);
      CHECK(res->status == 200);
      CHECK(res->get_header_value("Content-Type") == c.content_type);
      const cv::Mat out = test::decode_with_opencv(res->body);
      CHECK(out.size() == c.size);
      CHECK(out.channels() == c.channels);
    }
  }
  // Alpha passes through unchanged in PNG output.
  auto res = client.Post("/v1/process", test::encode_with_opencv(bgra, ".png"), "image/png");
  REQUIRE(res);
  cv::Mat alpha_in, alpha_out;
  cv::extractChannel(bgra, alpha_in, 3);
  cv::extractChannel(test::decode_with_opencv(res->body), alpha_out, 3);
  CHECK(cv::norm(alpha_in, alpha_out, cv::NORM_INF) == 0);
}

TEST_CASE("bad input gets a clear 4xx JSON error and the server keeps serving") {
  test::ServerProcess server({"--workers", "2"});
  auto client = client_for(server);
  const std::string photo = test::read_test_data("fruits_320x240.jpg");

  // Image-level errors come from the backend: both must agree.
  for (const std::string backend : {"tbb", "process"}) {
    CAPTURE(backend);
    const std::string path = "/v1/process?backend=" + backend;
    expect_error(client.Post(path, "\x01\x02 random bytes \x7f", "image/jpeg"), 415,
                 "unsupported_image");
    const std::string truncated =
        expect_error(client.Post(path, photo.substr(0, photo.size() / 2), "image/jpeg"), 415,
                     "unsupported_image");
    CHECK(contains(truncated, "JPEG"));
    expect_error(client.Post(path, png_claiming(50, 50), "image/png"), 415, "unsupported_image");
    const std::string huge = expect_error(
        client.Post(path, png_claiming(100000, 100000), "image/png"), 422, "too_many_pixels");
    CHECK(contains(huge, "100000x100000"));
    expect_error(client.Post(path + "&format=jpeg",
                             test::encode_with_opencv(test::synthetic_image(70000, 1, 3), ".png"),
                             "image/png"),
                 422, "too_large_for_format");
  }

  expect_error(client.Post("/v1/process", "", "image/jpeg"), 400, "empty_body");

  const std::string ops = expect_error(client.Post("/v1/process?ops=blur:abc", photo, "image/jpeg"),
                                       400, "invalid_ops");
  CHECK(contains(ops, "'blur'"));
  CHECK(contains(ops, "'sigma'"));
  expect_error(client.Post("/v1/process?ops=sharpen", photo, "image/jpeg"), 400, "invalid_ops");
  const std::string backend = expect_error(
      client.Post("/v1/process?backend=gpu", photo, "image/jpeg"), 400, "unknown_backend");
  CHECK(contains(backend, "tbb, process"));
  // Test-only ops do not exist unless the server enables them.
  expect_error(client.Post("/v1/process?ops=crash&backend=process", photo, "image/jpeg"), 400,
               "invalid_ops");
  expect_error(client.Post("/v1/process?format=gif", photo, "image/jpeg"), 400,
               "invalid_parameter");
  expect_error(client.Post("/v1/process?quality=0", photo, "image/jpeg"), 400, "invalid_parameter");
  expect_error(client.Post("/v1/process?sigma=3", photo, "image/jpeg"), 400, "invalid_parameter");

  httplib::MultipartFormDataItems wrong_field = {{"file", photo, "photo.jpg", "image/jpeg"}};
  const std::string missing =
      expect_error(client.Post("/v1/process", wrong_field), 400, "missing_image");
  CHECK(contains(missing, "'file'"));

  const std::string no_url = expect_error(client.Get("/v1/process"), 400, "invalid_parameter");
  CHECK(contains(no_url, "url="));
  auto put = client.Put("/v1/process", "x", "text/plain");
  expect_error(put, 405, "method_not_allowed");
  CHECK(put->get_header_value("Allow") == "GET, POST");
  expect_error(client.Delete("/v1/process"), 405, "method_not_allowed");
  expect_error(client.Get("/no/such/route"), 404, "not_found");
  expect_error(client.Post("/healthz", "x", "text/plain"), 405, "method_not_allowed");

  // Still up, still correct.
  CHECK(server.running());
  auto health = client.Get("/healthz");
  REQUIRE(health);
  CHECK(health->status == 200);
  auto good = client.Post("/v1/process", photo, "image/jpeg");
  REQUIRE(good);
  CHECK(good->status == 200);
}

TEST_CASE("limits: 413 over --max-body-bytes, 422 over --max-pixels") {
  test::ServerProcess server({"--max-body-bytes", "100KiB", "--max-pixels", "50000"});
  auto client = client_for(server);
  const std::string message = expect_error(
      client.Post("/v1/process", std::string(static_cast<std::size_t>(200) * 1024, 'x'),
                  "image/jpeg"),
      413, "body_too_large");
  CHECK(contains(message, "102400"));
  httplib::MultipartFormDataItems big = {
      {"image", std::string(static_cast<std::size_t>(200) * 1024, 'x'), "big.jpg", "image/jpeg"}};
  expect_error(client.Post("/v1/process", big), 413, "body_too_large");
  expect_error(client.Post("/v1/batch", big), 413, "body_too_large");
  // Chunked uploads carry no Content-Length: the limit is counted while reading.
  const std::string dir = test::make_temp_dir("chunked");
  test::write_file(dir + "/big.bin", std::string(static_cast<std::size_t>(300) * 1024, 'x'));
  for (const char* route : {"/v1/process", "/v1/jobs"}) {
    CAPTURE(route);
    const auto chunked = test::run_command(
        "curl -s -o /dev/null -w '%{http_code}' -H 'Transfer-Encoding: chunked' "
        "--data-binary @" +
        dir + "/big.bin " + server.base_url() + route);
    CHECK(chunked.output == "413");
  }
  std::filesystem::remove_all(dir);
  expect_error(client.Post("/v1/process", test::read_test_data("fruits_320x240.jpg"), "image/jpeg"),
               422, "too_many_pixels");  // 320x240 = 76800 > 50000
  auto small = client.Post("/v1/process",
                           test::encode_with_opencv(test::synthetic_image(200, 200, 3), ".png"),
                           "image/png");
  REQUIRE(small);
  CHECK(small->status == 200);
}

TEST_CASE("concurrent clients of both backends all get correct answers") {
  test::ServerProcess server({"--tbb-threads", "2", "--workers", "2"});
  const std::string photo = test::read_test_data("baboon_320x240.jpg");
  JobSpec job;
  job.input = photo;
  job.params.ops = *parse_ops(kDefaultOps);
  const std::string expected = run_job(job)->bytes;

  std::atomic<int> ok{0};
  std::vector<std::thread> clients;
  clients.reserve(12);
  for (int c = 0; c < 12; ++c) {
    clients.emplace_back([&, c] {
      auto client = client_for(server);
      const std::string path = std::string("/v1/process?backend=") + (c % 2 ? "process" : "tbb");
      for (int i = 0; i < 4; ++i) {
        auto res = client.Post(path, photo, "image/jpeg");
        if (res && res->status == 200 && res->body == expected) ++ok;
      }
    });
  }
  for (auto& t : clients) t.join();
  CHECK(ok == 48);
}

TEST_CASE("health, readiness and the access log") {
  test::ServerProcess server;
  auto client = client_for(server);
  auto health = client.Get("/healthz");
  REQUIRE(health);
  CHECK(health->status == 200);
  auto ready = client.Get("/readyz");
  REQUIRE(ready);
  CHECK(ready->status == 200);
  const auto body = nlohmann::json::parse(ready->body);
  CHECK(body["status"] == "ready");
  CHECK(body["backends"]["tbb"]["ready"] == true);
  CHECK(body["backends"]["process"]["ready"] == true);

  const std::string photo = test::read_test_data("fruits_320x240.jpg");
  REQUIRE(client.Post("/v1/process", photo, "image/jpeg"));
  REQUIRE(client.Get("/nope"));
  // The logger runs right after each response is written, on that
  // connection's thread, so the lines may land in any order and a little
  // late: wait (bounded) for all three.
  CHECK(wait_until(
      [&] {
        const std::string log = server.log();
        return contains(log, "GET /healthz 200") && contains(log, "GET /nope") &&
               contains(log, "POST /v1/process 200");
      },
      10s, 10ms));
  const std::string log = server.log();
  CHECK(contains(log, "POST /v1/process 200 in=" + std::to_string(photo.size()) + " out="));
  CHECK(contains(log, "backend=tbb ms="));
  CHECK(contains(log, "GET /nope 404"));
  CHECK(contains(log, "GET /healthz 200"));
}

TEST_CASE("SIGTERM lets in-flight requests finish, then exits 0") {
  test::ServerProcess server({"--tbb-threads", "1"});
  // A job that takes a while: a large image with a wide blur.
  const std::string big = test::encode_with_opencv(test::synthetic_image(2500, 2500, 3), ".bmp");
  std::optional<int> status;
  std::thread request([&] {
    auto client = client_for(server);
    auto res = client.Post("/v1/process?ops=blur:40,blur:40,contour&format=png", big, "image/bmp");
    if (res) status = res->status;
  });
  // Wait until the job is running (readiness reports busy jobs), then stop.
  const bool busy = wait_until(
      [&] {
        auto ready = client_for(server).Get("/readyz");
        return ready && nlohmann::json::parse(ready->body)["backends"]["tbb"]["busy"] == 1;
      },
      30s, 10ms);
  if (!busy) {
    server.stop(SIGKILL);  // ends the request thread's wait for an answer
    request.join();
  }
  REQUIRE(busy);
  const int exit_status = server.stop(SIGTERM, 60.0);
  request.join();
  CHECK(exit_status == 0);
  REQUIRE(status.has_value());
  CHECK(*status == 200);
  CHECK(contains(server.log(), "SIGTERM received"));
}

TEST_CASE("--help, --version and bad flags") {
  auto help = test::run_command(test::pixpool_binary() + " --help");
  CHECK(help.exit_code == 0);
  CHECK(contains(help.output, "--max-pixels"));
  CHECK(contains(help.output, "PIXPOOL_PORT"));
  auto version = test::run_command(test::pixpool_binary() + " --version");
  CHECK(version.exit_code == 0);
  CHECK(contains(version.output, "pixpool"));
  auto bad = test::run_command(test::pixpool_binary() + " --port banana 2>&1");
  CHECK(bad.exit_code == 2);
  CHECK(contains(bad.output, "--port"));
  auto bad_env = test::run_command("PIXPOOL_MAX_PIXELS=-5 " + test::pixpool_binary() + " 2>&1");
  CHECK(bad_env.exit_code == 2);
  CHECK(contains(bad_env.output, "PIXPOOL_MAX_PIXELS"));
}

TEST_CASE("a request refused before its body is read leaves the connection clean") {
  // The unread body of an early 400 must not be parsed as more requests:
  // each would be a bogus "malformed request" 400 in the log and metrics.
  test::ServerProcess server({"--access-log", "on"});
  const std::string photo = test::read_test_data("fruits_320x240.jpg");
  auto client = client_for(server);
  client.set_keep_alive(true);
  for (int i = 0; i < 3; ++i) {
    auto bad = client.Post("/v1/process?ops=blur:0", photo, "image/jpeg");
    REQUIRE(bad);
    CHECK(bad->status == 400);
    auto good = client.Post("/v1/process", photo, "image/jpeg");
    REQUIRE(good);
    CHECK(good->status == 200);
  }
  auto metrics = client_for(server).Get("/metrics");
  REQUIRE(metrics);
  CHECK(metrics->body.find("pixpool_http_requests_total{route=\"other\",status=\"400\"}") ==
        std::string::npos);
  const std::string log = server.log();
  std::size_t refused = 0;
  for (std::size_t at = log.find("POST /v1/process 400"); at != std::string::npos;
       at = log.find("POST /v1/process 400", at + 1)) {
    ++refused;
  }
  CHECK(refused == 3);
  CHECK(log.find("Z   400") == std::string::npos);  // no request line at all
}
