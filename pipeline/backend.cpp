#include "pipeline/backend.hpp"

#include <algorithm>

namespace pixpool {

std::string_view health_name(BackendHealth health) {
  switch (health) {
    case BackendHealth::ready:
      return "ready";
    case BackendHealth::degraded:
      return "degraded";
    case BackendHealth::recovering:
      return "recovering";
    case BackendHealth::unavailable:
      return "unavailable";
  }
  return "unavailable";
}

long long retry_after_seconds(std::chrono::milliseconds wait) {
  return std::max<long long>(1, (wait.count() + 999) / 1000);
}

Error unavailable_error(std::string_view backend, const BackendState& state) {
  return Error{ErrorCode::unavailable,
               "the " + std::string(backend) + " backend cannot take work now" +
                   (state.reason.empty() ? std::string() : ": " + state.reason) + " (retry after " +
                   std::to_string(retry_after_seconds(state.available_in)) + " s)"};
}

std::future<Result<JobOutput>> ready_error(ErrorCode code, std::string message) {
  std::promise<Result<JobOutput>> promise;
  promise.set_value(Error{code, std::move(message)});
  return promise.get_future();
}

void BackendSet::add(std::unique_ptr<Backend> backend) {
  backends_.push_back(std::move(backend));
}

Result<Backend*> BackendSet::find(std::string_view name) const {
  for (const auto& backend : backends_) {
    if (backend->name() == name) return backend.get();
  }
  return Error{ErrorCode::unknown_backend,
               "unknown backend '" + std::string(name) + "' (valid: " + names() + ")"};
}

std::string BackendSet::names() const {
  std::string out;
  for (const auto& backend : backends_) {
    if (!out.empty()) out += ", ";
    out += backend->name();
  }
  return out;
}

}  // namespace pixpool
