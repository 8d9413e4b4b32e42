// blur: agreement with an independent exact Gaussian, range checks, edge sizes.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <opencv2/core.hpp>
#include <string>
#include <utility>
#include <vector>

#include "filters/blur.hpp"
#include "filters/contour.hpp"
#include "tests/support/images.hpp"

using namespace pixpool;

namespace {

// Untruncated-in-practice (radius 6 sigma) separable Gaussian in double
// precision with replicated borders, written without OpenCV's filtering.
cv::Mat exact_gaussian(const cv::Mat& src, double sigma) {
  const int radius = static_cast<int>(std::ceil(6 * sigma));
  std::vector<double> kernel(2 * radius + 1);
  double sum = 0;
  for (int i = -radius; i <= radius; ++i) {
    kernel[i + radius] = std::exp(-(i * i) / (2 * sigma * sigma));
    sum += kernel[i + radius];
  }
  for (double& k : kernel) k /= sum;
  const int channels = src.channels();
  const int w = src.cols, h = src.rows;
  std::vector<double> tmp(static_cast<size_t>(w) * h * channels);
  auto clampi = [](int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; };
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      for (int c = 0; c < channels; ++c) {
        double acc = 0;
        for (int i = -radius; i <= radius; ++i) {
          acc += kernel[i + radius] * src.ptr<uchar>(y)[clampi(x + i, 0, w - 1) * channels + c];
        }
        tmp[(static_cast<size_t>(y) * w + x) * channels + c] = acc;
      }
    }
  }
  cv::Mat dst(src.size(), src.type());
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      for (int c = 0; c < channels; ++c) {
        double acc = 0;
        for (int i = -radius; i <= radius; ++i) {
          acc += kernel[i + radius] *
                 tmp[(static_cast<size_t>(clampi(y + i, 0, h - 1)) * w + x) * channels + c];
        }
        dst.ptr<uchar>(y)[x * channels + c] = cv::saturate_cast<uchar>(acc);
      }
    }
  }
  return dst;
}

}  // namespace

// Every test image: the synthetic ones (sharp shapes, noise) and the photos.
std::vector<std::pair<std::string, cv::Mat>> test_images() {
  std::vector<std::pair<std::string, cv::Mat>> images;
  images.emplace_back("synthetic grey", test::synthetic_image(160, 120, 1, 7));
  images.emplace_back("synthetic colour", test::synthetic_image(160, 120, 3, 7));
  for (const char* name : {"fruits_320x240.jpg", "baboon_320x240.jpg"}) {
    images.emplace_back(name, test::decode_with_opencv(test::read_test_data(name)));
  }
  return images;
}

// Splits rows into strips of `rows_per_strip`, ignoring the filter's minimum,
// and runs them in reverse order: any dependence between strips shows.
StripRunner tiny_strips(int rows_per_strip) {
  return [rows_per_strip](int rows, int, const std::function<void(int, int)>& body) {
    for (int begin = (rows - 1) / rows_per_strip * rows_per_strip; begin >= 0;
         begin -= rows_per_strip) {
      body(begin, std::min(rows, begin + rows_per_strip));
    }
  };
}

TEST_CASE("blur stays within 40 dB PSNR of an exact Gaussian on every test image") {
  for (const auto& image : test_images()) {
    // Named locals, not a structured binding: CAPTURE's lambda captures `name`.
    const auto& name = image.first;
    const auto& src = image.second;
    for (double sigma : {0.5, 1.0, 1.4, 1.5, 2.0, 2.5, 3.3, 5.0, 8.0, 12.0, 20.0, 40.0, 100.0}) {
      CAPTURE(name);
      CAPTURE(sigma);
      cv::Mat ours;
      REQUIRE(blur(src, ours, sigma).ok());
      const double db = test::psnr(ours, exact_gaussian(src, sigma));
      MESSAGE("blur sigma=" << sigma << " " << name << ": " << db << " dB");
      CHECK(db >= 40.0);
    }
  }
}

TEST_CASE("blur_contour is exactly blur followed by contour") {
  for (cv::Size size : {cv::Size(1, 1), cv::Size(2, 2), cv::Size(300, 1), cv::Size(1, 300),
                        cv::Size(37, 23), cv::Size(160, 120)}) {
    for (int channels : {1, 3}) {
      const cv::Mat src = test::synthetic_image(size.width, size.height, channels, 11);
      for (double sigma : {1.0, 2.0, 5.0, 12.0, 40.0}) {
        CAPTURE(size);
        CAPTURE(channels);
        CAPTURE(sigma);
        cv::Mat blurred, expected, fused;
        REQUIRE(blur(src, blurred, sigma).ok());
        REQUIRE(contour(blurred, expected).ok());
        REQUIRE(blur_contour(src, fused, sigma).ok());
        REQUIRE(fused.size() == src.size());
        CHECK(cv::norm(fused, expected, cv::NORM_INF) == 0);
      }
    }
  }
}

TEST_CASE("splitting rows into strips does not change any output") {
  const cv::Mat src = test::synthetic_image(97, 131, 3, 5);
  for (double sigma : {1.0, 2.0, 5.0, 30.0}) {
    CAPTURE(sigma);
    cv::Mat whole_blur, whole_fused, whole_contour;
    REQUIRE(blur(src, whole_blur, sigma).ok());
    REQUIRE(blur_contour(src, whole_fused, sigma).ok());
    REQUIRE(contour(src, whole_contour).ok());
    for (int rows_per_strip : {1, 2, 7, 64, 500}) {
      CAPTURE(rows_per_strip);
      cv::Mat strip_blur, strip_fused, strip_contour;
      REQUIRE(blur(src, strip_blur, sigma, tiny_strips(rows_per_strip)).ok());
      REQUIRE(blur_contour(src, strip_fused, sigma, tiny_strips(rows_per_strip)).ok());
      REQUIRE(contour(src, strip_contour, tiny_strips(rows_per_strip)).ok());
      CHECK(cv::norm(strip_blur, whole_blur, cv::NORM_INF) == 0);
      CHECK(cv::norm(strip_fused, whole_fused, cv::NORM_INF) == 0);
      CHECK(cv::norm(strip_contour, whole_contour, cv::NORM_INF) == 0);
    }
  }
}

