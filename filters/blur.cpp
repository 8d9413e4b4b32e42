#include "filters/blur.hpp"

#include <cmath>
#include <opencv2/imgproc.hpp>
#include <string>
#include <utility>

namespace pixpool {

Result<void> blur(const cv::Mat& src, cv::Mat& dst, double sigma) {
  if (!(sigma >= kBlurMinSigma && sigma <= kBlurMaxSigma)) {
    return {ErrorCode::invalid_parameter,
            "blur: sigma must be between 0.1 and 100, got " + std::to_string(sigma)};
  }
  if (src.depth() != CV_8U || (src.channels() != 1 && src.channels() != 3)) {
    return {ErrorCode::invalid_parameter, "blur: expects an 8-bit grey or BGR image"};
  }
  // 3 sigma each side keeps >99.7% of the kernel mass (normalised), which is
  // far inside the 40 dB budget against an untruncated Gaussian.
  const int radius = static_cast<int>(std::ceil(3.0 * sigma));
  const int ksize = 2 * radius + 1;
  cv::Mat out;  // fresh buffer, so dst may alias src
  cv::GaussianBlur(src, out, cv::Size(ksize, ksize), sigma, sigma, cv::BORDER_REPLICATE);
  dst = std::move(out);
  return {};
}

}  // namespace pixpool
