#pragma once
// Cancellation of work whose requester has gone away (an HTTP client that
// closed its connection while its job waited), so a backlog of abandoned
// requests never runs.
//
// A CancelToken travels with the work (JobSpec::cancel, Downloader::fetch).
// Whoever waits for the work on the requester's behalf calls check(), which
// asks the token's probe (e.g. "is the connection closed?"); once it says
// yes, the token is cancelled for good. Queues holding the work register a
// withdraw hook while they hold it, so cancel() takes the work out of the
// queue at once and finishes it with client_gone; executors skip work whose
// token is cancelled. Work already running is not interrupted (a decode
// cannot be stopped halfway), except downloads, which abort.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <mutex>
#include <utility>
#include <vector>

namespace pixpool {

// How often waiters ask a token's probe.
inline constexpr std::chrono::milliseconds kCancelCheckInterval{50};

class CancelToken {
 public:
  // True when the requester has gone. Must be thread-safe; may make a system
  // call (it is only asked by check(), never on a hot path).
  using Probe = std::function<bool()>;

  CancelToken() = default;
  explicit CancelToken(Probe gone) : probe_(std::move(gone)) {}
  CancelToken(const CancelToken&) = delete;
  CancelToken& operator=(const CancelToken&) = delete;

  // True once cancelled. Lock-free; any thread.
  bool cancelled() const noexcept { return cancelled_.load(std::memory_order_acquire); }

  // Asks the probe (if any, and not yet cancelled) and cancels when it says
  // the requester has gone. Returns cancelled().
  bool check();

  // Cancels and runs the withdraw hook (if one is set), once. Idempotent.
  void cancel();

  // Registers a hook that takes one piece of work out of the queue now
  // holding it; a token may guard several (e.g. retries, batch items). Runs
  // the hook at once (on this thread, returning 0) when already cancelled.
  // Hooks run without any lock of the token held, so they may lock their
  // queue; a queue removes its hook (clear_withdraw with the returned id)
  // when it hands the work on.
  using HookId = std::uint64_t;
  HookId set_withdraw(std::function<void()> hook);
  void clear_withdraw(HookId id);

 private:
  const Probe probe_;
  std::atomic<bool> cancelled_{false};
  std::mutex mutex_;  // guards the two below
  HookId next_id_ = 1;
  std::vector<std::pair<HookId, std::function<void()>>> withdraw_;
};

// The value of `future`. With a token, waits in slices of
// kCancelCheckInterval and asks it (check()) between them: a cancel
// withdraws the work from its queue, which then finishes the future with
// client_gone at once (work already running still ends itself). A deferred
// future (std::launch::deferred) runs in get() and checks on its own.
template <typename T>
T get_unless_gone(std::future<T> future, CancelToken* cancel) {
  if (cancel != nullptr) {
    for (;;) {
      const std::future_status status = future.wait_for(kCancelCheckInterval);
      if (status != std::future_status::timeout) break;
      cancel->check();
    }
  }
  return future.get();
}

}  // namespace pixpool
