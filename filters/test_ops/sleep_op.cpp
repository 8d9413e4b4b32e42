// Test op `sleep:MS`: waits, like a slow decode; pixels unchanged.

#include <chrono>
#include <thread>

#include "filters/test_ops/test_ops.hpp"

namespace pixpool {
namespace {

Result<void> run_sleep(std::span<const double> args, const cv::Mat&, cv::Mat&, const StripRunner&) {
  std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(args[0]));
  return {};
}

}  // namespace

const OpDef& sleep_op() {
  static const OpDef def{
      .name = "sleep",
      .help = "test only: wait, like a slow decode",
      .args = {OpArg{.name = "ms",
                     .type = ArgType::integer,
                     .min = 0,
                     .max = 60000,
                     .default_value = std::nullopt,
                     .help = "milliseconds to wait"}},
      .run = run_sleep,
      .fuses_with = {},
      .run_fused = nullptr,
  };
  return def;
}

}  // namespace pixpool
