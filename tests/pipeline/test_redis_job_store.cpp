// RedisJobStore (pipeline/redis_job_store.hpp) against a real redis-server
// (tests/support/redis_server.hpp), one fresh server per case: a job's
// progress, snapshot and results; two replicas sharing one job; an item a
// dead consumer held taken over after reclaim_after; an item run twice
// recorded once; cancel() seen by every replica; the queued-bytes budget;
// and a Redis that dies and comes back empty. Items run on the real
// TbbBackend or on a fake backend that can hold its jobs until released, so
// the tests control what is running. Every wait has a deadline
// (tests/support/wait.hpp).
#include <doctest/doctest.h>

#include <cctype>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "filters/image_format.hpp"
#include "filters/op_chain.hpp"
#include "pipeline/backend.hpp"
#include "pipeline/downloader.hpp"
#include "pipeline/metrics.hpp"
#include "pipeline/redis_job_store.hpp"
#include "tests/pipeline/backend_factories.hpp"
#include "tests/support/images.hpp"
#include "tests/support/redis_server.hpp"
#include "tests/support/wait.hpp"

namespace {

using namespace std::chrono_literals;
using namespace pixpool;
using pixpool::test::RedisServer;
using pixpool::test::wait_until;

// A Backend named "fake" whose answers follow the input bytes: "bad..."
// fails with unsupported_image, anything else succeeds with "out:" + input
// as a PNG, after `work` (a slow-ish worker). After hold(prefix), jobs whose
// input starts with `prefix` ("" = every job) wait in submit() until
// release(), never longer than 60 s, so a test that forgets to release
// fails instead of hanging.
class FakeBackend final : public Backend {
 public:
  explicit FakeBackend(std::chrono::milliseconds work = 0ms) : work_(work) {}

  std::string_view name() const override { return "fake"; }

  std::future<Result<JobOutput>> submit(JobSpec job) override {
    {
      std::unique_lock lock(mutex_);
      ++runs_[job.input];
      ++inside_;
      if (holding_ && job.input.starts_with(held_prefix_)) {
        const bool released = changed_.wait_for(lock, 60s, [this] { return !holding_; });
        if (!released) {
          --inside_;
          return ready_error(ErrorCode::timeout, "fake backend: never released");
        }
      }
    }
    if (work_.count() > 0) std::this_thread::sleep_for(work_);  // the "pixel work"
    {
      std::lock_guard lock(mutex_);
      --inside_;
      ++finished_;
    }
    if (job.input.starts_with("bad")) {
      return ready_error(ErrorCode::unsupported_image, "fake backend: not an image");
    }
    JobOutput output;
    output.bytes = "out:" + job.input;
    output.format = ImageFormat::png;
    output.width = static_cast<int>(job.input.size());
    output.height = 1;
    output.times = StageTimes{1, 2, 3, 4};
    std::promise<Result<JobOutput>> promise;
    promise.set_value(std::move(output));
    return promise.get_future();
  }

  BackendStats stats() const override {
    std::lock_guard lock(mutex_);
    BackendStats s;
    s.workers = 1;
    s.busy = inside_;
    return s;
  }
  bool ready() const override { return true; }
  void shutdown() override { release(); }

  void hold(const std::string& prefix = "") {
    std::lock_guard lock(mutex_);
    holding_ = true;
    held_prefix_ = prefix;
  }
  void release() {
    {
      std::lock_guard lock(mutex_);
      holding_ = false;
    }
    changed_.notify_all();
  }
  // Jobs in submit() now (held or working).
  std::size_t inside() const {
    std::lock_guard lock(mutex_);
    return inside_;
  }
  // Jobs that left submit() with an answer.
  std::size_t finished() const {
    std::lock_guard lock(mutex_);
    return finished_;
  }
  // How often `input` was submitted.
  std::size_t runs(const std::string& input) const {
    std::lock_guard lock(mutex_);
    const auto it = runs_.find(input);
    return it == runs_.end() ? 0 : it->second;
  }
  std::size_t total_runs() const {
    std::lock_guard lock(mutex_);
    std::size_t n = 0;
    for (const auto& [input, count] : runs_) n += count;
    return n;
  }

 private:
  const std::chrono::milliseconds work_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  bool holding_ = false;
  std::string held_prefix_;
  std::size_t inside_ = 0;
  std::size_t finished_ = 0;
  std::map<std::string, std::size_t> runs_;
};

DownloadOptions download_options() {
  DownloadOptions options;
  options.io_threads = 2;
  return options;
}

RedisJobStoreOptions store_options(const RedisServer& redis, const std::string& replica) {
  auto endpoint = parse_redis_url(redis.url());
  REQUIRE(endpoint.ok());
  RedisJobStoreOptions options;
  options.endpoint = *endpoint;
  options.replica = replica;
  options.consumers = 2;
  return options;
}

// One replica: its backends, downloader, metrics and store, torn down in a
// safe order (held jobs are released before the store waits for its items).
struct Replica {
  Replica(RedisJobStoreOptions options, std::unique_ptr<Backend> backend) : name(options.replica) {
    backend_ptr = backend.get();
    backends.add(std::move(backend));
    store.emplace(std::move(options), backends, downloader, metrics);
  }
  Replica(RedisJobStoreOptions options, std::chrono::milliseconds work)
      : Replica(std::move(options), std::make_unique<FakeBackend>(work)) {}
  explicit Replica(RedisJobStoreOptions options) : Replica(std::move(options), 0ms) {}
  ~Replica() {
    if (auto* f = dynamic_cast<FakeBackend*>(backend_ptr)) f->release();
    store.reset();
  }
  Replica(const Replica&) = delete;
  Replica& operator=(const Replica&) = delete;

