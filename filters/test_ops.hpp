#pragma once
// Test-only ops for fault and timeout tests. parse_ops refuses them (as
// unknown ops) unless the server runs with --enable-test-ops; never enable
// that in production.
//   sleep:MS  waits MS milliseconds (0..60000), like a slow decode
//   crash     raises SIGSEGV, like a decoder bug
//   hog:MB    allocates and touches MB megabytes (1..65536), like a bomb

#include "core/result.hpp"

namespace pixpool {

inline constexpr double kSleepMaxMs = 60000;
inline constexpr double kHogMaxMb = 65536;

void test_sleep(double milliseconds);
[[noreturn]] void test_crash();
// Errors: none; std::bad_alloc propagates, as a real allocation failure would.
void test_hog(double megabytes);

}  // namespace pixpool
