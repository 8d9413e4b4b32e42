#pragma once
// Intra-image parallelism: a StripRunner (filters/strips.hpp) that spreads an
// image's row strips over oneTBB threads, so one request can use every idle
// core while its filters run.

#include "filters/strips.hpp"

namespace pixpool {

// Splits the rows into at most `max_strips` strips (fewer when min_rows would
// be broken) and runs them with tbb::parallel_for in the calling thread's
// arena: inside TbbBackend that is the backend's arena, in a worker process
// TBB's default one. max_strips <= 1 gives the empty (serial) runner.
//
// Callers pass 1 + the number of idle threads: splitting when every core is
// already busy with other images would only add each strip's warm-up rows.
StripRunner tbb_strip_runner(int max_strips);

}  // namespace pixpool
