// contour: bit-exact against a naive reference of Pillow's CONTOUR kernel.
#include <doctest/doctest.h>

#include <algorithm>
#include <opencv2/core.hpp>

#include "filters/contour.hpp"
#include "tests/support/images.hpp"

using namespace pixpool;

namespace {

// 8*centre - sum(8 neighbours) + 255, clamped; borders replicated.
cv::Mat naive_contour(const cv::Mat& src) {
  cv::Mat dst(src.size(), src.type());
  const int channels = src.channels();
  for (int y = 0; y < src.rows; ++y) {
    for (int x = 0; x < src.cols; ++x) {
      for (int c = 0; c < channels; ++c) {
        int acc = 255;
        for (int dy = -1; dy <= 1; ++dy) {
          for (int dx = -1; dx <= 1; ++dx) {
            const int yy = std::clamp(y + dy, 0, src.rows - 1);
            const int xx = std::clamp(x + dx, 0, src.cols - 1);
            const int v = src.ptr<uchar>(yy)[xx * channels + c];
            acc += (dx == 0 && dy == 0) ? 8 * v : -v;
          }
        }
        dst.ptr<uchar>(y)[x * channels + c] = static_cast<uchar>(std::clamp(acc, 0, 255));
      }
    }
  }
  return dst;
}

}  // namespace

TEST_CASE("contour equals the naive reference exactly") {
  for (int channels : {1, 3}) {
    for (cv::Size size : {cv::Size(97, 61), cv::Size(1, 1), cv::Size(300, 1), cv::Size(2, 2)}) {
      CAPTURE(channels);
      CAPTURE(size);
      const cv::Mat src = test::synthetic_image(size.width, size.height, channels, 11);
      cv::Mat ours;
      REQUIRE(contour(src, ours).ok());
      CHECK(cv::norm(ours, naive_contour(src), cv::NORM_INF) == 0);
    }
  }
}

TEST_CASE("contour turns flat areas white and marks a dark dot") {
  cv::Mat src(5, 5, CV_8UC1, cv::Scalar(200));
  src.at<uchar>(2, 2) = 100;
  cv::Mat dst;
  REQUIRE(contour(src, dst).ok());
  CHECK(dst.at<uchar>(0, 0) == 255);
  // centre: 8*100 - 8*200 + 255 < 0 -> 0; neighbours: 8*200 - (7*200+100) + 255 -> 255
  CHECK(dst.at<uchar>(2, 2) == 0);
  CHECK(dst.at<uchar>(1, 1) == 255);
}

TEST_CASE("contour refuses images that are not 8-bit grey or BGR") {
  cv::Mat dst;
  CHECK_FALSE(contour(cv::Mat(4, 4, CV_8UC4, cv::Scalar::all(0)), dst).ok());
  CHECK_FALSE(contour(cv::Mat(4, 4, CV_32FC1, cv::Scalar::all(0)), dst).ok());
}
