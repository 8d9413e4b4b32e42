// The admission queue both backends share: its limit, order, drain and
// counters, without any backend around it.
#include <doctest/doctest.h>

#include <chrono>
#include <future>
#include <memory>
#include <thread>
#include <vector>

#include "pipeline/admission_queue.hpp"

using namespace pixpool;
using namespace std::chrono_literals;

namespace {

JobSpec job_named(const std::string& bytes) {
  JobSpec job;
  job.input = bytes;
  return job;
}

Result<JobOutput> output_of(const QueuedJob& queued) {
  JobOutput out;
  out.bytes = queued.job.input;
  return out;
}

}  // namespace

TEST_CASE("admission queue: admits up to max_pending, first in first out") {
  AdmissionQueue queue("test", 2);
  auto first = queue.push(job_named("a"));
  auto second = queue.push(job_named("b"));
  REQUIRE(first.ok());
  REQUIRE(second.ok());
  auto third = queue.push(job_named("c"));
  REQUIRE_FALSE(third.ok());
  CHECK(third.error().code == ErrorCode::queue_full);
  CHECK(third.error().message.find("test backend has 2 jobs pending") != std::string::npos);
  CHECK(queue.stats().queued == 2);

  auto taken = queue.take();
  REQUIRE(taken != nullptr);
  CHECK(taken->job.input == "a");
  CHECK(queue.stats().busy == 1);
  queue.finish(*taken, output_of(*taken));
  CHECK(first->get()->bytes == "a");
  // The slot is free by the time the answer is read.
  CHECK(queue.push(job_named("d")).ok());

  auto next = queue.take();
  REQUIRE(next != nullptr);
  CHECK(next->job.input == "b");
  queue.finish(*next, Error{ErrorCode::timeout, "slow"});
  CHECK(second->get().error().code == ErrorCode::timeout);
  const AdmissionStats stats = queue.stats();
  CHECK(stats.completed == 1);
  CHECK(stats.failed == 1);
  CHECK(stats.pending == 1);  // "d"
}

TEST_CASE("admission queue: queue time is measured from push to take") {
  AdmissionQueue queue("test", 4);
  auto future = queue.push(job_named("a"));
  REQUIRE(future.ok());
  const auto pushed = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - pushed < 20ms) std::this_thread::yield();
  auto taken = queue.take();
  REQUIRE(taken != nullptr);
  CHECK(taken->queue_ms >= 20.0);
  queue.finish(*taken, output_of(*taken));
  CHECK(future->get()->times.queue_ms == doctest::Approx(taken->queue_ms));
}

TEST_CASE("admission queue: stop refuses new jobs, hands out the queued ones, then closes") {
  AdmissionQueue queue("test", 4);
  auto queued = queue.push(job_named("a"));
  REQUIRE(queued.ok());
  queue.stop();
  CHECK(queue.stopping());
  auto refused = queue.push(job_named("b"));
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().code == ErrorCode::shutting_down);
  CHECK_FALSE(queue.closed());  // "a" is still to be taken

  std::thread worker([&] {
    while (auto taken = queue.take(10s)) queue.finish(*taken, output_of(*taken));
  });
  queue.wait_drained();  // returns once "a" is finished
  worker.join();         // take() returned nullptr: stopping and empty
  CHECK(queue.closed());
  CHECK(queued->get()->bytes == "a");
}

TEST_CASE("admission queue: take waits at most its timeout") {
  AdmissionQueue queue("test", 1);
  const auto start = std::chrono::steady_clock::now();
  CHECK(queue.take(30ms) == nullptr);
  CHECK(std::chrono::steady_clock::now() - start >= 30ms);
  CHECK_FALSE(queue.closed());
}

// --- abandoned jobs (issue 11: work for a client that has gone away) ---------

