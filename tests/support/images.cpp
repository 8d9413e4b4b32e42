#include "tests/support/images.hpp"

#include <unistd.h>

// jpeglib.h uses FILE and size_t without declaring them.
// clang-format off
#include <cstddef>
#include <cstdio>
#include <jpeglib.h>
// clang-format on

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <sstream>
#include <stdexcept>
#include <vector>

#ifndef PIXPOOL_TEST_DATA_DIR
#error "PIXPOOL_TEST_DATA_DIR must be defined by the build"
#endif

namespace pixpool::test {

cv::Mat synthetic_image(int width, int height, int channels, unsigned seed) {
  cv::Mat bgr(height, width, CV_8UC3);
  for (int y = 0; y < height; ++y) {
    auto* row = bgr.ptr<cv::Vec3b>(y);
    for (int x = 0; x < width; ++x) {
      row[x] = cv::Vec3b(static_cast<uchar>((x * 255) / std::max(1, width - 1)),
                         static_cast<uchar>((y * 255) / std::max(1, height - 1)),
                         static_cast<uchar>(128 + 100 * std::sin((x + y) * 0.05 + seed)));
    }
  }
  cv::RNG rng(seed);
  const int shapes = 6;
  for (int i = 0; i < shapes; ++i) {
    const cv::Point center(rng.uniform(0, std::max(1, width)), rng.uniform(0, std::max(1, height)));
    const int radius = std::max(1, std::min(width, height) / rng.uniform(4, 10));
    const cv::Scalar colour(rng.uniform(0, 256), rng.uniform(0, 256), rng.uniform(0, 256));
    if (i % 2 == 0) {
      cv::circle(bgr, center, radius, colour, cv::FILLED);
    } else {
      cv::rectangle(bgr, center, center + cv::Point(radius, radius / 2 + 1), colour, cv::FILLED);
    }
  }
  cv::Mat noise(bgr.size(), CV_8UC3);
  rng.fill(noise, cv::RNG::UNIFORM, 0, 12);
  bgr += noise;

  if (channels == 3) return bgr;
  if (channels == 1) {
    cv::Mat grey;
    cv::cvtColor(bgr, grey, cv::COLOR_BGR2GRAY);
    return grey;
  }
  cv::Mat bgra;
  cv::cvtColor(bgr, bgra, cv::COLOR_BGR2BGRA);
  for (int y = 0; y < height; ++y) {
    auto* row = bgra.ptr<cv::Vec4b>(y);
    for (int x = 0; x < width; ++x) row[x][3] = static_cast<uchar>((x * 7 + y * 3) % 256);
  }
  return bgra;
}

std::string encode_with_opencv(const cv::Mat& image, const std::string& extension,
                               int jpeg_quality) {
  std::vector<uchar> buffer;
  std::vector<int> params;
  if (extension == ".jpg") params = {cv::IMWRITE_JPEG_QUALITY, jpeg_quality};
  if (!cv::imencode(extension, image, buffer, params)) {
    throw std::runtime_error("imencode failed for " + extension);
  }
  return {buffer.begin(), buffer.end()};
}

cv::Mat decode_with_opencv(const std::string& bytes) {
  std::vector<uchar> buffer(bytes.begin(), bytes.end());
  return cv::imdecode(buffer, cv::IMREAD_UNCHANGED);
}

std::string libjpeg_write(const cv::Mat& image, int color_space,
                          const std::function<void(jpeg_compress_struct&)>& configure) {
  jpeg_compress_struct cinfo{};
  jpeg_error_mgr err{};
  cinfo.err = jpeg_std_error(&err);
  jpeg_create_compress(&cinfo);
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&cinfo, &buffer, &size);
  cinfo.image_width = static_cast<JDIMENSION>(image.cols);
  cinfo.image_height = static_cast<JDIMENSION>(image.rows);
  cinfo.input_components = image.channels();
  cinfo.in_color_space = static_cast<J_COLOR_SPACE>(color_space);
  jpeg_set_defaults(&cinfo);
  if (configure) configure(cinfo);
  jpeg_start_compress(&cinfo, TRUE);
  while (cinfo.next_scanline < cinfo.image_height) {
    auto* row = const_cast<JSAMPROW>(image.ptr(static_cast<int>(cinfo.next_scanline)));
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  std::string out(reinterpret_cast<const char*>(buffer), size);
  std::free(buffer);
  return out;
}

std::string cmyk_jpeg(const cv::Mat& four_channels) {
  if (four_channels.type() != CV_8UC4) throw std::invalid_argument("cmyk_jpeg needs CV_8UC4");
  return libjpeg_write(four_channels, JCS_CMYK);
}

std::string with_exif_orientation(const std::string& jpeg, int orientation) {
  std::string tiff("II*\0\x08\0\0\0", 8);
  tiff += std::string("\x01\x00", 2);                          // one IFD entry
  tiff += std::string("\x12\x01\x03\x00\x01\x00\x00\x00", 8);  // 0x0112 SHORT count 1
  tiff += static_cast<char>(orientation);
  tiff += std::string("\0\0\0", 3);
  tiff += std::string("\0\0\0\0", 4);  // no next IFD
  std::string payload = std::string("Exif\0\0", 6) + tiff;
  const auto length = static_cast<unsigned>(payload.size() + 2);
  std::string segment("\xFF\xE1", 2);
  segment += static_cast<char>(length >> 8);
  segment += static_cast<char>(length & 0xFF);
  return jpeg.substr(0, 2) + segment + payload + jpeg.substr(2);
}

double psnr(const cv::Mat& a, const cv::Mat& b, int border) {
  if (a.size() != b.size() || a.type() != b.type()) {
    throw std::runtime_error("psnr: images differ in size or type");
  }
  const cv::Rect inner(border, border, a.cols - 2 * border, a.rows - 2 * border);
  cv::Mat fa, fb;
  a(inner).convertTo(fa, CV_64F);
  b(inner).convertTo(fb, CV_64F);
  cv::Mat diff = fa - fb;
  const double mse =
      cv::sum(diff.mul(diff))[0] / static_cast<double>(diff.total() * diff.channels());
  if (mse == 0) return std::numeric_limits<double>::infinity();
  return 10.0 * std::log10(255.0 * 255.0 / mse);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path);
}

std::string read_test_data(const std::string& name) {
  return read_file(std::string(PIXPOOL_TEST_DATA_DIR) + "/" + name);
}

std::string make_temp_dir(const std::string& prefix) {
  std::string pattern =
      (std::filesystem::temp_directory_path() / ("pixpool-" + prefix + "-XXXXXX")).string();
  if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  return pattern;
}

}  // namespace pixpool::test
