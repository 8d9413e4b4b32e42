#include "filters/image_format.hpp"

#include <algorithm>
#include <cstring>
#include <string>

namespace pixpool {
namespace {

std::uint32_t be16(const unsigned char* p) {
  return (std::uint32_t{p[0]} << 8) | p[1];
}
std::uint32_t be32(const unsigned char* p) {
  return (be16(p) << 16) | be16(p + 2);
}
std::uint32_t le16(const unsigned char* p) {
  return (std::uint32_t{p[1]} << 8) | p[0];
}
std::uint32_t le24(const unsigned char* p) {
  return le16(p) | (std::uint32_t{p[2]} << 16);
}
std::uint32_t le32(const unsigned char* p) {
  return le16(p) | (le16(p + 2) << 16);
}

const unsigned char* bytes_of(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

Error bad_header(ImageFormat f, const char* what) {
  return Error{ErrorCode::unsupported_image,
               std::string("malformed ") + std::string(format_name(f)) + " header: " + what};
}

Result<ImageHeader> checked(ImageFormat f, std::int64_t w, std::int64_t h) {
  if (w <= 0 || h <= 0) return bad_header(f, "zero or negative dimensions");
  if (w > (1 << 30) || h > (1 << 30)) return bad_header(f, "dimensions out of range");
  return ImageHeader{f, static_cast<int>(w), static_cast<int>(h)};
}

// A minimal TIFF IFD reader, shared by TIFF headers and JPEG EXIF blocks.
// `tiff` starts at the byte-order mark ("II" or "MM").
struct TiffReader {
  const unsigned char* p;
  std::size_t size;
  bool little;

  static std::optional<TiffReader> open(const unsigned char* p, std::size_t size) {
    if (size < 8) return std::nullopt;
    bool little = p[0] == 'I' && p[1] == 'I';
    bool big = p[0] == 'M' && p[1] == 'M';
    if (!little && !big) return std::nullopt;
    TiffReader r{p, size, little};
    if (r.u16(2) != 42) return std::nullopt;
    return r;
  }
  std::uint32_t u16(std::size_t at) const { return little ? le16(p + at) : be16(p + at); }
  std::uint32_t u32(std::size_t at) const { return little ? le32(p + at) : be32(p + at); }

  // Value of a SHORT or LONG tag in the first IFD; nullopt when absent.
  std::optional<std::uint32_t> first_ifd_tag(std::uint32_t tag) const {
    const std::size_t ifd = u32(4);
    if (ifd + 2 > size) return std::nullopt;
    const std::size_t count = u16(ifd);
    for (std::size_t i = 0; i < count; ++i) {
      const std::size_t entry = ifd + 2 + 12 * i;
      if (entry + 12 > size) return std::nullopt;
      if (u16(entry) != tag) continue;
      const std::uint32_t type = u16(entry + 2);
      if (type == 3) return u16(entry + 8);  // SHORT
      if (type == 4) return u32(entry + 8);  // LONG
      return std::nullopt;
    }
    return std::nullopt;
  }
};

Result<ImageHeader> jpeg_header(std::string_view s) {
  const unsigned char* p = bytes_of(s);
  std::size_t at = 2;  // after SOI
  while (at + 4 <= s.size()) {
    if (p[at] != 0xFF) return bad_header(ImageFormat::jpeg, "expected a marker");
    const unsigned marker = p[at + 1];
    if (marker == 0xFF) {  // fill byte
      ++at;
      continue;
    }
    if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) {  // no length
      at += 2;
      continue;
    }
    const std::size_t length = be16(p + at + 2);
    if (length < 2) return bad_header(ImageFormat::jpeg, "bad segment length");
    const bool sof =
        marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
    if (sof) {
      if (at + 9 > s.size()) break;
      return checked(ImageFormat::jpeg, be16(p + at + 7), be16(p + at + 5));
    }
    if (marker == 0xDA || marker == 0xD9) {
      return bad_header(ImageFormat::jpeg, "no frame header before image data");
    }
    at += 2 + length;
  }
  return bad_header(ImageFormat::jpeg, "truncated before the frame header");
}

Result<ImageHeader> png_header(std::string_view s) {
  const unsigned char* p = bytes_of(s);
  if (s.size() < 24 || std::memcmp(p + 12, "IHDR", 4) != 0) {
    return bad_header(ImageFormat::png, "missing IHDR chunk");
  }
  return checked(ImageFormat::png, be32(p + 16), be32(p + 20));
}

Result<ImageHeader> webp_header(std::string_view s) {
  const unsigned char* p = bytes_of(s);
  if (s.size() < 30) return bad_header(ImageFormat::webp, "truncated");
  if (std::memcmp(p + 12, "VP8 ", 4) == 0) {
    if (p[23] != 0x9D || p[24] != 0x01 || p[25] != 0x2A) {
      return bad_header(ImageFormat::webp, "bad VP8 start code");
    }
    return checked(ImageFormat::webp, le16(p + 26) & 0x3FFF, le16(p + 28) & 0x3FFF);
  }
  if (std::memcmp(p + 12, "VP8L", 4) == 0) {
    if (p[20] != 0x2F) return bad_header(ImageFormat::webp, "bad VP8L signature");
    const std::uint32_t bits = le32(p + 21);
    return checked(ImageFormat::webp, (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1);
  }
  if (std::memcmp(p + 12, "VP8X", 4) == 0) {
    return checked(ImageFormat::webp, std::int64_t{le24(p + 24)} + 1,
                   std::int64_t{le24(p + 27)} + 1);
  }
  return bad_header(ImageFormat::webp, "unknown chunk");
}

Result<ImageHeader> bmp_header(std::string_view s) {
  const unsigned char* p = bytes_of(s);
  if (s.size() < 26) return bad_header(ImageFormat::bmp, "truncated");
  const std::uint32_t dib_size = le32(p + 14);
  if (dib_size == 12) return checked(ImageFormat::bmp, le16(p + 18), le16(p + 20));
  if (dib_size < 40) return bad_header(ImageFormat::bmp, "unknown DIB header");
  const auto width = static_cast<std::int32_t>(le32(p + 18));
  const auto height = static_cast<std::int32_t>(le32(p + 22));  // negative: top-down
  return checked(ImageFormat::bmp, width, height < 0 ? -std::int64_t{height} : height);
}

Result<ImageHeader> tiff_header(std::string_view s) {
  auto tiff = TiffReader::open(bytes_of(s), s.size());
  if (!tiff) return bad_header(ImageFormat::tiff, "bad byte-order mark");
  auto width = tiff->first_ifd_tag(256);
  auto height = tiff->first_ifd_tag(257);
  if (!width || !height) return bad_header(ImageFormat::tiff, "no ImageWidth/ImageLength");
  // OpenCV's TIFF decoder allocates one strip or tile (4 bytes a pixel) as
  // the file declares it, not clamped to the image: a 196-byte file
  // declaring 56063-row strips for an 8199x5 image made it ask for 1.8 GB
  // (fuzz_decode, oom-54c1ab4a), and a 7x5 one with a TileWidth of 1282 and
  // no TileLength 325 MB (oom-d90afd71). A strip or tile may exceed the
  // image (as writers that round up do) only up to 1 MP.
  constexpr std::uint64_t kMaxSlackPixels = 1 << 20;
  const std::uint64_t image_pixels = std::uint64_t{*width} * *height;
  const auto too_big = [&](std::uint64_t pixels) {
    return pixels > std::max(image_pixels, kMaxSlackPixels);
  };
  // The block libtiff hands OpenCV, as libtiff 4.5 reads the tags: either
  // tile tag makes the file tiled, a missing TileWidth is the image width
  // and a missing TileLength is RowsPerStrip. Untiled, RowsPerStrip 0 or
  // 2^32-1 means "one strip", which OpenCV reads as the image height.
  const auto rows = tiff->first_ifd_tag(278);
  const auto tile_width = tiff->first_ifd_tag(322);
  const auto tile_length = tiff->first_ifd_tag(323);
  if (tile_width || tile_length) {
    const std::uint64_t block_width = tile_width.value_or(*width);
    const std::uint64_t block_rows = tile_length ? *tile_length : rows.value_or(*height);
    if (too_big(block_width * block_rows)) {
      return bad_header(ImageFormat::tiff, "tiles far larger than the image");
    }
  } else if (rows && *rows != 0 && *rows != 0xFFFFFFFFu && too_big(std::uint64_t{*width} * *rows)) {
    return bad_header(ImageFormat::tiff, "RowsPerStrip far beyond the image height");
  }
  return checked(ImageFormat::tiff, *width, *height);
}

}  // namespace

std::string_view format_name(ImageFormat format) {
  switch (format) {
    case ImageFormat::jpeg:
      return "jpeg";
    case ImageFormat::png:
      return "png";
    case ImageFormat::webp:
      return "webp";
    case ImageFormat::bmp:
      return "bmp";
    case ImageFormat::tiff:
      return "tiff";
  }
  return "unknown";
}

std::string_view mime_type(ImageFormat format) {
  switch (format) {
    case ImageFormat::jpeg:
      return "image/jpeg";
    case ImageFormat::png:
      return "image/png";
    case ImageFormat::webp:
      return "image/webp";
    case ImageFormat::bmp:
      return "image/bmp";
    case ImageFormat::tiff:
      return "image/tiff";
  }
  return "application/octet-stream";
}

std::optional<ImageFormat> parse_output_format(std::string_view name) {
  if (name == "jpeg" || name == "jpg") return ImageFormat::jpeg;
  if (name == "png") return ImageFormat::png;
  if (name == "webp") return ImageFormat::webp;
  return std::nullopt;
}

ImageFormat default_output_format(ImageFormat input) {
  switch (input) {
    case ImageFormat::jpeg:
    case ImageFormat::png:
    case ImageFormat::webp:
      return input;
    case ImageFormat::bmp:
    case ImageFormat::tiff:
      return ImageFormat::png;
  }
  return ImageFormat::png;
}

std::optional<ImageFormat> sniff_format(std::string_view s) {
  const unsigned char* p = bytes_of(s);
  if (s.size() >= 3 && p[0] == 0xFF && p[1] == 0xD8 && p[2] == 0xFF) return ImageFormat::jpeg;
  if (s.size() >= 8 && std::memcmp(p, "\x89PNG\r\n\x1a\n", 8) == 0) return ImageFormat::png;
  if (s.size() >= 12 && std::memcmp(p, "RIFF", 4) == 0 && std::memcmp(p + 8, "WEBP", 4) == 0) {
    return ImageFormat::webp;
  }
  if (s.size() >= 2 && p[0] == 'B' && p[1] == 'M') return ImageFormat::bmp;
  if (s.size() >= 4 && (std::memcmp(p, "II*\0", 4) == 0 || std::memcmp(p, "MM\0*", 4) == 0)) {
    return ImageFormat::tiff;
  }
  return std::nullopt;
}

Result<ImageHeader> read_header(std::string_view bytes) {
  if (bytes.empty()) return Error{ErrorCode::empty_body, "no image data"};
  auto format = sniff_format(bytes);
  if (!format) {
    return Error{ErrorCode::unsupported_image,
                 "not a supported image (expected JPEG, PNG, WebP, BMP or TIFF data)"};
  }
  switch (*format) {
    case ImageFormat::jpeg:
      return jpeg_header(bytes);
    case ImageFormat::png:
      return png_header(bytes);
    case ImageFormat::webp:
      return webp_header(bytes);
    case ImageFormat::bmp:
      return bmp_header(bytes);
    case ImageFormat::tiff:
      return tiff_header(bytes);
  }
  return Error{ErrorCode::internal, "unhandled format"};
}

int jpeg_exif_orientation(std::string_view s) {
  const unsigned char* p = bytes_of(s);
  std::size_t at = 2;
  while (at + 4 <= s.size() && p[at] == 0xFF) {
    const unsigned marker = p[at + 1];
    if (marker == 0xDA || marker == 0xD9) break;  // image data: no EXIF before it
    const std::size_t length = be16(p + at + 2);
    if (length < 2 || at + 2 + length > s.size()) break;
    if (marker == 0xE1 && length >= 16 && std::memcmp(p + at + 4, "Exif\0\0", 6) == 0) {
      auto tiff = TiffReader::open(p + at + 10, length - 8);
      if (!tiff) break;
      auto orientation = tiff->first_ifd_tag(0x0112);
      return orientation && *orientation >= 1 && *orientation <= 8 ? static_cast<int>(*orientation)
                                                                   : 1;
    }
    at += 2 + length;
  }
  return 1;
}

}  // namespace pixpool
