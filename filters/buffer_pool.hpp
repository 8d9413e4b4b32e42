#pragma once
// A process-wide cache of large pixel buffers for cv::Mat.
//
// Every image costs a few multi-megabyte buffers (decoded pixels, filter
// output). glibc hands blocks that big straight to mmap and back to the kernel
// on free, so each image pays a page fault per 4 KiB page plus the kernel's
// zeroing: measured at about 0.5 ms per 1080p buffer and 6 ms per 12 MP buffer
// (docs/performance.md). The pool keeps freed buffers of 1 MiB and up and
// hands them out again, so in steady state no image touches fresh memory.
//
// Bounded: at most `max_cached_bytes` sit idle in the pool; a buffer freed
// beyond that goes back to the kernel. Thread-safe.

#include <cstddef>
#include <cstdint>

namespace pixpool {

struct BufferPoolStats {
  std::uint64_t hits = 0;        // allocations served from the pool
  std::uint64_t misses = 0;      // allocations that had to map fresh memory
  std::size_t cached_bytes = 0;  // idle bytes held now
};

// Makes the pool OpenCV's default allocator for new cv::Mat data (once per
// process; later calls only change the cap). Call before any thread starts:
// forked workers inherit it.
void install_buffer_pool(std::size_t max_cached_bytes);

// Counters since start (all zero when the pool is not installed).
BufferPoolStats buffer_pool_stats();

}  // namespace pixpool
