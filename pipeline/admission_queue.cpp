#include "pipeline/admission_queue.hpp"

#include <algorithm>

namespace pixpool {

using Clock = std::chrono::steady_clock;

namespace {

bool is_cancelled(const QueuedJob& job) {
  return job.job.cancel != nullptr && job.job.cancel->cancelled();
}

Error client_gone_error() {
  return Error{ErrorCode::client_gone, "the client went away while the job waited; not run"};
}

}  // namespace

AdmissionQueue::AdmissionQueue(std::string_view backend, std::size_t max_pending)
    : backend_(backend), max_pending_(max_pending > 0 ? max_pending : 1) {}

Result<std::future<Result<JobOutput>>> AdmissionQueue::push(JobSpec job) {
  auto queued = std::make_shared<QueuedJob>();
  queued->job = std::move(job);
  queued->submitted = Clock::now();
  auto future = queued->promise.get_future();
  const std::shared_ptr<CancelToken> token = queued->job.cancel;
  if (token != nullptr) {
    // Before the job is queued, so a cancel from now on finds it (the hook
    // waits for mutex_); not under mutex_, as a cancelled token runs it at once.
    queued->withdraw_hook = token->set_withdraw([this, weak = std::weak_ptr<QueuedJob>(queued)] {
      if (auto held = weak.lock()) withdraw(held);
    });
  }
  Error refusal{ErrorCode::internal, ""};
  {
    std::lock_guard lock(mutex_);
    if (stopping_) {
      refusal = Error{ErrorCode::shutting_down, "server is shutting down"};
    } else if (token != nullptr && token->cancelled()) {
      ++abandoned_;
      refusal = client_gone_error();
    } else if (pending_ >= max_pending_) {
      refusal = Error{ErrorCode::queue_full, backend_ + " backend has " + std::to_string(pending_) +
                                                 " jobs pending; retry later"};
    } else {
      ++pending_;
      ++unfinished_;
      queue_.push_back(std::move(queued));
      work_ready_.notify_one();
      return future;
    }
  }
  if (token != nullptr) token->clear_withdraw(queued->withdraw_hook);
  return refusal;
}

std::shared_ptr<QueuedJob> AdmissionQueue::take(std::chrono::milliseconds wait) {
  const auto give_up = Clock::now() + wait;
  for (;;) {
    std::unique_lock lock(mutex_);
    work_ready_.wait_until(lock, give_up, [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return nullptr;
    auto job = std::move(queue_.front());
    queue_.pop_front();
    // Ours now: a later cancel no longer withdraws it (lock order: queue,
    // then token; the token never calls its hook under its own lock).
    if (job->job.cancel != nullptr) job->job.cancel->clear_withdraw(job->withdraw_hook);
    if (is_cancelled(*job)) {  // cancelled, but its hook has not withdrawn it yet
      --pending_;
      ++abandoned_;
      lock.unlock();
      finish_abandoned(*job);
      continue;
    }
    ++busy_;
    job->queue_ms =
        std::chrono::duration<double, std::milli>(Clock::now() - job->submitted).count();
    return job;
  }
}

void AdmissionQueue::withdraw(const std::shared_ptr<QueuedJob>& job) {
  {
    std::lock_guard lock(mutex_);
    const auto it = std::find(queue_.begin(), queue_.end(), job);
    if (it == queue_.end()) return;  // already taken: it runs (or ran) to the end
    queue_.erase(it);
    --pending_;
    ++abandoned_;
  }
  finish_abandoned(*job);
}

void AdmissionQueue::finish_abandoned(QueuedJob& job) {
  job.job = JobSpec{};
  job.promise.set_value(client_gone_error());
  std::lock_guard lock(mutex_);
  if (--unfinished_ == 0) drained_.notify_all();
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
                        .failed = failed_,
                        .abandoned = abandoned_};
}

}  // namespace pixpool
