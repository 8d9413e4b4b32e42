#include "filters/contour.hpp"

#include <algorithm>
#include <utility>
#include <vector>

#include "filters/simd.hpp"

namespace pixpool {
namespace {

// 9*centre - (3x3 sum) + 255, clamped: the CONTOUR kernel rewritten so the
// 3x3 sum can come from column sums. Range before clamping: -2040..2550.
inline std::uint8_t contour_value(int centre, int box_sum) {
  return static_cast<std::uint8_t>(std::clamp(9 * centre - box_sum + 255, 0, 255));
}

}  // namespace

PIXPOOL_SIMD_CLONES
void contour_row(const std::uint8_t* up, const std::uint8_t* mid, const std::uint8_t* down,
                 std::uint8_t* out, int cols, int channels, std::uint16_t* scratch) {
  const int n = cols * channels;
  std::uint16_t* column = scratch;  // column[i] = up[i] + mid[i] + down[i]
  for (int i = 0; i < n; ++i) column[i] = static_cast<std::uint16_t>(up[i] + mid[i] + down[i]);
  const int c = channels;
  if (cols == 1) {
    for (int i = 0; i < c; ++i) out[i] = contour_value(mid[i], 3 * column[i]);
    return;
  }
  // Edge pixels see themselves as their missing neighbour (replicated border).
  for (int i = 0; i < c; ++i) {
    out[i] = contour_value(mid[i], 2 * column[i] + column[i + c]);
    const int j = n - c + i;
    out[j] = contour_value(mid[j], column[j - c] + 2 * column[j]);
  }
  // Every intermediate fits in 16 bits (-2040..2550), and saying so lets the
  // compiler use 16-bit lanes: twice the pixels per instruction of int math.
  for (int i = c; i < n - c; ++i) {
    const auto sum = static_cast<std::uint16_t>(column[i - c] + column[i] + column[i + c]);
    const auto value = static_cast<std::int16_t>(
        static_cast<std::uint16_t>(static_cast<std::uint16_t>(9 * mid[i] + 255) - sum));
    out[i] = static_cast<std::uint8_t>(value < 0 ? 0 : value > 255 ? 255 : value);
  }
}

Result<void> contour(const cv::Mat& src, cv::Mat& dst, const StripRunner& strips) {
  if (src.depth() != CV_8U || (src.channels() != 1 && src.channels() != 3)) {
    return {ErrorCode::invalid_parameter, "contour: expects an 8-bit grey or BGR image"};
  }
  cv::Mat out(src.size(), src.type());  // fresh buffer, so dst may alias src
  const int rows = src.rows;
  run_strips(strips, rows, 64, [&](int begin, int end) {
    std::vector<std::uint16_t> scratch(static_cast<std::size_t>(src.cols) * src.channels());
    for (int y = begin; y < end; ++y) {
      contour_row(src.ptr<std::uint8_t>(std::max(y - 1, 0)), src.ptr<std::uint8_t>(y),
                  src.ptr<std::uint8_t>(std::min(y + 1, rows - 1)), out.ptr<std::uint8_t>(y),
                  src.cols, src.channels(), scratch.data());
    }
  });
  dst = std::move(out);
  return {};
}

}  // namespace pixpool
