#include "pipeline/strip_runner.hpp"

#include <oneapi/tbb/parallel_for.h>

#include <algorithm>

namespace pixpool {

StripRunner tbb_strip_runner(int max_strips) {
  if (max_strips <= 1) return {};
  return [max_strips](int rows, int min_rows, const std::function<void(int, int)>& body) {
    const int strips = std::clamp(rows / std::max(min_rows, 1), 1, max_strips);
    if (strips == 1) {
      body(0, rows);
      return;
    }
    // Equal strips, one task each: the strips cost the same, so there is
    // nothing for finer-grained stealing to balance.
    tbb::parallel_for(
        0, strips,
        [&](int s) {
          const auto begin = static_cast<int>(static_cast<long long>(rows) * s / strips);
          const auto end = static_cast<int>(static_cast<long long>(rows) * (s + 1) / strips);
          body(begin, end);
        },
        tbb::simple_partitioner{});
  };
}

}  // namespace pixpool
