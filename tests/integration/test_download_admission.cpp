// Issue 11: downloads do not hold compute, and work for a client that has
// gone away is dropped. Against the real server on loopback; the slow origin
// is a cpp-httplib server in this test that holds its answers until released.
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <future>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/http_client.hpp"
#include "tests/support/images.hpp"
#include "tests/support/server_process.hpp"
#include "tests/support/wait.hpp"

namespace {

using namespace std::chrono_literals;
using pixpool::test::ServerProcess;
using pixpool::test::wait_until;
using Clock = std::chrono::steady_clock;

// An origin whose /hold answers (with a photo) only once release() is called,
// or after 20 s, so a test that fails cannot hang.
class HoldingOrigin {
 public:
  HoldingOrigin() : photo_(pixpool::test::read_test_data("fruits_320x240.jpg")) {
    server_.new_task_queue = [] { return new httplib::ThreadPool(40); };
    server_.Get("/hold", [this](const httplib::Request&, httplib::Response& res) {
      ++in_flight_;
      const auto give_up = Clock::now() + 20s;
      while (!released_ && Clock::now() < give_up) std::this_thread::sleep_for(5ms);
      --in_flight_;
      res.set_content(photo_, "image/jpeg");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    REQUIRE(port_ > 0);
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    if (!wait_until([this] { return server_.is_running(); }, 10s)) {
      server_.stop();
      thread_.join();
      FAIL("the holding origin did not start within 10 s");
    }
  }
  ~HoldingOrigin() {
    release();
    server_.stop();
    thread_.join();
  }
  HoldingOrigin(const HoldingOrigin&) = delete;
  HoldingOrigin& operator=(const HoldingOrigin&) = delete;

  void release() { released_ = true; }
  int in_flight() const { return in_flight_.load(); }
  std::string hold_url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/hold"; }

 private:
  std::string photo_;
  httplib::Server server_;
  std::atomic<bool> released_{false};
  std::atomic<int> in_flight_{0};
  int port_ = 0;
  std::thread thread_;
};

struct Answer {
  int status = -1;
  std::string body;
  std::string retry_after;
  std::string server_timing;
};

Answer get(int port, const std::string& path) {
  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(60, 0);
  auto res = client.Get(path);
  if (!res) return {};
  return {res->status, res->body, res->get_header_value("Retry-After"),
          res->get_header_value("Server-Timing")};
}

std::string url_path(const HoldingOrigin& origin) {
  return "/v1/process?ops=blur:1&url=" + origin.hold_url();
}

// The value of one sample line of /metrics, e.g.
// pixpool_jobs_abandoned_total{backend="tbb"}; -1 when it is absent.
double metric(const ServerProcess& server, const std::string& series) {
  auto res = pixpool::test::client_for(server).Get("/metrics");
  if (!res) return -1;
  const std::string& text = res->body;
  const std::size_t at = text.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::atof(text.c_str() + at + 1 + series.size() + 1);
}

// Sends a complete POST with `body` on a fresh connection and returns the
// socket without reading the answer.
int send_request(int port, const std::string& path, const std::string& body) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0);
  const std::string request = "POST " + path +
                              " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/jpeg\r\n"
                              "Content-Length: " +
                              std::to_string(body.size()) + "\r\n\r\n" + body;
  std::size_t sent = 0;
  while (sent < request.size()) {
    const ssize_t n = send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    REQUIRE(n > 0);
    sent += static_cast<std::size_t>(n);
  }
  return fd;
}

int count_of(const std::string& text, const std::string& needle) {
  int n = 0;
  for (std::size_t at = text.find(needle); at != std::string::npos;
       at = text.find(needle, at + 1)) {
    ++n;
  }
  return n;
}

}  // namespace

TEST_CASE("url= requests waiting on a slow origin hold no processing slot: uploads still succeed") {
  HoldingOrigin origin;
  // 8 HTTP threads, 4 reserved: 4 processing slots. Six url= requests wait
  // on the origin (more than the slots), two threads stay for uploads.
  ServerProcess server({"--http-threads", "8", "--io-threads", "8", "--allow-private-sources", "on",
                        "--access-log", "off"});
  const std::string photo = pixpool::test::read_test_data("baboon_320x240.jpg");
  std::vector<std::future<Answer>> hanging;
  hanging.reserve(6);
  for (int i = 0; i < 6; ++i) {
    hanging.push_back(
        std::async(std::launch::async, [&] { return get(server.port(), url_path(origin)); }));
  }
  const bool all_downloading = wait_until([&] { return origin.in_flight() == 6; }, 20s, 10ms);
  if (!all_downloading) origin.release();  // let the url= requests end before failing
  REQUIRE_MESSAGE(all_downloading, "only " << origin.in_flight()
                                           << " url= requests reached the origin (others refused)");

  int uploads_ok = 0;
  for (int i = 0; i < 5; ++i) {
    auto res =
        pixpool::test::client_for(server).Post("/v1/process?ops=blur:1", photo, "image/jpeg");
    REQUIRE(res);
    CHECK_MESSAGE(res->status == 200, res->body);
    if (res->status == 200) ++uploads_ok;
  }
  CHECK(uploads_ok == 5);
  CHECK(origin.in_flight() == 6);  // the downloads were still hanging meanwhile

  origin.release();
  // All six bytes arrive at once for four slots: a url= request takes its
  // slot only now, so some may be told to retry (429 queue_full), never
  // before their download.
  int served = 0;
  for (auto& f : hanging) {
    const Answer answer = f.get();
    CHECK_MESSAGE((answer.status == 200 || answer.status == 429), answer.body);
    if (answer.status != 200) continue;
    ++served;
    // The download time is still reported to the client.
    CHECK(answer.server_timing.find("download;dur=") != std::string::npos);
  }
  CHECK(served >= 4);
}

