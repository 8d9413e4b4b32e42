#pragma once
// The band algorithm of filters/box_blur_band.hpp, templated on the vector
// instruction set. Included by one .cpp per instruction set (each compiled
// with its own -m flags), so everything here has internal linkage.

#include <emmintrin.h>

#include <cstdint>

#include "filters/box_blur.hpp"

namespace pixpool::box_blur {
namespace {

// Block j of a transposed band: 16 consecutive uint16 at t + 16 * j, one
// per row of the band.
inline std::uint16_t* block(std::uint16_t* t, int j) {
  return t + 16 * j;
}
inline const std::uint16_t* block(const std::uint16_t* t, int j) {
  return t + 16 * j;
}

// Transposes 16 rows x 16 bytes (at rows[k] + offset) into 16 columns and
// widens each into a block of the transposed band. Four rounds of byte
// interleaving with the rows paired (i, i + 8) is a 16x16 transpose.
template <class Isa>
inline void transpose_in(const std::uint8_t* const* rows, int offset, std::uint16_t* dst) {
  __m128i r[16];
  for (int k = 0; k < 16; ++k) {
    r[k] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(rows[k] + offset));
  }
  for (int round = 0; round < 4; ++round) {
    __m128i n[16];
    for (int i = 0; i < 8; ++i) {
      n[2 * i] = _mm_unpacklo_epi8(r[i], r[i + 8]);
      n[2 * i + 1] = _mm_unpackhi_epi8(r[i], r[i + 8]);
    }
    for (int k = 0; k < 16; ++k) r[k] = n[k];
  }
  for (int k = 0; k < 16; ++k) Isa::widen_store(block(dst, k), r[k]);
}

// Transposes 8 blocks (samples j .. j+7 of 16 rows, at src) back into rows:
// two 8x8 transposes of 16-bit values, rows 0-7 from the blocks' low halves
// and rows 8-15 from the high halves. Three rounds pairing (i, i + 4).
inline void transpose_out(const std::uint16_t* src, std::uint16_t* const* out, int j) {
  for (int half = 0; half < 2; ++half) {
    __m128i r[8];
    for (int k = 0; k < 8; ++k) {
      r[k] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(block(src, k) + 8 * half));
    }
    for (int round = 0; round < 3; ++round) {
      __m128i n[8];
      for (int i = 0; i < 4; ++i) {
        n[2 * i] = _mm_unpacklo_epi16(r[i], r[i + 4]);
        n[2 * i + 1] = _mm_unpackhi_epi16(r[i], r[i + 4]);
      }
      for (int k = 0; k < 8; ++k) r[k] = n[k];
    }
    for (int k = 0; k < 8; ++k) {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out[8 * half + k] + j), r[k]);
    }
  }
}

// One box of width `width` along the transposed band: out block j = (sum of
// in blocks j, j+C, ..., j+(width-1)*C) << shift, divided by width through
// mulhi. C channels give C interleaved running sums. `count` output blocks
// (a multiple of C); `in` holds count + (width-1)*C blocks.
// (Fusing the three boxes into one loop with small rings in between measured
// slower: 4.0 against 3.5 ms per 1080p blur.)
template <class Isa, int C>
inline void slide(const std::uint16_t* in, std::uint16_t* out, int count, int width,
                  std::uint16_t reciprocal, int shift) {
  using V = typename Isa::V;
  const V m = Isa::splat(reciprocal);
  V sum[C];
  for (int c = 0; c < C; ++c) {
    sum[c] = Isa::zero();
    for (int k = 0; k < width; ++k) sum[c] = Isa::add(sum[c], Isa::load(block(in, c + k * C)));
    Isa::store(block(out, c), Isa::mulhi(Isa::shl(sum[c], shift), m));
  }
  const int ahead = (width - 1) * C;  // the block entering, relative to j
  for (int j = C; j < count; j += C) {
    for (int c = 0; c < C; ++c) {
      sum[c] = Isa::add(sum[c], Isa::load(block(in, j + c + ahead)));
      sum[c] = Isa::sub(sum[c], Isa::load(block(in, j + c - C)));
      Isa::store(block(out, j + c), Isa::mulhi(Isa::shl(sum[c], shift), m));
    }
  }
}

template <class Isa, int C>
inline void blur_band_impl(const std::uint8_t* const* rows, std::uint16_t* const* out, int cols,
                           const Plan& plan, std::uint16_t* t0, std::uint16_t* t1) {
  const int total = plan.total_radius();
  const int n = cols * C;  // samples per row
  // Interior columns, 16 at a time, then the tail one sample at a time.
  std::uint16_t* interior = block(t0, total * C);
  int j = 0;
  for (; j + 16 <= n; j += 16) transpose_in<Isa>(rows, j, block(interior, j));
  for (; j < n; ++j) {
    for (int k = 0; k < 16; ++k) block(interior, j)[k] = rows[k][j];
  }
  // Replicated margins: copies of the first and last pixel's blocks.
  for (int x = 0; x < total; ++x) {
    for (int c = 0; c < C; ++c) {
      Isa::store(block(t0, x * C + c), Isa::load(block(interior, c)));
      Isa::store(block(t0, (total + cols + x) * C + c), Isa::load(block(interior, n - C + c)));
    }
  }
  // Three boxes, each shrinking the band by its two radii: t0 -> t1 -> t0 -> t1.
  int count = (cols + 2 * (total - plan.radius[0])) * C;
  slide<Isa, C>(t0, t1, count, plan.width(0), plan.reciprocal[0], plan.fraction_bits);
  count -= 2 * plan.radius[1] * C;
  slide<Isa, C>(t1, t0, count, plan.width(1), plan.reciprocal[1], 0);
  count -= 2 * plan.radius[2] * C;
  slide<Isa, C>(t0, t1, count, plan.width(2), plan.reciprocal[2], 0);
  // Back to rows, 8 samples at a time, then the tail one at a time.
  j = 0;
  for (; j + 8 <= n; j += 8) transpose_out(block(t1, j), out, j);
  for (; j < n; ++j) {
    for (int k = 0; k < 16; ++k) out[k][j] = block(t1, j)[k];
  }
}

// Entry point for one instruction set: scratch rows `t0` and `t1` each hold
// 16 * (cols + 2 * total_radius) * channels values.
template <class Isa>
inline void blur_band_for(const std::uint8_t* const* rows, std::uint16_t* const* out, int cols,
                          int channels, const Plan& plan, std::uint16_t* t0, std::uint16_t* t1) {
  if (channels == 3) {
    blur_band_impl<Isa, 3>(rows, out, cols, plan, t0, t1);
  } else {
    blur_band_impl<Isa, 1>(rows, out, cols, plan, t0, t1);
  }
}

}  // namespace
}  // namespace pixpool::box_blur