TEST_CASE("admission queue: a queued job whose token is cancelled is withdrawn at once, unrun") {
  AdmissionQueue queue("test", 2);
  auto token = std::make_shared<CancelToken>();
  JobSpec job = job_named("abandoned");
  job.cancel = token;
  auto admitted = queue.push(std::move(job));
  REQUIRE(admitted.ok());
  CHECK(queue.stats().pending == 1);

  token->cancel();
  // The future is ready now, not when an executor would have reached it.
  REQUIRE(admitted->wait_for(0s) == std::future_status::ready);
  auto result = admitted->get();
  REQUIRE_FALSE(result.ok());
  CHECK(result.error().code == ErrorCode::client_gone);
  const AdmissionStats stats = queue.stats();
  CHECK(stats.pending == 0);  // its slot is free for live work
  CHECK(stats.queued == 0);
  CHECK(stats.abandoned == 1);
  CHECK(stats.failed == 0);  // it never ran
  CHECK(queue.take() == nullptr);
  queue.stop();
  queue.wait_drained();  // a withdrawn job is finished: nothing to wait for
}

TEST_CASE("admission queue: one token guards several queued jobs, the live one is served") {
  AdmissionQueue queue("test", 4);
  auto token = std::make_shared<CancelToken>();
  std::vector<std::future<Result<JobOutput>>> gone;
  for (const char* name : {"gone1", "gone2"}) {
    JobSpec job = job_named(name);
    job.cancel = token;
    auto admitted = queue.push(std::move(job));
    REQUIRE(admitted.ok());
    gone.push_back(std::move(admitted.value()));
  }
  auto live = queue.push(job_named("live"));
  REQUIRE(live.ok());
  token->cancel();
  for (auto& f : gone) {
    REQUIRE(f.wait_for(0s) == std::future_status::ready);
    CHECK(f.get().error().code == ErrorCode::client_gone);
  }
  auto taken = queue.take();
  REQUIRE(taken != nullptr);
  CHECK(taken->job.input == "live");
  queue.finish(*taken, output_of(*taken));
  CHECK(live->get().ok());
  CHECK(queue.stats().abandoned == 2);
  CHECK(queue.stats().completed == 1);
}

TEST_CASE("admission queue: a job already taken runs to the end even if cancelled") {
  AdmissionQueue queue("test", 2);
  auto token = std::make_shared<CancelToken>();
  JobSpec job = job_named("running");
  job.cancel = token;
  auto admitted = queue.push(std::move(job));
  REQUIRE(admitted.ok());
  auto taken = queue.take();
  REQUIRE(taken != nullptr);
  token->cancel();  // too late: it is running
  queue.finish(*taken, output_of(*taken));
  CHECK(admitted->get().ok());
  CHECK(queue.stats().abandoned == 0);
}

TEST_CASE("admission queue: a job cancelled before push is refused with client_gone") {
  AdmissionQueue queue("test", 2);
  auto token = std::make_shared<CancelToken>();
  token->cancel();
  JobSpec job = job_named("late");
  job.cancel = token;
  auto admitted = queue.push(std::move(job));
  REQUIRE_FALSE(admitted.ok());
  CHECK(admitted.error().code == ErrorCode::client_gone);
  CHECK(queue.stats().pending == 0);
  CHECK(queue.stats().abandoned == 1);
}

TEST_CASE("cancel token: check() asks the probe and stays cancelled") {
  int asked = 0;
  bool gone = false;
  CancelToken token([&] {
    ++asked;
    return gone;
  });
  CHECK_FALSE(token.check());
  CHECK(asked == 1);
  gone = true;
  CHECK(token.check());
  CHECK(token.cancelled());
  gone = false;
  CHECK(token.check());  // sticky
  CHECK(asked == 2);     // not asked again once cancelled
  int hooks = 0;
  token.set_withdraw([&] { ++hooks; });  // already cancelled: runs at once
  CHECK(hooks == 1);
  token.cancel();
  CHECK(hooks == 1);
}