  FakeBackend& fake() const {
    auto* f = dynamic_cast<FakeBackend*>(backend_ptr);
    REQUIRE(f != nullptr);
    return *f;
  }
  RedisJobStore& operator*() { return *store; }
  RedisJobStore* operator->() { return &*store; }

  std::string name;
  Backend* backend_ptr = nullptr;
  BackendSet backends;
  Downloader downloader{download_options()};
  Metrics metrics;
  std::optional<RedisJobStore> store;
};

// The store keeps a job's params as text: they must parse again, so use a
// real op chain (the fake backend ignores it).
JobParams params() {
  JobParams p;
  auto ops = parse_ops("blur:1");
  REQUIRE(ops.ok());
  p.ops = *ops;
  return p;
}

// Uploads "<prefix>0", "<prefix>1", ... named item<i>.jpg.
std::vector<BatchInput> uploads(std::size_t n, const std::string& prefix) {
  std::vector<BatchInput> inputs;
  for (std::size_t i = 0; i < n; ++i) {
    inputs.push_back(
        BatchInput{"item" + std::to_string(i) + ".jpg", "", prefix + std::to_string(i)});
  }
  return inputs;
}

bool contains(std::string_view text, std::string_view part) {
  return text.find(part) != std::string_view::npos;
}

// The value of an unlabelled sample in a Prometheus exposition; -1 if absent.
double metric(const std::string& exposition, const std::string& name) {
  std::istringstream in(exposition);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(name + " ", 0) == 0) return std::strtod(line.c_str() + name.size() + 1, nullptr);
  }
  return -1;
}

// redis-cli's integer answer (XLEN, GET of a counter...); -1 if none.
long long cli_number(const RedisServer& redis, const std::string& args) {
  const std::string out = redis.cli(args);
  if (out.empty() || !std::isdigit(static_cast<unsigned char>(out.front()))) return -1;
  return std::atoll(out.c_str());
}

std::optional<JobSnapshot> find(RedisJobStore& store, const std::string& id) {
  auto found = store.find(id);
  REQUIRE_MESSAGE(found.ok(), found.error().message);
  return *found;
}

bool finished_within(RedisJobStore& store, const std::string& id,
                     std::chrono::milliseconds timeout = 60s) {
  return wait_until(
      [&] {
        auto job = store.find(id);
        return job.ok() && job->has_value() && (*job)->summary.state != BatchState::running;
      },
      timeout, 20ms);
}

// Every event of a job from cursor "" on, until done (or the deadline).
struct Events {
  std::vector<JobProgress::Event> finished;
  std::optional<BatchSummary> done;
  std::string cursor;
};
Events all_events(RedisJobStore& store, const std::string& id,
                  std::chrono::milliseconds timeout = 60s) {
  Events out;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!out.done && std::chrono::steady_clock::now() < deadline) {
    auto got = store.progress(id, out.cursor, 1000ms);
    REQUIRE_MESSAGE(got.ok(), got.error().message);
    REQUIRE(got->has_value());
    for (auto& e : (*got)->finished) out.finished.push_back(std::move(e));
    out.cursor = (*got)->cursor;
    out.done = (*got)->done;
  }
  return out;
}

std::string events_key(const std::string& id) {
  return "pixpool:job:" + id + ":events";
}

// The job ids and items a redis-cli XREADGROUP/XRANGE answer names (one
// field per line: "job", id, "item", index).
std::vector<std::pair<std::string, std::string>> entries_in(const std::string& cli_output) {
  std::vector<std::pair<std::string, std::string>> out;
  std::istringstream in(cli_output);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  for (std::size_t k = 0; k + 3 < lines.size(); ++k) {
    if (lines[k] == "job" && lines[k + 2] == "item") out.emplace_back(lines[k + 1], lines[k + 3]);
  }
  return out;
}

}  // namespace

