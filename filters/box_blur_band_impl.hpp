#pragma once
// The band algorithm of filters/box_blur_band.hpp, templated on the vector
// instruction set. Included by one .cpp per instruction set (each compiled
// with its own -m flags), so everything here has internal linkage.

#include <emmintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "filters/box_blur.hpp"

namespace pixpool::box_blur {
namespace {

// Block j of a transposed band: 16 consecutive uint16 at t + 16 * j, one
// per row of the band.
inline std::uint16_t* block(std::uint16_t* t, int j) {
  return t + std::ptrdiff_t{16} * j;
}
// The band's input stays 8-bit until the first box reads it.
inline std::uint8_t* block(std::uint8_t* t, int j) {
  return t + std::ptrdiff_t{16} * j;
}
inline const std::uint8_t* block(const std::uint8_t* t, int j) {
  return t + std::ptrdiff_t{16} * j;
}
inline const std::uint16_t* block(const std::uint16_t* t, int j) {
  return t + std::ptrdiff_t{16} * j;
}

// Transposes 16 rows x 16 bytes (at rows[k] + offset) into 16 columns, each
// an 8-bit block of the transposed band. Four rounds of byte interleaving
// with the rows paired (i, i + 8) is a 16x16 transpose.
inline void transpose_in(const std::uint8_t* const* rows, int offset, std::uint8_t* dst) {
  __m128i r[16];
  for (int k = 0; k < 16; ++k) {
    r[k] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(rows[k] + offset));
  }
  for (int round = 0; round < 4; ++round) {
    __m128i n[16];
    for (std::size_t i = 0; i < 8; ++i) {
      n[2 * i] = _mm_unpacklo_epi8(r[i], r[i + 8]);
      n[2 * i + 1] = _mm_unpackhi_epi8(r[i], r[i + 8]);
    }
    for (int k = 0; k < 16; ++k) r[k] = n[k];
  }
  for (int k = 0; k < 16; ++k) _mm_storeu_si128(reinterpret_cast<__m128i*>(block(dst, k)), r[k]);
}

// Transposes 8 blocks (samples j .. j+7 of 16 rows, at src) back into rows:
// two 8x8 transposes of 16-bit values, rows 0-7 from the blocks' low halves
// and rows 8-15 from the high halves. Three rounds pairing (i, i + 4).
inline void transpose_out(const std::uint16_t* src, std::uint16_t* const* out, int j) {
  for (int half = 0; half < 2; ++half) {
    __m128i r[8];
    for (int k = 0; k < 8; ++k) {
      r[k] = _mm_loadu_si128(
          reinterpret_cast<const __m128i*>(block(src, k) + std::ptrdiff_t{8} * half));
    }
    for (int round = 0; round < 3; ++round) {
      __m128i n[8];
      for (std::size_t i = 0; i < 4; ++i) {
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

// One box of width `width` along the transposed band, for output blocks
// [from, to): out block j = (sum of in blocks j, j+C, ..., j+(width-1)*C)
// << shift, divided by width through mulhi. C channels give C interleaved
// running sums, kept in `sum` between calls; from == 0 starts them. `from`
// and `to` are multiples of C.
template <class Isa, int C, typename In>
inline void slide(const In* in, std::uint16_t* out, int from, int to, int width,
                  std::uint16_t reciprocal, int shift, typename Isa::V* sum) {
  using V = typename Isa::V;
  const V m = Isa::splat(reciprocal);
  if (from == 0 && to > 0) {
    for (int c = 0; c < C; ++c) {
      sum[c] = Isa::zero();
      for (int k = 0; k < width; ++k) sum[c] = Isa::add(sum[c], Isa::load(block(in, c + k * C)));
      Isa::store(block(out, c), Isa::mulhi(Isa::shl(sum[c], shift), m));
    }
    from = C;
  }
  const int ahead = (width - 1) * C;  // the block entering, relative to j
  for (int j = from; j < to; j += C) {
    for (int c = 0; c < C; ++c) {
      sum[c] = Isa::add(sum[c], Isa::load(block(in, j + c + ahead)));
      sum[c] = Isa::sub(sum[c], Isa::load(block(in, j + c - C)));
      Isa::store(block(out, j + c), Isa::mulhi(Isa::shl(sum[c], shift), m));
    }
  }
}

// The three boxes, strip-mined: box 0 advances one chunk of blocks, then
// boxes 1 and 2 follow as far as their inputs reach, so each box reads blocks
// the one before wrote moments ago, from L1. (Three whole passes stream the
// band through L2 each time; a fully fused one-block-at-a-time loop measured
// slower still: 4.0 against 3.5 ms per 1080p blur.) Box k+1 writes where box
// k has finished reading, so two buffers suffice: input -> t1 -> t0 -> t1.
template <class Isa, int C>
inline void three_boxes(const std::uint8_t* input, std::uint16_t* t0, std::uint16_t* t1,
                        int padded_blocks, const Plan& plan, std::uint16_t* const* out, int n) {
  using V = typename Isa::V;
  constexpr int kChunk = 32 * C;
  V sum0[C], sum1[C], sum2[C];
  for (int c = 0; c < C; ++c) sum0[c] = sum1[c] = sum2[c] = Isa::zero();
  const int count0 = padded_blocks - (plan.width(0) - 1) * C;  // box 0 outputs
  const int count1 = count0 - (plan.width(1) - 1) * C;
  const int count2 = n;  // == count1 - (width(2) - 1) * C
  int done0 = 0, done1 = 0, done2 = 0, emitted = 0;
  while (done2 < count2) {
    const int to0 = std::min(count0, done0 + kChunk);
    slide<Isa, C>(input, t1, done0, to0, plan.width(0), plan.reciprocal[0], plan.fraction_bits,
                  sum0);
    done0 = to0;
    // Box k+1's output j needs box k's outputs up to j + (width-1)*C.
    const int to1 = std::min(count1, done0 == count0 ? count1 : done0 - (plan.width(1) - 1) * C);
    if (to1 > done1) {
      slide<Isa, C>(t1, t0, done1, to1, plan.width(1), plan.reciprocal[1], 0, sum1);
      done1 = to1;
    }
    const int to2 = std::min(count2, done1 == count1 ? count2 : done1 - (plan.width(2) - 1) * C);
    if (to2 > done2) {
      slide<Isa, C>(t0, t1, done2, to2, plan.width(2), plan.reciprocal[2], 0, sum2);
      done2 = to2;
    }
    // Back to rows, 8 samples at a time.
    for (; emitted + 8 <= done2; emitted += 8) transpose_out(block(t1, emitted), out, emitted);
  }
  for (; emitted < n; ++emitted) {
    for (int k = 0; k < 16; ++k) out[k][emitted] = block(t1, emitted)[k];
  }
}

template <class Isa, int C>
inline void blur_band_impl(const std::uint8_t* const* rows, std::uint16_t* const* out, int cols,
                           const Plan& plan, std::uint16_t* t0, std::uint16_t* t1) {
  const int total = plan.total_radius();
  const int n = cols * C;  // samples per row
  // Interior columns, 16 at a time, then the tail one sample at a time.
  // The 8-bit transposed input sits in t0's upper half: half the bytes of
  // 16-bit blocks to write and read, and box 1 overwrites t0 only behind it.
  auto* input = reinterpret_cast<std::uint8_t*>(t0 + std::ptrdiff_t{8} * (cols + 2 * total) * C);
  std::uint8_t* interior = block(input, total * C);
  int j = 0;
  for (; j + 16 <= n; j += 16) transpose_in(rows, j, block(interior, j));
  for (; j < n; ++j) {
    for (int k = 0; k < 16; ++k) block(interior, j)[k] = rows[k][j];
  }
  // Replicated margins: copies of the first and last pixel's blocks.
  for (int x = 0; x < total; ++x) {
    for (int c = 0; c < C; ++c) {
      std::copy_n(block(interior, c), 16, block(input, x * C + c));
      std::copy_n(block(interior, n - C + c), 16, block(input, (total + cols + x) * C + c));
    }
  }
  three_boxes<Isa, C>(input, t0, t1, (cols + 2 * total) * C, plan, out, n);
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
