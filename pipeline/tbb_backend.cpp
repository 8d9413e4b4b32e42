#include "pipeline/tbb_backend.hpp"

#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/info.h>
#include <oneapi/tbb/task_arena.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>

#include "pipeline/strip_runner.hpp"

namespace pixpool {

struct TbbBackend::State {
  explicit State(const TbbBackendOptions& options)
      : threads(options.threads > 0 ? options.threads : tbb::info::default_concurrency()),
        max_pending(options.max_pending),
        // TBB sizes its worker pool as cores - 1, expecting the calling
        // thread to join in. Ours never does (jobs are enqueued), so allow
        // one more thread, or a 2-thread arena gets a single worker.
        workers(tbb::global_control::max_allowed_parallelism,
                static_cast<std::size_t>(threads) + 1),
        // No slot reserved for an external "master" thread: jobs are only
        // enqueued, never executed by the submitting thread, so a reserved
        // slot would leave one of `threads` cores idle (task_arena's
        // default reserves one: 2 threads ran 1 job at a time).
        arena(threads, 0) {}

  const int threads;
  const std::size_t max_pending;
  tbb::global_control workers;
  tbb::task_arena arena;

  std::mutex mutex;  // guards the counts below and stopping together
  std::condition_variable drained;
  std::size_t pending = 0;     // admitted and not yet answered (admission limit)
  std::size_t unfinished = 0;  // admitted and the task not yet done (shutdown waits)
  bool stopping = false;

  std::atomic<std::size_t> busy{0};
  std::atomic<std::uint64_t> completed{0};
  std::atomic<std::uint64_t> failed{0};
};

namespace {}  // namespace

TbbBackend::TbbBackend(TbbBackendOptions options) : state_(std::make_unique<State>(options)) {}

TbbBackend::~TbbBackend() {
  shutdown();
}

std::future<Result<JobOutput>> TbbBackend::submit(JobSpec job) {
  {
    std::lock_guard lock(state_->mutex);
    if (state_->stopping) return ready_error(ErrorCode::shutting_down, "server is shutting down");
    if (state_->pending >= state_->max_pending) {
      return ready_error(
          ErrorCode::queue_full,
          "tbb backend has " + std::to_string(state_->pending) + " jobs pending; retry later");
    }
    ++state_->pending;
    ++state_->unfinished;
  }
  // TBB wants a copyable, const-callable functor: the job and its promise
  // travel in a shared Task.
  struct Task {
    JobSpec job;
    std::promise<Result<JobOutput>> promise;
    std::chrono::steady_clock::time_point submitted = std::chrono::steady_clock::now();
  };
  auto task = std::make_shared<Task>();
  task->job = std::move(job);
  auto future = task->promise.get_future();
  // The task's last touch of `state` is the mutex unlock after `unfinished`
  // drops; shutdown() waits for that count, so State outlives its tasks and
  // is never destroyed on an arena thread.
  state_->arena.enqueue([state = state_.get(), task] {
    const double queue_ms = std::chrono::duration<double, std::milli>(
                                std::chrono::steady_clock::now() - task->submitted)
                                .count();
    // Idle arena threads help with this image's filter strips.
    const int busy_now = static_cast<int>(++state->busy);
    Result<JobOutput> result =
        run_job(task->job, tbb_strip_runner(1 + std::max(0, state->threads - busy_now)));
    task->job = JobSpec{};  // drop the input bytes before waking the waiter
    --state->busy;
    if (result) {
      result->times.queue_ms = queue_ms;
      ++state->completed;
    } else {
      ++state->failed;
    }
    {
      // Free the slot before answering: a caller that submits again right
      // after get() returns must find the capacity (and stats) updated.
      std::lock_guard lock(state->mutex);
      --state->pending;
    }
    task->promise.set_value(std::move(result));
    std::lock_guard lock(state->mutex);
    if (--state->unfinished == 0) state->drained.notify_all();
  });
  return future;
}

BackendStats TbbBackend::stats() const {
  BackendStats s;
  s.workers = state_->threads;
  s.busy = state_->busy.load();
  {
    std::lock_guard lock(state_->mutex);
    s.queued = state_->pending > s.busy ? state_->pending - s.busy : 0;
  }
  s.completed = state_->completed.load();
  s.failed = state_->failed.load();
  return s;
}

bool TbbBackend::ready() const {
  std::lock_guard lock(state_->mutex);
  return !state_->stopping;
}

void TbbBackend::shutdown() {
  std::unique_lock lock(state_->mutex);
  state_->stopping = true;
  state_->drained.wait(lock, [&] { return state_->unfinished == 0; });
}

}  // namespace pixpool
