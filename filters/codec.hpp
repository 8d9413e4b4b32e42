#pragma once
// Decoding and encoding. JPEG goes through filters/jpeg_codec.hpp (libjpeg,
// strict: a truncated or corrupt JPEG is an error, not a grey-padded image;
// strips of one image can run in parallel); PNG, WebP, BMP and TIFF through
// OpenCV's imgcodecs.
//
// Pixel layout after decoding: CV_8UC1 (grey), CV_8UC3 (BGR) or CV_8UC4
// (BGRA). 16-bit and float samples are scaled to 8 bits. JPEG EXIF
// orientation is applied, so the output looks the way viewers show the input.

#include <cstdint>
#include <opencv2/core.hpp>
#include <string>
#include <string_view>

#include "core/result.hpp"
#include "filters/image_format.hpp"
#include "filters/jpeg_codec.hpp"
#include "filters/strips.hpp"

namespace pixpool {

inline constexpr std::uint64_t kDefaultMaxPixels = 50'000'000;
inline constexpr int kDefaultQuality = 90;

struct DecodedImage {
  cv::Mat pixels;
  ImageFormat source_format;
};

struct DecodeOptions {
  // JPEG only: decode at 1/scale_denom of the size (1, 2, 4 or 8) with
  // libjpeg's scaled IDCT, to ceil(width / scale_denom) x ceil(height /
  // scale_denom) before EXIF orientation. Any other input format with a
  // scale_denom other than 1 is an `internal` error ("scaled decode is
  // JPEG-only"): the caller asks for a scale only after seeing a JPEG header.
  // CALLERS MUST CHECK THE SIZE THEY GET: a CMYK or YCCK JPEG is decoded by
  // OpenCV at full size whatever scale_denom says.
  int scale_denom = 1;
  // JPEG only: parallel strips for files with restart markers at MCU row
  // starts (filters/jpeg_codec.hpp); empty means one thread.
  StripRunner strips;
  // JPEG only: told of the rows as they are decoded, when the JPEG is
  // decoded serially and needs no EXIF orientation (decode_jpeg's on_rows:
  // the Mat it gets is the decoded image's pixels). Otherwise not called.
  RowsDecoded on_rows;
};

// Decodes `bytes`. The header is checked first: more than `max_pixels` pixels
// (of the full-size image, whatever the scale) gives too_many_pixels before
// any pixel is decoded. Errors: empty_body, unsupported_image (unknown,
// truncated or corrupt data), too_many_pixels, internal (a scale_denom that
// is not 1, 2, 4 or 8, or not 1 for a format other than JPEG).
Result<DecodedImage> decode_image(std::string_view bytes, std::uint64_t max_pixels,
                                  const DecodeOptions& options = {});

// Refuses dimensions the output format cannot represent (JPEG: 65500 px per
// side, WebP: 16383) with too_large_for_format.
Result<void> check_encodable(int width, int height, ImageFormat format);

// Encodes an 8-bit grey/BGR/BGRA image. `quality` 1..100 applies to JPEG and
// WebP; PNG is lossless. Alpha is kept in PNG and WebP and dropped for JPEG.
// JPEG is encode_jpeg (filters/jpeg_codec.hpp): 4:2:0, a restart marker per
// MCU row, strips encoded in parallel through `strips` (other formats ignore
// it). Errors: invalid_parameter (quality, format not an output format),
// too_large_for_format, internal when the encoder fails, out_of_memory.
Result<std::string> encode_image(const cv::Mat& image, ImageFormat format, int quality,
                                 const StripRunner& strips = {});

}  // namespace pixpool
