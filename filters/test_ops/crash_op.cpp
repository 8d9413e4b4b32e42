// Test op `crash`: raises SIGSEGV, like a decoder bug.

#include <csignal>
#include <cstdlib>

#include "filters/test_ops/test_ops.hpp"

namespace pixpool {
namespace {

Result<void> run_crash(std::span<const double>, const cv::Mat&, cv::Mat&, const StripRunner&) {
  std::raise(SIGSEGV);
  std::abort();  // in case SIGSEGV is ignored or handled
}

}  // namespace

const OpDef& crash_op() {
  static const OpDef def{
      .name = "crash",
      .help = "test only: raise SIGSEGV, like a decoder bug",
      .args = {},
      .run = run_crash,
      .fuses_with = {},
      .run_fused = nullptr,
  };
  return def;
}

}  // namespace pixpool
