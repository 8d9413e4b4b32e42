// The band-limited upsampler's horizontal 4-tap filter for CPUs with AVX2
// (compiled with -mavx2; filters/band_limited.cpp calls it only after a
// run-time check). vpmaddwd multiplies and adds two taps at once in 32-bit
// lanes, where the portable loop needs a 32-bit multiply per tap; the
// integer arithmetic is the same, so are the bytes.
#include <immintrin.h>

#include "filters/upsample_taps.hpp"

namespace pixpool::upsample {

void filter4_avx2(const std::uint8_t* in, int stride, const std::int32_t* w, std::int16_t* out,
                  int n) {
  const auto pair = [](std::int32_t low, std::int32_t high) {
    return _mm256_set1_epi32(static_cast<std::int32_t>(
        (static_cast<std::uint32_t>(high) << 16) | (static_cast<std::uint32_t>(low) & 0xffffU)));
  };
  const __m256i w01 = pair(w[0], w[1]);
  const __m256i w23 = pair(w[2], w[3]);
  const __m256i round = _mm256_set1_epi32(128);
  const std::uint8_t* a = in;
  const std::uint8_t* b = a + stride;
  const std::uint8_t* c = b + stride;
  const std::uint8_t* d = c + stride;
  const auto widen = [](const std::uint8_t* p) {
    return _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  };
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256i va = widen(a + i), vb = widen(b + i), vc = widen(c + i), vd = widen(d + i);
    // Per 128-bit lane: lo holds samples 0-3 (and 8-11), hi 4-7 (and
    // 12-15); packs puts them back in order.
    __m256i lo = _mm256_add_epi32(_mm256_madd_epi16(_mm256_unpacklo_epi16(va, vb), w01),
                                  _mm256_madd_epi16(_mm256_unpacklo_epi16(vc, vd), w23));
    __m256i hi = _mm256_add_epi32(_mm256_madd_epi16(_mm256_unpackhi_epi16(va, vb), w01),
                                  _mm256_madd_epi16(_mm256_unpackhi_epi16(vc, vd), w23));
    lo = _mm256_srai_epi32(_mm256_add_epi32(lo, round), 8);
    hi = _mm256_srai_epi32(_mm256_add_epi32(hi, round), 8);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), _mm256_packs_epi32(lo, hi));
  }
  for (; i < n; ++i) {
    out[i] = static_cast<std::int16_t>(
        (w[0] * a[i] + w[1] * b[i] + w[2] * c[i] + w[3] * d[i] + 128) >> 8);
  }
}

}  // namespace pixpool::upsample
