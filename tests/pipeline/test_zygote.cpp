// The self-healing zygote and the pool's retries: a SIGKILLed zygote is
// replaced (repeatedly) and the pool refills, with nothing leaked; a worker
// killed mid-job costs no job; a poison job costs exactly two workers; a
// zygote that cannot be replaced makes the pool refuse with a true estimate.
#include "tests/support/test_zygote.hpp"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <future>
#include <string>
#include <vector>

#include "filters/op_chain.hpp"
#include "pipeline/process_pool_backend.hpp"
#include "tests/support/images.hpp"
#include "tests/support/process_info.hpp"
#include "tests/support/wait.hpp"

using namespace pixpool;
using namespace std::chrono_literals;
using pixpool::test::wait_until;

namespace {

std::unique_ptr<ProcessPoolBackend> make_pool(std::shared_ptr<Zygote> zygote, int workers) {
  auto pool =
      ProcessPoolBackend::create(ProcessPoolOptions{workers, 64, 60s, 0}, std::move(zygote));
  REQUIRE(pool.ok());
  return std::move(pool.value());
}

JobSpec photo_job(const std::string& ops = "blur:5,contour") {
  JobSpec job;
  job.input = test::read_test_data("baboon_320x240.jpg");
  job.params.ops = *parse_ops(ops);
  return job;
}

bool full(const Backend& pool, int workers) {
  const BackendStats s = pool.stats();
  return s.state.health == BackendHealth::ready && s.workers == workers &&
         static_cast<int>(s.worker_pids.size()) == workers;
}

// Kills the zygote and waits (bounded) until a new one runs and the pool is
// back to `workers`.
void kill_zygote_and_wait(Zygote& zygote, const Backend& pool, int workers) {
  const pid_t old = zygote.pid();
  REQUIRE(old > 0);
  REQUIRE(kill(old, SIGKILL) == 0);
  REQUIRE(wait_until([&] { return zygote.pid() > 0 && zygote.pid() != old; }, 20s, 2ms));
  REQUIRE(wait_until([&] { return full(pool, workers); }, 20s, 5ms));
}

// Descriptors of `pid` above stderr.
std::vector<std::string> extra_fds(pid_t pid) {
  std::vector<std::string> out;
  for (const auto& [fd, target] : test::fd_targets(pid)) {
    if (fd > 2) out.push_back(std::to_string(fd) + " -> " + target);
  }
  return out;
}

}  // namespace

TEST_CASE("a SIGKILLed zygote is replaced, again and again, and nothing is leaked") {
  auto zygote = test::start_zygote();
  auto pool = make_pool(zygote, 2);
  REQUIRE(pool->submit(photo_job()).get().ok());
  const int fds_before = test::open_fd_count();
  const int maps_before = test::memfd_mappings(getpid());
  const pid_t first = zygote->pid();

  for (int round = 0; round < 5; ++round) {
    kill_zygote_and_wait(*zygote, *pool, 2);
    CHECK(pool->submit(photo_job()).get().ok());
  }
  CHECK(zygote->pid() != first);
  CHECK(zygote->status().replacements == 5);
  CHECK(pool->stats().zygote_restarts == 5);
  // Dead zygotes are reaped (we are their parent); workers are the zygote's.
  CHECK(test::zombies_of(getpid()).empty());
  CHECK(test::open_fd_count() == fds_before);
  CHECK(test::memfd_mappings(getpid()) == maps_before);
}

TEST_CASE("no descriptor of the server reaches a new zygote or its workers") {
  // A descriptor without FD_CLOEXEC (as httplib's sockets may be) and a
  // memfd without MFD_CLOEXEC, open while the zygote is replaced.
  const int plain = open("/dev/null", O_RDONLY);
  REQUIRE(plain >= 0);
  const int memfd = memfd_create("not-for-workers", 0);
  REQUIRE(memfd >= 0);
  auto zygote = test::start_zygote();
  auto pool = make_pool(zygote, 1);
  kill_zygote_and_wait(*zygote, *pool, 1);

  // The zygote: stdio and its control socket (fd 3), nothing else, once it
  // has closed its copies of the last worker's socket and memfd (it does so
  // just after handing them over).
  CHECK(wait_until([&] { return extra_fds(zygote->pid()).size() == 1; }, 10s, 2ms));
  const auto zygote_fds = extra_fds(zygote->pid());
  for (const auto& fd : zygote_fds) MESSAGE("zygote fd " << fd);
  REQUIRE(zygote_fds.size() == 1);
  CHECK(zygote_fds[0].rfind("3 -> socket:", 0) == 0);
  // A worker: its socket and its shared-memory buffer.
  // Read again until it settles: a worker of the old zygote may still be
  // listed until the pool notices its death (it dies by PDEATHSIG, a moment
  // after the pool saw the new zygote). (At start a worker also briefly reads
  // its own /proc/<pid>/maps: pthread's stack lookup.)
  long worker = -1;
  CHECK(wait_until(
      [&] {
        const auto pids = pool->stats().worker_pids;
        worker = pids.empty() ? -1 : pids.front();
        return worker > 0 && test::parent_of(static_cast<pid_t>(worker)) == zygote->pid() &&
               extra_fds(static_cast<pid_t>(worker)).size() == 2;
      },
      10s, 2ms));
  const auto worker_fds = extra_fds(static_cast<pid_t>(worker));
  for (const auto& fd : worker_fds) MESSAGE("worker fd " << fd);
  CHECK(worker_fds.size() == 2);
  int sockets = 0;
  int buffers = 0;
  for (const auto& fd : worker_fds) {
    sockets += fd.find("socket:") != std::string::npos ? 1 : 0;
    buffers += fd.find("/memfd:pixpool-shm") != std::string::npos ? 1 : 0;
  }
  CHECK(sockets == 1);
  CHECK(buffers == 1);
  CHECK(test::command_name(zygote->pid()) == "pixpool-zygote");
  close(plain);
  close(memfd);
}

