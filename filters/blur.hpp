#pragma once
// Gaussian blur: the `blur` op.

#include <opencv2/core.hpp>

#include "filters/status.hpp"

namespace pixpool {

inline constexpr double kBlurDefaultSigma = 5.0;  // Pillow's GaussianBlur(radius=5) is sigma 5
inline constexpr double kBlurMinSigma = 0.1;
inline constexpr double kBlurMaxSigma = 100.0;

// Blurs `src` (CV_8UC1 or CV_8UC3) with a Gaussian of standard deviation
// `sigma` pixels, replicating border pixels. `dst` is (re)allocated to the
// size and type of `src`; it may alias `src`.
// Errors: invalid_parameter when sigma is outside [kBlurMinSigma, kBlurMaxSigma]
// or the image type is not 8-bit with 1 or 3 channels.
Result<void> blur(const cv::Mat& src, cv::Mat& dst, double sigma);

}  // namespace pixpool
