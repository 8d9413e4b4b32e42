#include "service/http_metrics.hpp"

#include <sstream>
#include <utility>

namespace pixpool {

void HttpMetrics::record_request(std::string_view route, int status) {
  std::lock_guard lock(mutex_);
  ++requests_[{std::string(route), status}];
}

void HttpMetrics::set_connection_source(std::function<ConnectionThreadStats()> source) {
  std::lock_guard lock(mutex_);
  connection_source_ = std::move(source);
}

void HttpMetrics::set_head_cut_source(std::function<RequestHeadWatchdog::Stats()> source) {
  std::lock_guard lock(mutex_);
  head_cut_source_ = std::move(source);
}

std::string HttpMetrics::exposition() const {
  std::ostringstream out;
  out << "# HELP pixpool_http_requests_total HTTP requests answered, by route and status.\n"
         "# TYPE pixpool_http_requests_total counter\n";
  std::lock_guard lock(mutex_);
  for (const auto& [key, n] : requests_) {
    out << "pixpool_http_requests_total{route=\"" << key.first << "\",status=\"" << key.second
        << "\"} " << n << '\n';
  }
  if (connection_source_) {
    const ConnectionThreadStats c = connection_source_();
    out << "# HELP pixpool_http_connection_threads HTTP connection threads alive (busy or idle).\n"
           "# TYPE pixpool_http_connection_threads gauge\n"
           "pixpool_http_connection_threads "
        << c.threads
        << "\n# HELP pixpool_http_connections_served Connections being served by a thread.\n"
           "# TYPE pixpool_http_connections_served gauge\n"
           "pixpool_http_connections_served "
        << c.busy
        << "\n# HELP pixpool_http_connections_waiting Accepted connections waiting for a thread "
           "(--http-threads reached).\n"
           "# TYPE pixpool_http_connections_waiting gauge\n"
           "pixpool_http_connections_waiting "
        << c.waiting << '\n';
  }
  if (head_cut_source_) {
    const RequestHeadWatchdog::Stats cut = head_cut_source_();
    out << "# HELP pixpool_http_request_heads_cut_total Connections shut down before their request "
           "head was complete: slower than --header-timeout, or larger than --max-header-bytes.\n"
           "# TYPE pixpool_http_request_heads_cut_total counter\n"
           "pixpool_http_request_heads_cut_total{reason=\"timeout\"} "
        << cut.cut_timeout << "\npixpool_http_request_heads_cut_total{reason=\"too_large\"} "
        << cut.cut_too_large << '\n';
  }
  return out.str();
}

}  // namespace pixpool
