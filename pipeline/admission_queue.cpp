#include "pipeline/admission_queue.hpp"

namespace pixpool {

using Clock = std::chrono::steady_clock;

AdmissionQueue::AdmissionQueue(std::string_view backend, std::size_t max_pending)
    : backend_(backend), max_pending_(max_pending > 0 ? max_pending : 1) {}

Result<std::future<Result<JobOutput>>> AdmissionQueue::push(JobSpec job) {
  auto queued = std::make_shared<QueuedJob>();
  queued->job = std::move(job);
  queued->submitted = Clock::now();
  auto future = queued->promise.get_future();
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return Error{ErrorCode::shutting_down, "server is shutting down"};
    if (pending_ >= max_pending_) {
      return Error{ErrorCode::queue_full, backend_ + " backend has " + std::to_string(pending_) +
                                              " jobs pending; retry later"};
    }
    ++pending_;
    ++unfinished_;
    queue_.push_back(std::move(queued));
  }
  work_ready_.notify_one();
  return future;
}

std::shared_ptr<QueuedJob> AdmissionQueue::take(std::chrono::milliseconds wait) {
  std::unique_lock lock(mutex_);
  work_ready_.wait_for(lock, wait, [&] { return stopping_ || !queue_.empty(); });
  if (queue_.empty()) return nullptr;
  auto job = std::move(queue_.front());
  queue_.pop_front();
  ++busy_;
  job->queue_ms = std::chrono::duration<double, std::milli>(Clock::now() - job->submitted).count();
  return job;
}

void AdmissionQueue::finish(QueuedJob& job, Result<JobOutput> result) {
  job.job = JobSpec{};  // drop the input bytes before waking the waiter
  if (result) result->times.queue_ms = job.queue_ms;
  {
    std::lock_guard lock(mutex_);
    --busy_;
    --pending_;
    ++(result ? completed_ : failed_);
  }
  job.promise.set_value(std::move(result));
  // The last touch of this queue: once wait_drained() sees zero the owner may
  // destroy it, so the count drops and the waiter is woken under the lock.
  std::lock_guard lock(mutex_);
  if (--unfinished_ == 0) drained_.notify_all();
}

void AdmissionQueue::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  work_ready_.notify_all();
}

bool AdmissionQueue::stopping() const {
  std::lock_guard lock(mutex_);
  return stopping_;
}

bool AdmissionQueue::closed() const {
  std::lock_guard lock(mutex_);
  return stopping_ && queue_.empty();
}

void AdmissionQueue::wait_drained() {
  std::unique_lock lock(mutex_);
  drained_.wait(lock, [&] { return unfinished_ == 0; });
}

AdmissionStats AdmissionQueue::stats() const {
  std::lock_guard lock(mutex_);
  return AdmissionStats{.pending = pending_,
                        .queued = queue_.size(),
                        .busy = busy_,
                        .completed = completed_,
                        .failed = failed_};
}

}  // namespace pixpool
