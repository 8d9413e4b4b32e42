// Cluster mode: real replicas (the pixpool binary) sharing a real
// redis-server through --store redis://... Any replica answers for any job,
// a SIGKILLed replica's items are finished by another, cancellation and
// progress reach every replica, and Redis going away costs /v1/process
// nothing while job routes answer 503 store_unavailable until it is back.
#include <doctest/doctest.h>
#include <httplib.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "tests/support/http_client.hpp"
#include "tests/support/images.hpp"
#include "tests/support/redis_server.hpp"
#include "tests/support/server_process.hpp"
#include "tests/support/wait.hpp"

using namespace pixpool;
using pixpool::test::client_for;
using pixpool::test::wait_until;
using namespace std::chrono_literals;

namespace {

// A replica of the cluster: the real binary on `redis`, named `name`.
std::vector<std::string> replica_args(const test::RedisServer& redis, const std::string& name,
                                      std::vector<std::string> extra = {},
                                      const std::string& reclaim_after = "1s") {
  std::vector<std::string> args = {"--store",         redis.url(),   "--replica-id",      name,
                                   "--workers",       "1",           "--tbb-threads",     "1",
                                   "--reclaim-after", reclaim_after, "--enable-test-ops", "on"};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

// POSTs `count` copies of a small photo as one job with `query`; returns the
// 202 body (throws on anything else, so the test stops there).
nlohmann::json post_job(const test::ServerProcess& server, int count, const std::string& query) {
  const std::string photo = test::read_test_data("fruits_320x240.jpg");
  httplib::MultipartFormDataItems form;
  for (int i = 0; i < count; ++i) {
    form.push_back({"image", photo, "photo" + std::to_string(i) + ".jpg", "image/jpeg"});
  }
  auto res = client_for(server).Post("/v1/jobs" + query, form);
  REQUIRE(res);
  REQUIRE_MESSAGE(res->status == 202, res->body);
  return nlohmann::json::parse(res->body);
}

nlohmann::json get_json(const test::ServerProcess& server, const std::string& path,
                        int* status = nullptr) {
  auto res = client_for(server).Get(path);
  if (!res) return {};
  if (status != nullptr) *status = res->status;
  return nlohmann::json::parse(res->body, nullptr, false);
}

double metric(const test::ServerProcess& server, const std::string& name) {
  auto res = client_for(server).Get("/metrics");
  if (!res) return -1;
  const auto at = res->body.find("\n" + name + " ");
  if (at == std::string::npos) return -1;
  return std::stod(res->body.substr(at + name.size() + 2));
}

// Where each thread of `pid` sleeps (wchan), counted: for failure messages.
std::string thread_waits(pid_t pid) {
  std::map<std::string, int> waits;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    ++waits[test::read_file(it->path().string() + "/wchan")];
  }
  std::string out;
  for (const auto& [wait, n] : waits) out += wait + " x" + std::to_string(n) + ", ";
  return out;
}

std::size_t thread_count(pid_t pid) {
  std::size_t n = 0;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    ++n;
  }
  return n;
}

// Threads of `server` other than its HTTP connection threads. Reading the
// gauge is itself a connection, which may start a connection thread after
// the count: the count is taken between two equal readings of the gauge, so
// that no connection thread started or ended while it was taken (a reading
// that mixed them would be one low, and a baseline one low fails every
// later comparison).
double threads_besides_connections(const test::ServerProcess& server) {
  double besides = -1;
  const bool steady = wait_until(
      [&] {
        const double connections = metric(server, "pixpool_http_connection_threads");
        const auto threads = static_cast<double>(thread_count(server.pid()));
        if (connections < 0 || metric(server, "pixpool_http_connection_threads") != connections) {
          return false;
        }
        besides = threads - connections;
        return true;
      },
      10s, 20ms);
  REQUIRE_MESSAGE(steady, "pixpool_http_connection_threads never read the same twice in a row");
  return besides;
}

bool job_over(const test::ServerProcess& server, const std::string& id) {
  const auto job = get_json(server, "/v1/jobs/" + id);
  return job.is_object() && job.contains("state") && job["state"] != "running";
}

// Item indices in the order an SSE stream delivered them, and whether it
// ended with `done`.
struct EventStream {
  std::vector<int> indices;
  bool done = false;
};

EventStream read_events(const test::ServerProcess& server, const std::string& id) {
  const auto out =
      test::run_command("curl -s -N -m 60 " + server.base_url() + "/v1/jobs/" + id + "/events");
  EventStream s;
  std::size_t at = 0;
  while ((at = out.output.find("event: item\ndata: ", at)) != std::string::npos) {
    at += 18;
    const auto item = nlohmann::json::parse(out.output.substr(at, out.output.find('\n', at) - at));
    s.indices.push_back(item["index"].get<int>());
  }
  s.done = out.output.find("event: done") != std::string::npos;
  return s;
}

}  // namespace

