#include "pipeline/memory_job_store.hpp"

#include <charconv>

namespace pixpool {

JobSnapshot snapshot_of(const Batch& batch) {
  return JobSnapshot{batch.id(), batch.backend(), batch.summary(), batch.items()};
}

MemoryJobStore::MemoryJobStore(BatchRunner& runner, ResultStore& results,
                               const BackendSet& backends)
    : runner_(runner), results_(results), backends_(backends) {}

Result<JobSnapshot> MemoryJobStore::start(std::vector<BatchInput> inputs, JobParams params,
                                          const std::string& backend) {
  auto found = backends_.find(backend);
  if (!found) return found.error();
  auto batch = runner_.start(std::move(inputs), std::move(params), **found);
  if (!batch) return batch.error();
  return snapshot_of(**batch);
}

Result<std::optional<JobSnapshot>> MemoryJobStore::find(const std::string& id) {
  auto batch = runner_.find(id);
  if (!batch) return std::optional<JobSnapshot>{};
  return std::optional<JobSnapshot>{snapshot_of(*batch)};
}

Result<std::optional<std::pair<JobSnapshot, std::size_t>>> MemoryJobStore::cancel(
    const std::string& id) {
  using Out = std::optional<std::pair<JobSnapshot, std::size_t>>;
  auto batch = runner_.find(id);
  if (!batch) return Out{};
  const std::size_t cancelled = batch->cancel();
  return Out{std::make_pair(snapshot_of(*batch), cancelled)};
}

Result<std::optional<JobProgress>> MemoryJobStore::progress(const std::string& id,
                                                            const std::string& cursor,
                                                            std::chrono::milliseconds timeout) {
  auto batch = runner_.find(id);
  if (!batch) return std::optional<JobProgress>{};
  std::size_t seen = 0;
  if (!cursor.empty()) {
    const auto [end, ec] = std::from_chars(cursor.data(), cursor.data() + cursor.size(), seen);
    if (ec != std::errc{} || end != cursor.data() + cursor.size()) {
      return Error{ErrorCode::invalid_parameter, "bad event cursor '" + cursor + "'"};
    }
  }
  const auto order = batch->wait_for_progress(seen, timeout);
  JobProgress out;
  for (std::size_t n = seen; n < order.size(); ++n) {
    out.finished.push_back({std::to_string(n + 1), order[n], batch->item(order[n])});
  }
  const std::size_t now_seen = std::max(seen, order.size());
  out.cursor = std::to_string(now_seen);
  const BatchSummary summary = batch->summary();
  if (batch->over() && now_seen >= summary.total) out.done = summary;
  return std::optional<JobProgress>{std::move(out)};
}

Result<std::shared_ptr<const StoredResult>> MemoryJobStore::result(const std::string& id) {
  return results_.get(id);
}

JobStoreStatus MemoryJobStore::status() const {
  return JobStoreStatus{"memory", "", true, "", {}};
}

}  // namespace pixpool
