#pragma once
// The Backend interface: where the pixel work of a job runs. HTTP threads
// submit and wait on the future; they never do pixel work themselves.

#include <chrono>
#include <cstdint>
#include <future>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"
#include "pipeline/job.hpp"

namespace pixpool {

// Whether a backend can take work, for /readyz, /healthz, /v1/backends and
// Retry-After. Only `unavailable` refuses jobs (503 unavailable).
enum class BackendHealth {
  ready,        // full strength
  degraded,     // serving with fewer workers than configured (refilling)
  recovering,   // no worker now, expected back soon (e.g. the zygote is being replaced);
                // jobs are accepted and wait a bounded time for one
  unavailable,  // cannot take work: shutting down, or recovery keeps failing
};

// "ready", "degraded", "recovering", "unavailable".
std::string_view health_name(BackendHealth health);

struct BackendState {
  BackendHealth health = BackendHealth::ready;
  std::chrono::milliseconds available_in{0};  // estimate until it can take work again; 0 = now
  std::string reason;                         // why not ready; empty when ready
};

// The refusal of a backend in `state`: unavailable, with the estimate as a
// trailing "(retry after N s)" (N = available_in rounded up, at least 1)
// that service/http_errors turns into Retry-After.
Error unavailable_error(std::string_view backend, const BackendState& state);

// Seconds for Retry-After: `wait` rounded up, at least 1.
long long retry_after_seconds(std::chrono::milliseconds wait);

struct BackendStats {
  int workers = 0;              // threads or processes doing pixel work
  std::size_t busy = 0;         // jobs running now
  std::size_t queued = 0;       // jobs accepted but not started
  std::uint64_t completed = 0;  // jobs that produced an image
  std::uint64_t failed = 0;     // jobs that ended in an error value
  std::uint64_t abandoned = 0;  // jobs dropped unrun: their client went away while they waited
  std::uint64_t restarts = 0;   // workers replaced after a crash or timeout
  std::uint64_t retried = 0;    // jobs run again after their worker died mid-job
  std::uint64_t zygote_restarts = 0;  // zygotes replaced (process backend only)
  BackendState state;                 // can it take work now (BudgetedBackend passes it through)
  std::vector<long> worker_pids;      // worker processes (process backend only)
};

class Backend {
 public:
  virtual ~Backend() = default;

  // Stable name used in `backend=` and response headers ("tbb", "process").
  virtual std::string_view name() const = 0;

  // Queues `job`. The future always becomes ready with an output or an error;
  // submit never throws. Errors: queue_full when the backend already holds its
  // maximum of pending jobs, shutting_down after shutdown() began,
  // client_gone when job.cancel is cancelled before the job starts (it never
  // runs), plus every error of run_job.
  virtual std::future<Result<JobOutput>> submit(JobSpec job) = 0;

  virtual BackendStats stats() const = 0;

  // False while the backend cannot take work at full capacity.
  virtual bool ready() const = 0;

  // False when the backend is broken for good and the process should be
  // restarted. Default: always healthy. /healthz uses stats().state.
  virtual bool healthy() const { return true; }

  // Stops accepting jobs and waits for the pending ones. Idempotent.
  virtual void shutdown() = 0;
};

// A future that is already ready with an error: how backends refuse a job
// (queue_full, shutting_down) without queueing it.
std::future<Result<JobOutput>> ready_error(ErrorCode code, std::string message);

// The backends a server offers, looked up by name.
class BackendSet {
 public:
  // The first backend added is the default.
  void add(std::unique_ptr<Backend> backend);

  // Errors: unknown_backend naming the valid choices.
  Result<Backend*> find(std::string_view name) const;
  Backend& default_backend() const { return *backends_.front(); }
  const std::vector<std::unique_ptr<Backend>>& all() const { return backends_; }
  std::string names() const;  // "tbb, process"

 private:
  std::vector<std::unique_ptr<Backend>> backends_;
};

}  // namespace pixpool
