// The three-box blur's internal paths: 16-row bands (SSE2 and AVX2) against
// the portable per-row path, bit for bit, and the box widths it plans.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <opencv2/core.hpp>
#include <vector>

#include "filters/box_blur.hpp"
#include "filters/box_blur_band.hpp"
#include "tests/support/images.hpp"

using namespace pixpool;
using namespace pixpool::box_blur;

namespace {

cv::Mat stream_blur(const cv::Mat& src, const Plan& plan, bool bands) {
  cv::Mat out(src.size(), src.type());
  RowStream stream(src, plan, 0, bands);
  for (int y = 0; y < src.rows; ++y) stream.next(out.ptr<std::uint8_t>(y));
  return out;
}

}  // namespace

TEST_CASE("box plan: widths are odd, close to sigma, and sums fit 16 bits") {
  for (double sigma : {1.5, 2.0, 5.0, 12.0, 40.0, 100.0}) {
    CAPTURE(sigma);
    const Plan plan = make_plan(sigma);
    double variance = 0;
    int widest = 0;
    for (int k = 0; k < 3; ++k) {
      CHECK(plan.width(k) % 2 == 1);
      variance += (plan.width(k) * plan.width(k) - 1) / 12.0;
      widest = std::max(widest, plan.width(k));
    }
    CHECK(std::abs(std::sqrt(variance) - sigma) / sigma < 0.1);
    CHECK(255L * widest * (1L << plan.fraction_bits) <= 65535L);
  }
}

TEST_CASE("band path equals the per-row path bit for bit") {
  for (cv::Size size : {cv::Size(1, 1), cv::Size(5, 3), cv::Size(16, 16), cv::Size(17, 33),
                        cv::Size(160, 120), cv::Size(333, 47)}) {
    for (int channels : {1, 3}) {
      const cv::Mat src = test::synthetic_image(size.width, size.height, channels, 21);
      for (double sigma : {1.5, 5.0, 12.0, 40.0, 100.0}) {
        CAPTURE(size);
        CAPTURE(channels);
        CAPTURE(sigma);
        const Plan plan = make_plan(sigma);
        const cv::Mat rows = stream_blur(src, plan, false);
        CHECK(cv::norm(stream_blur(src, plan, true), rows, cv::NORM_INF) == 0);
      }
    }
  }
}

TEST_CASE("the SSE2 and the best (AVX2 here) band variants agree") {
  if (!band_blur_available()) return;
  const cv::Mat src = test::synthetic_image(203, 16, 3, 4);
  const Plan plan = make_plan(5.0);
  const int n = src.cols * 3;
  std::vector<std::vector<std::uint16_t>> best(16, std::vector<std::uint16_t>(n)),
      sse2(16, std::vector<std::uint16_t>(n));
  const std::uint8_t* rows[16];
  std::uint16_t* out_best[16];
  std::uint16_t* out_sse2[16];
  for (int k = 0; k < 16; ++k) {
    rows[k] = src.ptr<std::uint8_t>(k);
    out_best[k] = best[k].data();
    out_sse2[k] = sse2[k].data();
  }
  BandScratch scratch;
  blur_band(rows, out_best, src.cols, 3, plan, scratch, BandIsa::best);
  blur_band(rows, out_sse2, src.cols, 3, plan, scratch, BandIsa::sse2);
  CHECK(best == sse2);
}
