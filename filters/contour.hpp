#pragma once
// Contour (edge) filter: the `contour` op, Pillow's ImageFilter.CONTOUR.

#include <cstdint>
#include <opencv2/core.hpp>

#include "core/result.hpp"
#include "filters/strips.hpp"

namespace pixpool {

// Per channel: 8*centre - (sum of the 8 neighbours) + 255, clamped to 0..255,
// borders replicated. Flat areas become white, edges dark lines.
// `src` must be CV_8UC1 or CV_8UC3; `dst` gets the same size and type and may
// alias `src`. Rows run in strips through `strips` (empty: this thread only).
// Errors: invalid_parameter for other image types.
Result<void> contour(const cv::Mat& src, cv::Mat& dst, const StripRunner& strips = {});

// One output row of the contour filter from the rows above, at and below it
// (the same pointer twice at the image's top or bottom edge). Rows hold
// `cols` pixels of `channels` interleaved 8-bit samples; `scratch` holds
// cols * channels 16-bit values. Exposed for the fused blur + contour.
void contour_row(const std::uint8_t* up, const std::uint8_t* mid, const std::uint8_t* down,
                 std::uint8_t* out, int cols, int channels, std::uint16_t* scratch);

}  // namespace pixpool
