#include "pipeline/tbb_backend.hpp"

#include <oneapi/tbb/info.h>
#include <oneapi/tbb/task_arena.h>

#include <algorithm>
#include <condition_variable>
#include <mutex>

#include "pipeline/admission_queue.hpp"
#include "pipeline/strip_runner.hpp"

namespace pixpool {
namespace {

int resolved_threads(const TbbBackendOptions& options) {
  return options.threads > 0 ? options.threads : tbb::info::default_concurrency();
}

}  // namespace

std::size_t tbb_parallelism_for(const TbbBackendOptions& options) {
  // TBB sizes its worker pool as parallelism - 1, expecting the calling
  // thread to join in. Ours never does (jobs are enqueued), so allow one
  // more thread, or a 2-thread arena gets a single worker.
  return static_cast<std::size_t>(resolved_threads(options)) + 1;
}

struct TbbBackend::State {
  explicit State(const TbbBackendOptions& options)
      : threads(resolved_threads(options)),
        queue("tbb", options.max_pending),
        // No slot reserved for an external "master" thread: jobs are only
        // enqueued, never executed by the submitting thread, so a reserved
        // slot would leave one of `threads` cores idle (task_arena's
        // default reserves one: 2 threads ran 1 job at a time).
        arena(threads, 0) {}

  const int threads;
  AdmissionQueue queue;
  // Arena tasks not finished yet. A job withdrawn by its cancel token is
  // finished without its task, which still runs later (and finds nothing):
  // shutdown() waits for these too, so no task outlives State.
  std::mutex tasks_mutex;
  std::condition_variable tasks_done;
  int tasks = 0;  // guarded by tasks_mutex
  tbb::task_arena arena;
};

TbbBackend::TbbBackend(TbbBackendOptions options) : state_(std::make_unique<State>(options)) {}

TbbBackend::~TbbBackend() {
  shutdown();
}

std::future<Result<JobOutput>> TbbBackend::submit(JobSpec job) {
  auto admitted = state_->queue.push(std::move(job));
  if (!admitted) return ready_error(admitted.error().code, admitted.error().message);
  // One arena task per admitted job; each takes the oldest queued job. The
  // task's last touch of `state` is the decrement of `tasks` (under its
  // mutex), and shutdown() waits for it, so State outlives its tasks.
  {
    std::lock_guard lock(state_->tasks_mutex);
    ++state_->tasks;
  }
  state_->arena.enqueue([state = state_.get()] {
    // None left: jobs withdrawn by their cancel token (or skipped by an
    // earlier task) leave their tasks with nothing to do.
    if (auto queued = state->queue.take()) {
      // Idle arena threads help with this image's filter strips.
      const int idle = state->threads - static_cast<int>(state->queue.stats().busy);
      Result<JobOutput> result = run_job(queued->job, tbb_strip_runner(1 + std::max(0, idle)));
      state->queue.finish(*queued, std::move(result));
    }
    std::lock_guard lock(state->tasks_mutex);
    --state->tasks;
    state->tasks_done.notify_all();
  });
  return std::move(admitted.value());
}

BackendStats TbbBackend::stats() const {
  const AdmissionStats q = state_->queue.stats();
  BackendStats s;
  s.workers = state_->threads;
  s.busy = q.busy;
  s.queued = q.queued;
  s.completed = q.completed;
  s.failed = q.failed;
  s.abandoned = q.abandoned;
  if (state_->queue.stopping()) {
    s.state.health = BackendHealth::unavailable;
    s.state.reason = "shutting down";
  }
  return s;
}

bool TbbBackend::ready() const {
  return !state_->queue.stopping();
}

void TbbBackend::shutdown() {
  state_->queue.stop();
  state_->queue.wait_drained();
  std::unique_lock lock(state_->tasks_mutex);
  state_->tasks_done.wait(lock, [this] { return state_->tasks == 0; });
}

}  // namespace pixpool
