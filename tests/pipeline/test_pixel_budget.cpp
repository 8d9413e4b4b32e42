// PixelBudget and BudgetedBackend: admission by decoded pixels, waiting,
// refusal after the deadline, first-come-first-served order.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>
#include <vector>

#include "filters/op_chain.hpp"
#include "pipeline/pixel_budget.hpp"
#include "pipeline/tbb_backend.hpp"
#include "tests/support/images.hpp"
#include "tests/support/wait.hpp"

using namespace pixpool;
using namespace std::chrono_literals;
using pixpool::test::wait_until;

namespace {

auto in(std::chrono::milliseconds ms) {
  return std::chrono::steady_clock::now() + ms;
}

}  // namespace

TEST_CASE("pixel budget: reservations within capacity are immediate, released on destruction") {
  PixelBudget budget(100);
  auto a = budget.reserve(60, in(0ms));
  auto b = budget.reserve(40, in(0ms));
  REQUIRE(a);
  REQUIRE(b);
  CHECK(budget.stats().in_flight == 100);
  CHECK_FALSE(budget.reserve(1, in(20ms)));  // full: refused after waiting 20 ms
  CHECK(budget.stats().refused_total == 1);
  a.reset();
  CHECK(budget.stats().in_flight == 40);
  CHECK(budget.reserve(60, in(0ms)));
}

TEST_CASE("pixel budget: a waiter is admitted as soon as room appears") {
  PixelBudget budget(100);
  auto hold = budget.reserve(100, in(0ms));
  auto waiter =
      std::async(std::launch::async, [&] { return budget.reserve(50, in(30s)) != nullptr; });
  REQUIRE(wait_until([&] { return budget.stats().waiting == 1; }, 10s));
  hold.reset();
  CHECK(waiter.get());
  CHECK(budget.stats().waited_total == 1);
}

TEST_CASE("pixel budget: an image larger than the whole budget runs alone instead of never") {
  PixelBudget budget(100);
  auto big = budget.reserve(1000, in(0ms));
  REQUIRE(big);
  CHECK(budget.stats().in_flight == 100);
  CHECK_FALSE(budget.reserve(1, in(10ms)));
}

TEST_CASE("pixel budget: first come first served so a large waiter is not starved by small ones") {
  PixelBudget budget(100);
  auto hold = budget.reserve(60, in(0ms));
  std::atomic<bool> large_admitted{false};
  auto large = std::async(std::launch::async, [&] {
    auto r = budget.reserve(80, in(30s));
    large_admitted = r != nullptr;
    std::this_thread::sleep_for(20ms);
    return r != nullptr;
  });
  REQUIRE(wait_until([&] { return budget.stats().waiting == 1; }, 10s));
  // 30 would fit next to the 60 held, but the large request came first.
  auto small = std::async(std::launch::async, [&] {
    auto r = budget.reserve(30, in(30s));
    return r != nullptr && large_admitted.load();
  });
  REQUIRE(wait_until([&] { return budget.stats().waiting == 2; }, 10s));
  hold.reset();
  CHECK(large.get());
  CHECK(small.get());  // admitted only after the large one
}

TEST_CASE("pixel budget: a waiter that gives up does not block the line behind it") {
  PixelBudget budget(100);
  auto hold = budget.reserve(100, in(0ms));
  // The impatient waiter gives up 300 ms in; the patient one should queue
  // behind it before then. On a very slow machine the impatient one may give
  // up first: the waits below accept that (refused_total) rather than hang.
  auto impatient =
      std::async(std::launch::async, [&] { return budget.reserve(50, in(300ms)) != nullptr; });
  REQUIRE(wait_until(
      [&] { return budget.stats().waiting == 1 || budget.stats().refused_total == 1; }, 10s));
  auto patient =
      std::async(std::launch::async, [&] { return budget.reserve(50, in(30s)) != nullptr; });
  REQUIRE(wait_until(
      [&] {
        const auto stats = budget.stats();
        return stats.waiting == 2 || (stats.refused_total == 1 && stats.waiting == 1);
      },
      10s));
  CHECK_FALSE(impatient.get());
  hold.reset();
  CHECK(patient.get());
}

