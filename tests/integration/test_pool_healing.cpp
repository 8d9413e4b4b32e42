// The process pool heals itself, through the real server: the zygote
// SIGKILLed (repeatedly, under load) is replaced and the pool refilled
// within 2 s, with no zombie, leaked descriptor or shared-memory mapping;
// health is per backend; a backend that cannot take work says when it will.
#include <doctest/doctest.h>
#include <httplib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/http_client.hpp"
#include "tests/support/images.hpp"
#include "tests/support/process_info.hpp"
#include "tests/support/server_process.hpp"
#include "tests/support/wait.hpp"

using namespace pixpool;
using pixpool::test::client_for;
using pixpool::test::wait_until;
using namespace std::chrono_literals;

namespace {

using Clock = std::chrono::steady_clock;

// The bound on recovery; sanitizer builds start processes far slower.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr auto kRecoveryBound = 10s;
#else
constexpr auto kRecoveryBound = 2s;
#endif

nlohmann::json get_json(const test::ServerProcess& server, const std::string& path,
                        int* status = nullptr) {
  auto res = client_for(server).Get(path);
  if (!res) return {};
  if (status != nullptr) *status = res->status;
  return nlohmann::json::parse(res->body, nullptr, false);
}

pid_t zygote_of(const test::ServerProcess& server) {
  for (pid_t child : test::children_of(server.pid())) {
    if (test::command_name(child) == "pixpool-zygote" && test::process_alive(child)) return child;
  }
  return -1;
}

// The process backend at full strength: ready, `workers` workers, a live zygote other than `old`.
bool healed(const test::ServerProcess& server, int workers, pid_t old) {
  int status = 0;
  const auto body = get_json(server, "/readyz", &status);
  if (status != 200 || !body.contains("backends")) return false;
  const auto& process = body["backends"]["process"];
  const pid_t zygote = zygote_of(server);
  return process["state"] == "ready" && process["workers"] == workers && zygote > 0 &&
         zygote != old;
}

double metric(const test::ServerProcess& server, const std::string& series) {
  auto res = client_for(server).Get("/metrics");
  if (!res) return -1;
  const auto at = res->body.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::strtod(res->body.c_str() + at + series.size() + 2, nullptr);
}

std::string error_code(const std::string& body) {
  const auto json = nlohmann::json::parse(body, nullptr, false);
  if (json.is_discarded() || !json.contains("error")) return "";
  return json["error"]["code"];
}

// Descriptors of `pid` above stderr.
std::vector<std::string> extra_fds(pid_t pid) {
  std::vector<std::string> out;
  for (const auto& [fd, target] : test::fd_targets(pid)) {
    if (fd > 2) out.push_back(target);
  }
  return out;
}

}  // namespace

