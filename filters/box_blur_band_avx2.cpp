// blur_band for CPUs with AVX2 (compiled with -mavx2; only called after a
// run-time check): one 16-lane block per register.
#include <immintrin.h>

#include "filters/box_blur_band_impl.hpp"

namespace pixpool::box_blur {
namespace {

struct Avx2 {
  using V = __m256i;
  static V load(const std::uint16_t* p) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  }
  static V load(const std::uint8_t* p) {
    return _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static void store(std::uint16_t* p, V v) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v);
  }
  static V zero() { return _mm256_setzero_si256(); }
  static V splat(std::uint16_t x) { return _mm256_set1_epi16(static_cast<short>(x)); }
  static V add(V a, V b) { return _mm256_add_epi16(a, b); }
  static V sub(V a, V b) { return _mm256_sub_epi16(a, b); }
  static V mulhi(V a, V m) { return _mm256_mulhi_epu16(a, m); }
  static V shl(V a, int bits) { return _mm256_sll_epi16(a, _mm_cvtsi32_si128(bits)); }
};

}  // namespace

void blur_band_avx2(const std::uint8_t* const* rows, std::uint16_t* const* out, int cols,
                    int channels, const Plan& plan, std::uint16_t* t0, std::uint16_t* t1) {
  blur_band_for<Avx2>(rows, out, cols, channels, plan, t0, t1);
}

}  // namespace pixpool::box_blur
