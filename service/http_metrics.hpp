#pragma once
// HTTP request counts for /metrics: pixpool_http_requests_total by route
// label and status. The per-image measurements live in pipeline/metrics.hpp;
// this is the HTTP side, which the pipeline knows nothing about.
// Thread-safe.

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

namespace pixpool {

class HttpMetrics {
 public:
  // One answered HTTP request; `route` is the route's metrics label
  // ("/v1/jobs/{id}", "other" for unknown paths), `status` what was sent.
  void record_request(std::string_view route, int status);

  // The pixpool_http_requests_total family (# HELP, # TYPE and one sample
  // per route and status seen) in Prometheus text exposition 0.0.4.
  std::string exposition() const;

 private:
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, int>, std::uint64_t> requests_;
};

}  // namespace pixpool