TEST_CASE("SIGKILLing the zygote 5 times: ready again within 2 s, no zombie, fd or memfd leak") {
  test::ServerProcess server({"--workers", "2"});
  const std::string photo = test::read_test_data("baboon_320x240.jpg");
  auto warm = client_for(server).Post("/v1/process?backend=process", photo, "image/jpeg");
  REQUIRE(warm);
  REQUIRE(warm->status == 200);
  REQUIRE(wait_until([&] { return healed(server, 2, -1); }, 20s, 10ms));
  // TCP sockets come and go with clients (the probes above); anything else
  // the server holds must be the same after five zygotes.
  const auto fds_before = test::fd_targets_except_tcp(server.pid());
  const int maps_before = test::memfd_mappings(server.pid());

  // A client connection stays open across the kills: its socket must not
  // reach the new zygotes.
  auto keep_alive = client_for(server);
  keep_alive.set_keep_alive(true);
  REQUIRE(keep_alive.Get("/healthz"));

  std::vector<double> took_ms;
  for (int round = 0; round < 5; ++round) {
    const pid_t zygote = zygote_of(server);
    REQUIRE(zygote > 0);
    const auto killed_at = Clock::now();
    REQUIRE(kill(zygote, SIGKILL) == 0);
    const bool back = wait_until([&] { return healed(server, 2, zygote); }, kRecoveryBound, 5ms);
    took_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - killed_at).count());
    CHECK_MESSAGE(back, "round " << round << ": not ready within the bound");
    REQUIRE(wait_until([&] { return healed(server, 2, zygote); }, 20s, 10ms));
    auto res = keep_alive.Post("/v1/process?backend=process", photo, "image/jpeg");
    REQUIRE(res);
    CHECK(res->status == 200);
  }
  MESSAGE("zygote SIGKILL to ready (ms): " << took_ms[0] << " " << took_ms[1] << " " << took_ms[2]
                                           << " " << took_ms[3] << " " << took_ms[4]);

  // The new zygote holds stdio and its control socket; a worker its socket
  // and its shared buffer: no listening or client socket, no other memfd.
  // (The zygote closes its copies of a worker's fds just after handing them over.)
  const pid_t zygote = zygote_of(server);
  CHECK(wait_until([&] { return extra_fds(zygote).size() == 1; }, 10s, 2ms));
  const auto pids = get_json(server, "/readyz")["backends"]["process"]["worker_pids"];
  REQUIRE(pids.size() == 2);
  for (const auto& pid : pids) {
    // (At start a worker briefly reads its own /proc/<pid>/maps.)
    CHECK(wait_until([&] { return extra_fds(pid.get<pid_t>()).size() == 2; }, 10s, 2ms));
    const auto fds = extra_fds(pid.get<pid_t>());
    CHECK(std::count_if(fds.begin(), fds.end(), [](const std::string& t) {
            return t.find("/memfd:pixpool-shm") != std::string::npos;
          }) == 1);
  }
  CHECK(test::zombies_of(server.pid()).empty());
  CHECK(test::zombies_of(zygote).empty());
  const bool fds_back = wait_until(
      [&] { return test::fd_targets_except_tcp(server.pid()).size() == fds_before.size(); }, 10s,
      10ms);
  if (!fds_back) {
    std::string listed;
    for (const auto& [fd, target] : test::fd_targets_except_tcp(server.pid())) {
      listed += " " + std::to_string(fd) + "=" + target;
    }
    MESSAGE("before: " << fds_before.size() << " fds, now:" << listed);
  }
  CHECK(fds_back);
  CHECK(test::memfd_mappings(server.pid()) == maps_before);
  CHECK(metric(server, "pixpool_zygote_restarts_total{backend=\"process\"}") == 5);
}

