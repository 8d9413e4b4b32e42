#include "service/routes/context.hpp"

#include <algorithm>
#include <string>

namespace pixpool {

ProcessingLimit::ProcessingLimit(int limit) : limit_(std::max(1, limit)) {}

Result<ProcessingSlot> ProcessingLimit::admit() {
  if (count_.fetch_add(1) < limit_) return ProcessingSlot(count_);
  --count_;
  return Error{ErrorCode::queue_full, "all " + std::to_string(limit_) +
                                          " HTTP threads for processing are busy; retry later"};
}

void send_json(httplib::Response& res, int status, const nlohmann::json& body) {
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n",
                  "application/json");
}

}  // namespace pixpool
