#include "filters/test_ops.hpp"

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>

namespace pixpool {

void test_sleep(double milliseconds) {
  std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(milliseconds));
}

void test_crash() {
  std::raise(SIGSEGV);
  std::abort();  // in case SIGSEGV is ignored or handled
}

void test_hog(double megabytes) {
  const auto bytes = static_cast<std::size_t>(megabytes * 1024 * 1024);
  auto block = std::make_unique<char[]>(bytes);  // value-initialised: every page touched
  volatile char sink = block[bytes - 1];
  (void)sink;
}

}  // namespace pixpool
