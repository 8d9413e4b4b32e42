#include "pipeline/metrics.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

namespace pixpool {
namespace {

constexpr std::chrono::seconds kRecentWindow{60};
constexpr std::size_t kRecentCap = 50000;  // bounds memory at very high rates

std::string number(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

double percentile(std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  const auto rank =
      static_cast<std::size_t>(std::lround(q * static_cast<double>(sorted.size() - 1)));
  return sorted[std::min(rank, sorted.size() - 1)];
}

}  // namespace

const std::vector<double>& Histogram::bounds() {
  static const std::vector<double> b = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                        0.5,   1,      2.5,   5,    10,    30,   60};
  return b;
}

void Histogram::observe(double seconds) {
  const auto& b = bounds();
  for (std::size_t i = 0; i < b.size(); ++i) {
    if (seconds <= b[i]) ++counts[i];  // cumulative buckets
  }
  ++count;
  sum += seconds;
}

void Metrics::record_image(std::string_view backend, const Result<JobOutput>& result,
                           std::size_t input_bytes, double download_ms, double total_ms) {
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(mutex_);
  auto it = backends_.find(backend);
  if (it == backends_.end()) it = backends_.emplace(std::string(backend), PerBackend{}).first;
  PerBackend& b = it->second;
  b.bytes_in += input_bytes;
  if (download_ms > 0) b.stages["download"].observe(download_ms / 1000);
  if (!result) {
    ++b.images_by_outcome[std::string(code_name(result.error().code))];
    return;
  }
  ++b.images_by_outcome["ok"];
  b.bytes_out += result->bytes.size();
  const StageTimes& t = result->times;
  b.stages["queue"].observe(t.queue_ms / 1000);
  b.stages["decode"].observe(t.decode_ms / 1000);
  b.stages["filter"].observe(t.filter_ms / 1000);
  b.stages["encode"].observe(t.encode_ms / 1000);
  b.stages["total"].observe(total_ms / 1000);
  b.recent.push_back(Sample{now, total_ms, input_bytes});
  while (!b.recent.empty() &&
         (b.recent.size() > kRecentCap || now - b.recent.front().at > kRecentWindow)) {
    b.recent.pop_front();
  }
}

RecentStats Metrics::recent(std::string_view backend) const {
  RecentStats r;
  const auto now = std::chrono::steady_clock::now();
  std::vector<double> latencies;
  std::size_t bytes = 0;
  {
    std::lock_guard lock(mutex_);
    auto it = backends_.find(backend);
    if (it == backends_.end()) return r;
    for (const Sample& s : it->second.recent) {
      if (now - s.at > kRecentWindow) continue;
      latencies.push_back(s.total_ms);
      bytes += s.bytes;
    }
  }
  // Over the last minute, or since start when the server is younger.
  const double window =
      std::min<double>(60.0, std::chrono::duration<double>(now - started_).count());
  r.window_s = window;
  r.images = latencies.size();
  if (window > 0) {
    r.images_per_s = static_cast<double>(latencies.size()) / window;
    r.megabytes_per_s = static_cast<double>(bytes) / 1e6 / window;
  }
  std::sort(latencies.begin(), latencies.end());
  r.p50_ms = percentile(latencies, 0.50);
  r.p95_ms = percentile(latencies, 0.95);
  r.p99_ms = percentile(latencies, 0.99);
  return r;
}

std::string Metrics::exposition(const BackendSet& backends) const {
  std::ostringstream out;
  auto family = [&](const char* name, const char* type, const char* help) {
    out << "# HELP " << name << ' ' << help << "\n# TYPE " << name << ' ' << type << '\n';
  };
  std::lock_guard lock(mutex_);

  family("pixpool_images_total", "counter", "Images processed, by backend and outcome.");
  for (const auto& [backend, b] : backends_) {
    for (const auto& [outcome, n] : b.images_by_outcome) {
      out << "pixpool_images_total{backend=\"" << backend << "\",outcome=\"" << outcome << "\"} "
          << n << '\n';
    }
  }
  family("pixpool_stage_seconds", "histogram",
         "Time per image and stage (queue, download, decode, filter, encode, total).");
  for (const auto& [backend, b] : backends_) {
    for (const auto& [stage, h] : b.stages) {
      const std::string labels = "backend=\"" + backend + "\",stage=\"" + stage + "\"";
      for (std::size_t i = 0; i < h.counts.size(); ++i) {
        out << "pixpool_stage_seconds_bucket{" << labels << ",le=\""
            << number(Histogram::bounds()[i]) << "\"} " << h.counts[i] << '\n';
      }
      out << "pixpool_stage_seconds_bucket{" << labels << ",le=\"+Inf\"} " << h.count << '\n';
      out << "pixpool_stage_seconds_sum{" << labels << "} " << number(h.sum) << '\n';
      out << "pixpool_stage_seconds_count{" << labels << "} " << h.count << '\n';
    }
  }
  family("pixpool_bytes_in_total", "counter", "Encoded input bytes, by backend.");
  for (const auto& [backend, b] : backends_) {
    out << "pixpool_bytes_in_total{backend=\"" << backend << "\"} " << b.bytes_in << '\n';
  }
  family("pixpool_bytes_out_total", "counter", "Encoded output bytes, by backend.");
  for (const auto& [backend, b] : backends_) {
    out << "pixpool_bytes_out_total{backend=\"" << backend << "\"} " << b.bytes_out << '\n';
  }
  std::vector<std::pair<std::string, BackendStats>> live;
  for (const auto& backend : backends.all()) {
    live.emplace_back(std::string(backend->name()), backend->stats());
  }
  family("pixpool_workers", "gauge", "Threads or processes doing pixel work, by backend.");
  for (const auto& [name, s] : live) {
    out << "pixpool_workers{backend=\"" << name << "\"} " << s.workers << '\n';
  }
  family("pixpool_inflight", "gauge", "Jobs running now, by backend.");
  for (const auto& [name, s] : live) {
    out << "pixpool_inflight{backend=\"" << name << "\"} " << s.busy << '\n';
  }
  family("pixpool_queue_depth", "gauge", "Jobs accepted but not started, by backend.");
  for (const auto& [name, s] : live) {
    out << "pixpool_queue_depth{backend=\"" << name << "\"} " << s.queued << '\n';
  }
  family("pixpool_worker_restarts_total", "counter",
         "Workers replaced after a crash, kill or timeout, by backend.");
  for (const auto& [name, s] : live) {
    out << "pixpool_worker_restarts_total{backend=\"" << name << "\"} " << s.restarts << '\n';
  }
  family("pixpool_jobs_abandoned_total", "counter",
         "Jobs dropped unrun because their client went away while they waited, by backend.");
  for (const auto& [name, s] : live) {
    out << "pixpool_jobs_abandoned_total{backend=\"" << name << "\"} " << s.abandoned << '\n';
  }
  family("pixpool_jobs_retried_total", "counter",
         "Jobs run again on a fresh worker after their worker died mid-job, by backend.");
  for (const auto& [name, s] : live) {
    out << "pixpool_jobs_retried_total{backend=\"" << name << "\"} " << s.retried << '\n';
  }
  family("pixpool_zygote_restarts_total", "counter",
         "Worker zygotes replaced after they died, by backend.");
  for (const auto& [name, s] : live) {
    out << "pixpool_zygote_restarts_total{backend=\"" << name << "\"} " << s.zygote_restarts
        << '\n';
  }
  family("pixpool_uptime_seconds", "gauge", "Seconds since the server started.");
  out << "pixpool_uptime_seconds "
      << number(std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count())
      << '\n';
  return out.str();
}

}  // namespace pixpool