TEST_CASE("a worker killed mid-job: the job runs again on a fresh worker and succeeds") {
  auto pool = make_pool(test::zygote(), 1);
  const long victim = pool->stats().worker_pids.at(0);
  auto job = pool->submit(photo_job("sleep:1500,blur:5,contour"));
  // Delivered: the worker sleeps in the job's first op.
  REQUIRE(wait_until(
      [&] {
        return test::wait_channel(static_cast<pid_t>(victim)).find("nanosleep") !=
               std::string::npos;
      },
      10s, 2ms));
  REQUIRE(kill(static_cast<pid_t>(victim), SIGKILL) == 0);
  auto out = job.get();
  REQUIRE(out.ok());
  CHECK(out->width == 320);
  CHECK(pool->stats().retried == 1);
  REQUIRE(wait_until([&] { return full(*pool, 1); }, 20s, 5ms));
  CHECK(pool->stats().worker_pids.at(0) != victim);
}

TEST_CASE("a poison job fails with worker_crashed after exactly two workers died") {
  auto pool = make_pool(test::zygote(), 2);
  const BackendStats before = pool->stats();
  auto crashed = pool->submit(photo_job("crash")).get();
  REQUIRE_FALSE(crashed.ok());
  CHECK(crashed.error().code == ErrorCode::worker_crashed);
  CHECK(crashed.error().message.find("two worker processes") != std::string::npos);
  REQUIRE(wait_until([&] { return full(*pool, 2); }, 20s, 5ms));
  const BackendStats after = pool->stats();
  CHECK(after.retried - before.retried == 1);
  CHECK(after.restarts - before.restarts == 2);
  CHECK(pool->submit(photo_job()).get().ok());
}

TEST_CASE("jobs running when the zygote dies are rerun on the new zygote's workers") {
  auto zygote = test::start_zygote();
  auto pool = make_pool(zygote, 2);
  std::vector<std::future<Result<JobOutput>>> jobs;
  jobs.reserve(4);
  for (int i = 0; i < 4; ++i) jobs.push_back(pool->submit(photo_job("sleep:600,blur:5")));
  REQUIRE(wait_until(
      [&] {
        int sleeping = 0;
        for (long pid : pool->stats().worker_pids) {
          sleeping +=
              test::wait_channel(static_cast<pid_t>(pid)).find("nanosleep") != std::string::npos;
        }
        return sleeping == 2;
      },
      10s, 2ms));
  REQUIRE(kill(zygote->pid(), SIGKILL) == 0);
  for (auto& job : jobs) CHECK(job.get().ok());
  CHECK(pool->stats().retried >= 2);
  REQUIRE(wait_until([&] { return full(*pool, 2); }, 20s, 5ms));
}

TEST_CASE("a zygote that cannot be replaced: unavailable with the back-off estimate") {
  ZygoteOptions options;
  options.fail_replacements = 4;  // back-off 100, 200, 400, 800 ms
  auto zygote = test::start_zygote(options);
  auto pool = make_pool(zygote, 1);
  REQUIRE(kill(zygote->pid(), SIGKILL) == 0);
  REQUIRE(wait_until([&] { return pool->stats().state.health == BackendHealth::unavailable; }, 20s,
                     2ms));
  const BackendState state = pool->stats().state;
  CHECK(state.available_in > 0ms);
  CHECK(state.available_in <= 6s);
  CHECK(state.reason.find("failed start") != std::string::npos);
  auto refused = pool->submit(photo_job()).get();
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().code == ErrorCode::unavailable);
  CHECK(refused.error().message.find("(retry after ") != std::string::npos);
  // It comes back by itself once the injected failures are used up.
  REQUIRE(wait_until([&] { return full(*pool, 1); }, 30s, 5ms));
  CHECK(zygote->status().failed_starts == 0);
  CHECK(pool->submit(photo_job()).get().ok());
}

TEST_CASE("the estimate of a backend becomes a Retry-After in whole seconds, at least 1") {
  CHECK(retry_after_seconds(0ms) == 1);
  CHECK(retry_after_seconds(1ms) == 1);
  CHECK(retry_after_seconds(1000ms) == 1);
  CHECK(retry_after_seconds(1001ms) == 2);
  const Error error = unavailable_error("process", {BackendHealth::unavailable, 2500ms, "x"});
  CHECK(error.code == ErrorCode::unavailable);
  CHECK(error.message.find("(retry after 3 s)") != std::string::npos);
}
