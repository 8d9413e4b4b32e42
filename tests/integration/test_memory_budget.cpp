// Memory admission through the real server: 64 concurrent 12 MP uploads stay
// under 0.8 GiB peak PSS and 1.5 GiB peak summed RSS (server plus worker
// processes) on both backends, and every request gets an image or a clear
// 429, never a 5xx.
#include <doctest/doctest.h>
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
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

namespace {

// The performance issue's bound (0.8 GiB) is on what the machine holds: the
// process tree's PSS. Summed RSS counts every page shared between the server,
// the zygote and its 16 idle workers (libraries, the zygote's heap) once per
// process, about 350 MiB more (docs/performance.md); it keeps the older,
// looser bound.
[[maybe_unused]] constexpr long long kPssLimit = 819LL << 20;  // 0.8 GiB
constexpr long long kRssLimit = 1536LL << 20;                  // 1.5 GiB

const std::string& twelve_megapixel_jpeg() {
  static const std::string jpeg =
      test::encode_with_opencv(test::synthetic_image(4032, 3024, 3, 9), ".jpg", 90);
  return jpeg;
}

struct Outcome {
  std::map<int, int> statuses;  // HTTP status -> count
  std::vector<std::string> refusals;
};

// `clients` threads each POST the 12 MP JPEG once, all at the same time.
Outcome post_concurrently(const test::ServerProcess& server, const std::string& backend,
                          int clients) {
  Outcome outcome;
  std::mutex mutex;
  std::atomic<int> ready{0};
  std::vector<std::thread> threads;
  threads.reserve(static_cast<std::size_t>(clients));
  for (int i = 0; i < clients; ++i) {
    threads.emplace_back([&] {
      auto client = client_for(server);
      ++ready;
      // Start together (a barrier with a deadline: never hangs the test).
      (void)test::wait_until([&] { return ready.load() >= clients; }, std::chrono::seconds(60),
                             std::chrono::milliseconds(1));
      auto res =
          client.Post("/v1/process?backend=" + backend, twelve_megapixel_jpeg(), "image/jpeg");
      std::lock_guard lock(mutex);
      const int status = res ? res->status : -1;
      ++outcome.statuses[status];
      if (status != 200) {
        outcome.refusals.push_back(res ? res->body : httplib::to_string(res.error()));
      }
    });
  }
  for (auto& t : threads) t.join();
  return outcome;
}

}  // namespace

struct Peaks {
  long long rss = 0;  // summed over the processes: shared pages count in each
  long long pss = 0;  // shared pages split among their sharers: what is really held
};

// Samples the RSS and PSS of the server and all its processes every 5 ms
// while `work` runs; returns the largest totals seen.
template <class Work>
Peaks peak_tree_memory(pid_t server, Work&& work) {
  std::atomic<bool> done{false};
  Peaks peak;
  std::thread sampler([&] {
    while (!done.load()) {
      peak.rss = std::max(peak.rss, test::tree_rss_bytes(server));
      peak.pss = std::max(peak.pss, test::tree_pss_bytes(server));
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });
  work();
  done = true;
  sampler.join();
  peak.rss = std::max(peak.rss, test::peak_rss_bytes(server));
  return peak;
}

TEST_CASE("64 concurrent 12 MP requests stay under 0.8 GiB peak PSS on both backends") {
  // As on a many-core machine, the backends may run far more images at once
  // than memory allows: 32 TBB threads, 16 worker processes, 68 processing
  // slots (--max-processing; 72 HTTP threads keep 4 for health checks), so
  // every upload is inside the server at once. Only the default pixel budget
  // stands between that and 64 x 72 MB of pixels: without it the tbb peak
  // measured 2.6 GiB.
  for (const std::string backend : {"tbb", "process"}) {
    CAPTURE(backend);
    test::ServerProcess server({"--access-log", "on", "--http-threads", "72", "--max-processing",
                                "68", "--tbb-threads", "32", "--workers", "16", "--max-body-bytes",
                                "16MiB", "--admission-wait", "120s"});
    Outcome outcome;
    const Peaks peaks =
        peak_tree_memory(server.pid(), [&] { outcome = post_concurrently(server, backend, 64); });
    const long long peak = peaks.rss;
    MESSAGE(backend << ": peak RSS (server + workers) " << (peak >> 20) << " MiB, PSS "
                    << (peaks.pss >> 20) << " MiB; statuses " << outcome.statuses.size()
                    << " kind(s), 200 x "
                    << (outcome.statuses.contains(200) ? outcome.statuses.at(200) : 0));
    for (const auto& [status, count] : outcome.statuses) MESSAGE(status << " x " << count);
    for (const auto& body : outcome.refusals) MESSAGE(body);
    if (outcome.statuses.size() != 1) MESSAGE(server.log());
    CHECK(outcome.statuses.size() == 1);  // a generous wait: every request gets its image
    CHECK(outcome.statuses.count(200) == 1);
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    MESSAGE("sanitizer build: shadow memory inflates RSS, the bounds are not checked (peak "
            << (peak >> 20) << " MiB, bound " << (kRssLimit >> 20) << " MiB)");
#else
    CHECK(peaks.pss < kPssLimit);
    CHECK(peak < kRssLimit);
#endif
  }
}

TEST_CASE("past the admission wait, jobs over the memory budget get 429 naming the budget") {
  // Room for one 12 MP image at a time, and no patience: of 8 concurrent
  // requests some must be refused, and those say why.
  test::ServerProcess server({"--access-log", "off", "--max-inflight-pixels", "13000000",
                              "--admission-wait", "0", "--max-body-bytes", "16MiB"});
  Outcome outcome = post_concurrently(server, "tbb", 8);
  CHECK(outcome.statuses[200] >= 1);
  CHECK(outcome.statuses[429] >= 1);
  CHECK(outcome.statuses[200] + outcome.statuses[429] == 8);
  for (const std::string& body : outcome.refusals) {
    CHECK(body.find("memory budget") != std::string::npos);
    CHECK(body.find("queue_full") != std::string::npos);
  }
}
