// Process-pool specifics: shared-memory growth, fault isolation (crash,
// timeout, memory cap, killed workers), and clean teardown.
#include <doctest/doctest.h>

#include <chrono>
#include <csignal>
#include <future>
#include <vector>

#include "filters/op_chain.hpp"
#include "pipeline/process_pool_backend.hpp"
#include "tests/support/images.hpp"
#include "tests/support/process_info.hpp"
#include "tests/support/test_zygote.hpp"
#include "tests/support/wait.hpp"

using namespace pixpool;
using namespace std::chrono_literals;
using pixpool::test::wait_until;

namespace {

std::unique_ptr<ProcessPoolBackend> make_pool(int workers, std::chrono::milliseconds timeout = 60s,
                                              std::size_t memory_mb = 0) {
  auto pool = ProcessPoolBackend::create(ProcessPoolOptions{workers, 64, timeout, memory_mb},
                                         test::zygote());
  REQUIRE(pool.ok());
  return std::move(pool.value());
}

JobSpec photo_job(const std::string& ops = "blur:5,contour") {
  JobSpec job;
  job.input = test::read_test_data("baboon_320x240.jpg");
  job.params.ops = *parse_ops(ops);
  return job;
}

// Waits (up to 30 s) until the pool is back to `workers` live processes.
bool back_to_size(const Backend& pool, int workers) {
  return wait_until([&] { return pool.ready() && pool.stats().workers == workers; }, 30s, 10ms);
}

}  // namespace

TEST_CASE("images larger than the initial shared buffer cross both ways intact") {
  auto pool = make_pool(1);
  JobSpec job;
  // ~18 MB of BMP in, a larger PNG out: both exceed the initial 4 MiB buffer.
  job.input = test::encode_with_opencv(test::synthetic_image(3000, 2000, 3, 4), ".bmp");
  job.params.ops = *parse_ops("contour");
  job.params.format = ImageFormat::png;
  auto expected = run_job(job);
  REQUIRE(expected.ok());
  auto out = pool->submit(job).get();
  REQUIRE(out.ok());
  CHECK(out->bytes == expected->bytes);
  CHECK(out->width == 3000);
  // And a small job right after still works on the grown buffer.
  auto small = pool->submit(photo_job()).get();
  CHECK(small.ok());
}

TEST_CASE("a worker killed while idle is replaced, and no job notices") {
  auto pool = make_pool(2);
  const std::vector<long> before = pool->stats().worker_pids;
  REQUIRE(before.size() == 2);
  for (long pid : before) kill(static_cast<pid_t>(pid), SIGKILL);
  // Once they are dead (a kill racing a job's delivery is a mid-job crash,
  // covered below), jobs either find a dead worker and retry on a fresh one,
  // or land after the idle health check replaced it.
  for (long pid : before) {
    REQUIRE(wait_until([&] { return !test::process_alive(static_cast<pid_t>(pid)); }, 10s));
  }
  for (int i = 0; i < 4; ++i) CHECK(pool->submit(photo_job()).get().ok());
  REQUIRE(back_to_size(*pool, 2));
  for (long pid : pool->stats().worker_pids) {
    CHECK(std::find(before.begin(), before.end(), pid) == before.end());
  }
  CHECK(pool->stats().restarts >= 2);
}

TEST_CASE("a crashing job fails alone with worker_crashed and the pool recovers") {
  auto pool = make_pool(2);
  std::vector<std::future<Result<JobOutput>>> good;
  good.reserve(6);
  for (int i = 0; i < 6; ++i) good.push_back(pool->submit(photo_job()));
  auto crashed = pool->submit(photo_job("crash")).get();
  REQUIRE_FALSE(crashed.ok());
  CHECK(crashed.error().code == ErrorCode::worker_crashed);
  for (auto& f : good) CHECK(f.get().ok());
  REQUIRE(back_to_size(*pool, 2));
  CHECK(pool->submit(photo_job()).get().ok());
}

TEST_CASE("a job over the deadline is killed with its worker: timeout, then recovery") {
  auto pool = make_pool(1, 300ms);
  const auto start = std::chrono::steady_clock::now();
  auto slow = pool->submit(photo_job("sleep:20000")).get();
  const auto took = std::chrono::steady_clock::now() - start;
  REQUIRE_FALSE(slow.ok());
  CHECK(slow.error().code == ErrorCode::timeout);
  CHECK(took < 10s);  // far below the 20 s the job wanted: it was cut off
  REQUIRE(back_to_size(*pool, 1));
  CHECK(pool->submit(photo_job()).get().ok());
}

TEST_CASE("a job over the worker memory cap fails alone") {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  // Sanitizer runtimes reserve terabytes of shadow address space, so an
  // RLIMIT_AS cap cannot work under them (a documented ASan/TSan limit).
  MESSAGE("skipped: RLIMIT_AS is incompatible with sanitizer builds");
  return;
#endif
  auto pool = make_pool(1, 60s, 512);
  auto hog = pool->submit(photo_job("hog:2048")).get();
  REQUIRE_FALSE(hog.ok());
  const bool contained =
      hog.error().code == ErrorCode::out_of_memory || hog.error().code == ErrorCode::worker_crashed;
  CHECK(contained);
  REQUIRE(back_to_size(*pool, 1));
  CHECK(pool->submit(photo_job()).get().ok());
}

TEST_CASE("destroying a pool leaves no worker, zombie or file descriptor behind") {
  const pid_t zygote = test::zygote()->pid();
  const int fds_before = test::open_fd_count();
  std::vector<long> pids;
  {
    auto pool = make_pool(3);
    for (int i = 0; i < 6; ++i) CHECK(pool->submit(photo_job()).get().ok());
    pids = pool->stats().worker_pids;
    REQUIRE(pids.size() == 3);
  }
  // Zombies would still be listed as children.
  CHECK(wait_until([&] { return test::children_of(zygote).empty(); }, 10s, 10ms));
  for (long pid : pids) CHECK_FALSE(test::process_alive(static_cast<pid_t>(pid)));
  CHECK(test::open_fd_count() == fds_before);
}
