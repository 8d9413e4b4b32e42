// The `blur` op: a Gaussian blur (filters/blur.hpp), `blur:SIGMA` or
// `blur:sigma=SIGMA`. Followed directly by `contour` it runs fused with it
// in one pass (identical output).

#include "filters/blur.hpp"
#include "filters/ops/builtin_ops.hpp"

namespace pixpool {
namespace {

Result<void> run_blur(std::span<const double> args, const cv::Mat& src, cv::Mat& dst,
                      const StripRunner& strips) {
  return blur(src, dst, args[0], strips);
}

Result<void> run_blur_contour(std::span<const double> args, std::span<const double>,
                              const cv::Mat& src, cv::Mat& dst, const StripRunner& strips) {
  return blur_contour(src, dst, args[0], strips);
}

}  // namespace

const OpDef& blur_op() {
  static const OpDef def{
      .name = "blur",
      .help = "Gaussian blur (Pillow's GaussianBlur(radius=R) is sigma R)",
      .args = {OpArg{.name = "sigma",
                     .type = ArgType::number,
                     .min = kBlurMinSigma,
                     .max = kBlurMaxSigma,
                     .default_value = kBlurDefaultSigma,
                     .help = "standard deviation in pixels"}},
      .run = run_blur,
      .fuses_with = "contour",
      .run_fused = run_blur_contour,
  };
  return def;
}

}  // namespace pixpool
