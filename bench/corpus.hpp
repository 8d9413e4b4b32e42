#pragma once
// The images a benchmark sends: a folder of the user's files, or a built-in
// set of synthetic, photo-like JPEGs generated deterministically.

#include <cstdint>
#include <opencv2/core.hpp>
#include <string>
#include <vector>

#include "core/result.hpp"
#include "filters/image_format.hpp"

namespace pixpool::bench {

struct CorpusImage {
  std::string name;   // file name, also the path under --source-url
  std::string bytes;  // the encoded file
  ImageFormat format = ImageFormat::jpeg;
  // Size after decoding with EXIF orientation applied, which is the size the
  // server's output must have.
  int width = 0;
  int height = 0;
};

struct Corpus {
  std::string source;  // "generated" or the folder
  std::vector<CorpusImage> images;
  std::uint64_t total_bytes() const;
  // One line per distinct size: "4 x 1920x1080 jpeg (avg 512.3 KiB)".
  std::string describe() const;
};

struct SizeSpec {
  std::string label;  // "vga", "1080p", "12mp" or "WxH"
  int width = 0;
  int height = 0;
};

// Parses one size: vga (640x480), 720p (1280x720), 1080p (1920x1080),
// 4k (3840x2160), 12mp (4032x3024) or WxH (1..20000 each).
// Errors: invalid_parameter naming the valid names.
Result<SizeSpec> parse_size(const std::string& text);

// A synthetic photo-like BGR image: smooth colour gradients, soft
// low-frequency "clouds", a few sharp-edged shapes and mild sensor noise.
// The same (width, height, seed) gives the same pixels.
cv::Mat synthetic_photo(int width, int height, unsigned seed);

// `per_size` JPEGs (quality 90, via cv::imencode) for each size, named
// "<label>-<n>.jpg"; with `restarts`, each has a restart marker at every
// MCU row (DRI = MCUs per row). Errors: internal if the encoder fails.
Result<Corpus> generate_corpus(const std::vector<SizeSpec>& sizes, int per_size,
                               bool restarts = false);

// Every file in `dir` (not recursive, sorted by name) that is a decodable
// JPEG, PNG, WebP, BMP or TIFF; other files are skipped and listed in
// `skipped`. Errors: invalid_parameter when `dir` is not a readable folder or
// holds no image.
Result<Corpus> load_corpus(const std::string& dir, std::vector<std::string>* skipped = nullptr);

}  // namespace pixpool::bench