TEST_CASE("cluster: a job accepted by one replica is served whole by another") {
  if (!test::RedisServer::available()) {
    MESSAGE("redis-server is not installed (scripts/setup test): skipped");
    return;
  }
  test::RedisServer redis;
  test::ServerProcess a(replica_args(redis, "a"));
  test::ServerProcess b(replica_args(redis, "b"));
  const auto job = post_job(a, 12, "?ops=sleep:50,blur:2");
  const std::string id = job["id"];
  CHECK(id.find('-') == std::string::npos);  // no replica prefix with a shared store

  // Events through the other replica: every item once, then done.
  const EventStream stream = read_events(b, id);
  CHECK(stream.done);
  CHECK(stream.indices.size() == 12);
  CHECK(std::set<int>(stream.indices.begin(), stream.indices.end()).size() == 12);

  int status = 0;
  const auto body = get_json(b, "/v1/jobs/" + id, &status);
  CHECK(status == 200);
  CHECK(body["state"] == "done");
  CHECK(body["totals"]["succeeded"] == 12);
  std::set<std::string> replicas;
  for (const auto& item : body["items"]) {
    replicas.insert(item.value("replica", ""));
    // Every result is fetchable from either replica.
    auto from_a = client_for(a).Get(item["result"].get<std::string>());
    auto from_b = client_for(b).Get(item["result"].get<std::string>());
    REQUIRE(from_a);
    REQUIRE(from_b);
    CHECK(from_a->status == 200);
    CHECK(from_a->get_header_value("Content-Type") == "image/jpeg");
    CHECK(from_a->body == from_b->body);
  }
  CHECK(replicas == std::set<std::string>{"a", "b"});  // both pulled from the one queue

  auto archive = client_for(b).Get("/v1/jobs/" + id + "/archive");
  REQUIRE(archive);
  CHECK(archive->status == 200);
  CHECK(archive->get_header_value("X-Pixpool-Replica") == "b");

  // DELETE through either replica: the job is over, nothing to cancel.
  auto cancelled = client_for(a).Delete("/v1/jobs/" + id);
  REQUIRE(cancelled);
  CHECK(cancelled->status == 200);
  CHECK(nlohmann::json::parse(cancelled->body)["cancelled_now"] == 0);
  CHECK(get_json(b, "/v1/jobs/0123456789abcdef0123456789abcdef", &status).is_object());
  CHECK(status == 404);

  // A synchronous batch waits on the shared queue as well.
  const std::string photo = test::read_test_data("fruits_320x240.jpg");
  httplib::MultipartFormDataItems form = {{"image", photo, "one.jpg", "image/jpeg"},
                                          {"image", photo, "two.jpg", "image/jpeg"}};
  auto batch = client_for(b).Post("/v1/batch", form);
  REQUIRE(batch);
  CHECK(batch->status == 200);
  CHECK(nlohmann::json::parse(batch->body)["totals"]["succeeded"] == 2);
}

TEST_CASE("cluster: a SIGKILLed replica's claimed items are finished by another, once each") {
  if (!test::RedisServer::available()) {
    MESSAGE("redis-server is not installed (scripts/setup test): skipped");
    return;
  }
  test::RedisServer redis;
  // Only `a` runs at first: it claims items, then dies mid-job.
  auto a = std::make_unique<test::ServerProcess>(replica_args(redis, "a"));
  const auto job = post_job(*a, 10, "?ops=sleep:300");
  const std::string id = job["id"];
  REQUIRE(wait_until(
      [&] { return get_json(*a, "/v1/jobs/" + id)["totals"]["done"].get<int>() >= 2; }, 30s, 20ms));
  REQUIRE(metric(*a, "pixpool_cluster_queue_claimed") >= 1);
  a->stop(SIGKILL);
  a.reset();

  test::ServerProcess b(replica_args(redis, "b"));
  REQUIRE(wait_until([&] { return job_over(b, id); }, 60s, 50ms));
  const auto body = get_json(b, "/v1/jobs/" + id);
  CHECK(body["state"] == "done");
  CHECK(body["totals"]["succeeded"] == 10);
  CHECK(body["totals"]["done"] == 10);
  std::map<std::string, int> by_replica;
  for (const auto& item : body["items"]) {
    CHECK(item["state"] == "succeeded");
    ++by_replica[item.value("replica", "")];
  }
  CHECK(by_replica["a"] >= 2);
  CHECK(by_replica["b"] >= 1);
  CHECK(metric(b, "pixpool_cluster_items_reclaimed_total") >= 1);
  // Each item's event exactly once, even though some ran twice.
  const EventStream stream = read_events(b, id);
  CHECK(stream.done);
  CHECK(stream.indices.size() == 10);
  CHECK(std::set<int>(stream.indices.begin(), stream.indices.end()).size() == 10);
  // Nothing left queued, no input bytes held.
  CHECK(metric(b, "pixpool_cluster_queue_length") == 0);
  CHECK(metric(b, "pixpool_cluster_queued_input_bytes") == 0);
}

