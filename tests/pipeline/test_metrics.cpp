// Metrics (pipeline/metrics.hpp) in isolation: outcome counts, byte
// counters, stage histograms, recent() percentiles and throughput, and the
// Prometheus exposition's families and labels. The server's /metrics is
// covered end to end by tests/integration/test_metrics.cpp.
#include <doctest/doctest.h>

#include <algorithm>
#include <future>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "pipeline/metrics.hpp"

namespace {

using namespace pixpool;

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

Result<JobOutput> ok_output(std::size_t bytes, StageTimes times = {}) {
  JobOutput output;
  output.bytes.assign(bytes, 'x');
  output.times = times;
  return output;
}

Result<JobOutput> failure(ErrorCode code) {
  return Error{code, "failed"};
}

// A backend that only reports fixed stats (for the live gauges).
class StatsBackend final : public Backend {
 public:
  StatsBackend(std::string backend_name, BackendStats fixed)
      : name_(std::move(backend_name)), stats_(std::move(fixed)) {}
  std::string_view name() const override { return name_; }
  std::future<Result<JobOutput>> submit(JobSpec) override {
    return ready_error(ErrorCode::shutting_down, "stats only");
  }
  BackendStats stats() const override { return stats_; }
  bool ready() const override { return true; }
  void shutdown() override {}

 private:
  std::string name_;
  BackendStats stats_;
};

// The sample lines of `text` (no comments), e.g. `name{labels} 3`.
std::vector<std::string> samples(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line[0] != '#') lines.push_back(line);
  }
  return lines;
}

}  // namespace

TEST_CASE("metrics: the histogram's buckets are cumulative with fixed bounds") {
  const auto& bounds = Histogram::bounds();
  REQUIRE(bounds.size() >= 2);
  CHECK(bounds.front() == doctest::Approx(0.001));
  CHECK(bounds.back() == doctest::Approx(60));
  CHECK(std::is_sorted(bounds.begin(), bounds.end()));

  Histogram h;
  h.observe(0.001);  // on a bound: counted in that bucket (le = less or equal)
  h.observe(0.3);
  h.observe(120);  // beyond the last bound: only in +Inf (count)
  CHECK(h.count == 3);
  CHECK(h.sum == doctest::Approx(120.301));
  for (std::size_t i = 0; i < bounds.size(); ++i) {
    CAPTURE(bounds[i]);
    const std::uint64_t expected = (bounds[i] >= 0.001 ? 1u : 0u) + (bounds[i] >= 0.3 ? 1u : 0u);
    CHECK(h.counts[i] == expected);
  }
}

TEST_CASE("metrics: images are counted by backend and outcome, bytes in and out") {
  Metrics m;
  m.record_image("tbb", ok_output(100), 1000, 0, 5);
  m.record_image("tbb", ok_output(200), 2000, 0, 5);
  m.record_image("tbb", failure(ErrorCode::timeout), 500, 0, 5);
  m.record_image("process", ok_output(50), 400, 0, 5);
  m.record_image("process", failure(ErrorCode::worker_crashed), 300, 0, 5);
  m.record_image("process", failure(ErrorCode::worker_crashed), 300, 0, 5);

  const std::string text = m.exposition(BackendSet{});
  CHECK(contains(text, "pixpool_images_total{backend=\"tbb\",outcome=\"ok\"} 2\n"));
  CHECK(contains(text, "pixpool_images_total{backend=\"tbb\",outcome=\"timeout\"} 1\n"));
  CHECK(contains(text, "pixpool_images_total{backend=\"process\",outcome=\"ok\"} 1\n"));
  CHECK(contains(text, "pixpool_images_total{backend=\"process\",outcome=\"worker_crashed\"} 2\n"));
  CHECK_FALSE(contains(text, "outcome=\"queue_full\""));  // only outcomes seen
  // Input bytes of every image, failed ones too; output bytes of successes.
  CHECK(contains(text, "pixpool_bytes_in_total{backend=\"tbb\"} 3500\n"));
  CHECK(contains(text, "pixpool_bytes_out_total{backend=\"tbb\"} 300\n"));
  CHECK(contains(text, "pixpool_bytes_in_total{backend=\"process\"} 1000\n"));
  CHECK(contains(text, "pixpool_bytes_out_total{backend=\"process\"} 50\n"));
}

