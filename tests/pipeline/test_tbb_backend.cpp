// TbbBackend: correct results under concurrency, admission limit, shutdown.
#include <doctest/doctest.h>

#include <future>
#include <thread>
#include <vector>

#include "filters/op_chain.hpp"
#include "pipeline/tbb_backend.hpp"
#include "tests/support/images.hpp"

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
  const char* ops[] = {"blur:5,contour", "blur:1.5", "contour"};
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    for (const char* chain : ops) {
      JobSpec job;
      job.input = inputs[i];
      job.params.ops = *parse_ops(chain);
      jobs.push_back(job);
    }
  }
  return jobs;
}

}  // namespace

TEST_CASE("TbbBackend gives the same bytes as run_job at concurrency 1, 2, 4 and 8") {
  const std::vector<JobSpec> jobs = sample_jobs();
  std::vector<std::string> expected;
  for (const JobSpec& job : jobs) {
    auto out = run_job(job);
    REQUIRE(out.ok());
    expected.push_back(out->bytes);
  }
  for (int concurrency : {1, 2, 4, 8}) {
    CAPTURE(concurrency);
    TbbBackend backend({2, 256});
    std::vector<std::thread> clients;
    std::vector<int> mismatches(concurrency, 0);
    for (int c = 0; c < concurrency; ++c) {
      clients.emplace_back([&, c] {
        // Each client submits every job; results must not depend on interleaving.
        for (std::size_t i = 0; i < jobs.size(); ++i) {
          auto result = backend.submit(jobs[i]).get();
          if (!result.ok() || result->bytes != expected[i]) ++mismatches[c];
        }
      });
    }
    for (auto& t : clients) t.join();
    for (int c = 0; c < concurrency; ++c) CHECK(mismatches[c] == 0);
    const BackendStats stats = backend.stats();
    CHECK(stats.completed == jobs.size() * static_cast<std::size_t>(concurrency));
    CHECK(stats.failed == 0);
    CHECK(stats.busy == 0);
    CHECK(stats.queued == 0);
  }
}

TEST_CASE("TbbBackend reports job errors as values and counts them") {
  TbbBackend backend({1, 8});
  JobSpec bad;
  bad.input = "definitely not an image";
  bad.params.ops = *parse_ops("contour");
  auto result = backend.submit(bad).get();
  REQUIRE_FALSE(result.ok());
  CHECK(result.error().code == ErrorCode::unsupported_image);
  CHECK(backend.stats().failed == 1);
}

TEST_CASE("TbbBackend refuses work beyond max_pending with queue_full") {
  TbbBackend backend({1, 1});
  // A job long enough (a large, strongly blurred image) to still be pending
  // when the second submit arrives microseconds later.
  JobSpec slow;
  slow.input = test::encode_with_opencv(test::synthetic_image(1500, 1500, 3), ".bmp");
  slow.params.ops = *parse_ops("blur:30,blur:30");
  auto first = backend.submit(slow);
  auto second = backend.submit(slow).get();
  REQUIRE_FALSE(second.ok());
  CHECK(second.error().code == ErrorCode::queue_full);
  CHECK(first.get().ok());
  // Capacity frees up once the first job is done.
  JobSpec quick;
  quick.input = test::read_test_data("fruits_320x240.jpg");
  quick.params.ops = *parse_ops("contour");
  CHECK(backend.submit(quick).get().ok());
}

TEST_CASE("TbbBackend shutdown waits for pending jobs and then refuses new ones") {
  TbbBackend backend({2, 64});
  std::vector<std::future<Result<JobOutput>>> futures;
  for (const JobSpec& job : sample_jobs()) futures.push_back(backend.submit(job));
  backend.shutdown();
  for (auto& f : futures) {
    REQUIRE(f.wait_for(std::chrono::seconds(0)) == std::future_status::ready);
    CHECK(f.get().ok());
  }
  CHECK_FALSE(backend.ready());
  JobSpec job = sample_jobs().front();
  CHECK(backend.submit(job).get().error().code == ErrorCode::shutting_down);
}
