// The Backend contract, run against every backend (tbb and process): correct
// and byte-identical results at concurrency 1, 2, 4 and 8, errors as values,
// the admission limit, and shutdown.
#include <doctest/doctest.h>

#include <chrono>
#include <future>
#include <memory>
#include <thread>
#include <vector>

#include "filters/op_chain.hpp"
#include "tests/pipeline/backend_factories.hpp"
#include "tests/support/images.hpp"
#include "tests/support/wait.hpp"

using namespace pixpool;

namespace {

std::vector<JobSpec> sample_jobs() {
  std::vector<JobSpec> jobs;
  const std::vector<std::string> inputs = {
      test::read_test_data("fruits_320x240.jpg"),
      test::read_test_data("baboon_320x240.jpg"),
      test::encode_with_opencv(test::synthetic_image(200, 120, 4), ".png"),
      test::encode_with_opencv(test::synthetic_image(150, 90, 1), ".webp"),
  };
  // blur:5 and blur:12 on the JPEGs run band-limited (1/4 and 1/8).
  const char* ops[] = {"blur:5,contour", "blur:1.5", "contour", "blur:12"};
  for (const auto& input : inputs) {
    for (const char* chain : ops) {
      JobSpec job;
      job.input = input;
      job.params.ops = *parse_ops(chain);
      jobs.push_back(job);
    }
  }
  JobSpec exact;
  exact.input = inputs.front();
  exact.params.ops = *parse_ops(kDefaultOps);
  exact.params.exact = true;
  jobs.push_back(exact);
  return jobs;
}

JobSpec sleeping_job(int ms) {
  JobSpec job;
  job.input = test::read_test_data("fruits_320x240.jpg");
  job.params.ops = *parse_ops("sleep:" + std::to_string(ms));
  return job;
}

}  // namespace

TEST_CASE_TEMPLATE("backend gives the same bytes as run_job at concurrency 1, 2, 4 and 8", B,
                   test::TbbFactory, test::ProcessFactory) {
  const std::vector<JobSpec> jobs = sample_jobs();
  std::vector<std::string> expected;
  for (const JobSpec& job : jobs) {
    auto out = run_job(job);
    REQUIRE(out.ok());
    expected.push_back(out->bytes);
  }
  for (int concurrency : {1, 2, 4, 8}) {
    CAPTURE(concurrency);
    auto backend = B::make();
    std::vector<std::thread> clients;
    clients.reserve(static_cast<std::size_t>(concurrency));
    std::vector<int> mismatches(concurrency, 0);
    for (int c = 0; c < concurrency; ++c) {
      clients.emplace_back([&, c] {
        // Each client submits every job; results must not depend on interleaving.
        for (std::size_t i = 0; i < jobs.size(); ++i) {
          auto result = backend->submit(jobs[i]).get();
          if (!result.ok() || result->bytes != expected[i]) ++mismatches[c];
        }
      });
    }
    for (auto& t : clients) t.join();
    for (int c = 0; c < concurrency; ++c) CHECK(mismatches[c] == 0);
    const BackendStats stats = backend->stats();
    CHECK(stats.completed == jobs.size() * static_cast<std::size_t>(concurrency));
    CHECK(stats.failed == 0);
    CHECK(stats.busy == 0);
    CHECK(stats.queued == 0);
    CHECK(stats.workers == 2);
    CHECK(backend->ready());
  }
}

TEST_CASE_TEMPLATE("backend reports job errors as values and counts them", B, test::TbbFactory,
                   test::ProcessFactory) {
  auto backend = B::make();
  JobSpec bad;
  bad.input = "definitely not an image";
  bad.params.ops = *parse_ops("contour");
  auto result = backend->submit(bad).get();
  REQUIRE_FALSE(result.ok());
  CHECK(result.error().code == ErrorCode::unsupported_image);
  CHECK(!result.error().message.empty());

  JobSpec huge;
  huge.input = test::encode_with_opencv(test::synthetic_image(100, 100, 3), ".png");
  huge.params.ops = *parse_ops("contour");
  huge.params.max_pixels = 100;
  CHECK(backend->submit(huge).get().error().code == ErrorCode::too_many_pixels);
  CHECK(backend->stats().failed == 2);
}

TEST_CASE_TEMPLATE("backend refuses work beyond max_pending with queue_full", B, test::TbbFactory,
                   test::ProcessFactory) {
  auto backend = B::make(1);
  auto first = backend->submit(sleeping_job(300));  // still pending for 300 ms
  auto second = backend->submit(sleeping_job(0)).get();
  REQUIRE_FALSE(second.ok());
  CHECK(second.error().code == ErrorCode::queue_full);
  CHECK(first.get().ok());
  // The slot is free again as soon as the first answer is out.
  CHECK(backend->submit(sleeping_job(0)).get().ok());
}

TEST_CASE_TEMPLATE("backend shutdown finishes pending jobs, then refuses new ones", B,
                   test::TbbFactory, test::ProcessFactory) {
  auto backend = B::make();
  std::vector<std::future<Result<JobOutput>>> futures;
  for (const JobSpec& job : sample_jobs()) futures.push_back(backend->submit(job));
  backend->shutdown();
  for (auto& f : futures) {
    REQUIRE(f.wait_for(std::chrono::seconds(0)) == std::future_status::ready);
    CHECK(f.get().ok());
  }
  CHECK_FALSE(backend->ready());
  CHECK(backend->submit(sample_jobs().front()).get().error().code == ErrorCode::shutting_down);
}

TEST_CASE_TEMPLATE(
    "backend drops queued jobs whose client went away, the live one behind runs next", B,
    test::TbbFactory, test::ProcessFactory) {
  auto backend = B::make();  // two workers
  // Both workers busy for a while.
  std::vector<std::future<Result<JobOutput>>> running;
  running.reserve(2);
  for (int i = 0; i < 2; ++i) running.push_back(backend->submit(sleeping_job(700)));
  REQUIRE(test::wait_until([&] { return backend->stats().busy == 2; }, std::chrono::seconds(10)));

  // Five queued jobs of one client that then goes away, and a live one after them.
  auto token = std::make_shared<CancelToken>();
  std::vector<std::future<Result<JobOutput>>> abandoned;
  abandoned.reserve(5);
  for (int i = 0; i < 5; ++i) {
    JobSpec job = sleeping_job(700);
    job.cancel = token;
    abandoned.push_back(backend->submit(std::move(job)));
  }
  const auto live_submitted = std::chrono::steady_clock::now();
  auto live = backend->submit(sleeping_job(0));
  CHECK(backend->stats().queued == 6);
  token->cancel();
  for (auto& f : abandoned) {
    REQUIRE(f.wait_for(std::chrono::seconds(0)) == std::future_status::ready);
    CHECK(f.get().error().code == ErrorCode::client_gone);
  }
  CHECK(backend->stats().queued == 1);
  CHECK(live.get().ok());
  // The live job waited for a running sleep, not for five more of them.
  CHECK(std::chrono::steady_clock::now() - live_submitted < std::chrono::milliseconds(2500));
  for (auto& f : running) CHECK(f.get().ok());
  const BackendStats stats = backend->stats();
  CHECK(stats.abandoned == 5);
  CHECK(stats.completed == 3);  // two sleeps and the live job: the abandoned never ran
  CHECK(stats.failed == 0);
}
