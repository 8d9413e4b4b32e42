// Fuzz target: image probing (filters/image_format.hpp) on untrusted bytes:
// format sniffing, header dimension probing (which the pixel limit trusts
// before any decoding) and the JPEG EXIF orientation reader. Accepted
// headers must agree with the sniffed format and keep the dimension bounds.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "filters/image_format.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const auto sniffed = pixpool::sniff_format(bytes);
  auto header = pixpool::read_header(bytes);
  if (header) {
    if (!sniffed || header->format != *sniffed) std::abort();
    if (header->width < 1 || header->height < 1 || header->width > (1 << 30) ||
        header->height > (1 << 30)) {
      std::abort();
    }
  } else if (header.error().code != pixpool::ErrorCode::unsupported_image &&
             header.error().code != pixpool::ErrorCode::empty_body) {
    std::abort();
  }
  const int orientation = pixpool::jpeg_exif_orientation(bytes);
  if (orientation < 1 || orientation > 8) std::abort();
  return 0;
}
