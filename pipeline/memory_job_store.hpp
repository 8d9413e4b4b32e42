#pragma once
// The job store of a single replica (--store memory, the default): jobs run
// on this process's BatchRunner and their outputs stay in its ResultStore,
// both in memory. Nothing to run besides the binary; jobs die with it.

#include "pipeline/job_store.hpp"

namespace pixpool {

class MemoryJobStore final : public JobStore {
 public:
  // All three must outlive the store.
  MemoryJobStore(BatchRunner& runner, ResultStore& results, const BackendSet& backends);

  Result<JobSnapshot> start(std::vector<BatchInput> inputs, JobParams params,
                            const std::string& backend) override;
  Result<std::optional<JobSnapshot>> find(const std::string& id) override;
  Result<std::optional<std::pair<JobSnapshot, std::size_t>>> cancel(const std::string& id) override;
  // Cursors are counts of finished items already seen ("" = 0).
  Result<std::optional<JobProgress>> progress(const std::string& id, const std::string& cursor,
                                              std::chrono::milliseconds timeout) override;
  Result<std::shared_ptr<const StoredResult>> result(const std::string& id) override;
  JobStoreStatus status() const override;
  std::string exposition() const override { return ""; }

 private:
  BatchRunner& runner_;
  ResultStore& results_;
  const BackendSet& backends_;
};

// The snapshot of an in-memory batch.
JobSnapshot snapshot_of(const Batch& batch);

}  // namespace pixpool