TEST_CASE("SIGKILLing the zygote under load: no failed request, tbb unaffected, /healthz 200") {
  test::ServerProcess server({"--workers", "2", "--enable-test-ops", "on"});
  const std::string photo = test::read_test_data("baboon_320x240.jpg");
  std::atomic<bool> done{false};
  std::atomic<int> process_ok{0}, process_failed{0}, tbb_ok{0}, tbb_failed{0}, health_bad{0};
  std::vector<std::string> failures;
  std::mutex failures_mutex;

  auto client_loop = [&](const std::string& path, std::atomic<int>& ok, std::atomic<int>& bad) {
    auto client = client_for(server);
    while (!done) {
      auto res = client.Post(path, photo, "image/jpeg");
      if (res && res->status == 200) {
        ++ok;
      } else {
        ++bad;
        std::lock_guard lock(failures_mutex);
        failures.push_back(
            path + ": " +
            (res ? std::to_string(res->status) + " " + res->body : std::string("no answer")));
      }
    }
  };
  std::vector<std::thread> threads;
  threads.reserve(4);
  for (int i = 0; i < 2; ++i) {
    threads.emplace_back(client_loop, "/v1/process?backend=process&ops=sleep:60,blur:5,contour",
                         std::ref(process_ok), std::ref(process_failed));
  }
  threads.emplace_back(client_loop, "/v1/process?backend=tbb&ops=blur:5,contour", std::ref(tbb_ok),
                       std::ref(tbb_failed));
  threads.emplace_back([&] {
    auto client = client_for(server);
    while (!done) {
      auto res = client.Get("/healthz");
      if (!res || res->status != 200) ++health_bad;
      std::this_thread::sleep_for(20ms);  // a probe's pace, not a wait for a condition
    }
  });

  for (int round = 0; round < 5; ++round) {
    // Kills spaced by progress (each after new answers), and each while a
    // job is in a worker: a job may still live through several of them.
    const int answered = process_ok.load();
    REQUIRE(wait_until([&] { return process_ok >= answered + 2; }, 20s, 5ms));
    REQUIRE(wait_until(
        [&] { return get_json(server, "/readyz")["backends"]["process"]["busy"] >= 1; }, 20s, 2ms));
    const pid_t zygote = zygote_of(server);
    REQUIRE(zygote > 0);
    REQUIRE(kill(zygote, SIGKILL) == 0);
    CHECK(wait_until([&] { return healed(server, 2, zygote); }, 20s, 10ms));
  }
  const int process_before_stop = process_ok.load();
  CHECK(wait_until([&] { return process_ok > process_before_stop + 4; }, 20s, 10ms));
  done = true;
  for (auto& t : threads) t.join();

  MESSAGE("process ok " << process_ok.load() << ", tbb ok " << tbb_ok.load() << ", retried "
                        << metric(server, "pixpool_jobs_retried_total{backend=\"process\"}"));
  for (const auto& f : failures) MESSAGE(f);
  CHECK(process_failed == 0);
  CHECK(tbb_failed == 0);
  CHECK(health_bad == 0);
  CHECK(process_ok > 10);
  CHECK(tbb_ok > 10);
  CHECK(metric(server, "pixpool_jobs_retried_total{backend=\"process\"}") >= 5);
  CHECK(test::zombies_of(server.pid()).empty());
}

TEST_CASE("a worker SIGKILLed mid-job: the request succeeds and the retry is counted") {
  test::ServerProcess server({"--workers", "2", "--enable-test-ops", "on"});
  const std::string photo = test::read_test_data("fruits_320x240.jpg");
  std::optional<httplib::Result> answer;
  std::jthread request([&] {
    answer = client_for(server).Post("/v1/process?backend=process&ops=sleep:1500,contour", photo,
                                     "image/jpeg");
  });
  // Delivered: a worker sleeps in the job's first op. Kill that one.
  pid_t victim = -1;
  REQUIRE(wait_until(
      [&] {
        const auto ready = get_json(server, "/readyz");  // outlives the loop below
        for (const auto& pid : ready["backends"]["process"]["worker_pids"]) {
          if (test::wait_channel(pid.get<pid_t>()).find("nanosleep") != std::string::npos) {
            victim = pid.get<pid_t>();
          }
        }
        return victim > 0;
      },
      20s, 2ms));
  CHECK(kill(victim, SIGKILL) == 0);
  request.join();
  REQUIRE(answer.has_value());
  REQUIRE(*answer);
  CHECK((*answer)->status == 200);
  CHECK(!test::decode_with_opencv((*answer)->body).empty());
  CHECK(metric(server, "pixpool_jobs_retried_total{backend=\"process\"}") == 1);
  CHECK(get_json(server, "/v1/backends")["process"]["jobs_retried"] == 1);
}

TEST_CASE("a poison job: worker_crashed after exactly two workers died, the pool back to full") {
  test::ServerProcess server({"--workers", "2", "--enable-test-ops", "on"});
  const std::string photo = test::read_test_data("fruits_320x240.jpg");
  auto res = client_for(server).Post("/v1/process?backend=process&ops=crash", photo, "image/jpeg");
  REQUIRE(res);
  CHECK(res->status == 500);
  CHECK(error_code(res->body) == "worker_crashed");
  REQUIRE(wait_until([&] { return healed(server, 2, -1); }, 20s, 10ms));
  CHECK(metric(server, "pixpool_worker_restarts_total{backend=\"process\"}") == 2);
  CHECK(metric(server, "pixpool_jobs_retried_total{backend=\"process\"}") == 1);
  auto after = client_for(server).Post("/v1/process?backend=process", photo, "image/jpeg");
  REQUIRE(after);
  CHECK(after->status == 200);
}

