#pragma once
// What every route handler gets: the server's shared state, and the limit on
// HTTP threads that may do (or wait on) processing.

#include <httplib.h>

#include <atomic>
#include <nlohmann/json.hpp>

#include "core/result.hpp"
#include "pipeline/backend.hpp"
#include "pipeline/downloader.hpp"
#include "pipeline/job_store.hpp"
#include "pipeline/metrics.hpp"
#include "service/config.hpp"
#include "service/http_metrics.hpp"

namespace pixpool {

// One HTTP thread counted as processing until release() or destruction.
class ProcessingSlot {
 public:
  explicit ProcessingSlot(std::atomic<int>& count) : count_(&count) {}
  ProcessingSlot(ProcessingSlot&& other) noexcept : count_(other.count_) { other.count_ = nullptr; }
  ProcessingSlot& operator=(ProcessingSlot&&) = delete;
  ProcessingSlot(const ProcessingSlot&) = delete;
  ProcessingSlot& operator=(const ProcessingSlot&) = delete;
  ~ProcessingSlot() { release(); }

  // Gives the thread back. Idempotent.
  void release() {
    if (count_ != nullptr) --*count_;
    count_ = nullptr;
  }

 private:
  std::atomic<int>* count_;
};

// Processing requests (and SSE streams, which hold a thread until their job
// ends) may use all HTTP threads but a few, so /metrics, /healthz and
// /readyz always find a free one.
class ProcessingLimit {
 public:
  // `limit` threads at most (at least 1).
  explicit ProcessingLimit(int limit);

  // A slot, or queue_full naming the limit when all are taken.
  Result<ProcessingSlot> admit();

 private:
  const int limit_;
  std::atomic<int> count_{0};
};

// The server's shared state; everything outlives the routes.
struct RouteContext {
  const Config& config;
  BackendSet& backends;
  Downloader& downloader;
  JobStore& store;  // jobs, their progress and stored results
  Metrics& metrics;
  const HttpMetrics& http_metrics;
  ProcessingLimit& processing;
};

// Sets `status` and a JSON body (invalid UTF-8, e.g. in client file names,
// is replaced rather than thrown on).
void send_json(httplib::Response& res, int status, const nlohmann::json& body);

}  // namespace pixpool
