#pragma once
// The Backend interface: where the pixel work of a job runs. HTTP threads
// submit and wait on the future; they never do pixel work themselves.

#include <cstdint>
#include <future>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"
#include "pipeline/job.hpp"

namespace pixpool {

struct BackendStats {
  int workers = 0;                // threads or processes doing pixel work
  std::size_t busy = 0;           // jobs running now
  std::size_t queued = 0;         // jobs accepted but not started
  std::uint64_t completed = 0;    // jobs that produced an image
  std::uint64_t failed = 0;       // jobs that ended in an error value
  std::uint64_t abandoned = 0;    // jobs dropped unrun: their client went away while they waited
  std::uint64_t restarts = 0;     // workers replaced after a crash or timeout
  std::vector<long> worker_pids;  // worker processes (process backend only)
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
  // restarted (/healthz turns 503). Default: always healthy.
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
