#include "filters/blur.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <opencv2/imgproc.hpp>
#include <string>
#include <utility>
#include <vector>

#include "filters/box_blur.hpp"
#include "filters/contour.hpp"

namespace pixpool {
namespace {

Result<void> check_arguments(const cv::Mat& src, double sigma) {
  if (!(sigma >= kBlurMinSigma && sigma <= kBlurMaxSigma)) {
    return {ErrorCode::invalid_parameter,
            "blur: sigma must be between 0.1 and 100, got " + std::to_string(sigma)};
  }
  if (src.depth() != CV_8U || (src.channels() != 1 && src.channels() != 3)) {
    return {ErrorCode::invalid_parameter, "blur: expects an 8-bit grey or BGR image"};
  }
  return {};
}

// Small sigmas: OpenCV's 8-bit fixed-point Gaussian, 3 sigma each side, which
// keeps >99.7% of the kernel mass (normalised) and is cheap at these radii.
cv::Mat exact_blur(const cv::Mat& src, double sigma) {
  const int radius = static_cast<int>(std::ceil(3.0 * sigma));
  const int ksize = 2 * radius + 1;
  cv::Mat out;
  cv::GaussianBlur(src, out, cv::Size(ksize, ksize), sigma, sigma, cv::BORDER_REPLICATE);
  return out;
}

// A strip pays for warming up its vertical boxes (about 2 * total_radius
// rows of extra work), so strips are kept several times longer than that.
int min_strip_rows(const box_blur::Plan& plan) {
  return std::max(32, 8 * plan.total_radius());
}

}  // namespace

Result<void> blur(const cv::Mat& src, cv::Mat& dst, double sigma, const StripRunner& strips) {
  if (auto ok = check_arguments(src, sigma); !ok) return ok;
  if (src.empty()) {
    dst = src.clone();
    return {};
  }
  if (sigma < box_blur::kMinSigma) {
    dst = exact_blur(src, sigma);
    return {};
  }
  const box_blur::Plan plan = box_blur::make_plan(sigma);
  cv::Mat out(src.size(), src.type());  // fresh buffer, so dst may alias src
  run_strips(strips, src.rows, min_strip_rows(plan), [&](int begin, int end) {
    box_blur::RowStream stream(src, plan, begin);
    for (int y = begin; y < end; ++y) stream.next(out.ptr<std::uint8_t>(y));
  });
  dst = std::move(out);
  return {};
}

Result<void> blur_contour(const cv::Mat& src, cv::Mat& dst, double sigma,
                          const StripRunner& strips) {
  if (auto ok = check_arguments(src, sigma); !ok) return ok;
  if (src.empty() || sigma < box_blur::kMinSigma) {
    cv::Mat blurred;
    if (auto ok = blur(src, blurred, sigma, strips); !ok) return ok;
    return contour(blurred, dst, strips);
  }
  const box_blur::Plan plan = box_blur::make_plan(sigma);
  const int rows = src.rows;
  const auto row_bytes = static_cast<std::size_t>(src.cols) * src.channels();
  cv::Mat out(src.size(), src.type());
  run_strips(strips, rows, min_strip_rows(plan), [&](int begin, int end) {
    // The contour of row y needs blurred rows y-1..y+1 (clamped to the
    // image): keep the last three in a ring indexed by row % 3.
    std::array<std::vector<std::uint8_t>, 3> ring;
    for (auto& row : ring) row.resize(row_bytes);
    std::vector<std::uint16_t> scratch(row_bytes);
    const int top = std::max(begin - 1, 0);
    box_blur::RowStream stream(src, plan, top);
    int next = top;  // next blurred row the stream will make
    auto blurred = [&](int y) {
      y = std::clamp(y, 0, rows - 1);
      for (; next <= y; ++next) stream.next(ring[next % 3].data());
      return ring[y % 3].data();
    };
    for (int y = begin; y < end; ++y) {
      const std::uint8_t* down = blurred(y + 1);  // first: it may advance the ring
      contour_row(blurred(y - 1), blurred(y), down, out.ptr<std::uint8_t>(y), src.cols,
                  src.channels(), scratch.data());
    }
  });
  dst = std::move(out);
  return {};
}

}  // namespace pixpool