TEST_CASE("metrics: stage histograms per backend and stage") {
  Metrics m;
  // queue 2 ms, decode 30 ms, filter 300 ms, encode 4 s; total 5 s.
  m.record_image("tbb", ok_output(10, StageTimes{2, 30, 300, 4000}), 10, 0, 5000);
  const std::string text = m.exposition(BackendSet{});
  const std::string queue = R"(pixpool_stage_seconds_bucket{backend="tbb",stage="queue",)";
  CHECK(contains(text, queue + "le=\"0.001\"} 0\n"));
  CHECK(contains(text, queue + "le=\"0.0025\"} 1\n"));
  CHECK(contains(text, queue + "le=\"60\"} 1\n"));
  CHECK(contains(text, queue + "le=\"+Inf\"} 1\n"));
  CHECK(contains(text, "pixpool_stage_seconds_sum{backend=\"tbb\",stage=\"queue\"} 0.002\n"));
  CHECK(contains(text, "pixpool_stage_seconds_count{backend=\"tbb\",stage=\"queue\"} 1\n"));
  const std::string encode = R"(pixpool_stage_seconds_bucket{backend="tbb",stage="encode",)";
  CHECK(contains(text, encode + "le=\"2.5\"} 0\n"));
  CHECK(contains(text, encode + "le=\"5\"} 1\n"));
  const std::string total = R"(pixpool_stage_seconds_bucket{backend="tbb",stage="total",)";
  CHECK(contains(text, total + "le=\"2.5\"} 0\n"));
  CHECK(contains(text, total + "le=\"5\"} 1\n"));
  for (const char* stage : {"decode", "filter"}) {
    CAPTURE(stage);
    CHECK(contains(text, std::string("pixpool_stage_seconds_count{backend=\"tbb\",stage=\"") +
                             stage + "\"} 1\n"));
  }
  // No download stage for an upload (download_ms 0).
  CHECK_FALSE(contains(text, "stage=\"download\""));

  // A downloaded image adds the download stage; a failed one only that.
  m.record_image("tbb", ok_output(10), 10, 40, 60);
  m.record_image("tbb", failure(ErrorCode::origin_failed), 0, 20, 20);
  const std::string after = m.exposition(BackendSet{});
  CHECK(contains(after, "pixpool_stage_seconds_count{backend=\"tbb\",stage=\"download\"} 2\n"));
  CHECK(contains(after, "pixpool_stage_seconds_sum{backend=\"tbb\",stage=\"download\"} 0.06\n"));
  CHECK(contains(after, "pixpool_stage_seconds_count{backend=\"tbb\",stage=\"total\"} 2\n"));
  CHECK(contains(after, "pixpool_stage_seconds_count{backend=\"tbb\",stage=\"queue\"} 2\n"));
}

TEST_CASE("metrics: the exposition announces every family and its samples belong to one") {
  Metrics m;
  m.record_image("tbb", ok_output(10, StageTimes{1, 1, 1, 1}), 10, 5, 10);
  BackendSet backends;
  BackendStats stats;
  stats.workers = 3;
  stats.busy = 1;
  stats.queued = 2;
  stats.restarts = 4;
  stats.abandoned = 5;
  backends.add(std::make_unique<StatsBackend>("fake", stats));
  const std::string text = m.exposition(backends);

  const std::vector<std::pair<std::string, std::string>> families = {
      {"pixpool_images_total", "counter"},
      {"pixpool_stage_seconds", "histogram"},
      {"pixpool_bytes_in_total", "counter"},
      {"pixpool_bytes_out_total", "counter"},
      {"pixpool_workers", "gauge"},
      {"pixpool_inflight", "gauge"},
      {"pixpool_queue_depth", "gauge"},
      {"pixpool_worker_restarts_total", "counter"},
      {"pixpool_uptime_seconds", "gauge"},
      {"pixpool_jobs_abandoned_total", "counter"},
      {"pixpool_jobs_retried_total", "counter"},
      {"pixpool_zygote_restarts_total", "counter"},
  };
  std::set<std::string> names;
  for (const auto& family : families) {
    // Named locals, not a structured binding: CAPTURE's lambda captures `name`.
    const auto& name = family.first;
    const auto& type = family.second;
    CAPTURE(name);
    CHECK(contains(text, "# HELP " + name + " "));
    CHECK(contains(text, "# TYPE " + name + " " + type + "\n"));
    names.insert(name);
  }
  // The live state of the backends, labelled by backend name.
  CHECK(contains(text, "pixpool_workers{backend=\"fake\"} 3\n"));
  CHECK(contains(text, "pixpool_inflight{backend=\"fake\"} 1\n"));
  CHECK(contains(text, "pixpool_queue_depth{backend=\"fake\"} 2\n"));
  CHECK(contains(text, "pixpool_worker_restarts_total{backend=\"fake\"} 4\n"));
  CHECK(contains(text, "pixpool_jobs_abandoned_total{backend=\"fake\"} 5\n"));
  CHECK(contains(text, "pixpool_uptime_seconds "));

  // Every sample is `name[{labels}] value` of an announced family.
  for (const std::string& line : samples(text)) {
    CAPTURE(line);
    const auto name_end = line.find_first_of("{ ");
    REQUIRE(name_end != std::string::npos);
    std::string name = line.substr(0, name_end);
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      const std::string base = "pixpool_stage_seconds";
      if (name == base + suffix) name = base;
    }
    CHECK(names.count(name) == 1);
    const auto value_at = line.rfind(' ');
    REQUIRE(value_at != std::string::npos);
    std::size_t parsed = 0;
    CHECK_NOTHROW((void)std::stod(line.substr(value_at + 1), &parsed));
    if (line[name_end] == '{') {
      CHECK(line[value_at - 1] == '}');
    }
  }
}

