#include "tests/support/reference_blur.hpp"

#include <cmath>
#include <cstdlib>
#include <numbers>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <stdexcept>
#include <vector>

namespace pixpool::test {
namespace {

// Filters every row of a CV_64FC1 image with the Gaussian through a DFT.
cv::Mat gaussian_rows_dft(const cv::Mat& src, double sigma) {
  const int pad = static_cast<int>(std::ceil(4 * sigma));
  const int n = cv::getOptimalDFTSize(src.cols + 2 * pad);
  cv::Mat padded;
  cv::copyMakeBorder(src, padded, 0, 0, pad, n - src.cols - pad, cv::BORDER_REPLICATE);
  cv::Mat spectrum;
  cv::dft(padded, spectrum, cv::DFT_ROWS);
  // Packed real spectrum (CCS): [Re0, Re1, Im1, Re2, Im2, ..., (ReN/2)].
  std::vector<double> gain(static_cast<std::size_t>(n), 1.0);
  const double k = 2 * std::numbers::pi * std::numbers::pi * sigma * sigma;
  auto transfer = [&](int bin) {
    const double f = static_cast<double>(bin) / n;
    return std::exp(-k * f * f);
  };
  for (std::size_t i = 1; i < gain.size(); ++i) gain[i] = transfer(static_cast<int>(i + 1) / 2);
  for (int y = 0; y < spectrum.rows; ++y) {
    auto* row = spectrum.ptr<double>(y);
    for (std::size_t i = 0; i < gain.size(); ++i) row[i] *= gain[i];
  }
  cv::Mat filtered;
  cv::dft(spectrum, filtered, cv::DFT_ROWS | cv::DFT_INVERSE | cv::DFT_SCALE);
  return filtered.colRange(pad, pad + src.cols).clone();
}

cv::Mat exact_channel(const cv::Mat& channel, double sigma) {
  cv::Mat wide;
  channel.convertTo(wide, CV_64F);
  if (sigma < 3.0) {
    const int radius = static_cast<int>(std::ceil(6 * sigma));
    const cv::Mat kernel = cv::getGaussianKernel(2 * radius + 1, sigma, CV_64F);
    cv::Mat out;
    cv::sepFilter2D(wide, out, CV_64F, kernel, kernel, cv::Point(-1, -1), 0, cv::BORDER_REPLICATE);
    return out;
  }
  cv::Mat rows = gaussian_rows_dft(wide, sigma);
  cv::Mat columns = gaussian_rows_dft(rows.t(), sigma);
  return columns.t();
}

}  // namespace

cv::Mat exact_gaussian(const cv::Mat& src, double sigma) {
  std::vector<cv::Mat> channels;
  cv::split(src, channels);
  for (cv::Mat& channel : channels) {
    exact_channel(channel, sigma).convertTo(channel, CV_8U);  // rounds and saturates
  }
  cv::Mat out;
  cv::merge(channels, out);
  return out;
}

std::string photo_dir() {
  if (const char* dir = std::getenv("PIXPOOL_PHOTO_DIR"); dir != nullptr && *dir != '\0') {
    return dir;
  }
  return "/usr/share/doc/opencv-doc/examples/data";
}

cv::Mat corpus_photo(const std::string& name, cv::Size size, bool tiled) {
  const std::string path = photo_dir() + "/" + name;
  const cv::Mat photo = cv::imread(path, cv::IMREAD_COLOR);
  if (photo.empty()) {
    throw std::runtime_error("cannot read " + path +
                             " (the photo corpus comes from Debian's opencv-doc: "
                             "scripts/setup test installs it)");
  }
  cv::Mat out(size, CV_8UC3);
  if (tiled) {
    for (int y = 0; y < size.height; y += photo.rows) {
      for (int x = 0; x < size.width; x += photo.cols) {
        const cv::Rect to(x, y, std::min(photo.cols, size.width - x),
                          std::min(photo.rows, size.height - y));
        photo(cv::Rect(0, 0, to.width, to.height)).copyTo(out(to));
      }
    }
    return out;
  }
  const double scale = std::max(static_cast<double>(size.width) / photo.cols,
                                static_cast<double>(size.height) / photo.rows);
  cv::Mat scaled;
  cv::resize(photo, scaled,
             cv::Size(std::max(size.width, static_cast<int>(std::ceil(photo.cols * scale))),
                      std::max(size.height, static_cast<int>(std::ceil(photo.rows * scale)))),
             0, 0, scale < 1 ? cv::INTER_AREA : cv::INTER_CUBIC);
  const cv::Rect crop((scaled.cols - size.width) / 2, (scaled.rows - size.height) / 2, size.width,
                      size.height);
  scaled(crop).copyTo(out);
  return out;
}

}  // namespace pixpool::test
