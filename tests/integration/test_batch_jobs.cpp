// Batches, jobs, results and URL downloads through the real server, with
// curl for uploads and a loopback image origin started by the test.
#include <doctest/doctest.h>
#include <httplib.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "tests/support/http_client.hpp"
#include "tests/support/images.hpp"
#include "tests/support/server_process.hpp"
#include "tests/support/wait.hpp"

using namespace pixpool;
using pixpool::test::client_for;
using pixpool::test::wait_until;
using namespace std::chrono_literals;

namespace {

// A loopback HTTP origin serving test images and failure cases.
class Origin {
 public:
  Origin() {
    const std::string photo = test::read_test_data("fruits_320x240.jpg");
    server_.Get("/fruits.jpg", [photo](const httplib::Request&, httplib::Response& res) {
      res.set_content(photo, "image/jpeg");
    });
    server_.Get("/text", [](const httplib::Request&, httplib::Response& res) {
      res.set_content("this is not an image", "image/jpeg");  // lying Content-Type
    });
    server_.Get("/missing.jpg", [](const httplib::Request&, httplib::Response& res) {
      res.status = 404;
      res.set_content("nope", "text/plain");
    });
    server_.Get("/moved.jpg", [](const httplib::Request&, httplib::Response& res) {
      res.set_redirect("/fruits.jpg");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    REQUIRE(port_ > 0);
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    // stop() is a no-op until the server runs: wait for it (bounded).
    if (!wait_until([this] { return server_.is_running(); }, 10s)) {
      server_.stop();  // listen_after_bind may still start: make it return at once
      thread_.join();
      FAIL("the loopback origin did not start listening within 10 s");
    }
  }
  ~Origin() {
    server_.stop();
    thread_.join();
  }
  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  std::string prefix() const { return url("/"); }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
};

// A folder with `good` copies of a photo and `bad` non-images.
std::string make_upload_dir(int good, int bad) {
  std::string dir = test::make_temp_dir("batch");
  const std::string photo = test::read_test_data("baboon_320x240.jpg");
  for (int i = 0; i < good; ++i)
    test::write_file(dir + "/good" + std::to_string(i) + ".jpg", photo);
  for (int i = 0; i < bad; ++i) test::write_file(dir + "/bad" + std::to_string(i) + ".jpg", "junk");
  return dir;
}

std::string curl_form_args(const std::string& dir) {
  std::string args;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    args += " -F image=@" + entry.path().string();
  }
  return args;
}

}  // namespace

TEST_CASE("curl multipart batches of 1, 10 and 100 images: bad items fail alone") {
  test::ServerProcess server({"--workers", "2"});
  for (const auto& counts : {std::pair{1, 0}, std::pair{8, 2}, std::pair{95, 5}}) {
    // Named locals, not a structured binding: CAPTURE's lambda captures `good`.
    const int good = counts.first;
    const int bad = counts.second;
    CAPTURE(good);
    const std::string dir = make_upload_dir(good, bad);
    const auto r = test::run_command("curl -s" + curl_form_args(dir) + " '" + server.base_url() +
                                     "/v1/batch?backend=process'");
    REQUIRE(r.exit_code == 0);
    const auto body = nlohmann::json::parse(r.output, nullptr, false);
    REQUIRE_FALSE(body.is_discarded());
    CHECK(body["state"] == "done");
    CHECK(body["backend"] == "process");
    CHECK(body["totals"]["total"] == good + bad);
    CHECK(body["totals"]["succeeded"] == good);
    CHECK(body["totals"]["failed"] == bad);
    for (const auto& item : body["items"]) {
      const std::string name = item["name"];
      if (name.rfind("bad", 0) == 0) {
        CHECK(item["status"] == 415);
        CHECK(item["error"]["code"] == "unsupported_image");
      } else {
        CHECK(item["status"] == 200);
        CHECK(item["width"] == 320);
      }
    }
    // Every result link serves the processed image.
    auto client = client_for(server);
    for (const auto& item : body["items"]) {
      if (item["status"] != 200) continue;
      auto res = client.Get(item["result"].get<std::string>());
      REQUIRE(res);
      CHECK(res->status == 200);
      CHECK(res->get_header_value("Content-Type") == "image/jpeg");
      CHECK(res->body.size() == item["bytes"].get<std::size_t>());
    }
    std::filesystem::remove_all(dir);
  }
}

TEST_CASE("a batch as a tar: outputs plus manifest.json, written by libarchive") {
  test::ServerProcess server;
  const std::string dir = make_upload_dir(3, 1);
  const std::string out = dir + "/out.tar";
  const auto r = test::run_command("curl -s -o " + out + curl_form_args(dir) + " '" +
                                   server.base_url() + "/v1/batch?archive=tar&format=png'");
  REQUIRE(r.exit_code == 0);
  const auto listing = test::run_command("tar -tf " + out);
  REQUIRE(listing.exit_code == 0);
  CHECK(listing.output.find("manifest.json") != std::string::npos);
  int pngs = 0;
  for (std::size_t at = 0; (at = listing.output.find(".png", at)) != std::string::npos; ++at)
    ++pngs;
  CHECK(pngs == 3);
  const auto manifest =
      nlohmann::json::parse(test::run_command("tar -xOf " + out + " manifest.json").output);
  CHECK(manifest["totals"]["succeeded"] == 3);
  CHECK(manifest["totals"]["failed"] == 1);
  // Accept: application/x-tar asks for the same.
  const auto accept =
      test::run_command("curl -s -H 'Accept: application/x-tar'" + curl_form_args(dir) + " " +
                        server.base_url() + "/v1/batch | tar -t | grep -c manifest.json");
  CHECK(accept.output == "1\n");
  std::filesystem::remove_all(dir);
}

TEST_CASE("url= downloads: allowlisted origin works, private addresses are refused by default") {
  Origin origin;
  test::ServerProcess open_server({"--allowed-sources", origin.prefix()});
  auto client = client_for(open_server);

  auto get = client.Get("/v1/process?url=" + origin.url("/fruits.jpg"));
  REQUIRE(get);
  CHECK(get->status == 200);
  CHECK(get->get_header_value("Content-Type") == "image/jpeg");
  CHECK(get->get_header_value("Server-Timing").find("download;dur=") != std::string::npos);

  auto post = client.Post("/v1/process?url=" + origin.url("/moved.jpg"), "", "text/plain");
  REQUIRE(post);
  CHECK(post->status == 200);

  auto missing = client.Get("/v1/process?url=" + origin.url("/missing.jpg"));
  REQUIRE(missing);
  CHECK(missing->status == 502);
  CHECK(missing->body.find("404") != std::string::npos);

  auto text = client.Get("/v1/process?url=" + origin.url("/text"));
  REQUIRE(text);
  CHECK(text->status == 415);  // judged by its bytes, not its Content-Type

  auto both = client.Post("/v1/process?url=" + origin.url("/fruits.jpg"),
                          test::read_test_data("fruits_320x240.jpg"), "image/jpeg");
  REQUIRE(both);
  CHECK(both->status == 400);

  // The same origin without the allowlist: loopback is refused.
  test::ServerProcess closed_server;
  auto closed = client_for(closed_server).Get("/v1/process?url=" + origin.url("/fruits.jpg"));
  REQUIRE(closed);
  CHECK(closed->status == 403);
  CHECK(closed->body.find("source_forbidden") != std::string::npos);
  auto metadata =
      client_for(closed_server).Get("/v1/process?url=http://169.254.169.254/latest/meta-data/");
  REQUIRE(metadata);
  CHECK(metadata->status == 403);
  auto scheme = client_for(closed_server).Get("/v1/process?url=file:///etc/passwd");
  REQUIRE(scheme);
  CHECK(scheme->status == 403);
}

TEST_CASE("jobs: 202, events to the end, status, archive and results") {
  Origin origin;
  test::ServerProcess server({"--allowed-sources", origin.prefix(), "--workers", "2"});
  const std::string dir = make_upload_dir(4, 1);
  const auto created =
      test::run_command("curl -s" + curl_form_args(dir) + " -F url=" + origin.url("/fruits.jpg") +
                        " -F url=http://10.0.0.1/x.jpg -w '\\n%{http_code}' '" + server.base_url() +
                        "/v1/jobs?backend=process'");
  REQUIRE(created.exit_code == 0);
  const auto newline = created.output.rfind('\n');
  CHECK(created.output.substr(newline + 1) == "202");
  const auto job = nlohmann::json::parse(created.output.substr(0, newline));
  const std::string id = job["id"];
  CHECK(job["total"] == 7);

  // Server-Sent Events: one `item` per image, then `done` with the totals.
  const auto events =
      test::run_command("curl -s -N -m 60 " + server.base_url() + "/v1/jobs/" + id + "/events");
  REQUIRE(events.exit_code == 0);
  int items = 0;
  for (std::size_t at = 0; (at = events.output.find("event: item", at)) != std::string::npos;
       ++at) {
    ++items;
  }
  CHECK(items == 7);
  const auto done_at = events.output.find("event: done\ndata: ");
  REQUIRE(done_at != std::string::npos);
  const auto totals = nlohmann::json::parse(
      events.output.substr(done_at + 18, events.output.find('\n', done_at + 18) - done_at - 18));
  CHECK(totals["succeeded"] == 5);  // 4 uploads + 1 allowlisted URL
  CHECK(totals["failed"] == 2);     // the junk upload and the private address

  auto client = client_for(server);
  auto status = client.Get("/v1/jobs/" + id);
  REQUIRE(status);
  const auto body = nlohmann::json::parse(status->body);
  CHECK(body["state"] == "done");
  bool saw_forbidden = false;
  for (const auto& item : body["items"]) {
    if (item.contains("url") && item["url"] == "http://10.0.0.1/x.jpg") {
      saw_forbidden = item["error"]["code"] == "source_forbidden" && item["status"] == 403;
    }
  }
  CHECK(saw_forbidden);

  auto archive = client.Get("/v1/jobs/" + id + "/archive");
  REQUIRE(archive);
  CHECK(archive->status == 200);
  CHECK(archive->get_header_value("Content-Type") == "application/x-tar");
  test::write_file(dir + "/job.tar", archive->body);
  const auto listing = test::run_command("tar -tf " + dir + "/job.tar | wc -l");
  CHECK(listing.output == "6\n");  // manifest + 5 outputs

  CHECK(client.Get("/v1/jobs/doesnotexist")->status == 404);
  CHECK(client.Get("/v1/results/doesnotexist")->status == 404);
  std::filesystem::remove_all(dir);
}

TEST_CASE("DELETE cancels the items of a job that have not started") {
  // Default settings: a job keeps only a few items in flight (2 per backend
  // worker), so the rest are still cancellable.
  test::ServerProcess server({"--enable-test-ops", "on", "--tbb-threads", "2"});
  const std::string dir = make_upload_dir(20, 0);
  const auto created = test::run_command("curl -s" + curl_form_args(dir) + " '" +
                                         server.base_url() + "/v1/jobs?ops=sleep:200'");
  const std::string id = nlohmann::json::parse(created.output)["id"];
  auto client = client_for(server);
  auto cancel = client.Delete("/v1/jobs/" + id);
  REQUIRE(cancel);
  CHECK(cancel->status == 200);
  const auto body = nlohmann::json::parse(cancel->body);
  CHECK(body["cancelled_now"].get<int>() >= 12);  // at most 4 in flight, 200 ms each
  // The events stream still ends, with the cancellation in the totals.
  const auto events =
      test::run_command("curl -s -N -m 60 " + server.base_url() + "/v1/jobs/" + id + "/events");
  CHECK(events.output.find("event: done") != std::string::npos);
  CHECK(events.output.find("\"state\":\"cancelled\"") != std::string::npos);
  auto after = nlohmann::json::parse(client.Get("/v1/jobs/" + id)->body);
  CHECK(after["state"] == "cancelled");
  CHECK(after["totals"]["cancelled"].get<int>() >= 12);
  std::filesystem::remove_all(dir);
}

TEST_CASE("batch requests with bad input get clear 400s") {
  test::ServerProcess server;
  auto client = client_for(server);
  auto empty = client.Post("/v1/batch", "", "application/json");
  REQUIRE(empty);
  CHECK(empty->status == 400);
  auto no_urls = client.Post("/v1/batch", R"({"url":"x"})", "application/json");
  REQUIRE(no_urls);
  CHECK(no_urls->status == 400);
  auto bad_json = client.Post("/v1/jobs", "{nope", "application/json");
  REQUIRE(bad_json);
  CHECK(bad_json->status == 400);
  auto bad_ops = client.Post("/v1/batch?ops=blur:abc", R"({"urls":["http://example.com/a.jpg"]})",
                             "application/json");
  REQUIRE(bad_ops);
  CHECK(bad_ops->status == 400);
  CHECK(bad_ops->body.find("invalid_ops") != std::string::npos);
  auto twice =
      client.Post("/v1/batch?ops=contour", R"({"urls":["http://example.com/a.jpg"],"ops":"blur"})",
                  "application/json");
  REQUIRE(twice);
  CHECK(twice->status == 400);
  httplib::MultipartFormDataItems wrong = {{"file", "x", "a.jpg", "image/jpeg"}};
  auto wrong_field = client.Post("/v1/batch", wrong);
  REQUIRE(wrong_field);
  CHECK(wrong_field->status == 400);
  CHECK(wrong_field->body.find("'file'") != std::string::npos);
  // a job's tar is GET /v1/jobs/{id}/archive, not a flag of the POST
  auto job_archive = client.Post("/v1/jobs?archive=tar", R"({"urls":["http://example.com/a.jpg"]})",
                                 "application/json");
  REQUIRE(job_archive);
  CHECK(job_archive->status == 400);
  CHECK(job_archive->body.find("/v1/jobs/{id}/archive") != std::string::npos);
}

namespace {

std::size_t occurrences(const std::string& haystack, const std::string& needle) {
  std::size_t n = 0;
  for (auto at = haystack.find(needle); at != std::string::npos; at = haystack.find(needle, at + 1))
    ++n;
  return n;
}

// Waits (up to 10 s) until the server's log has at least the given number
// of lines containing each needle; the access logger runs right after each
// response, on that connection's thread, so lines land a little late.
bool log_has(const test::ServerProcess& server,
             const std::vector<std::pair<std::string, std::size_t>>& expected) {
  return wait_until(
      [&] {
        const std::string log = server.log();
        for (const auto& [needle, n] : expected) {
          if (occurrences(log, needle) < n) return false;
        }
        return true;
      },
      10s, 10ms);
}

}  // namespace

TEST_CASE(
    "multipart uploads refused early on /v1/batch, /v1/jobs and /v1/process leave the connection "
    "clean") {
  // As for raw /v1/process uploads (test_http_api.cpp): the unread body of
  // an early refusal must not be parsed as more requests, each a bogus 400
  // with no method or path in the access log and counted under "other".
  test::ServerProcess server({"--access-log", "on"});
  const std::string photo = test::read_test_data("baboon_320x240.jpg");
  const httplib::MultipartFormDataItems items = {{"image", photo, "a.jpg", "image/jpeg"},
                                                 {"image", photo, "b.jpg", "image/jpeg"}};
  for (const std::string route : {"/v1/batch", "/v1/jobs", "/v1/process"}) {
    CAPTURE(route);
    auto client = client_for(server);
    client.set_keep_alive(true);
    for (int i = 0; i < 3; ++i) {
      // A bad %-escape in the query: refused before the body is read.
      auto bad = client.Post(route + "?ops=blur%zz", items);
      REQUIRE(bad);
      CHECK(bad->status == 400);
      CHECK(bad->body.find("%-escape") != std::string::npos);
      auto good = client.Post(route, items);
      REQUIRE(good);
      CHECK(good->status == (route == "/v1/jobs" ? 202 : 200));
    }
  }
  CHECK(log_has(server, {{"POST /v1/batch 400", 3},
                         {"POST /v1/jobs 400", 3},
                         {"POST /v1/process 400", 3},
                         {"POST /v1/process 200", 3}}));
  const std::string log = server.log();
  CHECK(occurrences(log, "POST /v1/batch 400") == 3);
  CHECK(occurrences(log, "POST /v1/jobs 400") == 3);
  CHECK(occurrences(log, "POST /v1/process 400") == 3);
  CHECK(log.find("Z   400") == std::string::npos);  // no request line at all
  auto metrics = client_for(server).Get("/metrics");
  REQUIRE(metrics);
  CHECK(metrics->body.find("pixpool_http_requests_total{route=\"other\"") == std::string::npos);
  CHECK(metrics->body.find("pixpool_http_requests_total{route=\"/v1/batch\",status=\"400\"} 3") !=
        std::string::npos);
  CHECK(metrics->body.find("pixpool_http_requests_total{route=\"/v1/jobs\",status=\"400\"} 3") !=
        std::string::npos);
}

TEST_CASE("a /v1/batch upload refused as busy (429) leaves the connection clean") {
  // 6 HTTP threads, 4 of them reserved: 2 processing requests at a time.
  test::ServerProcess server({"--http-threads", "6", "--tbb-threads", "1", "--enable-test-ops",
                              "on", "--access-log", "on"});
  const std::string photo = test::read_test_data("baboon_320x240.jpg");
  std::vector<std::jthread> slow;  // joined on the way out if a REQUIRE fails
  slow.reserve(2);
  for (int i = 0; i < 2; ++i) {
    slow.emplace_back(
        [&] { client_for(server).Post("/v1/process?ops=sleep:1500", photo, "image/jpeg"); });
  }
  // Both hold their processing thread once the backend has them.
  const bool held = wait_until(
      [&] {
        auto ready = client_for(server).Get("/readyz");
        if (!ready) return false;
        const auto tbb = nlohmann::json::parse(ready->body)["backends"]["tbb"];
        return tbb["busy"].get<int>() + tbb["queued"].get<int>() == 2;
      },
      30s, 10ms);
  if (!held) {
    server.stop(SIGKILL);  // ends the slow requests' wait for an answer
    for (auto& t : slow) t.join();
  }
  REQUIRE(held);
  const httplib::MultipartFormDataItems items = {{"image", photo, "a.jpg", "image/jpeg"},
                                                 {"image", photo, "b.jpg", "image/jpeg"}};
  auto client = client_for(server);
  client.set_keep_alive(true);
  auto busy = client.Post("/v1/batch", items);
  REQUIRE(busy);
  CHECK(busy->status == 429);
  CHECK(busy->get_header_value("Retry-After") == "1");
  CHECK(busy->get_header_value("Connection") == "close");
  for (auto& t : slow) t.join();
  auto after = client.Post("/v1/batch", items);
  REQUIRE(after);
  CHECK(after->status == 200);

  CHECK(log_has(server, {{"POST /v1/batch 200", 1}, {"POST /v1/batch 429", 1}}));
  const std::string log = server.log();
  CHECK(occurrences(log, "POST /v1/batch 429") == 1);
  CHECK(log.find("Z   400") == std::string::npos);
  auto metrics = client_for(server).Get("/metrics");
  REQUIRE(metrics);
  CHECK(metrics->body.find("pixpool_http_requests_total{route=\"other\"") == std::string::npos);
}