TEST_CASE("blur of a constant image is that constant") {
  for (double sigma : {1.0, 2.0, 5.0, 12.0, 40.0, 100.0}) {
    for (int value : {0, 1, 10, 128, 254, 255}) {
      CAPTURE(sigma);
      CAPTURE(value);
      const cv::Mat src(37, 53, CV_8UC3, cv::Scalar::all(value));
      cv::Mat dst;
      REQUIRE(blur(src, dst, sigma).ok());
      CHECK(cv::norm(src, dst, cv::NORM_INF) == 0);
    }
  }
}

TEST_CASE("blur may write into its own input") {
  const cv::Mat src = test::synthetic_image(64, 48, 3, 3);
  cv::Mat expected;
  REQUIRE(blur(src, expected, 2.0).ok());
  cv::Mat in_place = src.clone();
  REQUIRE(blur(in_place, in_place, 2.0).ok());
  CHECK(cv::norm(expected, in_place, cv::NORM_INF) == 0);
}

TEST_CASE("blur handles degenerate sizes: 1x1, one row, one column") {
  for (cv::Size size : {cv::Size(1, 1), cv::Size(500, 1), cv::Size(1, 500)}) {
    CAPTURE(size);
    const cv::Mat src = test::synthetic_image(size.width, size.height, 3, 5);
    cv::Mat dst;
    REQUIRE(blur(src, dst, 5.0).ok());
    CHECK(dst.size() == src.size());
    CHECK(dst.type() == src.type());
  }
}

TEST_CASE("blur refuses sigma outside 0.1..100 and unsupported image types") {
  const cv::Mat src = test::synthetic_image(8, 8, 3);
  cv::Mat dst;
  for (double sigma : {0.0, 0.09, -1.0, 100.5, std::numeric_limits<double>::quiet_NaN()}) {
    CAPTURE(sigma);
    auto r = blur(src, dst, sigma);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == ErrorCode::invalid_parameter);
    CHECK(r.error().message.find("sigma") != std::string::npos);
  }
  CHECK(blur(src, dst, 0.1).ok());
  CHECK(blur(src, dst, 100.0).ok());
  const cv::Mat wide(4, 4, CV_16UC3, cv::Scalar::all(1));
  CHECK_FALSE(blur(wide, dst, 1.0).ok());
}

TEST_CASE("column stripes for very wide images give the same output as one stream") {
  const cv::Mat src = test::synthetic_image(333, 47, 3, 8);
  for (double sigma : {2.0, 5.0, 30.0}) {
    CAPTURE(sigma);
    cv::Mat whole_blur, whole_fused;
    REQUIRE(blur(src, whole_blur, sigma).ok());
    REQUIRE(blur_contour(src, whole_fused, sigma).ok());
    // A bound small enough for many stripes at these widths.
    set_blur_stream_limit_for_tests(40'000);
    cv::Mat striped_blur, striped_fused;
    const bool ok = blur(src, striped_blur, sigma).ok() &&
                    blur_contour(src, striped_fused, sigma, tiny_strips(9)).ok();
    set_blur_stream_limit_for_tests(0);
    REQUIRE(ok);
    CHECK(cv::norm(striped_blur, whole_blur, cv::NORM_INF) == 0);
    CHECK(cv::norm(striped_fused, whole_fused, cv::NORM_INF) == 0);
  }
}

TEST_CASE("blur_rows gives blur's rows band by band, reading only the rows it may") {
  for (int channels : {1, 3}) {
    const cv::Mat src = test::synthetic_image(71, 123, channels, 4);
    for (double sigma : {0.5, 1.25, 1.5, 2.0, 5.0, 30.0}) {
      CAPTURE(channels);
      CAPTURE(sigma);
      cv::Mat whole;
      REQUIRE(blur(src, whole, sigma).ok());
      const int reach = blur_reach(sigma);
      for (int band : {1, 5, 32, 200}) {
        CAPTURE(band);
        cv::Mat banded(src.size(), src.type(), cv::Scalar::all(0));
        for (int first = 0; first < src.rows; first += band) {
          const int last = std::min(src.rows, first + band);
          // Rows past what the band may read are poisoned: reading them
          // would change the output.
          cv::Mat partial = src.clone();
          const int readable = std::min(src.rows, last + reach);
          partial.rowRange(readable, src.rows).setTo(cv::Scalar::all(first % 2 == 0 ? 0 : 255));
          REQUIRE(blur_rows(partial, banded, sigma, first, last).ok());
        }
        CHECK(cv::norm(banded, whole, cv::NORM_INF) == 0);
      }
    }
  }
  cv::Mat wrong_size(3, 3, CV_8UC3);
  const cv::Mat src = test::synthetic_image(8, 8, 3);
  CHECK(blur_rows(src, wrong_size, 2.0, 0, 8).error().code == ErrorCode::internal);
  cv::Mat dst(src.size(), src.type());
  CHECK(blur_rows(src, dst, 2.0, 4, 9).error().code == ErrorCode::internal);
  CHECK(blur_rows(src, dst, 0.0, 0, 8).error().code == ErrorCode::invalid_parameter);
}
