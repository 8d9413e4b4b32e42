#include "core/malloc_tuning.hpp"

#include <malloc.h>

namespace pixpool {

void tune_malloc(int mmap_threshold) {
  (void)mallopt(M_MMAP_THRESHOLD, mmap_threshold);
  (void)mallopt(M_TRIM_THRESHOLD, 2 * mmap_threshold);
}

}  // namespace pixpool