TEST_CASE("redis job store: a job of uploads finishes, and progress, find and result agree") {
  RedisServer redis;
  auto options = store_options(redis, "replica-a");
  options.consumers = 1;  // one item at a time: events come in queue order
  Replica a(std::move(options), test::TbbFactory::make());

  std::vector<BatchInput> inputs;
  std::vector<std::string> sources;
  for (unsigned i = 0; i < 5; ++i) {
    sources.push_back(test::encode_with_opencv(
        test::synthetic_image(64 + static_cast<int>(i), 48, 3, i), ".jpg"));
    inputs.push_back(BatchInput{"photo" + std::to_string(i) + ".jpg", "", sources.back()});
  }
  std::size_t total_in = 0;
  for (const auto& s : sources) total_in += s.size();

  auto started = a->start(std::move(inputs), params(), "tbb");
  REQUIRE_MESSAGE(started.ok(), started.error().message);
  const std::string id = started->id;
  CHECK(id.size() == 32);
  CHECK(started->backend == "tbb");
  CHECK(started->summary.total == 5);
  REQUIRE(started->items.size() == 5);
  CHECK(started->items[3].name == "photo3.jpg");

  // progress from "" returns each index once, in the order they finished
  // (queue order, with one consumer), then done with the totals.
  const Events events = all_events(*a, id);
  REQUIRE(events.done.has_value());
  REQUIRE(events.finished.size() == 5);
  std::vector<std::size_t> order;
  std::set<std::string> cursors;
  for (const auto& e : events.finished) {
    order.push_back(e.index);
    cursors.insert(e.cursor);
    CHECK(e.item.state == ItemState::succeeded);
    CHECK(e.item.replica == "replica-a");
    CHECK_FALSE(e.item.result_id.empty());
  }
  CHECK(order == std::vector<std::size_t>{0, 1, 2, 3, 4});
  CHECK(cursors.size() == 5);  // one cursor per event
  const BatchSummary& done = *events.done;
  CHECK(done.state == BatchState::done);
  CHECK(done.total == 5);
  CHECK(done.finished == 5);
  CHECK(done.succeeded == 5);
  CHECK(done.failed == 0);
  CHECK(done.cancelled == 0);
  CHECK(done.bytes_in == total_in);
  CHECK(done.bytes_out > 0);

  // Resuming after an event returns only what followed it.
  auto resumed = a->progress(id, events.finished[2].cursor, 0ms);
  REQUIRE(resumed.ok());
  REQUIRE(resumed->has_value());
  REQUIRE((*resumed)->finished.size() == 2);
  CHECK((*resumed)->finished[0].index == 3);
  CHECK((*resumed)->finished[1].index == 4);
  CHECK((*resumed)->done.has_value());

  // find: every item succeeded, with a result_id whose bytes result() returns.
  const auto job = find(*a, id);
  REQUIRE(job.has_value());
  CHECK(job->summary.state == BatchState::done);
  CHECK(job->summary.succeeded == 5);
  CHECK(job->summary.bytes_in == total_in);
  REQUIRE(job->items.size() == 5);
  std::size_t total_out = 0;
  for (std::size_t i = 0; i < 5; ++i) {
    CAPTURE(i);
    const ItemResult& item = job->items[i];
    CHECK(item.state == ItemState::succeeded);
    CHECK(item.name == "photo" + std::to_string(i) + ".jpg");
    CHECK(item.replica == "replica-a");
    CHECK(item.input_bytes == sources[i].size());
    CHECK(item.width == 64 + static_cast<int>(i));
    CHECK(item.height == 48);
    REQUIRE(item.result_id.size() == 32);
    auto stored = a->result(item.result_id);
    REQUIRE(stored.ok());
    REQUIRE(*stored != nullptr);
    CHECK((*stored)->bytes.size() == item.output_bytes);
    CHECK((*stored)->content_type == std::string(mime_type(item.format)));
    CHECK((*stored)->name == "photo" + std::to_string(i) + "." +
                                 (item.format == ImageFormat::jpeg
                                      ? std::string("jpg")
                                      : std::string(format_name(item.format))));
    const cv::Mat decoded = test::decode_with_opencv((*stored)->bytes);
    CHECK(decoded.cols == 64 + static_cast<int>(i));
    CHECK(decoded.rows == 48);
    total_out += item.output_bytes;
  }
  CHECK(job->summary.bytes_out == total_out);
  CHECK(done.bytes_out == total_out);
  // Inputs are dropped as items finish; the budget is back to nothing.
  CHECK(cli_number(redis, "GET pixpool:queued_bytes") == 0);
  CHECK(cli_number(redis, "EXISTS pixpool:job:" + id + ":input:0") == 0);

  // Unknown ids: nullopt / nullptr, not errors.
  const std::string unknown(32, 'a');
  auto missing = a->find(unknown);
  REQUIRE(missing.ok());
  CHECK_FALSE(missing->has_value());
  auto no_result = a->result(unknown);
  REQUIRE(no_result.ok());
  CHECK(*no_result == nullptr);
  auto not_an_id = a->result("../etc/passwd");
  REQUIRE(not_an_id.ok());
  CHECK(*not_an_id == nullptr);
  auto no_progress = a->progress(unknown, "", 0ms);
  REQUIRE(no_progress.ok());
  CHECK_FALSE(no_progress->has_value());
  auto no_cancel = a->cancel(unknown);
  REQUIRE(no_cancel.ok());
  CHECK_FALSE(no_cancel->has_value());
  // A cursor this store never handed out.
  auto bad_cursor = a->progress(id, "not-a-cursor", 0ms);
  REQUIRE_FALSE(bad_cursor.ok());
  CHECK(bad_cursor.error().code == ErrorCode::invalid_parameter);

  const JobStoreStatus status = a->status();
  CHECK(status.kind == "redis");
  CHECK(status.url == redis.url());
  CHECK(status.up);
  const std::string exposition = a->exposition();
  CHECK(metric(exposition, "pixpool_store_up") == 1);
  CHECK(metric(exposition, "pixpool_cluster_items_claimed_total") == 5);
  CHECK(metric(exposition, "pixpool_cluster_items_reclaimed_total") == 0);
  CHECK(metric(exposition, "pixpool_cluster_items_duplicate_total") == 0);
  CHECK(metric(exposition, "pixpool_cluster_queue_length") == 0);
  CHECK(metric(exposition, "pixpool_cluster_queue_claimed") == 0);
  CHECK(metric(exposition, "pixpool_cluster_queued_input_bytes") == 0);
}

