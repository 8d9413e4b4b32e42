#pragma once
// Gaussian blur: the `blur` op.

#include <cstddef>
#include <opencv2/core.hpp>

#include "core/result.hpp"
#include "filters/strips.hpp"

namespace pixpool {

inline constexpr double kBlurDefaultSigma = 5.0;  // Pillow's GaussianBlur(radius=5) is sigma 5
inline constexpr double kBlurMinSigma = 0.1;
inline constexpr double kBlurMaxSigma = 100.0;

// Blurs `src` (CV_8UC1 or CV_8UC3) with a Gaussian of standard deviation
// `sigma` pixels, replicating border pixels. From sigma 1.5 up this is the
// three-box cascade of filters/box_blur.hpp; below it, an exact 8-bit
// Gaussian kernel. At least 40 dB PSNR against an exact Gaussian for sigma
// 0.5..100 (tests/filters/test_blur.cpp; measured: README.md, "Filters").
// `dst` is (re)allocated to the size and type of `src`; it may alias `src`.
// Rows run in strips through `strips` (empty: this thread only).
// Errors: invalid_parameter when sigma is outside [kBlurMinSigma, kBlurMaxSigma]
// or the image type is not 8-bit with 1 or 3 channels.
Result<void> blur(const cv::Mat& src, cv::Mat& dst, double sigma, const StripRunner& strips = {});

// How many rows above and below a row of blur()'s output it depends on:
// ceil(3 sigma) for the exact kernel, the boxes' total radius above it.
// sigma in [kBlurMinSigma, kBlurMaxSigma].
int blur_reach(double sigma);

// Rows [first, last) of blur(src) into the same rows of `dst` (already
// src's size and type), the same bytes blur() gives, read from src's rows
// [first - reach, last + reach) only (clamped to the image; reach =
// blur_reach(sigma)). For a caller whose input rows arrive a band at a time.
// Errors: those of blur(); internal for a `dst` of another size or type or
// rows outside 0 <= first <= last <= src.rows.
Result<void> blur_rows(const cv::Mat& src, cv::Mat& dst, double sigma, int first, int last);

// blur followed by contour in one pass over the image: each strip's blurred
// rows go straight into the contour filter while they are in cache, and the
// blurred image is never stored. The output is identical to running blur()
// then contour(). Same arguments and errors as blur().
Result<void> blur_contour(const cv::Mat& src, cv::Mat& dst, double sigma,
                          const StripRunner& strips = {});

// Very wide images are blurred in column stripes so that a stream's buffers
// stay under a bound (64 MiB; see blur.cpp). Tests lower the bound to make
// ordinary images take that path; 0 restores the default.
void set_blur_stream_limit_for_tests(std::size_t bytes);

}  // namespace pixpool
