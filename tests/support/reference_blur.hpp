#pragma once
// Independent references for the blur's quality tests: an exact Gaussian in
// double precision, and a corpus of real photos at any size.

#include <opencv2/core.hpp>
#include <string>

namespace pixpool::test {

// The Gaussian blur of `src` (8-bit, 1 or 3 channels) with standard deviation
// `sigma`, borders replicated, computed in double precision and rounded to
// 8 bits once at the end. Small sigmas convolve directly with the sampled
// kernel (6 sigma each side); from sigma 3 on, each axis is filtered through
// a 1-D DFT with 4 sigma of replicated padding, where the sampled and the
// continuous Gaussian agree to better than 1e-8.
cv::Mat exact_gaussian(const cv::Mat& src, double sigma);

// Where the photo corpus lives: $PIXPOOL_PHOTO_DIR, else Debian opencv-doc's
// examples/data (installed by `scripts/setup test`).
std::string photo_dir();

// Photo `name` (a file in photo_dir(), e.g. "baboon.jpg") as BGR at `size`:
// scaled to cover it and centre-cropped, or, with `tiled`, repeated at its
// own resolution so the image keeps the photo's pixel-level detail.
// Throws std::runtime_error when the file cannot be read.
cv::Mat corpus_photo(const std::string& name, cv::Size size, bool tiled = false);

}  // namespace pixpool::test
