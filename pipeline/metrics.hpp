#pragma once
// Process-wide per-image measurements for /metrics (Prometheus text
// exposition) and /v1/backends (recent throughput and latency percentiles per
// backend). HTTP request counts are the service's (service/http_metrics.hpp).
// Thread-safe; recording is a short critical section per finished image.

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "core/result.hpp"
#include "pipeline/backend.hpp"
#include "pipeline/job.hpp"

namespace pixpool {

// Cumulative histogram with fixed upper bounds (seconds), Prometheus-style.
struct Histogram {
  static const std::vector<double>& bounds();  // 1 ms .. 60 s
  std::vector<std::uint64_t> counts = std::vector<std::uint64_t>(bounds().size(), 0);
  std::uint64_t count = 0;  // observations (also the +Inf bucket)
  double sum = 0;
  void observe(double seconds);
};

// What /v1/backends reports from the last minute of one backend.
struct RecentStats {
  double window_s = 60;
  std::uint64_t images = 0;
  double images_per_s = 0;
  double megabytes_per_s = 0;  // input bytes
  double p50_ms = 0, p95_ms = 0, p99_ms = 0;
};

class Metrics {
 public:
  // One finished image on `backend`: `result` is its output or error;
  // `input_bytes` what it decoded; `download_ms` 0 unless it was downloaded;
  // `total_ms` the end-to-end time of the image. Called from one place only,
  // run_image (pipeline/image_run.hpp), for every image the pipeline sees.
  void record_image(std::string_view backend, const Result<JobOutput>& result,
                    std::size_t input_bytes, double download_ms, double total_ms);

  // Prometheus text exposition (version 0.0.4) of every image recorded plus
  // the live state of `backends` (workers, busy, queued, restarts).
  std::string exposition(const BackendSet& backends) const;

  // The last minute of one backend.
  RecentStats recent(std::string_view backend) const;

 private:
  struct Sample {
    std::chrono::steady_clock::time_point at;
    double total_ms;
    std::size_t bytes;
  };
  struct PerBackend {
    std::map<std::string, std::uint64_t> images_by_outcome;  // "ok" or an error code
    std::map<std::string, Histogram> stages;                 // queue, download, ...
    std::uint64_t bytes_in = 0;
    std::uint64_t bytes_out = 0;
    std::deque<Sample> recent;  // successful images of the last minute (capped)
  };
  mutable std::mutex mutex_;
  std::map<std::string, PerBackend, std::less<>> backends_;
  const std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
};

}  // namespace pixpool
