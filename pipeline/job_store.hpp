#pragma once
// Where jobs (asynchronous batches), their progress and their stored results
// live: the routes of /v1/batch, /v1/jobs and /v1/results talk only to this.
//
//   MemoryJobStore (pipeline/memory_job_store.hpp): in this process, items run
//     on this replica's backends (--store memory, the default).
//   RedisJobStore (pipeline/redis_job_store.hpp): in Redis; items go to a
//     cluster-wide queue every replica pulls from, so any replica answers for
//     any job (--store redis://...).

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/result.hpp"
#include "pipeline/backend.hpp"
#include "pipeline/batch.hpp"
#include "pipeline/result_store.hpp"

namespace pixpool {

// A job as the routes see it.
struct JobSnapshot {
  std::string id;
  std::string backend;
  BatchSummary summary;
  std::vector<ItemResult> items;
};

// Items finished after a cursor, in the order they finished.
struct JobProgress {
  struct Event {
    std::string cursor;  // this event's position: resume after it (SSE id)
    std::size_t index = 0;
    ItemResult item;
  };
  std::vector<Event> finished;
  std::string cursor;  // pass back to get what follows ("" = from the start)
  // Set once every item's event has been returned and the job is over.
  std::optional<BatchSummary> done;
};

// What /readyz and /metrics say about the store.
struct JobStoreStatus {
  std::string kind;  // "memory" or "redis"
  std::string url;   // where (no password); "" for memory
  bool up = true;
  std::string error;                      // why not, when down
  std::chrono::milliseconds retry_in{0};  // until the next reconnect attempt
};

class JobStore {
 public:
  virtual ~JobStore() = default;

  // Starts a job of `inputs` on the backend named `backend` (its params
  // apply to every item). Errors: invalid_parameter (no items, too many),
  // unknown_backend, queue_full (the queued-input budget, with a retry
  // hint), shutting_down, store_unavailable.
  virtual Result<JobSnapshot> start(std::vector<BatchInput> inputs, JobParams params,
                                    const std::string& backend) = 0;

  // The job, or nullopt when unknown or expired. Errors: store_unavailable.
  virtual Result<std::optional<JobSnapshot>> find(const std::string& id) = 0;

  // Cancels the job's items that have not started, everywhere; returns the
  // job afterwards and how many items this call cancelled (nullopt: no such
  // job). Errors: store_unavailable.
  virtual Result<std::optional<std::pair<JobSnapshot, std::size_t>>> cancel(
      const std::string& id) = 0;

  // Items that finished after `cursor`, waiting up to `timeout` for the
  // first one. nullopt: no such job. Errors: store_unavailable,
  // invalid_parameter (a cursor this store never handed out).
  virtual Result<std::optional<JobProgress>> progress(const std::string& id,
                                                      const std::string& cursor,
                                                      std::chrono::milliseconds timeout) = 0;

  // A stored output, or nullptr when unknown, evicted or expired. Errors:
  // store_unavailable.
  virtual Result<std::shared_ptr<const StoredResult>> result(const std::string& id) = 0;

  virtual JobStoreStatus status() const = 0;

  // Prometheus exposition of the store's own metrics ("" when none).
  virtual std::string exposition() const = 0;
};

}  // namespace pixpool
