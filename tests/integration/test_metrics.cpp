// /metrics (Prometheus text exposition) and /v1/backends against the real
// server: the format parses, the numbers move with traffic, and both stay
// responsive while processing is saturated.
#include <doctest/doctest.h>
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include "tests/support/images.hpp"
#include "tests/support/server_process.hpp"
#include "tests/support/wait.hpp"

using namespace pixpool;
using namespace std::chrono_literals;

namespace {

// A strict-enough parser of the Prometheus text format 0.0.4: every sample
// line is `name{labels} value`, belongs to a family announced by # TYPE, and
// histogram buckets are cumulative with +Inf equal to _count.
struct Exposition {
  std::map<std::string, std::string> types;  // family -> counter/gauge/histogram
  std::map<std::string, double> samples;     // "name{labels}" -> value
  std::vector<std::string> errors;

  explicit Exposition(const std::string& text) {
    static const std::regex sample(
        R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="[^"\\]*"(,[a-zA-Z_][a-zA-Z0-9_]*="[^"\\]*")*)?\})? (-?[0-9.eE+-]+|\+Inf|NaN)$)");
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty()) continue;
      if (line.rfind("# TYPE ", 0) == 0) {
        std::istringstream t(line.substr(7));
        std::string name, type;
        t >> name >> type;
        types[name] = type;
        continue;
      }
      if (line[0] == '#') continue;
      std::smatch m;
      if (!std::regex_match(line, m, sample)) {
        errors.push_back("bad line: " + line);
        continue;
      }
      std::string family = m[1];
      for (const char* suffix : {"_bucket", "_sum", "_count"}) {
        const std::string s = suffix;
        if (family.size() > s.size() && family.ends_with(s) &&
            types.contains(family.substr(0, family.size() - s.size()))) {
          family = family.substr(0, family.size() - s.size());
        }
      }
      if (!types.contains(family)) errors.push_back("sample without # TYPE: " + line);
      samples[m[1].str() + (m[2].matched ? m[2].str() : "")] = std::stod(m[5]);
    }
  }

  double value(const std::string& key) const {
    auto it = samples.find(key);
    return it == samples.end() ? -1 : it->second;
  }
};

std::string get_metrics(const test::ServerProcess& server) {
  httplib::Client client("127.0.0.1", server.port());
  auto res = client.Get("/metrics");
  REQUIRE(res);
  CHECK(res->status == 200);
  CHECK(res->get_header_value("Content-Type").rfind("text/plain", 0) == 0);
  return res->body;
}

}  // namespace

TEST_CASE("/metrics parses as Prometheus exposition and moves with traffic") {
  test::ServerProcess server({"--workers", "2"});
  const Exposition before(get_metrics(server));
  CHECK(before.errors.empty());
  CHECK(before.types.at("pixpool_images_total") == "counter");
  CHECK(before.types.at("pixpool_stage_seconds") == "histogram");
  CHECK(before.types.at("pixpool_queue_depth") == "gauge");
  CHECK(before.value("pixpool_workers{backend=\"process\"}") == 2);

  httplib::Client client("127.0.0.1", server.port());
  const std::string photo = test::read_test_data("fruits_320x240.jpg");
  for (const char* backend : {"tbb", "process"}) {
    for (int i = 0; i < 3; ++i) {
      auto res = client.Post(std::string("/v1/process?backend=") + backend, photo, "image/jpeg");
      REQUIRE(res);
      CHECK(res->status == 200);
    }
  }
  REQUIRE(client.Post("/v1/process?backend=tbb", "junk", "image/jpeg"));

  const Exposition after(get_metrics(server));
  for (const auto& e : after.errors) FAIL_CHECK(e);
  for (const char* backend : {"tbb", "process"}) {
    CAPTURE(backend);
    const std::string b = backend;
    CHECK(after.value("pixpool_images_total{backend=\"" + b + "\",outcome=\"ok\"}") == 3);
    CHECK(after.value("pixpool_bytes_in_total{backend=\"" + b + "\"}") >= 3.0 * photo.size());
    CHECK(after.value("pixpool_bytes_out_total{backend=\"" + b + "\"}") > 0);
    for (const char* stage : {"queue", "decode", "filter", "encode", "total"}) {
      CAPTURE(stage);
      const std::string labels = "backend=\"" + b + "\",stage=\"" + stage + "\"";
      const double count = after.value("pixpool_stage_seconds_count{" + labels + "}");
      CHECK(count == 3);
      CHECK(after.value("pixpool_stage_seconds_bucket{" + labels + ",le=\"+Inf\"}") == count);
      // Buckets are cumulative: never decreasing with le.
      double previous = 0;
      for (const char* le : {"0.001", "0.01", "0.1", "1", "10", "60"}) {
        const double v =
            after.value("pixpool_stage_seconds_bucket{" + labels + ",le=\"" + le + "\"}");
        CHECK(v >= previous);
        previous = v;
      }
    }
  }
  CHECK(after.value("pixpool_images_total{backend=\"tbb\",outcome=\"unsupported_image\"}") == 1);
  CHECK(after.value("pixpool_http_requests_total{route=\"/v1/process\",status=\"200\"}") == 6);
  CHECK(after.value("pixpool_http_requests_total{route=\"/v1/process\",status=\"415\"}") == 1);
  CHECK(after.value("pixpool_worker_restarts_total{backend=\"process\"}") == 0);
}

