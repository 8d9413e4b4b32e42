// BatchRunner and Batch on a fake backend: summaries, progress order,
// cancellation of items not started, the queue limits, max_items, shutdown
// and find(). The fake answers at once, or holds jobs until released, so the
// tests control what is running; every wait is bounded (tests/support/wait.hpp).
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "pipeline/backend.hpp"
#include "pipeline/batch.hpp"
#include "pipeline/downloader.hpp"
#include "pipeline/metrics.hpp"
#include "pipeline/result_store.hpp"
#include "tests/support/wait.hpp"

namespace {

using namespace std::chrono_literals;
using namespace pixpool;
using pixpool::test::wait_until;

// A Backend whose answers follow the input bytes: "bad..." fails with
// unsupported_image, anything else succeeds with "out:" + input as a PNG.
// Jobs whose input starts with "hold" (or every job, with hold_all) wait in
// submit() until release(); never longer than 60 s, so a test that forgets
// to release fails instead of hanging.
class FakeBackend final : public Backend {
 public:
  explicit FakeBackend(int workers = 1, bool hold_all = false)
      : workers_(workers), hold_all_(hold_all) {}

  std::string_view name() const override { return "fake"; }

  std::future<Result<JobOutput>> submit(JobSpec job) override {
    {
      std::unique_lock lock(mutex_);
      submitted_.push_back(job.input);
      if (!released_ && (hold_all_ || job.input.starts_with("hold"))) {
        ++held_;
        const bool released = changed_.wait_for(lock, 60s, [this] { return released_; });
        --held_;
        if (!released) return ready_error(ErrorCode::timeout, "fake backend: never released");
      }
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
    s.workers = workers_;
    s.busy = held_;
    return s;
  }
  bool ready() const override { return true; }
  void shutdown() override { release(); }

  void release() {
    {
      std::lock_guard lock(mutex_);
      released_ = true;
    }
    changed_.notify_all();
  }
  std::size_t held() const {
    std::lock_guard lock(mutex_);
    return held_;
  }
  std::vector<std::string> submitted() const {
    std::lock_guard lock(mutex_);
    return submitted_;
  }

 private:
  const int workers_;
  const bool hold_all_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  bool released_ = false;
  std::size_t held_ = 0;
  std::vector<std::string> submitted_;
};

// The default policy (loopback refused: URL items fail without a packet).
DownloadOptions download_options() {
  DownloadOptions options;
  options.io_threads = 2;
  return options;
}

// What a BatchRunner needs, torn down in a safe order: held jobs are released
// before the runner's destructor waits for its running items.
struct Fixture {
  explicit Fixture(BatchRunnerOptions options = small_options(), int workers = 1,
                   bool hold_all = false)
      : backend(workers, hold_all) {
    runner.emplace(std::move(options), downloader, results, metrics);
  }
  ~Fixture() {
    backend.release();
    runner.reset();
  }
  Fixture(const Fixture&) = delete;
  Fixture& operator=(const Fixture&) = delete;

  static BatchRunnerOptions small_options() {
    BatchRunnerOptions options;
    options.threads = 4;
    return options;
  }

  Result<std::shared_ptr<Batch>> start(const std::vector<std::string>& bytes) {
    std::vector<BatchInput> inputs;
    for (std::size_t i = 0; i < bytes.size(); ++i) {
      inputs.push_back(BatchInput{"item" + std::to_string(i) + ".jpg", "", bytes[i]});
    }
    return runner->start(std::move(inputs), JobParams{}, backend);
  }

