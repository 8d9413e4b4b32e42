// HttpMetrics (service/http_metrics.hpp): pixpool_http_requests_total by
// route label and status, in Prometheus text exposition.
#include <doctest/doctest.h>

#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "service/http_metrics.hpp"

namespace {

using pixpool::HttpMetrics;

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

std::size_t sample_lines(const std::string& text) {
  std::istringstream in(text);
  std::size_t n = 0;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line[0] != '#') ++n;
  }
  return n;
}

}  // namespace

TEST_CASE("http metrics: the family is announced even before any request") {
  HttpMetrics metrics;
  const std::string text = metrics.exposition();
  CHECK(contains(text, "# HELP pixpool_http_requests_total "));
  CHECK(contains(text, "# TYPE pixpool_http_requests_total counter\n"));
  CHECK(sample_lines(text) == 0);
}

TEST_CASE("http metrics: requests are counted per route label and status") {
  HttpMetrics metrics;
  for (int i = 0; i < 3; ++i) metrics.record_request("/v1/process", 200);
  metrics.record_request("/v1/process", 400);
  metrics.record_request("/v1/process", 429);
  metrics.record_request("/v1/jobs/{id}", 404);
  metrics.record_request("/v1/jobs/{id}", 200);
  metrics.record_request("other", 404);

  const std::string text = metrics.exposition();
  CHECK(contains(text, "pixpool_http_requests_total{route=\"/v1/process\",status=\"200\"} 3\n"));
  CHECK(contains(text, "pixpool_http_requests_total{route=\"/v1/process\",status=\"400\"} 1\n"));
  CHECK(contains(text, "pixpool_http_requests_total{route=\"/v1/process\",status=\"429\"} 1\n"));
  CHECK(contains(text, "pixpool_http_requests_total{route=\"/v1/jobs/{id}\",status=\"404\"} 1\n"));
  CHECK(contains(text, "pixpool_http_requests_total{route=\"/v1/jobs/{id}\",status=\"200\"} 1\n"));
  CHECK(contains(text, "pixpool_http_requests_total{route=\"other\",status=\"404\"} 1\n"));
  CHECK(sample_lines(text) == 6);  // one per route and status seen, no others
  CHECK_FALSE(contains(text, "status=\"500\""));
}

TEST_CASE("http metrics: concurrent recording loses nothing") {
  HttpMetrics metrics;
  std::vector<std::thread> threads;
  threads.reserve(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&metrics] {
      for (int i = 0; i < 1000; ++i) {
        metrics.record_request(i % 2 == 0 ? "/healthz" : "/metrics", 200);
        if (i % 100 == 0) (void)metrics.exposition();
      }
    });
  }
  for (auto& thread : threads) thread.join();
  const std::string text = metrics.exposition();
  CHECK(contains(text, "pixpool_http_requests_total{route=\"/healthz\",status=\"200\"} 2000\n"));
  CHECK(contains(text, "pixpool_http_requests_total{route=\"/metrics\",status=\"200\"} 2000\n"));
}
