#pragma once
// PIXPOOL_SIMD_CLONES marks a hot loop function for function multiversioning:
// GCC and Clang compile it once per listed instruction set and pick the best
// at load time (an ifunc), so one portable binary uses AVX2 or AVX-512 where
// the CPU has it. The loops are written plainly for the auto-vectoriser; the
// filters library builds them with -O3 (filters/CMakeLists.txt).
#if !defined(PIXPOOL_NO_CLONES) && defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define PIXPOOL_SIMD_CLONES \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define PIXPOOL_SIMD_CLONES
#endif
