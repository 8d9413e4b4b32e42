// blur_band for any x86-64 CPU: 16-lane blocks as two SSE2 registers.
#include <emmintrin.h>

#include "filters/box_blur_band_impl.hpp"

namespace pixpool::box_blur {
namespace {

struct Sse2 {
  struct V {
    __m128i lo, hi;  // rows 0-7, rows 8-15
  };
  static V load(const std::uint16_t* p) {
    return {_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)),
            _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 8))};
  }
  static V load(const std::uint8_t* p) {
    const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i zero = _mm_setzero_si128();
    return {_mm_unpacklo_epi8(bytes, zero), _mm_unpackhi_epi8(bytes, zero)};
  }
  static void store(std::uint16_t* p, V v) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), v.lo);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p + 8), v.hi);
  }
  static V zero() { return {_mm_setzero_si128(), _mm_setzero_si128()}; }
  static V splat(std::uint16_t x) {
    const __m128i v = _mm_set1_epi16(static_cast<short>(x));
    return {v, v};
  }
  static V add(V a, V b) { return {_mm_add_epi16(a.lo, b.lo), _mm_add_epi16(a.hi, b.hi)}; }
  static V sub(V a, V b) { return {_mm_sub_epi16(a.lo, b.lo), _mm_sub_epi16(a.hi, b.hi)}; }
  static V mulhi(V a, V m) { return {_mm_mulhi_epu16(a.lo, m.lo), _mm_mulhi_epu16(a.hi, m.hi)}; }
  static V shl(V a, int bits) {
    const __m128i count = _mm_cvtsi32_si128(bits);
    return {_mm_sll_epi16(a.lo, count), _mm_sll_epi16(a.hi, count)};
  }
};

}  // namespace

void blur_band_sse2(const std::uint8_t* const* rows, std::uint16_t* const* out, int cols,
                    int channels, const Plan& plan, std::uint16_t* t0, std::uint16_t* t1) {
  blur_band_for<Sse2>(rows, out, cols, channels, plan, t0, t1);
}

}  // namespace pixpool::box_blur