TEST_CASE("metrics: recent() gives percentiles and throughput of successes per backend") {
  Metrics m;
  const RecentStats none = m.recent("tbb");
  CHECK(none.images == 0);
  CHECK(none.images_per_s == 0);
  CHECK(none.p50_ms == 0);
  CHECK(none.p99_ms == 0);

  // 100 images of 1..100 ms, 1 MB each, plus failures that do not count.
  for (int i = 100; i >= 1; --i) m.record_image("tbb", ok_output(1), 1'000'000, 0, i);
  for (int i = 0; i < 10; ++i) m.record_image("tbb", failure(ErrorCode::timeout), 5, 0, 9999);
  m.record_image("process", ok_output(1), 10, 0, 7);

  const RecentStats r = m.recent("tbb");
  CHECK(r.images == 100);
  CHECK(r.p50_ms >= 50);
  CHECK(r.p50_ms <= 51);
  CHECK(r.p95_ms >= 95);
  CHECK(r.p95_ms <= 96);
  CHECK(r.p99_ms >= 99);
  CHECK(r.p99_ms <= 100);
  // Rates over the window: the last minute, or less for a young process.
  CHECK(r.window_s > 0);
  CHECK(r.window_s <= 60);
  CHECK(r.images_per_s == doctest::Approx(100 / r.window_s));
  CHECK(r.megabytes_per_s == doctest::Approx(100 / r.window_s));

  const RecentStats p = m.recent("process");
  CHECK(p.images == 1);
  CHECK(p.p50_ms == doctest::Approx(7));
  CHECK(p.p99_ms == doctest::Approx(7));
  CHECK(m.recent("unknown").images == 0);
}

TEST_CASE("metrics: concurrent recording loses nothing") {
  Metrics m;
  std::vector<std::thread> threads;
  threads.reserve(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&m, t] {
      for (int i = 0; i < 1000; ++i) {
        if (i % 10 == 0) {
          m.record_image(t % 2 ? "process" : "tbb", failure(ErrorCode::timeout), 1, 0, 1);
        } else {
          m.record_image(t % 2 ? "process" : "tbb", ok_output(2), 1, 0, 1);
        }
        if (i % 100 == 0) (void)m.exposition(BackendSet{});
      }
    });
  }
  for (auto& thread : threads) thread.join();
  const std::string text = m.exposition(BackendSet{});
  for (const char* backend : {"tbb", "process"}) {
    CAPTURE(backend);
    const std::string labels = std::string("{backend=\"") + backend + "\"";
    CHECK(contains(text, "pixpool_images_total" + labels + ",outcome=\"ok\"} 1800\n"));
    CHECK(contains(text, "pixpool_images_total" + labels + ",outcome=\"timeout\"} 200\n"));
    CHECK(contains(text, "pixpool_bytes_in_total" + labels + "} 2000\n"));
    CHECK(contains(text, "pixpool_bytes_out_total" + labels + "} 3600\n"));
  }
  CHECK(m.recent("tbb").images == 1800);
}
