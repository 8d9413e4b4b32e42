#pragma once
// The horizontal half of the three-box blur for 16 rows at once (x86-64).
//
// A box along a row is a running sum: one add and one subtract per sample,
// but each step depends on the one before, so it does not vectorise along the
// row. Across 16 rows it does: the band is transposed in 16x16 tiles so that
// each vector holds one column of the 16 rows, the running sums slide along
// the columns with all 16 rows in the lanes, and the result is transposed
// back. That costs about a third of summing every box tap with vectors
// (filters/box_blur.cpp's portable path). SSE2 and AVX2 variants; AVX2 is
// chosen at run time when the CPU has it.

#include <cstdint>
#include <vector>

#include "filters/box_blur.hpp"

namespace pixpool::box_blur {

inline constexpr int kBandRows = 16;

// Whether blur_band can run here (x86-64).
bool band_blur_available();

enum class BandIsa { best, sse2 };  // sse2: force the baseline variant (tests)

// rows[k]: kBandRows 8-bit rows of cols * channels samples (repeat a pointer
// to fill unused lanes); out[k]: their horizontally blurred 16-bit fixed-point
// rows (plan.fraction_bits), the same as RowStream's per-row path produces.
void blur_band(const std::uint8_t* const* rows, std::uint16_t* const* out, int cols, int channels,
               const Plan& plan, BandScratch& scratch, BandIsa isa = BandIsa::best);

}  // namespace pixpool::box_blur