TEST_CASE("cluster: DELETE on one replica stops items on every replica") {
  if (!test::RedisServer::available()) {
    MESSAGE("redis-server is not installed (scripts/setup test): skipped");
    return;
  }
  test::RedisServer redis;
  test::ServerProcess a(replica_args(redis, "a"));
  test::ServerProcess b(replica_args(redis, "b"));
  const auto job = post_job(a, 30, "?ops=sleep:200");
  const std::string id = job["id"];
  auto cancelled = client_for(b).Delete("/v1/jobs/" + id);
  REQUIRE(cancelled);
  CHECK(cancelled->status == 200);
  // Each replica runs at most 4 items at once (2 per worker of its larger
  // backend); everything else is still pending and cancelled now.
  CHECK(nlohmann::json::parse(cancelled->body)["cancelled_now"].get<int>() >= 20);
  REQUIRE(wait_until([&] { return job_over(a, id); }, 30s, 20ms));
  const auto body = get_json(a, "/v1/jobs/" + id);
  CHECK(body["state"] == "cancelled");
  int ran = 0;
  for (const auto& item : body["items"]) ran += item["state"] == "succeeded" ? 1 : 0;
  CHECK(ran + body["totals"]["cancelled"].get<int>() == 30);
  const EventStream stream = read_events(b, id);
  CHECK(stream.done);
  CHECK(stream.indices.size() == 30);
}

TEST_CASE("cluster: Redis down costs /v1/process nothing, jobs get 503 and work again after") {
  if (!test::RedisServer::available()) {
    MESSAGE("redis-server is not installed (scripts/setup test): skipped");
    return;
  }
  test::RedisServer redis(/*append_only=*/true);
  test::ServerProcess a(replica_args(redis, "a"));
  const std::string photo = test::read_test_data("fruits_320x240.jpg");
  // A job accepted before the outage, still running when Redis dies.
  const auto before = post_job(a, 6, "?ops=sleep:300");
  const std::string id = before["id"];
  REQUIRE(wait_until(
      [&] { return get_json(a, "/v1/jobs/" + id)["totals"]["done"].get<int>() >= 1; }, 30s, 20ms));
  // HTTP connection threads come and go with clients (they end after 30 s
  // idle); every other thread must be the same after the outage.
  auto other_threads = [&] { return threads_besides_connections(a); };
  auto client = client_for(a);
  redis.kill();

  for (int i = 0; i < 5; ++i) {
    auto res = client.Post("/v1/process", photo, "image/jpeg");
    REQUIRE(res);
    CHECK(res->status == 200);
  }
  httplib::MultipartFormDataItems form = {{"image", photo, "one.jpg", "image/jpeg"}};
  auto refused = client.Post("/v1/jobs", form);
  REQUIRE(refused);
  CHECK(refused->status == 503);
  const auto error = nlohmann::json::parse(refused->body);
  CHECK(error["error"]["code"] == "store_unavailable");
  CHECK(error["error"]["message"].get<std::string>().find(redis.url()) != std::string::npos);
  CHECK(refused->has_header("Retry-After"));
  int status = 0;
  CHECK(get_json(a, "/v1/jobs/" + id, &status).is_object());
  CHECK(status == 503);
  const auto ready = get_json(a, "/readyz", &status);
  CHECK(status == 200);  // /v1/process still serves: stays in rotation
  CHECK(ready["store"]["state"] == "down");
  CHECK(ready["status"] == "degraded");

  // Back (AOF replayed): the replica reconnects by itself, the job accepted
  // before the outage finishes, and new jobs are accepted.
  redis.restart();
  REQUIRE(wait_until([&] { return job_over(a, id); }, 60s, 50ms));
  const auto finished = get_json(a, "/v1/jobs/" + id);
  CHECK(finished["totals"]["succeeded"] == 6);
  const auto after = post_job(a, 2, "");
  REQUIRE(wait_until([&] { return job_over(a, after["id"]); }, 30s, 20ms));
  CHECK(get_json(a, "/readyz")["store"]["state"] == "up");
  CHECK(metric(a, "pixpool_store_reconnects_total") >= 1);
  // Reconnecting made no threads: back to what it ran before the outage.
  // A second outage, after the first has started whatever starts on first
  // use: reconnecting again makes no threads (a leak would add some with
  // every outage).
  const double threads_before = other_threads();
  const std::string waits_before = thread_waits(a.pid());
  redis.kill();
  REQUIRE(
      wait_until([&] { return get_json(a, "/readyz")["store"]["state"] == "down"; }, 10s, 20ms));
  for (int i = 0; i < 3; ++i) CHECK(client.Post("/v1/jobs", form)->status == 503);
  redis.restart();
  REQUIRE(wait_until([&] { return get_json(a, "/readyz")["store"]["state"] == "up"; }, 10s, 20ms));
  const auto again = post_job(a, 2, "");
  REQUIRE(wait_until([&] { return job_over(a, again["id"]); }, 30s, 20ms));
  const bool no_new_threads =
      wait_until([&] { return other_threads() <= threads_before; }, 10s, 20ms);
  CHECK_MESSAGE(no_new_threads, "before: " << waits_before << "after: " << thread_waits(a.pid()));
}

