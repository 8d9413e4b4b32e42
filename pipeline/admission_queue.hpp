#pragma once
// The admission queue both backends share: which jobs are admitted (at most
// max_pending queued + running, none once stopping), the first-in first-out
// queue they wait in, how long each waited, and the counters /metrics and
// /v1/backends report. A backend pushes in submit() and its executors take
// and finish jobs: the TBB backend one arena task per pushed job, the
// process backend one dispatcher thread per worker.
//
// Thread-safe. A job pushed is always finished exactly once (by whoever took
// it), so every future becomes ready and wait_drained() returns.

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "core/result.hpp"
#include "pipeline/job.hpp"

namespace pixpool {

// One admitted job, from push() to finish().
struct QueuedJob {
  JobSpec job;
  std::promise<Result<JobOutput>> promise;
  std::chrono::steady_clock::time_point submitted;
  double queue_ms = 0;  // set by take()
};

struct AdmissionStats {
  std::size_t pending = 0;  // admitted and not yet finished
  std::size_t queued = 0;   // admitted and not yet taken
  std::size_t busy = 0;     // taken and not yet finished
  std::uint64_t completed = 0;
  std::uint64_t failed = 0;
};

class AdmissionQueue {
 public:
  // `backend` names the owner in refusal messages; max_pending >= 1.
  AdmissionQueue(std::string_view backend, std::size_t max_pending);

  // Admits `job` and returns its future. Errors: shutting_down once stop()
  // was called; queue_full when max_pending jobs are pending.
  Result<std::future<Result<JobOutput>>> push(JobSpec job);

  // The oldest queued job, marked busy with its queue time set; waits up to
  // `wait` for one. nullptr when none came, or when stopping and empty
  // (closed() tells these apart).
  std::shared_ptr<QueuedJob> take(std::chrono::milliseconds wait = {});

  // Answers a taken job: drops its input, counts the outcome, frees its slot
  // (before the caller wakes, so a caller that submits again at once finds
  // the room) and fulfils its promise with `result` (queue time added).
  void finish(QueuedJob& job, Result<JobOutput> result);

  // No more admissions; wakes take() waiters. Idempotent.
  void stop();
  bool stopping() const;
  // True when stopping and no job is left to take.
  bool closed() const;
  // Blocks until every admitted job is finished.
  void wait_drained();

  AdmissionStats stats() const;

 private:
  const std::string backend_;
  const std::size_t max_pending_;
  mutable std::mutex mutex_;
  std::condition_variable work_ready_;
  std::condition_variable drained_;
  std::deque<std::shared_ptr<QueuedJob>> queue_;
  std::size_t pending_ = 0;     // admission limit: freed before the answer
  std::size_t unfinished_ = 0;  // drain: dropped after the last touch of the queue
  std::size_t busy_ = 0;
  std::uint64_t completed_ = 0;
  std::uint64_t failed_ = 0;
  bool stopping_ = false;
};

}  // namespace pixpool
