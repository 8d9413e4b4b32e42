// Test op `hog:MB`: allocates and touches memory, like an image bomb.
// std::bad_alloc propagates, as a real allocation failure would.

#include <cstddef>
#include <memory>

#include "filters/test_ops/test_ops.hpp"

namespace pixpool {
namespace {

Result<void> run_hog(std::span<const double> args, const cv::Mat&, cv::Mat&, const StripRunner&) {
  const auto bytes = static_cast<std::size_t>(args[0]) << 20;
  auto block = std::make_unique<char[]>(bytes);  // value-initialised: every page touched
  volatile char sink = block[bytes - 1];
  (void)sink;
  return {};
}

}  // namespace

const OpDef& hog_op() {
  static const OpDef def{
      .name = "hog",
      .help = "test only: allocate and touch memory, like an image bomb",
      .args = {OpArg{.name = "mb",
                     .type = ArgType::integer,
                     .min = 1,
                     .max = 65536,
                     .default_value = std::nullopt,
                     .help = "MiB to allocate"}},
      .run = run_hog,
      .fuses_with = {},
      .run_fused = nullptr,
  };
  return def;
}

}  // namespace pixpool
