// Fuzz target: decoding under the pixel limit (filters/codec.hpp
// decode_image), as the worker and the tbb backend run it on uploads. The
// limit is checked on the header before decoding, so a decoder must never
// produce more pixels than the header declared: that would let an image
// past the pre-decode check and allocate before the after-decode guard.
// libjpeg-turbo, libpng, libwebp and libtiff are Debian's uninstrumented
// libraries; scripts/fuzz bounds every allocation (-malloc_limit_mb).
//
// JPEG input is decoded a second time at a scale taken from the input's size
// and in strips (filters/jpeg_codec.hpp), against the same scale without
// strips: the strip decoder must give exactly the serial decoder's pixels or
// error, whatever the bytes.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <opencv2/core.hpp>
#include <opencv2/core/utils/logger.hpp>
#include <string_view>

#include "filters/codec.hpp"

namespace {
constexpr std::uint64_t kMaxPixels = 1'000'000;  // small, so the fuzzer meets the limit

// Three strips, last first, on this thread (fuzzing wants no threads).
void reversed_thirds(int rows, int /*min_rows*/, const std::function<void(int, int)>& body) {
  for (int i = 2; i >= 0; --i) body(rows * i / 3, rows * (i + 1) / 3);
}

void check_strips_match_serial(std::string_view bytes) {
  pixpool::DecodeOptions serial;
  serial.scale_denom = 1 << (bytes.size() % 4);
  pixpool::DecodeOptions split = serial;
  split.strips = reversed_thirds;
  auto a = pixpool::decode_image(bytes, kMaxPixels, serial);
  auto b = pixpool::decode_image(bytes, kMaxPixels, split);
  if (a.ok() != b.ok()) std::abort();
  if (!a.ok()) {
    if (a.error().code != b.error().code || a.error().message != b.error().message) std::abort();
    return;
  }
  const cv::Mat& x = a->pixels;
  const cv::Mat& y = b->pixels;
  if (x.size() != y.size() || x.type() != y.type()) std::abort();
  if (!x.empty() && cv::norm(x, y, cv::NORM_INF) != 0) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  cv::utils::logging::setLogLevel(cv::utils::logging::LOG_LEVEL_SILENT);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  if (auto sniffed = pixpool::read_header(bytes);
      sniffed && sniffed->format == pixpool::ImageFormat::jpeg) {
    check_strips_match_serial(bytes);
  }
  auto decoded = pixpool::decode_image(bytes, kMaxPixels);
  if (!decoded) {
    const auto code = decoded.error().code;
    if (code != pixpool::ErrorCode::unsupported_image &&
        code != pixpool::ErrorCode::too_many_pixels && code != pixpool::ErrorCode::empty_body) {
      std::abort();
    }
    return 0;
  }
  const cv::Mat& pixels = decoded->pixels;
  if (pixels.empty() || pixels.depth() != CV_8U ||
      (pixels.channels() != 1 && pixels.channels() != 3 && pixels.channels() != 4)) {
    std::abort();
  }
  auto header = pixpool::read_header(bytes);
  if (!header || header->format != decoded->source_format) std::abort();
  if (static_cast<std::uint64_t>(pixels.total()) > header->pixels()) std::abort();
  return 0;
}
