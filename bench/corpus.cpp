#include "bench/corpus.hpp"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <sstream>
#include <tuple>

#include "filters/codec.hpp"

namespace pixpool::bench {
namespace {

Error bad(std::string message) {
  return Error{ErrorCode::invalid_parameter, std::move(message)};
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Parses "123" fully as a positive int; 0 when it is not one.
int parse_dimension(const std::string& text) {
  if (text.empty() || text.size() > 6) return 0;
  int value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return 0;
    value = value * 10 + (c - '0');
  }
  return value;
}

}  // namespace

std::uint64_t Corpus::total_bytes() const {
  std::uint64_t total = 0;
  for (const auto& image : images) total += image.bytes.size();
  return total;
}

std::string Corpus::describe() const {
  // Group by (width, height, format), in order of first appearance.
  std::vector<std::tuple<int, int, ImageFormat>> order;
  std::map<std::tuple<int, int, ImageFormat>, std::pair<int, std::uint64_t>> groups;
  for (const auto& image : images) {
    const auto key = std::make_tuple(image.width, image.height, image.format);
    auto [it, inserted] = groups.try_emplace(key, 0, 0);
    if (inserted) order.push_back(key);
    it->second.first += 1;
    it->second.second += image.bytes.size();
  }
  std::ostringstream out;
  for (const auto& key : order) {
    const auto& [count, bytes] = groups[key];
    char line[160];
    std::snprintf(line, sizeof line, "  %3d x %5dx%-5d %-4s  avg %8.1f KiB\n", count,
                  std::get<0>(key), std::get<1>(key),
                  std::string(format_name(std::get<2>(key))).c_str(),
                  static_cast<double>(bytes) / count / 1024.0);
    out << line;
  }
  return out.str();
}

Result<SizeSpec> parse_size(const std::string& text) {
  const std::string name = lower(text);
  static const std::map<std::string, std::pair<int, int>> kNamed = {{"vga", {640, 480}},
                                                                    {"720p", {1280, 720}},
                                                                    {"1080p", {1920, 1080}},
                                                                    {"4k", {3840, 2160}},
                                                                    {"12mp", {4032, 3024}}};
  if (auto it = kNamed.find(name); it != kNamed.end()) {
    return SizeSpec{name, it->second.first, it->second.second};
  }
  const auto x = name.find('x');
  if (x != std::string::npos) {
    const int width = parse_dimension(name.substr(0, x));
    const int height = parse_dimension(name.substr(x + 1));
    if (width >= 1 && width <= 20000 && height >= 1 && height <= 20000) {
      return SizeSpec{name, width, height};
    }
  }
  return bad("unknown size '" + text +
             "' (valid: vga, 720p, 1080p, 4k, 12mp or WxH with 1..20000 per side)");
}

cv::Mat synthetic_photo(int width, int height, unsigned seed) {
  cv::RNG rng(0x9e3779b9u ^ (seed * 2654435761u));
  // Smooth gradients: each channel is a different plane over (x, y).
  cv::Mat xs(1, width, CV_32F), ys(height, 1, CV_32F);
  for (int x = 0; x < width; ++x) xs.at<float>(0, x) = static_cast<float>(x) / std::max(1, width);
  for (int y = 0; y < height; ++y) ys.at<float>(y, 0) = static_cast<float>(y) / std::max(1, height);
  cv::Mat xr, yr;
  cv::repeat(xs, height, 1, xr);
  cv::repeat(ys, 1, width, yr);
  std::vector<cv::Mat> planes(3);
  for (auto& plane : planes) {
    const auto a = static_cast<float>(rng.uniform(-120.0, 120.0));
    const auto b = static_cast<float>(rng.uniform(-120.0, 120.0));
    const auto c = static_cast<float>(rng.uniform(70.0, 190.0));
    plane = xr * a + yr * b + c;
  }
  cv::Mat base;
  cv::merge(planes, base);

  // Soft low-frequency colour variation, like sky or foliage out of focus.
  cv::Mat coarse(6, 8, CV_32FC3), clouds;
  rng.fill(coarse, cv::RNG::UNIFORM, -45.0, 45.0);
  cv::resize(coarse, clouds, base.size(), 0, 0, cv::INTER_CUBIC);
  base += clouds;
  // Texture at finer scales (grass, fabric, gravel), in brightness only, so
  // JPEG sizes and codec times resemble a photo's rather than a cartoon's.
  cv::Mat texture = cv::Mat::zeros(base.size(), CV_32F);
  for (const auto& [cell, amplitude] :
       {std::pair{48, 14.0}, std::pair{12, 9.0}, std::pair{3, 6.0}}) {
    cv::Mat grid(std::max(2, height / cell), std::max(2, width / cell), CV_32F), layer;
    rng.fill(grid, cv::RNG::UNIFORM, -amplitude, amplitude);
    cv::resize(grid, layer, base.size(), 0, 0, cv::INTER_CUBIC);
    texture += layer;
  }
  cv::Mat texture3;
  cv::merge(std::vector<cv::Mat>{texture, texture, texture}, texture3);
  base += texture3;

  cv::Mat image;
  base.convertTo(image, CV_8UC3);

  // Objects with sharp (anti-aliased) edges, so contour has lines to find.
  const int side = std::max(1, std::min(width, height));
  for (int i = 0; i < 14; ++i) {
    const cv::Point centre(rng.uniform(0, std::max(1, width)), rng.uniform(0, std::max(1, height)));
    const int size = std::max(1, side / rng.uniform(5, 16));
    const cv::Scalar colour(rng.uniform(0, 256), rng.uniform(0, 256), rng.uniform(0, 256));
    const int thickness = rng.uniform(0, 3) == 0 ? std::max(1, side / 200) : cv::FILLED;
    switch (i % 4) {
      case 0:
        cv::circle(image, centre, size, colour, thickness, cv::LINE_AA);
        break;
      case 1:
        cv::rectangle(image, centre, centre + cv::Point(size, size * 2 / 3 + 1), colour, thickness,
                      cv::LINE_AA);
        break;
      case 2:
        cv::ellipse(image, centre, cv::Size(size, size / 2 + 1), rng.uniform(0, 180), 0, 360,
                    colour, thickness, cv::LINE_AA);
        break;
      default:
        cv::line(image, centre, centre + cv::Point(size * 2, -size), colour,
                 std::max(1, side / 150), cv::LINE_AA);
        break;
    }
  }
  // A touch of lens softness, then sensor noise (sigma 3).
  cv::GaussianBlur(image, image, cv::Size(0, 0), 0.7);
  cv::Mat noise(image.size(), CV_16SC3);
  rng.fill(noise, cv::RNG::NORMAL, 0.0, 3.0);
  cv::Mat noisy;
  image.convertTo(noisy, CV_16SC3);
  noisy += noise;
  noisy.convertTo(image, CV_8UC3);  // saturates to 0..255
  return image;
}

Result<Corpus> generate_corpus(const std::vector<SizeSpec>& sizes, int per_size, bool restarts) {
  Corpus corpus;
  corpus.source = "generated";
  for (const auto& size : sizes) {
    for (int n = 1; n <= per_size; ++n) {
      const auto seed = static_cast<unsigned>(size.width * 31 + size.height * 17 + n);
      std::vector<uchar> buffer;
      // 4:2:0: an MCU is 16 pixels wide.
      const int mcus_per_row = (size.width + 15) / 16;
      if (!cv::imencode(".jpg", synthetic_photo(size.width, size.height, seed), buffer,
                        {cv::IMWRITE_JPEG_QUALITY, 90, cv::IMWRITE_JPEG_RST_INTERVAL,
                         restarts ? mcus_per_row : 0})) {
        return Error{ErrorCode::internal, "cv::imencode failed for " + size.label};
      }
      char name[64];
      std::snprintf(name, sizeof name, "%s-%d.jpg", size.label.c_str(), n);
      corpus.images.push_back(CorpusImage{name, std::string(buffer.begin(), buffer.end()),
                                          ImageFormat::jpeg, size.width, size.height});
    }
  }
  return corpus;
}

Result<Corpus> load_corpus(const std::string& dir, std::vector<std::string>* skipped) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return bad("--images: '" + dir + "' is not a folder");
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (entry.is_regular_file()) files.push_back(entry.path());
  }
  if (ec) return bad("--images: cannot read '" + dir + "': " + ec.message());
  std::sort(files.begin(), files.end());

  Corpus corpus;
  corpus.source = dir;
  for (const auto& path : files) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream bytes;
    bytes << in.rdbuf();
    std::string data = bytes.str();
    // A full decode (EXIF orientation applied) gives the size the output
    // must have, and keeps undecodable files out of the run.
    auto decoded = decode_image(data, std::uint64_t{1} << 40);
    if (!in || !decoded) {
      if (skipped != nullptr) skipped->push_back(path.filename().string());
      continue;
    }
    corpus.images.push_back(CorpusImage{path.filename().string(), std::move(data),
                                        decoded->source_format, decoded->pixels.cols,
                                        decoded->pixels.rows});
  }
  if (corpus.images.empty()) {
    return bad("--images: no decodable JPEG, PNG, WebP, BMP or TIFF file in '" + dir + "'");
  }
  return corpus;
}

}  // namespace pixpool::bench