TEST_CASE("redis job store: progress lists items in the order they finish, not item order") {
  RedisServer redis;
  auto options = store_options(redis, "replica-a");
  options.consumers = 2;
  Replica a(std::move(options));
  a.fake().hold("slow");
  auto started = a->start({BatchInput{"0.jpg", "", "slow-0"}, BatchInput{"1.jpg", "", "quick-1"}},
                          params(), "fake");
  REQUIRE(started.ok());
  const std::string id = started->id;
  // Item 0 is held; item 1 finishes first.
  REQUIRE(wait_until(
      [&] {
        const auto job = find(*a, id);
        return job && job->items[1].state == ItemState::succeeded;
      },
      10s, 20ms));
  CHECK(a.fake().inside() == 1);
  auto first = a->progress(id, "", 0ms);
  REQUIRE(first.ok());
  REQUIRE(first->has_value());
  REQUIRE((*first)->finished.size() == 1);
  CHECK((*first)->finished[0].index == 1);
  CHECK_FALSE((*first)->done.has_value());
  const auto running = find(*a, id);
  REQUIRE(running.has_value());
  CHECK(running->summary.state == BatchState::running);
  CHECK(running->summary.finished == 1);
  CHECK(running->items[0].state == ItemState::running);

  a.fake().release();
  // The next call waits for the next event and resumes after the first.
  const std::string after_first = (*first)->cursor;
  std::vector<std::size_t> order{1};
  std::optional<BatchSummary> done;
  std::string cursor = after_first;
  REQUIRE(wait_until(
      [&] {
        auto got = a->progress(id, cursor, 1000ms);
        REQUIRE(got.ok());
        REQUIRE(got->has_value());
        for (const auto& e : (*got)->finished) order.push_back(e.index);
        cursor = (*got)->cursor;
        done = (*got)->done;
        return done.has_value();
      },
      30s, 1ms));
  CHECK(order == std::vector<std::size_t>{1, 0});
  CHECK(done->succeeded == 2);
  const Events from_start = all_events(*a, id);
  REQUIRE(from_start.finished.size() == 2);
  CHECK(from_start.finished[0].index == 1);
  CHECK(from_start.finished[1].index == 0);
}

TEST_CASE("redis job store: failed items count as failed, and start() refuses what it must") {
  RedisServer redis;
  auto options = store_options(redis, "replica-a");
  options.max_items = 4;
  Replica a(std::move(options));

  auto started = a->start(
      {BatchInput{"ok.jpg", "", "fine"}, BatchInput{"bad.jpg", "", "bad-bytes"}}, params(), "fake");
  REQUIRE(started.ok());
  REQUIRE(finished_within(*a, started->id));
  const auto job = find(*a, started->id);
  REQUIRE(job.has_value());
  CHECK(job->summary.state == BatchState::done);
  CHECK(job->summary.finished == 2);
  CHECK(job->summary.succeeded == 1);
  CHECK(job->summary.failed == 1);
  CHECK(job->summary.bytes_in == 4);  // succeeded items only
  CHECK(job->items[0].state == ItemState::succeeded);
  CHECK(job->items[1].state == ItemState::failed);
  REQUIRE(job->items[1].error.has_value());
  CHECK(job->items[1].error->code == ErrorCode::unsupported_image);
  CHECK(job->items[1].error->message == "fake backend: not an image");
  CHECK(job->items[1].replica == "replica-a");
  auto stored = a->result(job->items[0].result_id);
  REQUIRE(stored.ok());
  REQUIRE(*stored != nullptr);
  CHECK((*stored)->bytes == "out:fine");
  CHECK((*stored)->content_type == "image/png");
  CHECK((*stored)->name == "ok.png");
  // A failed item stored nothing.
  auto nothing = a->result(job->items[1].result_id);
  REQUIRE(nothing.ok());
  CHECK(*nothing == nullptr);

  auto none = a->start({}, params(), "fake");
  REQUIRE_FALSE(none.ok());
  CHECK(none.error().code == ErrorCode::invalid_parameter);
  auto too_many = a->start(uploads(5, "x"), params(), "fake");
  REQUIRE_FALSE(too_many.ok());
  CHECK(too_many.error().code == ErrorCode::invalid_parameter);
  CHECK(contains(too_many.error().message, "at most 4"));
  auto no_backend = a->start(uploads(1, "x"), params(), "gpu");
  REQUIRE_FALSE(no_backend.ok());
  CHECK(no_backend.error().code == ErrorCode::unknown_backend);
  a->stop_pulling();
  auto stopping = a->start(uploads(1, "x"), params(), "fake");
  REQUIRE_FALSE(stopping.ok());
  CHECK(stopping.error().code == ErrorCode::shutting_down);
}

TEST_CASE("redis job store: two replicas on one Redis share the work of one job") {
  RedisServer redis;
  // Slow-ish items, so neither replica can drain the queue alone before the
  // other has pulled some.
  Replica a(store_options(redis, "replica-a"), 15ms);
  Replica b(store_options(redis, "replica-b"), 15ms);

  constexpr std::size_t kItems = 40;
  auto started = a->start(uploads(kItems, "img"), params(), "fake");
  REQUIRE(started.ok());
  const std::string id = started->id;
  REQUIRE(finished_within(*b, id));  // either replica answers for the job

  const auto job = find(*b, id);
  REQUIRE(job.has_value());
  CHECK(job->summary.state == BatchState::done);
  CHECK(job->summary.succeeded == kItems);
  std::map<std::string, std::size_t> by_replica;
  for (const ItemResult& item : job->items) {
    CHECK(item.state == ItemState::succeeded);
    ++by_replica[item.replica];
  }
  CAPTURE(by_replica.size());
  CHECK(by_replica.size() == 2);
  CHECK(by_replica["replica-a"] > 0);
  CHECK(by_replica["replica-b"] > 0);
  CHECK(by_replica["replica-a"] + by_replica["replica-b"] == kItems);

  // Each item ran once, on the replica its record names.
  CHECK(a.fake().total_runs() == by_replica["replica-a"]);
  CHECK(b.fake().total_runs() == by_replica["replica-b"]);
  CHECK(metric(a->exposition(), "pixpool_cluster_items_claimed_total") ==
        static_cast<double>(by_replica["replica-a"]));
  CHECK(metric(b->exposition(), "pixpool_cluster_items_claimed_total") ==
        static_cast<double>(by_replica["replica-b"]));

  // Both see the same events.
  const Events from_a = all_events(*a, id);
  const Events from_b = all_events(*b, id);
  REQUIRE(from_a.finished.size() == kItems);
  REQUIRE(from_b.finished.size() == kItems);
  for (std::size_t k = 0; k < kItems; ++k)
    CHECK(from_a.finished[k].cursor == from_b.finished[k].cursor);
}

