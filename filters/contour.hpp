#pragma once
// Contour (edge) filter: the `contour` op, Pillow's ImageFilter.CONTOUR.

#include <opencv2/core.hpp>

#include "filters/status.hpp"

namespace pixpool {

// Per channel: 8*centre - (sum of the 8 neighbours) + 255, clamped to 0..255,
// borders replicated. Flat areas become white, edges dark lines.
// `src` must be CV_8UC1 or CV_8UC3; `dst` gets the same size and type and may
// alias `src`. Errors: invalid_parameter for other image types.
Result<void> contour(const cv::Mat& src, cv::Mat& dst);

}  // namespace pixpool
