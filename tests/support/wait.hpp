#pragma once
// Bounded waiting for tests. Instead of sleeping "long enough" and then
// asserting (flaky on a loaded machine, slow on an idle one) or polling with
// no deadline (hangs until ctest's timeout when the condition never holds),
// poll the condition until it holds or a deadline passes:
//
//   REQUIRE(test::wait_until([&] { return budget.stats().waiting == 1; }, 10s));
//
// The deadline is a failure bound, not a speed target: keep it generous
// (tests also run under ASan and TSan), tens of seconds at most.

#include <algorithm>
#include <chrono>
#include <thread>

namespace pixpool::test {

// Evaluates `condition` every `poll` until it returns true (then returns
// true) or `timeout` has passed (then returns false). The condition is
// evaluated at least once, and once more after the deadline is reached, so a
// condition that holds by the deadline is never reported as failed. Use a
// longer `poll` when the condition is costly (an HTTP request, reading a log).
template <class Predicate>
[[nodiscard]] bool wait_until(Predicate&& condition, std::chrono::milliseconds timeout,
                              std::chrono::milliseconds poll = std::chrono::milliseconds(2)) {
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    if (condition()) return true;
    const auto now = Clock::now();
    if (now >= deadline) return false;
    std::this_thread::sleep_for(std::min<Clock::duration>(poll, deadline - now));
  }
}

}  // namespace pixpool::test
