// Fuzz target: decoding under the pixel limit (filters/codec.hpp
// decode_image), as the worker and the tbb backend run it on uploads. The
// limit is checked on the header before decoding, so a decoder must never
// produce more pixels than the header declared: that would let an image
// past the pre-decode check and allocate before the after-decode guard.
// libjpeg-turbo, libpng, libwebp and libtiff are Debian's uninstrumented
// libraries; scripts/fuzz bounds every allocation (-malloc_limit_mb).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <opencv2/core/utils/logger.hpp>
#include <string_view>

#include "filters/codec.hpp"

namespace {
constexpr std::uint64_t kMaxPixels = 1'000'000;  // small, so the fuzzer meets the limit
}

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  cv::utils::logging::setLogLevel(cv::utils::logging::LOG_LEVEL_SILENT);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
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
