#pragma once
// glibc malloc settings shared by the server, its zygote (and so its
// workers) and the microbenchmarks, so that all of them allocate alike.

namespace pixpool {

// Blocks from `mmap_threshold` bytes up (> 0) are mapped and unmapped on
// their own; smaller ones come from the heap. Also keeps up to twice that
// free at the top of each heap instead of returning it to the kernel at
// once: glibc's own rule when its threshold grows by itself, which a fixed
// threshold turns off. Without it every image's sub-4 MiB buffers (codec
// pools, padded and blurred reduced images, row batches) were handed back
// and faulted in again on the next image, about 7% of a 1080p job
// (docs/performance.md).
void tune_malloc(int mmap_threshold);

}  // namespace pixpool