TEST_CASE("beyond io-threads running and --download-queue waiting: 429 download_queue_full") {
  HoldingOrigin origin;
  // The environment variable, to cover it; one download runs, one waits.
  setenv("PIXPOOL_DOWNLOAD_QUEUE", "1", 1);
  ServerProcess server({"--http-threads", "16", "--io-threads", "1", "--allow-private-sources",
                        "on", "--access-log", "off"});
  unsetenv("PIXPOOL_DOWNLOAD_QUEUE");
  std::vector<std::future<Answer>> requests;
  requests.reserve(3);
  for (int i = 0; i < 3; ++i) {
    requests.push_back(
        std::async(std::launch::async, [&] { return get(server.port(), url_path(origin)); }));
  }
  // Exactly one of the three is refused, at once, while the others wait.
  std::optional<Answer> refused;
  const bool answered = wait_until(
      [&] {
        for (auto& f : requests) {
          if (f.valid() && f.wait_for(0s) == std::future_status::ready) {
            refused = f.get();
            return true;
          }
        }
        return false;
      },
      10s, 5ms);
  origin.release();
  REQUIRE(answered);
  CHECK(refused->status == 429);
  CHECK(refused->retry_after == "1");
  const auto body = nlohmann::json::parse(refused->body);
  CHECK(body["error"]["code"] == "download_queue_full");
  CHECK(body["error"]["message"].get<std::string>().find("--download-queue") != std::string::npos);
  for (auto& f : requests) {
    if (!f.valid()) continue;
    const Answer answer = f.get();
    CHECK_MESSAGE(answer.status == 200, answer.body);
  }
}

TEST_CASE("queued jobs of clients that closed their connections are dropped, unrun") {
  // One TBB thread: one sleep runs, the rest queue behind it.
  ServerProcess server({"--http-threads", "16", "--tbb-threads", "1", "--enable-test-ops", "on"});
  const std::string photo = pixpool::test::read_test_data("fruits_320x240.jpg");
  const int port = server.port();
  auto running = std::async(std::launch::async, [&] {
    httplib::Client client("127.0.0.1", port);
    client.set_read_timeout(60, 0);
    auto res = client.Post("/v1/process?ops=sleep:2000", photo, "image/jpeg");
    return res ? res->status : -1;
  });
  REQUIRE(wait_until([&] { return metric(server, "pixpool_inflight{backend=\"tbb\"}") == 1; }, 20s,
                     10ms));

  // Five clients queue 2 s jobs behind it, then go away.
  constexpr int kAbandoned = 5;
  std::vector<int> sockets;
  sockets.reserve(kAbandoned);
  for (int i = 0; i < kAbandoned; ++i) {
    sockets.push_back(send_request(port, "/v1/process?ops=sleep:2000", photo));
  }
  REQUIRE(wait_until(
      [&] { return metric(server, "pixpool_queue_depth{backend=\"tbb\"}") == kAbandoned; }, 20s,
      10ms));
  for (const int fd : sockets) close(fd);

  // Dropped from the queue while the first job still runs.
  REQUIRE(wait_until(
      [&] { return metric(server, "pixpool_jobs_abandoned_total{backend=\"tbb\"}") == kAbandoned; },
      5s, 10ms));
  CHECK(metric(server, "pixpool_queue_depth{backend=\"tbb\"}") == 0);

  // A live request behind them waits for the running job only, not for 5 x 2 s.
  const auto live_start = Clock::now();
  auto live = pixpool::test::client_for(server).Post("/v1/process?ops=blur:1", photo, "image/jpeg");
  const auto live_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - live_start).count();
  REQUIRE(live);
  CHECK(live->status == 200);
  CHECK(live_ms < 3000);
  CHECK(running.get() == 200);

  // The sleeps of the abandoned requests never ran: two images done, five dropped.
  CHECK(metric(server, "pixpool_images_total{backend=\"tbb\",outcome=\"ok\"}") == 2);
  CHECK(metric(server, "pixpool_images_total{backend=\"tbb\",outcome=\"client_gone\"}") ==
        kAbandoned);
  // One access-log line each, status 499 (client closed request).
  CHECK(wait_until([&] { return count_of(server.log(), " 499 ") == kAbandoned; }, 5s, 20ms));
}
