#pragma once
// The admission queue both backends share: which jobs are admitted (at most
// max_pending queued + running, none once stopping), the first-in first-out
// queue they wait in, how long each waited, and the counters /metrics and
// /v1/backends report. A backend pushes in submit() and its executors take
// and finish jobs: the TBB backend one arena task per pushed job, the
// process backend one dispatcher thread per worker.
//
// Thread-safe. A job pushed is always finished exactly once (by whoever took
// it, or with client_gone when it is withdrawn), so every future becomes
// ready and wait_drained() returns.
//
// Abandoned jobs: a job whose JobSpec::cancel token is cancelled while it is
// queued is withdrawn at once (the token's withdraw hook) and finished with
// client_gone, unrun; take() also skips any it still finds. Both count it in
// `abandoned`.

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
  double queue_ms = 0;                    // set by take()
  CancelToken::HookId withdraw_hook = 0;  // job.cancel's hook for this job, 0 if none
};

struct AdmissionStats {
  std::size_t pending = 0;  // admitted and not yet finished
  std::size_t queued = 0;   // admitted and not yet taken
  std::size_t busy = 0;     // taken and not yet finished
  std::uint64_t completed = 0;
  std::uint64_t failed = 0;     // ran and failed
  std::uint64_t abandoned = 0;  // cancelled while queued: never ran
};

class AdmissionQueue {
 public:
  // `backend` names the owner in refusal messages; max_pending >= 1.
  AdmissionQueue(std::string_view backend, std::size_t max_pending);

  // Admits `job` and returns its future. Errors: shutting_down once stop()
  // was called; queue_full when max_pending jobs are pending; client_gone
  // when its cancel token is already cancelled.
  Result<std::future<Result<JobOutput>>> push(JobSpec job);

  // The oldest queued job that is not cancelled, marked busy with its queue
  // time set; waits up to `wait` for one. Cancelled jobs it meets are
  // finished with client_gone. nullptr when none came, or when stopping and
  // empty (closed() tells these apart).
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
  // Takes `job` out of the queue if it is still there and finishes it with
  // client_gone (the cancel token's withdraw hook).
  void withdraw(const std::shared_ptr<QueuedJob>& job);
  // Finishes a job that was removed from the queue unrun (pending_ already
  // freed, abandoned_ counted).
  void finish_abandoned(QueuedJob& job);

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
  std::uint64_t abandoned_ = 0;
  bool stopping_ = false;
};

}  // namespace pixpool