TEST_CASE("redis job store: an item a dead consumer held is reclaimed after reclaim_after, once") {
  RedisServer redis;
  auto options = store_options(redis, "replica-a");
  options.reclaim_after = 300ms;
  options.consumers = 1;
  Replica a(std::move(options));
  a.fake().hold();

  auto started = a->start(uploads(2, "job-"), params(), "fake");
  REQUIRE(started.ok());
  const std::string id = started->id;
  // The replica's one consumer runs item 0 (held); item 1 waits in the queue.
  REQUIRE(wait_until([&] { return a.fake().inside() == 1; }, 10s));

  // A consumer that takes item 1 and dies without a word.
  const std::string taken =
      redis.cli("XREADGROUP GROUP pixpool ghost COUNT 1 STREAMS pixpool:queue '>'");
  const auto ghost = entries_in(taken);
  REQUIRE_MESSAGE(ghost.size() == 1, taken);
  CHECK(ghost[0].first == id);
  CHECK(ghost[0].second == "1");
  CHECK(contains(redis.cli("XPENDING pixpool:queue pixpool"), "ghost"));

  a.fake().release();
  REQUIRE(finished_within(*a, id));

  const auto job = find(*a, id);
  REQUIRE(job.has_value());
  CHECK(job->summary.succeeded == 2);
  CHECK(job->summary.finished == 2);
  CHECK(job->items[1].state == ItemState::succeeded);
  CHECK(job->items[1].replica == "replica-a");
  CHECK(metric(a->exposition(), "pixpool_cluster_items_reclaimed_total") >= 1);
  // Recorded exactly once: one event per item (and one done), each item run once.
  CHECK(cli_number(redis, "XLEN " + events_key(id)) == 3);
  const Events events = all_events(*a, id);
  REQUIRE(events.finished.size() == 2);
  CHECK(events.finished[0].index != events.finished[1].index);
  CHECK(a.fake().runs("job-0") == 1);
  CHECK(a.fake().runs("job-1") == 1);
  CHECK(metric(a->exposition(), "pixpool_cluster_items_duplicate_total") == 0);
  // Nothing left in the queue or claimed by anyone.
  REQUIRE(wait_until([&] { return cli_number(redis, "XLEN pixpool:queue") == 0; }, 10s, 20ms));
  CHECK(contains(redis.cli("XPENDING pixpool:queue pixpool"), "0"));
}

TEST_CASE("redis job store: a live replica's long item is not taken over (its heartbeat)") {
  RedisServer redis;
  auto options_a = store_options(redis, "replica-a");
  options_a.reclaim_after = 600ms;
  options_a.consumers = 1;
  Replica a(std::move(options_a));
  a.fake().hold();
  auto started = a->start(uploads(1, "long-"), params(), "fake");
  REQUIRE(started.ok());
  REQUIRE(wait_until([&] { return a.fake().inside() == 1; }, 10s));

  auto options_b = store_options(redis, "replica-b");
  options_b.reclaim_after = 600ms;
  Replica b(std::move(options_b));
  // The item runs for several reclaim_after periods; replica-a refreshes its
  // claim meanwhile, so replica-b never takes it over. (A bounded wait for
  // something that must not happen: it fails as soon as it does.)
  CHECK_FALSE(wait_until(
      [&] {
        return b.fake().total_runs() > 0 ||
               metric(b->exposition(), "pixpool_cluster_items_reclaimed_total") > 0;
      },
      2500ms, 50ms));
  CHECK(contains(redis.cli("XPENDING pixpool:queue pixpool - + 10"), "replica-a"));

  a.fake().release();
  REQUIRE(finished_within(*a, started->id));
  const auto job = find(*a, started->id);
  REQUIRE(job.has_value());
  CHECK(job->items[0].replica == "replica-a");
  CHECK(a.fake().runs("long-0") == 1);
  CHECK(b.fake().total_runs() == 0);
  CHECK(metric(b->exposition(), "pixpool_cluster_items_reclaimed_total") == 0);
  CHECK(metric(a->exposition(), "pixpool_cluster_items_duplicate_total") == 0);
}

// XAUTOCLAIM looks at a bounded number of pending entries per call (COUNT x
// 10 in Redis >= 7.0); when ten or more older entries are claimed by live
// replicas, an entry a dead replica left behind them must still be found,
// within reclaim_after, by scanning on from the cursor XAUTOCLAIM returns.
TEST_CASE("redis job store: a dead consumer's item behind ten live ones is still reclaimed") {
  RedisServer redis;
  auto options_a = store_options(redis, "replica-a");
  options_a.reclaim_after = 300ms;  // its heartbeat keeps its claims fresh
  options_a.consumers = 11;
  Replica a(std::move(options_a));
  a.fake().hold();
  auto started = a->start(uploads(12, "deep-"), params(), "fake");
  REQUIRE(started.ok());
  // replica-a holds items 0..10, one per consumer; item 11 is left.
  REQUIRE(wait_until([&] { return a.fake().inside() == 11; }, 10s));
  const auto ghost =
      entries_in(redis.cli("XREADGROUP GROUP pixpool ghost COUNT 1 STREAMS pixpool:queue '>'"));
  REQUIRE(ghost.size() == 1);
  CHECK(ghost[0].second == "11");

  auto options_b = store_options(redis, "replica-b");
  options_b.reclaim_after = 300ms;
  options_b.consumers = 1;
  Replica b(std::move(options_b));
  // replica-b is idle and the ghost's entry has been idle far longer than
  // reclaim_after: it should run it while replica-a still works.
  CHECK(wait_until([&] { return b.fake().runs("deep-11") == 1; }, 5s, 20ms));

  a.fake().release();
  REQUIRE(finished_within(*a, started->id));
  const auto job = find(*a, started->id);
  REQUIRE(job.has_value());
  CHECK(job->summary.succeeded == 12);
}

