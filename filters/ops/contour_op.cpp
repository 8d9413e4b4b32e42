// The `contour` op: Pillow's CONTOUR kernel (filters/contour.hpp), dark
// lines on white. No arguments.

#include "filters/contour.hpp"
#include "filters/ops/builtin_ops.hpp"

namespace pixpool {
namespace {

Result<void> run_contour(std::span<const double>, const cv::Mat& src, cv::Mat& dst,
                         const StripRunner& strips) {
  return contour(src, dst, strips);
}

}  // namespace

const OpDef& contour_op() {
  static const OpDef def{
      .name = "contour",
      .help = "edge filter: 8*centre - 8 neighbours + 255 per channel (Pillow's CONTOUR)",
      .args = {},
      .run = run_contour,
      .fuses_with = {},
      .run_fused = nullptr,
  };
  return def;
}

}  // namespace pixpool
