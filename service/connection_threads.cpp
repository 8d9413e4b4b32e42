#include "service/connection_threads.hpp"

#include <cstdio>
#include <system_error>
#include <utility>

namespace pixpool {

ConnectionThreads::ConnectionThreads(std::size_t max_threads, std::chrono::milliseconds idle_exit)
    : max_threads_(max_threads < 1 ? 1 : max_threads), idle_exit_(idle_exit) {}

ConnectionThreads::~ConnectionThreads() {
  shutdown();
}

void ConnectionThreads::enqueue(std::function<void()> fn) {
  std::lock_guard lock(mutex_);
  if (stopping_) return;
  join_finished();
  queue_.push_back(std::move(fn));
  // An idle thread takes it; otherwise start one while below the cap.
  if (idle_ >= queue_.size()) {
    wake_.notify_one();
    return;
  }
  if (threads_.size() < max_threads_) {
    // Out of threads (RLIMIT_NPROC, a pids cgroup): the connection stays
    // queued for a running thread; an exception here would end the server
    // (httplib's accept loop does not catch).
    try {
      std::thread thread([this] { serve(); });
      const auto id = thread.get_id();
      threads_.emplace(id, std::move(thread));
    } catch (const std::system_error& e) {
      std::fprintf(stderr, "pixpool: cannot start a connection thread: %s\n", e.what());
    }
  }
}

void ConnectionThreads::serve() {
  std::unique_lock lock(mutex_);
  for (;;) {
    ++idle_;
    const bool woken =
        wake_.wait_for(lock, idle_exit_, [this] { return stopping_ || !queue_.empty(); });
    --idle_;
    if (queue_.empty()) {
      // Stopping, or idle for idle_exit_: end this thread. Its std::thread
      // is joined by the next enqueue() or by shutdown().
      (void)woken;
      auto self = threads_.find(std::this_thread::get_id());
      finished_.push_back(std::move(self->second));
      threads_.erase(self);
      wake_.notify_all();  // shutdown() waits for threads_ to empty
      return;
    }
    auto task = std::move(queue_.front());
    queue_.pop_front();
    ++busy_;
    lock.unlock();
    task();
    task = nullptr;  // release what the task captured before counting it done
    lock.lock();
    --busy_;
  }
}

void ConnectionThreads::join_finished() {
  for (std::thread& t : finished_) t.join();
  finished_.clear();
}

void ConnectionThreads::shutdown() {
  std::unique_lock lock(mutex_);
  stopping_ = true;
  wake_.notify_all();
  // Threads drain the queue first (serve() takes tasks while any are left).
  wake_.wait(lock, [this] { return threads_.empty(); });
  std::vector<std::thread> finished = std::move(finished_);
  finished_.clear();
  lock.unlock();
  for (std::thread& t : finished) t.join();
}

ConnectionThreadStats ConnectionThreads::stats() const {
  std::lock_guard lock(mutex_);
  return ConnectionThreadStats{.threads = threads_.size(), .busy = busy_, .waiting = queue_.size()};
}

}  // namespace pixpool
