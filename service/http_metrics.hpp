#pragma once
// HTTP request counts for /metrics: pixpool_http_requests_total by route
// label and status. The per-image measurements live in pipeline/metrics.hpp;
// this is the HTTP side, which the pipeline knows nothing about.
// Thread-safe.

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

#include "service/connection_threads.hpp"
#include "service/request_head_watchdog.hpp"

namespace pixpool {

class HttpMetrics {
 public:
  // One answered HTTP request; `route` is the route's metrics label
  // ("/v1/jobs/{id}", "other" for unknown paths), `status` what was sent.
  void record_request(std::string_view route, int status);

  // Where exposition() reads the connection-thread gauges from (the
  // server's task queue); until set, they are not exported. `source` must
  // be callable from any thread for as long as this object is used.
  void set_connection_source(std::function<ConnectionThreadStats()> source);

  // Where exposition() reads the counts of connections cut in their request
  // head (the RequestHeadWatchdog); same rules as set_connection_source.
  void set_head_cut_source(std::function<RequestHeadWatchdog::Stats()> source);

  // The pixpool_http_requests_total family (# HELP, # TYPE and one sample
  // per route and status seen), then, once a connection source is set, the
  // gauges pixpool_http_connection_threads, pixpool_http_connections_served
  // and pixpool_http_connections_waiting (accepted, waiting for a thread),
  // and, once a head-cut source is set, pixpool_http_request_heads_cut_total
  // {reason="timeout"|"too_large"}, in Prometheus text exposition 0.0.4.
  std::string exposition() const;

 private:
  mutable std::mutex mutex_;
  std::function<ConnectionThreadStats()> connection_source_;
  std::function<RequestHeadWatchdog::Stats()> head_cut_source_;
  std::map<std::pair<std::string, int>, std::uint64_t> requests_;
};

}  // namespace pixpool
