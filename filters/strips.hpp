#pragma once
// How a filter may split an image's rows into strips that run in parallel.
// The filters layer knows nothing of thread pools: the pipeline passes a
// StripRunner built on its TBB arena (pipeline/strip_runner.hpp); an empty
// runner means "one strip, on this thread".

#include <functional>

namespace pixpool {

// Calls body(begin, end) for consecutive row ranges that together cover
// [0, rows) exactly once, possibly concurrently. `min_rows` is the shortest
// strip worth its start-up cost; a runner never makes strips shorter unless
// the image itself is.
using StripRunner =
    std::function<void(int rows, int min_rows, const std::function<void(int, int)>& body)>;

// Runs `body` through `runner`, or as one strip when `runner` is empty.
inline void run_strips(const StripRunner& runner, int rows, int min_rows,
                       const std::function<void(int, int)>& body) {
  if (runner) {
    runner(rows, min_rows, body);
  } else {
    body(0, rows);
  }
}

}  // namespace pixpool
