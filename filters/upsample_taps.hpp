#pragma once
// The band-limited upsampler's horizontal 4-tap filter (filters/band_limited
// .cpp), in a portable version and an AVX2 one that gives the same bytes.
// Declared here so that tests can hold the two against each other.

#include <cstdint>

namespace pixpool::upsample {

// out[i] = (w[0] a[i] + w[1] b[i] + w[2] c[i] + w[3] d[i] + 128) >> 8 for
// 0 <= i < n, where a = in, b = in + stride, c = b + stride, d = c + stride:
// 32 x the interpolated value for Q13 weights. The weights must fit 16 bits
// and so must the results (they do for the cubic's weights and 8-bit input).
void filter4_portable(const std::uint8_t* in, int stride, const std::int32_t* w, std::int16_t* out,
                      int n);
// The same with AVX2; only on x86-64 CPUs where filter4_avx2_available().
void filter4_avx2(const std::uint8_t* in, int stride, const std::int32_t* w, std::int16_t* out,
                  int n);
bool filter4_avx2_available();
// The best of the two for this CPU.
void filter4(const std::uint8_t* in, int stride, const std::int32_t* w, std::int16_t* out, int n);

}  // namespace pixpool::upsample