TEST_CASE("redis job store: an item run twice is recorded once") {
  RedisServer redis;

  SUBCASE("an entry for a finished item is skipped, not run") {
    Replica a(store_options(redis, "replica-a"));
    auto started = a->start(uploads(3, "once-"), params(), "fake");
    REQUIRE(started.ok());
    const std::string id = started->id;
    REQUIRE(finished_within(*a, id));
    const auto before = find(*a, id);
    REQUIRE(before.has_value());
    const long long events_before = cli_number(redis, "XLEN " + events_key(id));
    CHECK(events_before == 4);

    // The same job/item again, as a replica that lost its acknowledgement
    // would leave it.
    CHECK_FALSE(redis.cli("XADD pixpool:queue '*' job " + id + " item 0").empty());
    REQUIRE(wait_until([&] { return cli_number(redis, "XLEN pixpool:queue") == 0; }, 10s, 20ms));

    CHECK(cli_number(redis, "XLEN " + events_key(id)) == events_before);
    CHECK(a.fake().runs("once-0") == 1);
    const auto after = find(*a, id);
    REQUIRE(after.has_value());
    CHECK(after->summary.finished == 3);
    CHECK(after->summary.succeeded == 3);
    CHECK(after->summary.bytes_in == before->summary.bytes_in);
    CHECK(after->summary.bytes_out == before->summary.bytes_out);
    CHECK(metric(a->exposition(), "pixpool_cluster_items_duplicate_total") == 0);
    CHECK(metric(a->exposition(), "pixpool_cluster_queue_claimed") == 0);
  }

  SUBCASE("two runs of a running item: the second is a duplicate, not recorded") {
    auto options = store_options(redis, "replica-a");
    options.consumers = 2;
    Replica a(std::move(options));
    a.fake().hold();
    auto started = a->start(uploads(1, "twice-"), params(), "fake");
    REQUIRE(started.ok());
    const std::string id = started->id;
    REQUIRE(wait_until([&] { return a.fake().inside() == 1; }, 10s));

    // A second entry for the item while it runs: the other consumer runs it too.
    CHECK_FALSE(redis.cli("XADD pixpool:queue '*' job " + id + " item 0").empty());
    REQUIRE(wait_until([&] { return a.fake().inside() == 2; }, 10s));
    a.fake().release();

    REQUIRE(finished_within(*a, id));
    REQUIRE(wait_until(
        [&] { return metric(a->exposition(), "pixpool_cluster_items_duplicate_total") == 1; }, 10s,
        20ms));
    CHECK(a.fake().runs("twice-0") == 2);                     // at least once...
    CHECK(cli_number(redis, "XLEN " + events_key(id)) == 2);  // ...recorded once (+ done)
    const auto job = find(*a, id);
    REQUIRE(job.has_value());
    CHECK(job->summary.total == 1);
    CHECK(job->summary.finished == 1);
    CHECK(job->summary.succeeded == 1);
    CHECK(job->summary.bytes_in == std::string("twice-0").size());
    CHECK(job->summary.bytes_out == std::string("out:twice-0").size());
    const Events events = all_events(*a, id);
    CHECK(events.finished.size() == 1);
    REQUIRE(events.done.has_value());
    CHECK(events.done->succeeded == 1);
    // The input's bytes left the budget once.
    CHECK(cli_number(redis, "GET pixpool:queued_bytes") == 0);
    REQUIRE(wait_until([&] { return cli_number(redis, "XLEN pixpool:queue") == 0; }, 10s, 20ms));
  }
}

