// wait_until (tests/support/wait.hpp): the bounded wait every test uses.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "tests/support/wait.hpp"

using namespace std::chrono_literals;
using pixpool::test::wait_until;
using Clock = std::chrono::steady_clock;

TEST_CASE("wait_until: a condition that already holds returns true at once") {
  int calls = 0;
  const auto start = Clock::now();
  CHECK(wait_until(
      [&] {
        ++calls;
        return true;
      },
      10s));
  CHECK(calls == 1);
  CHECK(Clock::now() - start < 5s);  // not the timeout
}

TEST_CASE("wait_until: a condition that never holds returns false after the timeout") {
  int calls = 0;
  const auto start = Clock::now();
  CHECK_FALSE(wait_until(
      [&] {
        ++calls;
        return false;
      },
      50ms, 5ms));
  CHECK(Clock::now() - start >= 50ms);
  CHECK(calls >= 2);  // polled, and evaluated again at the deadline
}

TEST_CASE("wait_until: a condition that comes true on another thread is seen") {
  std::atomic<bool> flag{false};
  std::thread setter([&] {
    std::this_thread::sleep_for(20ms);  // the scenario: it comes true later
    flag = true;
  });
  CHECK(wait_until([&] { return flag.load(); }, 30s));
  setter.join();
}

TEST_CASE("wait_until: a zero timeout still evaluates the condition once") {
  CHECK(wait_until([] { return true; }, 0ms));
  CHECK_FALSE(wait_until([] { return false; }, 0ms));
}
