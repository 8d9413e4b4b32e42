#include "filters/codec.hpp"

#include <algorithm>
#include <memory>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <string>
#include <vector>

#include "filters/jpeg_codec.hpp"

namespace pixpool {
namespace {

constexpr int kJpegMaxSide = 65500;  // libjpeg's JPEG_MAX_DIMENSION
constexpr int kWebpMaxSide = 16383;

Error unsupported(std::string message) {
  return Error{ErrorCode::unsupported_image, std::move(message)};
}

cv::Mat apply_exif_orientation(cv::Mat image, int orientation) {
  cv::Mat out;
  switch (orientation) {
    case 2:
      cv::flip(image, out, 1);
      return out;
    case 3:
      cv::rotate(image, out, cv::ROTATE_180);
      return out;
    case 4:
      cv::flip(image, out, 0);
      return out;
    case 5:
      cv::transpose(image, out);
      return out;
    case 6:
      cv::rotate(image, out, cv::ROTATE_90_CLOCKWISE);
      return out;
    case 7:
      cv::transpose(image, out);
      cv::flip(out, out, -1);
      return out;
    case 8:
      cv::rotate(image, out, cv::ROTATE_90_COUNTERCLOCKWISE);
      return out;
    default:
      return image;
  }
}

// JPEG at 1/scale_denom through decode_jpeg; CMYK/YCCK JPEGs, which it
// refuses, through OpenCV's libjpeg path (which converts them to BGR) at full
// size whatever the scale. EXIF orientation is applied after either.
Result<cv::Mat> decode_jpeg_oriented(std::string_view bytes, const DecodeOptions& options) {
  const int orientation = jpeg_exif_orientation(bytes);
  // Rows are final as decoded only when no orientation moves them after.
  auto decoded = decode_jpeg(bytes, options.scale_denom, options.strips,
                             orientation == 1 ? options.on_rows : RowsDecoded{});
  cv::Mat image;
  if (decoded) {
    image = std::move(decoded.value());
  } else if (is_cmyk_jpeg_error(decoded.error())) {
    // Rare (print workflows).
    cv::Mat wrapped(1, static_cast<int>(bytes.size()), CV_8UC1, const_cast<char*>(bytes.data()));
    image = cv::imdecode(wrapped, cv::IMREAD_COLOR | cv::IMREAD_IGNORE_ORIENTATION);
    if (image.empty()) return unsupported("corrupt CMYK JPEG");
  } else {
    return decoded.error();
  }
  return apply_exif_orientation(std::move(image), orientation);
}

// cv::imdecode picks its decoder by its own signature checks, over every
// codec OpenCV was built with, not by the format we sniffed. Ours (BMP,
// JPEG, WebP, TIFF, PNG) are all checked at offset 0 and ahead of the rest,
// except that OpenCV's WebP check is stricter than a RIFF/WEBP sniff (it
// needs a parseable VP8/VP8L/VP8X header): a WebP it declines falls through
// to the next decoder that matches, and Debian's OpenCV has GDCM, which
// claims anything with "DICM" at offset 128 and abort()s (a failed assert in
// gdcm::Reader) on malformed data, taking the whole server down with it.
// Found fuzzing decode_image (crash-413799ef9c7e64c9c494beebfc2ff3da7d7e14e5).
// No other OpenCV 4.6 decoder looks past offset 0, so refusing that one
// signature keeps imdecode on the decoder we checked the header for.
Result<void> claimed_by_another_decoder(std::string_view bytes) {
  constexpr std::size_t kDicomMagicAt = 128;
  if (bytes.size() >= kDicomMagicAt + 4 && bytes.substr(kDicomMagicAt, 4) == "DICM") {
    return {ErrorCode::unsupported_image,
            "not a supported image (DICOM signature at byte 128; expected JPEG, PNG, WebP, BMP or "
            "TIFF data)"};
  }
  return {};
}

// Brings any decoded depth/channel layout to 8-bit grey, BGR or BGRA.
Result<cv::Mat> to_8bit(cv::Mat image) {
  switch (image.depth()) {
    case CV_8U:
      break;
    case CV_16U:
      image.convertTo(image, CV_8U, 1.0 / 257.0);
      break;
    case CV_32F:
    case CV_64F:
      image.convertTo(image, CV_8U, 255.0);
      break;  // float images are 0..1
    default:
      return unsupported("unsupported sample format (signed integer samples)");
  }
  switch (image.channels()) {
    case 1:
    case 3:
    case 4:
      return image;
    case 2: {  // grey + alpha
      cv::Mat out(image.size(), CV_8UC4);
      const int from_to[] = {0, 0, 0, 1, 0, 2, 1, 3};
      cv::mixChannels(&image, 1, &out, 1, from_to, 4);
      return out;
    }
    default:
      return unsupported("unsupported channel count " + std::to_string(image.channels()));
  }
}

}  // namespace

Result<DecodedImage> decode_image(std::string_view bytes, std::uint64_t max_pixels,
                                  const DecodeOptions& options) {
  const int scale = options.scale_denom;
  if (scale != 1 && scale != 2 && scale != 4 && scale != 8) {
    return Error{ErrorCode::internal, "scale_denom must be 1, 2, 4 or 8"};
  }
  auto header = read_header(bytes);
  if (!header) return header.error();
  // The caller asks for a scale only for JPEG input; anything else is its bug.
  if (scale != 1 && header->format != ImageFormat::jpeg) {
    return Error{ErrorCode::internal, "scaled decode is JPEG-only"};
  }
  if (header->pixels() > max_pixels) {
    return Error{ErrorCode::too_many_pixels,
                 "image is " + std::to_string(header->width) + "x" +
                     std::to_string(header->height) + " = " + std::to_string(header->pixels()) +
                     " pixels, over the limit of " + std::to_string(max_pixels)};
  }
  cv::Mat image;
  if (header->format == ImageFormat::jpeg) {
    auto decoded = decode_jpeg_oriented(bytes, options);
    if (!decoded) return decoded.error();
    image = std::move(decoded.value());
  } else {
    if (auto stolen = claimed_by_another_decoder(bytes); !stolen) return stolen.error();
    cv::Mat wrapped(1, static_cast<int>(bytes.size()), CV_8UC1, const_cast<char*>(bytes.data()));
    image = cv::imdecode(wrapped, cv::IMREAD_UNCHANGED);
    if (image.empty()) {
      return unsupported("corrupt or truncated " + std::string(format_name(header->format)) +
                         " data");
    }
  }
  // Guard against decoders that disagree with the header we checked.
  if (static_cast<std::uint64_t>(image.total()) > max_pixels) {
    return Error{ErrorCode::too_many_pixels, "decoded image is over the pixel limit"};
  }
  auto normalised = to_8bit(std::move(image));
  if (!normalised) return normalised.error();
  return DecodedImage{std::move(normalised.value()), header->format};
}

Result<void> check_encodable(int width, int height, ImageFormat format) {
  const int side = std::max(width, height);
  if (format == ImageFormat::jpeg && side > kJpegMaxSide) {
    return {ErrorCode::too_large_for_format,
            "jpeg output is limited to 65500 pixels per side; ask for format=png"};
  }
  if (format == ImageFormat::webp && side > kWebpMaxSide) {
    return {ErrorCode::too_large_for_format,
            "webp output is limited to 16383 pixels per side; ask for format=png"};
  }
  return {};
}

Result<std::string> encode_image(const cv::Mat& image, ImageFormat format, int quality,
                                 const StripRunner& strips) {
  if (quality < 1 || quality > 100) {
    return Error{ErrorCode::invalid_parameter, "quality must be between 1 and 100"};
  }
  if (image.depth() != CV_8U || image.channels() == 2 || image.channels() > 4) {
    return Error{ErrorCode::internal, "encode expects an 8-bit grey, BGR or BGRA image"};
  }
  if (auto ok = check_encodable(image.cols, image.rows, format); !ok) return ok.error();

  if (format == ImageFormat::jpeg) return encode_jpeg(image, quality, strips);

  std::vector<int> params;
  const char* extension = ".png";
  if (format == ImageFormat::png) {
    params = {cv::IMWRITE_PNG_COMPRESSION, 1};  // fast; the contour output compresses well
  } else if (format == ImageFormat::webp) {
    extension = ".webp";
    params = {cv::IMWRITE_WEBP_QUALITY, quality};
  } else {
    return Error{ErrorCode::invalid_parameter, "output format must be jpeg, png or webp"};
  }
  std::vector<uchar> buffer;
  if (!cv::imencode(extension, image, buffer, params)) {
    return Error{ErrorCode::internal, std::string("encode to ") + extension + " failed"};
  }
  return std::string(buffer.begin(), buffer.end());
}

}  // namespace pixpool