TEST_CASE("redis job store: cancel() cancels pending items on every replica, and they never run") {
  RedisServer redis;
  auto options_a = store_options(redis, "replica-a");
  options_a.consumers = 1;
  auto options_b = store_options(redis, "replica-b");
  options_b.consumers = 1;
  Replica a(std::move(options_a));
  Replica b(std::move(options_b));
  a.fake().hold();
  b.fake().hold();

  constexpr std::size_t kItems = 6;
  auto started = a->start(uploads(kItems, "c"), params(), "fake");
  REQUIRE(started.ok());
  const std::string id = started->id;
  // Each replica's one consumer holds an item; four wait in the queue.
  REQUIRE(wait_until([&] { return a.fake().inside() == 1 && b.fake().inside() == 1; }, 10s));

  // Cancelled through the replica that did not start it.
  auto cancelled = b->cancel(id);
  REQUIRE(cancelled.ok());
  REQUIRE(cancelled->has_value());
  CHECK((*cancelled)->second == kItems - 2);
  const JobSnapshot& after_cancel = (*cancelled)->first;
  std::size_t running = 0;
  std::size_t cancelled_items = 0;
  for (const ItemResult& item : after_cancel.items) {
    running += item.state == ItemState::running ? 1 : 0;
    cancelled_items += item.state == ItemState::cancelled ? 1 : 0;
  }
  CHECK(running == 2);
  CHECK(cancelled_items == kItems - 2);
  CHECK(after_cancel.summary.cancelled == kItems - 2);
  // Both replicas see it.
  for (Replica* r : {&a, &b}) {
    CAPTURE(r->name);
    const auto seen = find(**r, id);
    REQUIRE(seen.has_value());
    CHECK(seen->summary.cancelled == kItems - 2);
  }

  a.fake().release();
  b.fake().release();
  REQUIRE(finished_within(*a, id));
  // The queue entries of cancelled items are dropped as consumers meet them.
  REQUIRE(wait_until([&] { return cli_number(redis, "XLEN pixpool:queue") == 0; }, 10s, 20ms));

  const auto job = find(*a, id);
  REQUIRE(job.has_value());
  CHECK(job->summary.state == BatchState::cancelled);
  CHECK(job->summary.finished == kItems);
  CHECK(job->summary.succeeded == 2);
  CHECK(job->summary.cancelled == kItems - 2);
  CHECK(a.fake().total_runs() + b.fake().total_runs() == 2);  // cancelled items never ran
  const Events events = all_events(*b, id);
  CHECK(events.finished.size() == kItems);
  REQUIRE(events.done.has_value());
  CHECK(events.done->state == BatchState::cancelled);
  CHECK(events.done->cancelled == kItems - 2);
  CHECK(cli_number(redis, "GET pixpool:queued_bytes") == 0);

  // Cancelling again cancels nothing more.
  auto again = a->cancel(id);
  REQUIRE(again.ok());
  REQUIRE(again->has_value());
  CHECK((*again)->second == 0);
  CHECK(a.fake().total_runs() + b.fake().total_runs() == 2);
}

TEST_CASE("redis job store: the queued-bytes budget refuses a job too large, then queue_full") {
  RedisServer redis;
  auto options = store_options(redis, "replica-a");
  options.max_queued_bytes = 100;
  options.consumers = 1;
  Replica a(std::move(options));
  a.fake().hold();

  // Larger than the whole budget: never fits, so not retryable.
  auto huge = a->start({BatchInput{"big.jpg", "", std::string(101, 'x')}}, params(), "fake");
  REQUIRE_FALSE(huge.ok());
  CHECK(huge.error().code == ErrorCode::invalid_parameter);
  CHECK(contains(huge.error().message, "--max-queued-bytes"));

  // 2 x 30 bytes: fits; stays queued while the backend holds its first item.
  auto first = a->start({BatchInput{"a.jpg", "", std::string(30, 'a')},
                         BatchInput{"b.jpg", "", std::string(30, 'b')}},
                        params(), "fake");
  REQUIRE(first.ok());
  REQUIRE(wait_until([&] { return a.fake().inside() == 1; }, 10s));
  CHECK(cli_number(redis, "GET pixpool:queued_bytes") == 60);
  CHECK(metric(a->exposition(), "pixpool_cluster_queued_input_bytes") == 60);

  // Another 60 would make 120 > 100: queue_full, retryable, with a hint.
  auto second = a->start({BatchInput{"c.jpg", "", std::string(30, 'c')},
                          BatchInput{"d.jpg", "", std::string(30, 'd')}},
                         params(), "fake");
  REQUIRE_FALSE(second.ok());
  CHECK(second.error().code == ErrorCode::queue_full);
  CHECK(contains(second.error().message, "retry after"));
  CHECK(cli_number(redis, "GET pixpool:queued_bytes") == 60);  // the refusal took nothing

  // Exactly up to the budget fits.
  auto third = a->start({BatchInput{"e.jpg", "", std::string(40, 'e')}}, params(), "fake");
  REQUIRE(third.ok());
  CHECK(cli_number(redis, "GET pixpool:queued_bytes") == 100);

  a.fake().release();
  REQUIRE(finished_within(*a, first->id));
  REQUIRE(finished_within(*a, third->id));
  CHECK(cli_number(redis, "GET pixpool:queued_bytes") == 0);

  // Once the queue drained the same job fits.
  auto retried = a->start({BatchInput{"c.jpg", "", std::string(30, 'c')},
                           BatchInput{"d.jpg", "", std::string(30, 'd')}},
                          params(), "fake");
  REQUIRE(retried.ok());
  REQUIRE(finished_within(*a, retried->id));
  CHECK(cli_number(redis, "GET pixpool:queued_bytes") == 0);
}