TEST_CASE(
    "cluster: the queued-input budget is cluster-wide: 429 with Retry-After, 400 when one job "
    "exceeds it") {
  if (!test::RedisServer::available()) {
    MESSAGE("redis-server is not installed (scripts/setup test): skipped");
    return;
  }
  test::RedisServer redis;
  test::ServerProcess a(replica_args(redis, "a", {"--max-queued-bytes", "1MiB"}));
  test::ServerProcess b(replica_args(redis, "b", {"--max-queued-bytes", "1MiB"}));
  // 25 KB per photo: 30 of them (750 KB) fit, then another 30 do not while
  // the first job's slow items hold their bytes.
  const auto first = post_job(a, 30, "?ops=sleep:300");
  const std::string photo = test::read_test_data("fruits_320x240.jpg");
  httplib::MultipartFormDataItems form;
  for (int i = 0; i < 30; ++i) form.push_back({"image", photo, "p.jpg", "image/jpeg"});
  auto refused = client_for(b).Post("/v1/jobs", form);
  REQUIRE(refused);
  CHECK(refused->status == 429);
  CHECK(refused->has_header("Retry-After"));
  CHECK(nlohmann::json::parse(refused->body)["error"]["code"] == "queue_full");
  for (int i = 0; i < 20; ++i) form.push_back({"image", photo, "p.jpg", "image/jpeg"});
  auto too_big = client_for(b).Post("/v1/jobs", form);
  REQUIRE(too_big);
  CHECK(too_big->status == 400);
  CHECK(too_big->body.find("--max-queued-bytes") != std::string::npos);
  client_for(a).Delete("/v1/jobs/" + first["id"].get<std::string>());
  REQUIRE(wait_until([&] { return job_over(a, first["id"]); }, 30s, 20ms));
  CHECK(metric(a, "pixpool_cluster_queued_input_bytes") == 0);
}

TEST_CASE("cluster: a replica stopped with SIGTERM finishes its items and leaves none claimed") {
  if (!test::RedisServer::available()) {
    MESSAGE("redis-server is not installed (scripts/setup test): skipped");
    return;
  }
  test::RedisServer redis;
  auto a = std::make_unique<test::ServerProcess>(replica_args(redis, "a"));
  const auto job = post_job(*a, 8, "?ops=sleep:400");
  const std::string id = job["id"];
  REQUIRE(wait_until([&] { return metric(*a, "pixpool_cluster_queue_claimed") >= 1; }, 30s, 10ms));
  CHECK(a->stop(SIGTERM, 60.0) == 0);
  a.reset();
  // What a ran is recorded; what it had not started is still queued, not
  // claimed: another replica runs it at once, nothing waits for a reclaim.
  test::ServerProcess b(replica_args(redis, "b", {}, "3600s"));
  REQUIRE(wait_until([&] { return job_over(b, id); }, 60s, 50ms));
  const auto body = get_json(b, "/v1/jobs/" + id);
  CHECK(body["totals"]["succeeded"] == 8);
  int by_a = 0;
  for (const auto& item : body["items"]) by_a += item.value("replica", "") == "a" ? 1 : 0;
  CHECK(by_a >= 1);
  CHECK(metric(b, "pixpool_cluster_items_reclaimed_total") == 0);
}
