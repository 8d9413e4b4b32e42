#pragma once
// Test images and image comparisons shared by the suites.

#include <functional>
#include <opencv2/core.hpp>
#include <string>

struct jpeg_compress_struct;  // jpeglib.h

namespace pixpool::test {

// A deterministic "photo-like" image: smooth gradients, a few shapes with
// sharp edges and mild noise, so blur and contour both have work to do.
// channels: 1 (grey), 3 (BGR) or 4 (BGRA with a varying alpha).
cv::Mat synthetic_image(int width, int height, int channels, unsigned seed = 1);

// Encodes with OpenCV's own imencode (independent of pixpool's encoder).
// extension: ".png", ".jpg", ".webp", ".bmp", ".tiff".
std::string encode_with_opencv(const cv::Mat& image, const std::string& extension,
                               int jpeg_quality = 95);

// One plain libjpeg encode of the whole image, as the libjpeg docs show it:
// `color_space` (a J_COLOR_SPACE) says what the image's channels are, and
// `configure`, when given, changes the settings after jpeg_set_defaults.
std::string libjpeg_write(const cv::Mat& image, int color_space,
                          const std::function<void(jpeg_compress_struct&)>& configure = {});

// A CMYK JPEG (plain libjpeg, default settings) of a CV_8UC4 image, its
// channels taken as C, M, Y, K: what print workflows write, which pixpool's
// scaled decoder refuses and decode_image decodes at full size.
std::string cmyk_jpeg(const cv::Mat& four_channels);

// `jpeg` with an EXIF APP1 segment carrying `orientation` (1..8) after SOI.
std::string with_exif_orientation(const std::string& jpeg, int orientation);

// Decodes with OpenCV's imdecode (IMREAD_UNCHANGED).
cv::Mat decode_with_opencv(const std::string& bytes);

// PSNR in dB between two same-size 8-bit images over the region that excludes
// `border` pixels on each side; +infinity when identical.
double psnr(const cv::Mat& a, const cv::Mat& b, int border = 0);

// Reads a file under tests/data into a string.
std::string read_test_data(const std::string& name);

// Reads/writes whole files.
std::string read_file(const std::string& path);
void write_file(const std::string& path, const std::string& bytes);

// A fresh empty directory under the build tree's temp area.
std::string make_temp_dir(const std::string& prefix);

}  // namespace pixpool::test