  Downloader downloader{download_options()};
  ResultStore results{ResultStoreOptions{}};
  Metrics metrics;
  FakeBackend backend;
  std::optional<BatchRunner> runner;
};

bool over_within(const Batch& batch, std::chrono::milliseconds timeout = 30s) {
  return wait_until([&] { return batch.over(); }, timeout);
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("batch runner: every item runs once, results are stored, the summary adds up") {
  Fixture f;
  auto started = f.start({"one", "bad-a", "three", "", "fifth"});
  REQUIRE(started.ok());
  const auto batch = *started;
  REQUIRE(over_within(*batch));

  const BatchSummary s = batch->summary();
  CHECK(s.state == BatchState::done);
  CHECK(s.total == 5);
  CHECK(s.finished == 5);
  CHECK(s.succeeded == 3);
  CHECK(s.failed == 2);  // "bad-a" by the backend, "" as an empty source
  CHECK(s.cancelled == 0);
  CHECK(s.bytes_in == std::string("onethreefifth").size());  // succeeded items only
  CHECK(s.bytes_out == 3 * std::string("out:").size() + s.bytes_in);
  CHECK(s.elapsed_s >= 0);

  const std::vector<ItemResult> items = batch->items();
  REQUIRE(items.size() == 5);
  for (std::size_t i : {0u, 2u, 4u}) {
    CAPTURE(i);
    const ItemResult& item = items[i];
    CHECK(item.state == ItemState::succeeded);
    CHECK(item.name == "item" + std::to_string(i) + ".jpg");
    CHECK_FALSE(item.error.has_value());
    CHECK(item.format == ImageFormat::png);
    CHECK(item.times.filter_ms == 3);
    REQUIRE_FALSE(item.result_id.empty());
    const auto stored = f.results.get(item.result_id);
    REQUIRE(stored != nullptr);
    CHECK(stored->bytes.size() == item.output_bytes);
    CHECK(stored->content_type == "image/png");
    CHECK(stored->name == "item" + std::to_string(i) + ".png");
  }
  CHECK(f.results.get(items[0].result_id)->bytes == "out:one");
  CHECK(items[1].state == ItemState::failed);
  REQUIRE(items[1].error.has_value());
  CHECK(items[1].error->code == ErrorCode::unsupported_image);
  CHECK(items[1].result_id.empty());
  CHECK(items[3].state == ItemState::failed);
  REQUIRE(items[3].error.has_value());
  CHECK(items[3].error->code == ErrorCode::empty_body);

  // Each item reached the backend once (the empty one never did)...
  auto submitted = f.backend.submitted();
  std::sort(submitted.begin(), submitted.end());
  CHECK(submitted == std::vector<std::string>{"bad-a", "fifth", "one", "three"});
  // ...and was counted once in the metrics, by outcome.
  const std::string exposition = f.metrics.exposition(BackendSet{});
  CHECK(contains(exposition, "pixpool_images_total{backend=\"fake\",outcome=\"ok\"} 3\n"));
  CHECK(contains(exposition,
                 "pixpool_images_total{backend=\"fake\",outcome=\"unsupported_image\"} 1\n"));
  CHECK(contains(exposition, "pixpool_images_total{backend=\"fake\",outcome=\"empty_body\"} 1\n"));
  CHECK(batch->backend() == "fake");
}

TEST_CASE("batch runner: a URL item that cannot be downloaded fails alone") {
  Fixture f;  // the default Downloader refuses loopback before connecting
  std::vector<BatchInput> inputs = {BatchInput{"a.jpg", "", "aaa"},
                                    BatchInput{"", "http://127.0.0.1:1/pic.jpg", ""}};
  auto started = f.runner->start(std::move(inputs), JobParams{}, f.backend);
  REQUIRE(started.ok());
  const auto batch = *started;
  REQUIRE(over_within(*batch));
  const ItemResult url_item = batch->item(1);
  CHECK(url_item.url == "http://127.0.0.1:1/pic.jpg");
  CHECK(url_item.state == ItemState::failed);
  REQUIRE(url_item.error.has_value());
  CHECK(url_item.error->code == ErrorCode::source_forbidden);
  CHECK(batch->item(0).state == ItemState::succeeded);
  CHECK(f.backend.submitted() == std::vector<std::string>{"aaa"});
  CHECK(contains(f.metrics.exposition(BackendSet{}),
                 "pixpool_images_total{backend=\"fake\",outcome=\"source_forbidden\"} 1\n"));
}

TEST_CASE("batch runner: with one executor thread items finish in input order") {
  BatchRunnerOptions options = Fixture::small_options();
  options.threads = 1;
  Fixture f(options, 1, /*hold_all=*/true);
  auto started = f.start({"a", "bad-b", "c", "d"});
  REQUIRE(started.ok());
  const auto batch = *started;
  REQUIRE(wait_until([&] { return f.backend.held() == 1; }, 30s));
  // Nothing has finished: wait_for_progress times out with an empty order.
  CHECK(batch->wait_for_progress(0, 20ms).empty());
  CHECK(batch->summary().state == BatchState::running);
  CHECK(batch->item(0).state == ItemState::running);
  CHECK(batch->item(3).state == ItemState::pending);
  f.backend.release();

  // Follow progress as an events stream does; each answer extends the last.
  std::vector<std::size_t> order;
  REQUIRE(wait_until(
      [&] {
        const auto next = batch->wait_for_progress(order.size(), 100ms);
        REQUIRE(next.size() >= order.size());
        CHECK(std::equal(order.begin(), order.end(), next.begin()));
        order = next;
        return order.size() == 4;
      },
      30s, 0ms));
  CHECK(order == std::vector<std::size_t>{0, 1, 2, 3});
  REQUIRE(over_within(*batch));
  CHECK(batch->summary().failed == 1);
}

TEST_CASE("batch runner: progress lists items in the order they finished") {
  Fixture f(Fixture::small_options(), 2);  // 2 workers: 4 items in flight
  auto started = f.start({"hold-0", "b", "c"});
  REQUIRE(started.ok());
  const auto batch = *started;
  // "b" and "c" finish while "hold-0" is held.
  REQUIRE(wait_until([&] { return batch->summary().finished == 2; }, 30s));
  auto order = batch->wait_for_progress(0, 0ms);
  std::sort(order.begin(), order.end());
  CHECK(order == std::vector<std::size_t>{1, 2});
  CHECK(batch->item(0).state == ItemState::running);
  CHECK_FALSE(batch->over());
  f.backend.release();
  REQUIRE(over_within(*batch));
  order = batch->wait_for_progress(2, 0ms);
  REQUIRE(order.size() == 3);
  CHECK(order.back() == 0);
  CHECK(batch->summary().state == BatchState::done);
}

TEST_CASE("batch runner: cancel stops the items not started, the running ones finish") {
  Fixture f(Fixture::small_options(), 1, /*hold_all=*/true);  // 1 worker: 2 items in flight
  auto started = f.start({"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"});
  REQUIRE(started.ok());
  const auto batch = *started;
  REQUIRE(wait_until([&] { return f.backend.held() == 2; }, 30s));

  CHECK(batch->cancel() == 8);
  BatchSummary s = batch->summary();
  CHECK(s.cancelled == 8);
  CHECK(s.finished == 8);
  CHECK(s.state == BatchState::running);  // two still running
  const ItemResult cancelled = batch->item(9);
  CHECK(cancelled.state == ItemState::cancelled);
  REQUIRE(cancelled.error.has_value());
  CHECK(cancelled.error->code == ErrorCode::shutting_down);
  CHECK(batch->cancel() == 0);  // nothing left to cancel

  f.backend.release();
  REQUIRE(over_within(*batch));
  s = batch->summary();
  CHECK(s.state == BatchState::cancelled);
  CHECK(s.succeeded == 2);
  CHECK(s.cancelled == 8);
  CHECK(s.finished == 10);
  // Only the two running items reached the backend and the metrics.
  CHECK(f.backend.submitted().size() == 2);
  CHECK(contains(f.metrics.exposition(BackendSet{}),
                 "pixpool_images_total{backend=\"fake\",outcome=\"ok\"} 2\n"));
  // The cancelled items are in the progress order before the two that ran.
  const auto order = batch->wait_for_progress(10, 0ms);
  REQUIRE(order.size() == 10);
  CHECK(std::set<std::size_t>(order.begin(), order.begin() + 8) ==
        std::set<std::size_t>{2, 3, 4, 5, 6, 7, 8, 9});
}

TEST_CASE("batch runner: cancelling a finished batch changes nothing") {
  Fixture f;
  auto started = f.start({"a", "b"});
  REQUIRE(started.ok());
  REQUIRE(over_within(**started));
  CHECK((*started)->cancel() == 0);
  CHECK((*started)->summary().state == BatchState::done);
  CHECK((*started)->summary().succeeded == 2);
}

TEST_CASE("batch runner: no items, or more than max_items, is invalid_parameter") {
  BatchRunnerOptions options = Fixture::small_options();
  options.max_items = 3;
  Fixture f(options);
  auto empty = f.start({});
  REQUIRE_FALSE(empty.ok());
  CHECK(empty.error().code == ErrorCode::invalid_parameter);
  auto too_many = f.start({"a", "b", "c", "d"});
  REQUIRE_FALSE(too_many.ok());
  CHECK(too_many.error().code == ErrorCode::invalid_parameter);
  CHECK_MESSAGE(contains(too_many.error().message, "at most 3"), too_many.error().message);
  auto at_limit = f.start({"a", "b", "c"});
  REQUIRE(at_limit.ok());
  CHECK(over_within(**at_limit));
  CHECK(f.backend.submitted().size() == 3);
}

TEST_CASE("batch runner: max_queued_items bounds the inputs accepted but not started") {
  BatchRunnerOptions options = Fixture::small_options();
  options.max_queued_items = 3;
  Fixture f(options, 1, /*hold_all=*/true);  // 1 worker: 2 items of a batch in flight

  auto too_big = f.start({"a", "b", "c", "d"});  // 4 > 3 even with nothing waiting
  REQUIRE_FALSE(too_big.ok());
  CHECK(too_big.error().code == ErrorCode::queue_full);
  CHECK_MESSAGE(contains(too_big.error().message, "retry later"), too_big.error().message);

  auto first = f.start({"a", "b", "c"});  // 2 start, 1 waits
  REQUIRE(first.ok());
  REQUIRE(wait_until([&] { return f.backend.held() == 2; }, 30s));
  auto refused = f.start({"d", "e", "f"});  // 1 + 3 > 3
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().code == ErrorCode::queue_full);
  auto second = f.start({"d", "e"});  // 1 + 2 == 3: fits
  REQUIRE(second.ok());

  f.backend.release();
  REQUIRE(over_within(**first));
  REQUIRE(over_within(**second));
  CHECK((*first)->summary().succeeded == 3);
  CHECK((*second)->summary().succeeded == 2);
  // Everything started: the queue is empty again.
  auto again = f.start({"g", "h", "i"});
  REQUIRE(again.ok());
  CHECK(over_within(**again));
}

TEST_CASE("batch runner: max_queued_bytes bounds the upload bytes waiting") {
  BatchRunnerOptions options = Fixture::small_options();
  options.max_queued_bytes = 10;
  Fixture f(options);
  auto refused = f.start({"123456", "78901"});  // 11 bytes
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().code == ErrorCode::queue_full);
  auto accepted = f.start({"12345", "67890"});  // 10 bytes
  REQUIRE(accepted.ok());
  REQUIRE(over_within(**accepted));
  CHECK((*accepted)->summary().succeeded == 2);
  CHECK(f.start({"1234567890"}).ok());  // the bytes were released as items started
}

TEST_CASE("batch runner: destroying the runner cancels waiting items and waits for running ones") {
  FakeBackend backend(1, /*hold_all=*/true);
  Downloader downloader(download_options());
  ResultStore results{ResultStoreOptions{}};
  Metrics metrics;
  auto runner =
      std::make_unique<BatchRunner>(Fixture::small_options(), downloader, results, metrics);
  struct ReleaseOnExit {  // if a REQUIRE fails: release before the runner waits
    FakeBackend& backend;
    ~ReleaseOnExit() { backend.release(); }
  } release_on_exit{backend};
  std::vector<BatchInput> inputs;
  inputs.reserve(6);
  for (int i = 0; i < 6; ++i) inputs.push_back(BatchInput{"", "", "image" + std::to_string(i)});
  auto started = runner->start(std::move(inputs), JobParams{}, backend);
  REQUIRE(started.ok());
  const auto batch = *started;
  REQUIRE(wait_until([&] { return backend.held() == 2; }, 30s));

  auto destroyed = std::async(std::launch::async, [&] { runner.reset(); });
  // The destructor cancels what has not started, then waits for the rest.
  const bool cancelled = wait_until([&] { return batch->summary().cancelled == 4; }, 30s);
  CHECK(destroyed.wait_for(0s) == std::future_status::timeout);
  backend.release();
  REQUIRE(destroyed.wait_for(30s) == std::future_status::ready);
  REQUIRE(cancelled);
  CHECK(batch->over());
  const BatchSummary s = batch->summary();
  CHECK(s.state == BatchState::cancelled);
  CHECK(s.succeeded == 2);
  CHECK(s.cancelled == 4);
  CHECK(backend.submitted().size() == 2);
}

TEST_CASE("batch runner: find() returns remembered batches and ids carry the prefix") {
  BatchRunnerOptions options = Fixture::small_options();
  options.id_prefix = "r7-";
  options.max_batches = 2;
  Fixture f(options, 2);
  auto held = f.start({"hold-x"});  // still running when the others are added
  REQUIRE(held.ok());
  CHECK((*held)->id().starts_with("r7-"));
  CHECK(f.runner->find((*held)->id()) == *held);
  CHECK(f.runner->find("r7-nope") == nullptr);
  CHECK(f.runner->find("") == nullptr);

  auto second = f.start({"a"});
  REQUIRE(second.ok());
  REQUIRE(over_within(**second));
  CHECK((*second)->id() != (*held)->id());
  auto third = f.start({"b"});
  REQUIRE(third.ok());
  // Over max_batches: the oldest finished batch is forgotten, the running one stays.
  CHECK(f.runner->find((*second)->id()) == nullptr);
  CHECK(f.runner->find((*held)->id()) == *held);
  CHECK(f.runner->find((*third)->id()) == *third);
  f.backend.release();
  CHECK(over_within(**held));
}

TEST_CASE("item and batch state names") {
  CHECK(item_state_name(ItemState::pending) == "pending");
  CHECK(item_state_name(ItemState::running) == "running");
  CHECK(item_state_name(ItemState::succeeded) == "succeeded");
  CHECK(item_state_name(ItemState::failed) == "failed");
  CHECK(item_state_name(ItemState::cancelled) == "cancelled");
  CHECK(batch_state_name(BatchState::running) == "running");
  CHECK(batch_state_name(BatchState::done) == "done");
  CHECK(batch_state_name(BatchState::cancelled) == "cancelled");
}
