#pragma once
// The HTTP server's task queue: one task per accepted connection, served on
// a thread started on demand.
//
// Why not httplib's ThreadPool: it starts a fixed number of threads up
// front, and every connection holds one for its whole life (idle keep-alive
// waits, slow uploads, clients that send nothing), so that many idle or slow
// connections stop everyone else. Here threads start when a connection finds
// none idle, up to `max_threads`; beyond that connections wait in arrival
// order. A thread idle for `idle_exit` ends, so a burst leaves no threads
// behind.

#include <httplib.h>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

namespace pixpool {

// Counters for /metrics and tests; a snapshot.
struct ConnectionThreadStats {
  std::size_t threads = 0;  // alive (busy or idle)
  std::size_t busy = 0;     // serving a connection
  std::size_t waiting = 0;  // connections accepted but not yet served (at the cap)
};

class ConnectionThreads final : public httplib::TaskQueue {
 public:
  // `max_threads` >= 1.
  explicit ConnectionThreads(std::size_t max_threads,
                             std::chrono::milliseconds idle_exit = std::chrono::seconds{30});
  ~ConnectionThreads() override;  // shutdown() if not called yet
  ConnectionThreads(const ConnectionThreads&) = delete;
  ConnectionThreads& operator=(const ConnectionThreads&) = delete;

  // Runs `fn` on an idle thread, a new one (below the cap), or queues it.
  // After shutdown() the task is dropped.
  void enqueue(std::function<void()> fn) override;

  // Lets queued and running tasks finish, then joins every thread.
  void shutdown() override;

  ConnectionThreadStats stats() const;

 private:
  void serve();
  void join_finished();  // with mutex_ held: joins threads that have ended

  const std::size_t max_threads_;
  const std::chrono::milliseconds idle_exit_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> queue_;
  std::map<std::thread::id, std::thread> threads_;
  std::vector<std::thread> finished_;  // ended threads, joined on the next enqueue or shutdown
  std::size_t idle_ = 0;
  std::size_t busy_ = 0;
  bool stopping_ = false;
};

}  // namespace pixpool
