#include "filters/contour.hpp"

#include <opencv2/imgproc.hpp>
#include <utility>

namespace pixpool {

Result<void> contour(const cv::Mat& src, cv::Mat& dst) {
  if (src.depth() != CV_8U || (src.channels() != 1 && src.channels() != 3)) {
    return {ErrorCode::invalid_parameter, "contour: expects an 8-bit grey or BGR image"};
  }
  // Integer kernel on integer input: filter2D's float accumulation is exact,
  // and saturate_cast does the clamping.
  static const cv::Mat kernel = (cv::Mat_<float>(3, 3) << -1, -1, -1, -1, 8, -1, -1, -1, -1);
  cv::Mat out;  // fresh buffer, so dst may alias src
  cv::filter2D(src, out, -1, kernel, cv::Point(-1, -1), 255.0, cv::BORDER_REPLICATE);
  dst = std::move(out);
  return {};
}

}  // namespace pixpool