TEST_CASE("a zygote that cannot be replaced: 503 with a true Retry-After, states per backend") {
  // The first 5 replacements fail: back-off 100, 200, 400, 800, 1600 ms.
  setenv("PIXPOOL_TEST_ZYGOTE_FAILURES", "5", 1);
  test::ServerProcess server({"--workers", "2", "--enable-test-ops", "on"});
  unsetenv("PIXPOOL_TEST_ZYGOTE_FAILURES");
  const std::string photo = test::read_test_data("fruits_320x240.jpg");
  REQUIRE(wait_until([&] { return healed(server, 2, -1); }, 20s, 10ms));
  const pid_t zygote = zygote_of(server);
  REQUIRE(kill(zygote, SIGKILL) == 0);
  // Jobs arriving before the first failed start are accepted and wait (at
  // most 5 s) for workers; refusals start once a replacement has failed.
  REQUIRE(wait_until(
      [&] { return get_json(server, "/readyz")["backends"]["process"]["state"] == "unavailable"; },
      20s, 5ms));

  // Every refusal's Retry-After matches the estimate /readyz shows next to
  // it (rounded up, >= 1), and it grows with the back-off: not a constant.
  long long largest = 0;
  int refusals = 0;
  bool readyz_showed_it = false;
  const bool saw_growth = wait_until(
      [&] {
        auto res = client_for(server).Post("/v1/process?backend=process", photo, "image/jpeg");
        if (!res || res->status != 503) return false;
        ++refusals;
        CHECK(error_code(res->body) == "unavailable");
        const long long retry_after = std::stoll(res->get_header_value("Retry-After"));
        int status = 0;
        const auto ready = get_json(server, "/readyz", &status);
        const auto& process = ready["backends"]["process"];
        if (process["state"] == "unavailable") {
          readyz_showed_it = true;
          const long long estimate = (process["available_in_ms"].get<long long>() + 999) / 1000;
          CHECK(retry_after >= 1);
          CHECK(std::abs(retry_after - std::max(1LL, estimate)) <= 1);
          CHECK(status == 200);  // the default backend (tbb) serves: stays in rotation
          CHECK(ready["status"] == "degraded");
          CHECK(ready["backends"]["tbb"]["state"] == "ready");
        }
        largest = std::max(largest, retry_after);
        return retry_after >= 2;
      },
      20s, 20ms);
  CHECK(saw_growth);
  CHECK(refusals > 0);
  CHECK(readyz_showed_it);
  MESSAGE("largest Retry-After seen: " << largest << " s");
  auto health = client_for(server).Get("/healthz");
  REQUIRE(health);
  CHECK(health->status == 200);
  auto tbb = client_for(server).Post("/v1/process?backend=tbb", photo, "image/jpeg");
  REQUIRE(tbb);
  CHECK(tbb->status == 200);
  const auto backends = get_json(server, "/v1/backends");
  CHECK(backends["tbb"]["state"] == "ready");

  // Once the injected failures are used up it heals by itself.
  REQUIRE(wait_until([&] { return healed(server, 2, zygote); }, 30s, 20ms));
  auto back = client_for(server).Post("/v1/process?backend=process", photo, "image/jpeg");
  REQUIRE(back);
  CHECK(back->status == 200);
  CHECK(server.log().find("cannot start a worker zygote") != std::string::npos);
}

TEST_CASE("/healthz fails only when no backend can take work") {
  test::ServerProcess server({"--workers", "1"});
  int status = 0;
  const auto health = get_json(server, "/healthz", &status);
  CHECK(status == 200);
  CHECK(health["backends"]["tbb"] == "ready");
  CHECK(health["backends"]["process"] == "ready");
  const auto ready = get_json(server, "/readyz", &status);
  CHECK(status == 200);
  CHECK(ready["status"] == "ready");
  CHECK(ready["default_backend"] == "tbb");
  CHECK(ready["backends"]["process"]["available_in_ms"] == 0);
}
