#include "pipeline/backend.hpp"

namespace pixpool {

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
