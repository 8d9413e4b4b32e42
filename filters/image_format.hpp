#pragma once
// Image formats and header probing. Formats are judged by their leading
// bytes, never by a Content-Type or file name. Dimensions come from the
// header alone, so oversized images are refused before any decoding.

#include <cstdint>
#include <optional>
#include <string_view>

#include "core/result.hpp"

namespace pixpool {

enum class ImageFormat { jpeg, png, webp, bmp, tiff };
inline constexpr int kImageFormatCount = 5;

// The format with this number (as sent over the worker socket), or nullopt
// when out of range.
inline std::optional<ImageFormat> image_format_from_int(std::int64_t number) {
  if (number < 0 || number >= kImageFormatCount) return std::nullopt;
  return static_cast<ImageFormat>(number);
}

std::string_view format_name(ImageFormat format);  // "jpeg", "png", ...
std::string_view mime_type(ImageFormat format);    // "image/jpeg", ...

// Output formats users may ask for: "jpeg" (or "jpg"), "png", "webp".
std::optional<ImageFormat> parse_output_format(std::string_view name);

// The output format used when the request names none: the input's format when
// it is jpeg, png or webp, else png.
ImageFormat default_output_format(ImageFormat input);

// Recognises JPEG, PNG, WebP, BMP and TIFF signatures; nullopt otherwise.
std::optional<ImageFormat> sniff_format(std::string_view bytes);

struct ImageHeader {
  ImageFormat format;
  int width = 0;
  int height = 0;
  std::uint64_t pixels() const {
    return static_cast<std::uint64_t>(width) * static_cast<std::uint64_t>(height);
  }
};

// Reads format and dimensions from the header without decoding pixels.
// Errors: unsupported_image when the signature is unknown or the header is
// truncated, malformed or declares a zero/negative size.
Result<ImageHeader> read_header(std::string_view bytes);

// The EXIF orientation (1..8) of a JPEG, or 1 when absent or unreadable.
int jpeg_exif_orientation(std::string_view bytes);

}  // namespace pixpool
