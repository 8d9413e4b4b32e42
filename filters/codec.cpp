#include "filters/codec.hpp"

#include <turbojpeg.h>

#include <algorithm>
#include <memory>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <string>
#include <vector>

namespace pixpool {
namespace {

constexpr int kJpegMaxSide = 65500;  // libjpeg's JPEG_MAX_DIMENSION
constexpr int kWebpMaxSide = 16383;

struct TjDeleter {
  void operator()(void* handle) const { tjDestroy(handle); }
};
using TjHandle = std::unique_ptr<void, TjDeleter>;

// TurboJPEG handles are not thread-safe but are reusable: one per thread.
tjhandle decompressor() {
  thread_local TjHandle handle(tjInitDecompress());
  return handle.get();
}
tjhandle compressor() {
  thread_local TjHandle handle(tjInitCompress());
  return handle.get();
}

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

Result<cv::Mat> decode_jpeg(std::string_view bytes, int scale_denom) {
  tjhandle tj = decompressor();
  if (tj == nullptr) return Error{ErrorCode::internal, "tjInitDecompress failed"};
  auto* data = reinterpret_cast<const unsigned char*>(bytes.data());
  const auto size = static_cast<unsigned long>(bytes.size());
  int width = 0, height = 0, subsamp = 0, colorspace = 0;
  if (tjDecompressHeader3(tj, data, size, &width, &height, &subsamp, &colorspace) != 0) {
    return unsupported(std::string("corrupt JPEG: ") + tjGetErrorStr2(tj));
  }
  cv::Mat image;
  if (colorspace == TJCS_CMYK || colorspace == TJCS_YCCK) {
    // Rare (print workflows); OpenCV's libjpeg path converts CMYK to BGR.
    cv::Mat wrapped(1, static_cast<int>(bytes.size()), CV_8UC1, const_cast<char*>(bytes.data()));
    image = cv::imdecode(wrapped, cv::IMREAD_COLOR | cv::IMREAD_IGNORE_ORIENTATION);
    if (image.empty()) return unsupported("corrupt CMYK JPEG");
  } else {
    const bool grey = colorspace == TJCS_GRAY;
    width = (width + scale_denom - 1) / scale_denom;
    height = (height + scale_denom - 1) / scale_denom;
    image.create(height, width, grey ? CV_8UC1 : CV_8UC3);
    // STOPONWARNING: a truncated file is an error, not an image padded with grey.
    // LIMITSCANS: refuse progressive JPEGs with absurd scan counts (CPU bombs).
    if (tjDecompress2(tj, data, size, image.data, width, static_cast<int>(image.step), height,
                      grey ? TJPF_GRAY : TJPF_BGR, TJFLAG_STOPONWARNING | TJFLAG_LIMITSCANS) != 0) {
      return unsupported(std::string("corrupt or truncated JPEG: ") + tjGetErrorStr2(tj));
    }
  }
  return apply_exif_orientation(std::move(image), jpeg_exif_orientation(bytes));
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
  auto header = read_header(bytes);
  if (!header) return header.error();
  if (header->pixels() > max_pixels) {
    return Error{ErrorCode::too_many_pixels,
                 "image is " + std::to_string(header->width) + "x" +
                     std::to_string(header->height) + " = " + std::to_string(header->pixels()) +
                     " pixels, over the limit of " + std::to_string(max_pixels)};
  }
  cv::Mat image;
  if (header->format == ImageFormat::jpeg) {
    auto decoded = decode_jpeg(bytes, options.scale_denom);
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

Result<std::string> encode_image(const cv::Mat& image, ImageFormat format, int quality) {
  if (quality < 1 || quality > 100) {
    return Error{ErrorCode::invalid_parameter, "quality must be between 1 and 100"};
  }
  if (image.depth() != CV_8U || image.channels() == 2 || image.channels() > 4) {
    return Error{ErrorCode::internal, "encode expects an 8-bit grey, BGR or BGRA image"};
  }
  if (auto ok = check_encodable(image.cols, image.rows, format); !ok) return ok.error();

  if (format == ImageFormat::jpeg) {
    tjhandle tj = compressor();
    if (tj == nullptr) return Error{ErrorCode::internal, "tjInitCompress failed"};
    const int channels = image.channels();
    const int pixel_format = channels == 1 ? TJPF_GRAY : channels == 3 ? TJPF_BGR : TJPF_BGRX;
    // TurboJPEG allocates the worst-case output size, but only the pages it
    // writes become resident. (A per-thread reusable buffer measured no
    // faster, and zero-filling it made every thread hold the worst case: the
    // 64 x 12 MP memory test went from 1.0 to 1.8 GiB.)
    unsigned char* jpeg = nullptr;
    unsigned long jpeg_size = 0;
    if (tjCompress2(tj, image.data, image.cols, static_cast<int>(image.step), image.rows,
                    pixel_format, &jpeg, &jpeg_size, channels == 1 ? TJSAMP_GRAY : TJSAMP_420,
                    quality, 0) != 0) {
      tjFree(jpeg);
      return Error{ErrorCode::internal, std::string("JPEG encode failed: ") + tjGetErrorStr2(tj)};
    }
    std::string out(reinterpret_cast<const char*>(jpeg), jpeg_size);
    tjFree(jpeg);
    return out;
  }

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