TEST_CASE("redis job store: with Redis dead calls fail with store_unavailable, then it recovers") {
  RedisServer redis;
  Replica a(store_options(redis, "replica-a"));
  auto started = a->start(uploads(2, "before-"), params(), "fake");
  REQUIRE(started.ok());
  const std::string old_id = started->id;
  REQUIRE(finished_within(*a, old_id));
  const auto old_job = find(*a, old_id);
  REQUIRE(old_job.has_value());
  const std::string old_result = old_job->items[0].result_id;

  redis.kill();

  auto check_unavailable = [&](const Error& error) {
    CHECK(error.code == ErrorCode::store_unavailable);
    CHECK(contains(error.message, redis.url()));
  };
  // Every call fails at once, none hangs (the test would time out).
  auto start = a->start(uploads(1, "during-"), params(), "fake");
  REQUIRE_FALSE(start.ok());
  check_unavailable(start.error());
  auto found = a->find(old_id);
  REQUIRE_FALSE(found.ok());
  check_unavailable(found.error());
  auto progress = a->progress(old_id, "", 500ms);
  REQUIRE_FALSE(progress.ok());
  check_unavailable(progress.error());
  auto result = a->result(old_result);
  REQUIRE_FALSE(result.ok());
  check_unavailable(result.error());
  auto cancel = a->cancel(old_id);
  REQUIRE_FALSE(cancel.ok());
  check_unavailable(cancel.error());
  const JobStoreStatus down = a->status();
  CHECK_FALSE(down.up);
  CHECK_FALSE(down.error.empty());
  CHECK(down.url == redis.url());
  const std::string exposition = a->exposition();
  CHECK(metric(exposition, "pixpool_store_up") == 0);
  CHECK(metric(exposition, "pixpool_store_errors_total") >= 1);
  CHECK(metric(exposition, "pixpool_cluster_queue_length") == -1);  // not read while away

  // Back, empty (no AOF): the consumers re-create the group (NOGROUP) and a
  // new job finishes.
  redis.restart();
  std::string new_id;
  REQUIRE(wait_until(
      [&] {
        auto again = a->start(uploads(3, "after-"), params(), "fake");
        if (again.ok()) new_id = again->id;
        return again.ok();
      },
      30s, 50ms));
  REQUIRE(finished_within(*a, new_id));
  const auto job = find(*a, new_id);
  REQUIRE(job.has_value());
  CHECK(job->summary.succeeded == 3);
  CHECK(a.fake().runs("after-0") == 1);
  CHECK(a->status().up);
  CHECK(contains(redis.cli("XINFO GROUPS pixpool:queue"), "pixpool"));
  // The old job died with the data.
  CHECK_FALSE(find(*a, old_id).has_value());
  CHECK(metric(a->exposition(), "pixpool_store_reconnects_total") >= 1);
}

TEST_CASE(
    "redis job store: an item that finishes while Redis is away is recorded once it is back") {
  RedisServer redis(/*append_only=*/true);  // the job survives the restart
  auto options = store_options(redis, "replica-a");
  options.consumers = 1;
  Replica a(std::move(options));
  a.fake().hold();
  auto started = a->start(uploads(1, "away-"), params(), "fake");
  REQUIRE(started.ok());
  const std::string id = started->id;
  REQUIRE(wait_until([&] { return a.fake().inside() == 1; }, 10s));

  redis.kill();
  a.fake().release();  // the item's output is ready; the store is not
  REQUIRE(wait_until([&] { return a.fake().finished() == 1; }, 10s));
  auto away = a->find(id);
  REQUIRE_FALSE(away.ok());
  CHECK(away.error().code == ErrorCode::store_unavailable);

  // The replica keeps trying to record it (up to reclaim_after).
  redis.restart();
  REQUIRE(finished_within(*a, id));
  const auto job = find(*a, id);
  REQUIRE(job.has_value());
  CHECK(job->summary.succeeded == 1);
  CHECK(job->items[0].replica == "replica-a");
  CHECK(a.fake().runs("away-0") == 1);
  CHECK(cli_number(redis, "XLEN " + events_key(id)) == 2);
  auto stored = a->result(job->items[0].result_id);
  REQUIRE(stored.ok());
  REQUIRE(*stored != nullptr);
  CHECK((*stored)->bytes == "out:away-0");
  REQUIRE(wait_until([&] { return cli_number(redis, "XLEN pixpool:queue") == 0; }, 10s, 20ms));
}

// JobStore::progress promises `done` once every item's event has been
// returned and the job is over: asking again from the cursor handed out
// with `done` says done again (at once), as MemoryJobStore does; an SSE
// client reconnecting after the end must not wait for nothing.
TEST_CASE("redis job store: progress from the cursor that came with done says done again") {
  RedisServer redis;
  Replica a(store_options(redis, "replica-a"));
  auto started = a->start(uploads(2, "end-"), params(), "fake");
  REQUIRE(started.ok());
  const Events events = all_events(*a, started->id);
  REQUIRE(events.done.has_value());

  auto again = a->progress(started->id, events.cursor, 0ms);
  REQUIRE(again.ok());
  REQUIRE(again->has_value());
  CHECK((*again)->finished.empty());
  CHECK((*again)->done.has_value());
}

// The store keeps a job's params as text; an empty op chain (JobParams{},
// which MemoryJobStore and BatchRunner run as given) must survive the trip.
TEST_CASE("redis job store: a job with an empty op chain runs like on the memory store") {
  RedisServer redis;
  Replica a(store_options(redis, "replica-a"));
  auto started = a->start(uploads(1, "plain-"), JobParams{}, "fake");
  REQUIRE(started.ok());
  REQUIRE(finished_within(*a, started->id));
  const auto job = find(*a, started->id);
  REQUIRE(job.has_value());
  CHECK(job->summary.succeeded == 1);
  CHECK(a.fake().runs("plain-0") == 1);
}

// An empty upload (an empty multipart `image` file, or a blank `url` field)
// has no input key in Redis; it must fail as run_image fails it
// (empty_body), as on the memory store, not as an expired input.
TEST_CASE("redis job store: an empty upload fails with empty_body, as on the memory store") {
  RedisServer redis;
  Replica a(store_options(redis, "replica-a"));
  auto started =
      a->start({BatchInput{"empty.jpg", "", ""}, BatchInput{"", "", ""}}, params(), "fake");
  REQUIRE(started.ok());
  REQUIRE(finished_within(*a, started->id));
  const auto job = find(*a, started->id);
  REQUIRE(job.has_value());
  CHECK(job->summary.failed == 2);
  for (const ItemResult& item : job->items) {
    CHECK(item.state == ItemState::failed);
    REQUIRE(item.error.has_value());
    CAPTURE(item.error->message);
    CHECK(item.error->code == ErrorCode::empty_body);
  }
}
