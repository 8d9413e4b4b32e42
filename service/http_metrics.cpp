#include "service/http_metrics.hpp"

#include <sstream>

namespace pixpool {

void HttpMetrics::record_request(std::string_view route, int status) {
  std::lock_guard lock(mutex_);
  ++requests_[{std::string(route), status}];
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
  return out.str();
}

}  // namespace pixpool