TEST_CASE("budgeted backend: jobs over the budget wait and run or past the wait get queue_full") {
  const std::string png = test::encode_with_opencv(test::synthetic_image(100, 100, 3), ".png");
  JobParams slow;
  slow.ops = *parse_ops("sleep:300");
  auto budget = std::make_shared<PixelBudget>(15'000);  // one 100x100 image at a time

  SUBCASE("a second job waits for the first and succeeds") {
    BudgetedBackend backend(std::make_unique<TbbBackend>(TbbBackendOptions{2, 16}), budget, 10s);
    auto first = std::async(std::launch::async, [&] { return backend.submit({png, slow}).get(); });
    REQUIRE(wait_until([&] { return budget->stats().in_flight > 0; }, 10s));
    const auto second = backend.submit({png, slow}).get();
    CHECK(second.ok());
    CHECK(first.get().ok());
    CHECK(budget->stats().waited_total >= 1);
    CHECK(budget->stats().in_flight == 0);
  }
  SUBCASE("a job that cannot get room in time is refused with a clear queue_full") {
    BudgetedBackend backend(std::make_unique<TbbBackend>(TbbBackendOptions{2, 16}), budget, 50ms);
    auto first = std::async(std::launch::async, [&] { return backend.submit({png, slow}).get(); });
    REQUIRE(wait_until([&] { return budget->stats().in_flight > 0; }, 10s));
    const auto second = backend.submit({png, slow}).get();
    REQUIRE_FALSE(second.ok());
    CHECK(second.error().code == ErrorCode::queue_full);
    CHECK(second.error().message.find("memory budget") != std::string::npos);
    CHECK(first.get().ok());
  }
  SUBCASE("input that is not an image passes straight through to the backend's error") {
    BudgetedBackend backend(std::make_unique<TbbBackend>(TbbBackendOptions{2, 16}), budget, 50ms);
    const auto result = backend.submit({"not an image", {}}).get();
    REQUIRE_FALSE(result.ok());
    CHECK(result.error().code == ErrorCode::unsupported_image);
  }
}

TEST_CASE("budgeted backend: a job whose client goes away while it waits for room is dropped") {
  const std::string png = test::encode_with_opencv(test::synthetic_image(100, 100, 3), ".png");
  JobParams slow;
  slow.ops = *parse_ops("sleep:1000");
  auto budget = std::make_shared<PixelBudget>(15'000);  // one 100x100 image at a time
  BudgetedBackend backend(std::make_unique<TbbBackend>(TbbBackendOptions{2, 16}), budget, 30s);
  auto first = std::async(std::launch::async, [&] { return backend.submit({png, slow}).get(); });
  REQUIRE(wait_until([&] { return budget->stats().in_flight > 0; }, 10s));

  // The waiter's probe reports its client gone 200 ms in.
  const auto gone_at = std::chrono::steady_clock::now() + 200ms;
  auto token =
      std::make_shared<CancelToken>([&] { return std::chrono::steady_clock::now() >= gone_at; });
  JobSpec waiting{png, slow, token};
  const auto result = backend.submit(std::move(waiting)).get();
  const auto waited = std::chrono::steady_clock::now() - (gone_at - 200ms);
  REQUIRE_FALSE(result.ok());
  CHECK(result.error().code == ErrorCode::client_gone);
  CHECK(waited < 900ms);  // dropped while the first job still runs, not after it
  CHECK(budget->stats().refused_total == 0);  // not a refusal for lack of room
  CHECK(first.get().ok());
  CHECK(backend.stats().abandoned == 1);
  CHECK(backend.stats().completed == 1);
}
