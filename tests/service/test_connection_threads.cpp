#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <vector>

#include "service/connection_threads.hpp"
#include "service/http_metrics.hpp"
#include "tests/support/wait.hpp"

using namespace pixpool;
using namespace std::chrono_literals;
using pixpool::test::wait_until;

namespace {

// A gate tasks wait on until the test opens it.
struct Gate {
  std::mutex mutex;
  std::condition_variable cv;
  bool open = false;
  void wait() {
    std::unique_lock lock(mutex);
    cv.wait(lock, [&] { return open; });
  }
  void release() {
    std::lock_guard lock(mutex);
    open = true;
    cv.notify_all();
  }
};

}  // namespace

TEST_CASE("ConnectionThreads starts a thread per blocked task, up to its cap") {
  ConnectionThreads threads(8);
  Gate gate;
  std::atomic<int> started{0};
  for (int i = 0; i < 5; ++i) {
    threads.enqueue([&] {
      ++started;
      gate.wait();
    });
  }
  // Five slow "connections" all run at once: none waits for another.
  CHECK(wait_until([&] { return started == 5; }, 10s));
  CHECK(threads.stats().threads == 5);
  CHECK(threads.stats().busy == 5);
  gate.release();
  threads.shutdown();
  CHECK(threads.stats().threads == 0);
}

TEST_CASE("ConnectionThreads queues beyond its cap, first come first served") {
  ConnectionThreads threads(2);
  Gate gate;
  std::mutex mutex;
  std::vector<int> order;
  std::atomic<int> started{0};
  for (int i = 0; i < 2; ++i) {
    threads.enqueue([&] {
      ++started;
      gate.wait();
    });
  }
  REQUIRE(wait_until([&] { return started == 2; }, 10s));
  for (int i = 0; i < 6; ++i) {
    threads.enqueue([&, i] {
      std::lock_guard lock(mutex);
      order.push_back(i);
    });
  }
  CHECK(threads.stats().threads == 2);
  CHECK(threads.stats().waiting == 6);
  gate.release();
  threads.shutdown();  // runs what is queued before returning
  CHECK(order.size() == 6);
  // Two threads take from one FIFO queue: each task starts no later than
  // one position after its turn.
  for (std::size_t i = 0; i < order.size(); ++i) {
    CHECK(static_cast<std::size_t>(order[i]) <= i + 1);
  }
}

TEST_CASE("ConnectionThreads reuses idle threads and ends them after idle_exit") {
  ConnectionThreads threads(16, 200ms);
  std::atomic<int> done{0};
  for (int round = 0; round < 5; ++round) {
    threads.enqueue([&] { ++done; });
    REQUIRE(wait_until([&] { return done == round + 1; }, 10s));
  }
  CHECK(threads.stats().threads <= 2);  // sequential tasks share a thread
  CHECK(wait_until([&] { return threads.stats().threads == 0; }, 10s));
  threads.enqueue([&] { ++done; });  // a new thread after they all ended
  CHECK(wait_until([&] { return done == 6; }, 10s));
  threads.shutdown();
  threads.enqueue([&] { ++done; });  // dropped after shutdown
  CHECK(done == 6);
}

TEST_CASE("HttpMetrics exports the connection-thread gauges once given a source") {
  HttpMetrics metrics;
  CHECK(metrics.exposition().find("pixpool_http_connection") == std::string::npos);
  metrics.set_connection_source(
      [] { return ConnectionThreadStats{.threads = 7, .busy = 5, .waiting = 2}; });
  const std::string text = metrics.exposition();
  CHECK(text.find("\npixpool_http_connection_threads 7\n") != std::string::npos);
  CHECK(text.find("\npixpool_http_connections_served 5\n") != std::string::npos);
  CHECK(text.find("\npixpool_http_connections_waiting 2\n") != std::string::npos);
  CHECK(text.find("# TYPE pixpool_http_connections_waiting gauge") != std::string::npos);
}