TEST_CASE("/v1/backends reports workers, queue, done and recent percentiles per backend") {
  test::ServerProcess server({"--workers", "2", "--tbb-threads", "2"});
  httplib::Client client("127.0.0.1", server.port());
  const std::string photo = test::read_test_data("baboon_320x240.jpg");
  for (int i = 0; i < 5; ++i)
    REQUIRE(client.Post("/v1/process?backend=process", photo, "image/jpeg"));
  auto res = client.Get("/v1/backends");
  REQUIRE(res);
  CHECK(res->status == 200);
  const auto body = nlohmann::json::parse(res->body);
  for (const char* backend : {"tbb", "process"}) {
    CAPTURE(backend);
    CHECK(body[backend]["workers"] == 2);
    CHECK(body[backend]["queue_depth"] == 0);
    CHECK(body[backend]["busy"] == 0);
  }
  const auto& process = body["process"];
  CHECK(process["images_done"] == 5);
  CHECK(process["recent"]["images"] == 5);
  CHECK(process["recent"]["images_per_s"].get<double>() > 0);
  CHECK(process["recent"]["megabytes_per_s"].get<double>() > 0);
  const double p50 = process["recent"]["latency_ms"]["p50"];
  const double p95 = process["recent"]["latency_ms"]["p95"];
  const double p99 = process["recent"]["latency_ms"]["p99"];
  CHECK(p50 > 0);
  CHECK(p95 >= p50);
  CHECK(p99 >= p95);
  CHECK(body["tbb"]["images_done"] == 0);
}

TEST_CASE("/metrics and /healthz stay responsive while processing is saturated") {
  // 6 HTTP threads, 4 of them reserved: 2 processing requests at a time.
  test::ServerProcess server(
      {"--http-threads", "6", "--tbb-threads", "1", "--enable-test-ops", "on"});
  const std::string photo = test::read_test_data("fruits_320x240.jpg");
  std::vector<std::atomic<int>> statuses(6);
  std::vector<std::jthread> clients;  // joined on the way out if a REQUIRE fails
  clients.reserve(6);
  for (int i = 0; i < 6; ++i) {
    clients.emplace_back([&, i] {
      httplib::Client client("127.0.0.1", server.port());
      client.set_read_timeout(30, 0);
      auto res = client.Post("/v1/process?ops=sleep:1500", photo, "image/jpeg");
      statuses[i] = res ? res->status : -1;
    });
  }
  // Saturated once the two slow ones hold the processing threads: the
  // backend has both (one running, one queued on its single thread).
  const bool saturated = test::wait_until(
      [&] {
        httplib::Client client("127.0.0.1", server.port());
        client.set_read_timeout(5, 0);
        auto ready = client.Get("/readyz");
        if (!ready || ready->status != 200) return false;
        const auto tbb = nlohmann::json::parse(ready->body)["backends"]["tbb"];
        return tbb["busy"].get<int>() + tbb["queued"].get<int>() == 2;
      },
      30s, 10ms);
  if (!saturated) {
    server.stop(SIGKILL);  // ends the clients' wait for an answer
    for (auto& t : clients) t.join();
  }
  REQUIRE(saturated);
  for (int i = 0; i < 5; ++i) {
    const auto start = std::chrono::steady_clock::now();
    httplib::Client client("127.0.0.1", server.port());
    auto health = client.Get("/healthz");
    auto metrics = client.Get("/metrics");
    REQUIRE(health);
    REQUIRE(metrics);
    CHECK(health->status == 200);
    CHECK(metrics->status == 200);
    CHECK(std::chrono::steady_clock::now() - start < 1s);  // not stuck behind the 1.5 s jobs
  }
  for (auto& t : clients) t.join();
  int ok = 0, busy = 0;
  for (const auto& status : statuses) {
    const int s = status.load();
    if (s == 200) ++ok;
    if (s == 429) ++busy;
  }
  CHECK(ok >= 2);
  CHECK(ok + busy == 6);
}
