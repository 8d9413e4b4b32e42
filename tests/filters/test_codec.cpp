// Codec: format sniffing, header probing and limits, strict decoding, encoding.
#include <doctest/doctest.h>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <string>

#include "filters/codec.hpp"
#include "filters/image_format.hpp"
#include "tests/support/images.hpp"

using namespace pixpool;

namespace {

void put_be16(std::string& s, std::size_t at, unsigned v) {
  s[at] = static_cast<char>((v >> 8) & 0xFF);
  s[at + 1] = static_cast<char>(v & 0xFF);
}
void put_be32(std::string& s, std::size_t at, unsigned v) {
  put_be16(s, at, v >> 16);
  put_be16(s, at + 2, v & 0xFFFF);
}

// A valid small PNG whose IHDR now claims width x height (CRC left stale).
std::string png_claiming(unsigned width, unsigned height) {
  std::string png = test::encode_with_opencv(test::synthetic_image(4, 4, 3), ".png");
  put_be32(png, 16, width);
  put_be32(png, 20, height);
  return png;
}

using test::with_exif_orientation;

}  // namespace

TEST_CASE("read_header knows every input format from its bytes") {
  const cv::Mat image = test::synthetic_image(123, 45, 3);
  struct Case {
    const char* extension;
    ImageFormat format;
  };
  for (Case c : {Case{".jpg", ImageFormat::jpeg}, Case{".png", ImageFormat::png},
                 Case{".webp", ImageFormat::webp}, Case{".bmp", ImageFormat::bmp},
                 Case{".tiff", ImageFormat::tiff}}) {
    CAPTURE(c.extension);
    auto header = read_header(test::encode_with_opencv(image, c.extension));
    REQUIRE(header.ok());
    CHECK(header->format == c.format);
    CHECK(header->width == 123);
    CHECK(header->height == 45);
  }
  // Lossless WebP has its own header layout (VP8L).
  std::vector<uchar> lossless;
  cv::imencode(".webp", image, lossless, {cv::IMWRITE_WEBP_QUALITY, 101});
  auto vp8l = read_header(std::string(lossless.begin(), lossless.end()));
  REQUIRE(vp8l.ok());
  CHECK(vp8l->width == 123);
  CHECK(vp8l->height == 45);
}

TEST_CASE("read_header refuses what is not an image") {
  CHECK(read_header("").error().code == ErrorCode::empty_body);
  CHECK(read_header("hello world").error().code == ErrorCode::unsupported_image);
  CHECK(read_header(std::string("\x89PNG\r\n\x1a\n", 8)).error().code ==
        ErrorCode::unsupported_image);
  CHECK(read_header(std::string("\xFF\xD8\xFF", 3)).error().code == ErrorCode::unsupported_image);
  CHECK(read_header(png_claiming(0, 10)).error().code == ErrorCode::unsupported_image);
  CHECK(read_header(std::string("RIFF\0\0\0\0WEBPVP8 ", 16)).error().code ==
        ErrorCode::unsupported_image);
}

TEST_CASE("default output format: jpeg/png/webp keep theirs, bmp and tiff become png") {
  CHECK(default_output_format(ImageFormat::jpeg) == ImageFormat::jpeg);
  CHECK(default_output_format(ImageFormat::png) == ImageFormat::png);
  CHECK(default_output_format(ImageFormat::webp) == ImageFormat::webp);
  CHECK(default_output_format(ImageFormat::bmp) == ImageFormat::png);
  CHECK(default_output_format(ImageFormat::tiff) == ImageFormat::png);
  CHECK(parse_output_format("jpg") == ImageFormat::jpeg);
  CHECK_FALSE(parse_output_format("gif").has_value());
}

TEST_CASE("decode_image checks pixels from the header before decoding") {
  // 100000 x 100000 claimed in a file of a few hundred bytes.
  auto huge = decode_image(png_claiming(100000, 100000), kDefaultMaxPixels);
  REQUIRE_FALSE(huge.ok());
  CHECK(huge.error().code == ErrorCode::too_many_pixels);
  CHECK(huge.error().message.find("100000x100000") != std::string::npos);

  std::string jpeg = test::encode_with_opencv(test::synthetic_image(16, 16, 3), ".jpg");
  const auto sof = jpeg.find("\xFF\xC0");
  REQUIRE(sof != std::string::npos);
  put_be16(jpeg, sof + 5, 60000);
  put_be16(jpeg, sof + 7, 60000);
  CHECK(decode_image(jpeg, kDefaultMaxPixels).error().code == ErrorCode::too_many_pixels);

  const std::string exact = test::encode_with_opencv(test::synthetic_image(10, 10, 3), ".png");
  CHECK(decode_image(exact, 100).ok());
  CHECK(decode_image(exact, 99).error().code == ErrorCode::too_many_pixels);
}

TEST_CASE("decode_image refuses truncated and corrupt data") {
  const std::string jpeg = test::read_test_data("fruits_320x240.jpg");
  auto truncated = decode_image(jpeg.substr(0, jpeg.size() / 2), kDefaultMaxPixels);
  REQUIRE_FALSE(truncated.ok());
  CHECK(truncated.error().code == ErrorCode::unsupported_image);

  const std::string png = test::encode_with_opencv(test::synthetic_image(64, 64, 3), ".png");
  CHECK(decode_image(png.substr(0, png.size() / 2), kDefaultMaxPixels).error().code ==
        ErrorCode::unsupported_image);

  // A PNG whose header lies: claims 50x50 but carries 4x4 worth of data.
  CHECK(decode_image(png_claiming(50, 50), kDefaultMaxPixels).error().code ==
        ErrorCode::unsupported_image);

  std::string garbage = jpeg;
  for (std::size_t i = 700; i < garbage.size(); i += 3) garbage[i] = static_cast<char>(i * 31);
  auto corrupt = decode_image(garbage, kDefaultMaxPixels);
  CHECK_FALSE(corrupt.ok());
}

TEST_CASE("decode_image normalises layouts to 8-bit grey, BGR or BGRA") {
  auto grey = decode_image(test::encode_with_opencv(test::synthetic_image(20, 10, 1), ".png"),
                           kDefaultMaxPixels);
  REQUIRE(grey.ok());
  CHECK(grey->pixels.type() == CV_8UC1);

  auto grey_jpeg = decode_image(test::encode_with_opencv(test::synthetic_image(20, 10, 1), ".jpg"),
                                kDefaultMaxPixels);
  REQUIRE(grey_jpeg.ok());
  CHECK(grey_jpeg->pixels.type() == CV_8UC1);

  auto bgra = decode_image(test::encode_with_opencv(test::synthetic_image(20, 10, 4), ".png"),
                           kDefaultMaxPixels);
  REQUIRE(bgra.ok());
  CHECK(bgra->pixels.type() == CV_8UC4);

  cv::Mat deep;
  test::synthetic_image(20, 10, 3).convertTo(deep, CV_16U, 257.0);
  auto sixteen = decode_image(test::encode_with_opencv(deep, ".png"), kDefaultMaxPixels);
  REQUIRE(sixteen.ok());
  CHECK(sixteen->pixels.type() == CV_8UC3);
  CHECK(cv::norm(sixteen->pixels, test::synthetic_image(20, 10, 3), cv::NORM_INF) <= 1);
}

TEST_CASE("JPEG EXIF orientation is applied") {
  const std::string plain = test::encode_with_opencv(test::synthetic_image(40, 20, 3), ".jpg");
  auto upright = decode_image(plain, kDefaultMaxPixels);
  REQUIRE(upright.ok());

  auto rotated = decode_image(with_exif_orientation(plain, 6), kDefaultMaxPixels);
  REQUIRE(rotated.ok());
  CHECK(rotated->pixels.cols == 20);
  CHECK(rotated->pixels.rows == 40);
  cv::Mat expected;
  cv::rotate(upright->pixels, expected, cv::ROTATE_90_CLOCKWISE);
  CHECK(cv::norm(rotated->pixels, expected, cv::NORM_INF) == 0);

  CHECK(jpeg_exif_orientation(with_exif_orientation(plain, 3)) == 3);
  CHECK(jpeg_exif_orientation(plain) == 1);
}

TEST_CASE("encode_image: formats, quality, alpha") {
  const cv::Mat bgr = test::synthetic_image(64, 48, 3);
  const cv::Mat bgra = test::synthetic_image(64, 48, 4);

  auto jpeg = encode_image(bgr, ImageFormat::jpeg, 90);
  REQUIRE(jpeg.ok());
  CHECK(sniff_format(*jpeg) == ImageFormat::jpeg);
  CHECK(test::psnr(test::decode_with_opencv(*jpeg), bgr) > 30.0);
  auto small = encode_image(bgr, ImageFormat::jpeg, 10);
  REQUIRE(small.ok());
  CHECK(small->size() < jpeg->size());

  auto png = encode_image(bgra, ImageFormat::png, 90);
  REQUIRE(png.ok());
  CHECK(cv::norm(test::decode_with_opencv(*png), bgra, cv::NORM_INF) == 0);  // lossless, alpha kept

  auto webp = encode_image(bgra, ImageFormat::webp, 90);
  REQUIRE(webp.ok());
  CHECK(test::decode_with_opencv(*webp).channels() == 4);

  auto jpeg_from_alpha = encode_image(bgra, ImageFormat::jpeg, 90);  // alpha dropped
  REQUIRE(jpeg_from_alpha.ok());
  CHECK(test::decode_with_opencv(*jpeg_from_alpha).channels() == 3);

  CHECK(encode_image(bgr, ImageFormat::jpeg, 0).error().code == ErrorCode::invalid_parameter);
  CHECK(encode_image(bgr, ImageFormat::jpeg, 101).error().code == ErrorCode::invalid_parameter);
  CHECK(encode_image(bgr, ImageFormat::bmp, 90).error().code == ErrorCode::invalid_parameter);
}

TEST_CASE("check_encodable knows the format size limits") {
  CHECK(check_encodable(65500, 10, ImageFormat::jpeg).ok());
  CHECK(check_encodable(65501, 10, ImageFormat::jpeg).error().code ==
        ErrorCode::too_large_for_format);
  CHECK(check_encodable(10, 16384, ImageFormat::webp).error().code ==
        ErrorCode::too_large_for_format);
  CHECK(check_encodable(100000, 1, ImageFormat::png).ok());
}

// Found fuzzing decode_image: OpenCV declined this WebP's VP8L header and
// handed the bytes to the next decoder whose signature matched, GDCM (by
// "DICM" at byte 128), which abort()ed the process on a failed assert. The
// reproducer is kept in tests/fuzz/corpus/decode/.
TEST_CASE("decode_image: crash-413799ef — WebP with DICM at byte 128 reached GDCM's abort") {
  const std::string reproducer(
      "\x52\x49\x46\x46\xa0\x00\x00\x00\x57\x45\x42\x50\x56\x50\x38\x4c"
      "\x3a\x2f\x2f\x00\x2f\x03\xc0\x00\x10\x7f\xa0\x2a\xb2\xad\xa4\x44"
      "\x84\x58\x36\x52\xd1\x84\x2a\x9a\xc0\x02\xb8\x3a\x31\xd4\x50\x54"
      "\x5b\x3b\xf4\x0f\xa6\xd5\xcc\xd2\x4a\x02\x47\x00\x1d\xb4\xd0\xf8"
      "\xcf\xa0\x83\x73\xd4\x04\x00\x9a\xbc\xc8\xc7\x4d\xb4\xb5\x74\x49"
      "\x42\x85\x79\x83\x29\x8d\x64\xab\x99\xf9\xf6\x38\x3f\xf0\x50\x0d"
      "\x25\x24\x8f\xca\x9a\xa1\x36\x54\x6c\x0a\x19\xbc\xad\x25\x24\x45"
      "\xf8\x1d\xa3\x68\x37\xff\xd8\xa2\xe2\x1c\x9f\xff\x3d\x82\x64\x1c"
      "\x44\x49\x43\x4d",
      132);
  REQUIRE(read_header(reproducer).ok());  // it does probe as a WebP
  auto decoded = decode_image(reproducer, kDefaultMaxPixels);
  REQUIRE_FALSE(decoded.ok());
  CHECK(decoded.error().code == ErrorCode::unsupported_image);

  // Any non-JPEG input with that signature is refused before cv::imdecode.
  std::string png = test::encode_with_opencv(test::synthetic_image(64, 64, 3), ".png");
  REQUIRE(png.size() > 132);
  CHECK(decode_image(png, kDefaultMaxPixels).ok());
  png.replace(128, 4, "DICM");
  auto refused = decode_image(png, kDefaultMaxPixels);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().code == ErrorCode::unsupported_image);
  CHECK(refused.error().message.find("DICOM signature") != std::string::npos);
}

namespace {

// Rewrites the first IFD's RowsPerStrip (SHORT or LONG) of a little-endian
// TIFF, as OpenCV writes them.
void set_rows_per_strip(std::string& tiff, std::uint32_t rows) {
  const auto byte = [&](std::size_t at) {
    return std::uint32_t{static_cast<unsigned char>(tiff[at])};
  };
  const auto u16 = [&](std::size_t at) { return byte(at) | byte(at + 1) << 8; };
  const auto u32 = [&](std::size_t at) { return u16(at) | u16(at + 2) << 16; };
  REQUIRE(tiff.compare(0, 2, "II") == 0);
  const std::size_t ifd = u32(4);
  for (std::size_t i = 0; i < u16(ifd); ++i) {
    const std::size_t entry = ifd + 2 + 12 * i;
    if (u16(entry) != 278) continue;
    const std::size_t width = u16(entry + 2) == 3 ? 2 : 4;
    REQUIRE((width == 4 || rows < 65536));
    for (std::size_t b = 0; b < width; ++b)
      tiff[entry + 8 + b] = static_cast<char>(rows >> (8 * b));
    return;
  }
  FAIL("no RowsPerStrip tag");
}

}  // namespace

// Found fuzzing decode_image: a 196-byte TIFF (8199x5, LZW) declaring
// 56063 rows per strip. OpenCV's decoder allocates a whole strip as
// declared, 4 bytes a pixel: 1.8 GB for 41 thousand pixels. The header
// check refuses strips and tiles far beyond the image. The reproducer is
// kept in tests/fuzz/corpus/decode/.
TEST_CASE("decode_image: oom-54c1ab4a — TIFF strips far beyond the image asked for 1.8 GB") {
  const std::string reproducer(
      "\x49\x49\x2a\x00\x32\x00\x00\x00\x80\x06\x5f\x0f\x74\xf3\x39\xba"
      "\x6b\x08\x35\x86\x06\x11\x80\x8c\x1c\x43\x07\x35\xdc\x83\x35\x03"
      "\x50\x14\x16\x10\x92\x1f\xcd\x75\xfa\xcd\x82\x64\x40\x30\x53\x2b"
      "\x88\x08\x0c\x00\x00\x01\x03\x00\x01\x00\x00\x00\x07\x20\x00\x00"
      "\x01\x01\x03\x00\x01\x00\x00\x00\x05\x00\x00\x00\x02\x01\x03\x00"
      "\x01\x00\x00\x00\x08\x00\x00\x00\x03\x01\x03\x00\x01\x00\x00\x00"
      "\x05\x00\x00\x00\x06\x01\x03\x00\x01\x00\x00\x00\x01\x00\x00\x00"
      "\x11\x01\x04\x00\x01\x00\x00\x00\x08\x00\x00\x00\x15\x01\x03\x00"
      "\x01\x00\x00\x00\x01\x00\x00\x00\x16\x01\x03\x00\x01\x00\x00\x00"
      "\xff\xda\x00\x00\x17\x01\x04\x00\x01\x00\x00\x00\x2a\x00\x00\x00"
      "\x1c\x01\x03\x00\x01\x00\x00\x00\x01\x00\x00\x00\x3d\x01\x00\x00"
      "\x02\x00\x00\x00\x53\x01\x03\x00\x01\x00\x00\x00\x01\x00\x00\x00"
      "\x00\x00\x00\x00",
      196);
  auto header = read_header(reproducer);
  REQUIRE_FALSE(header.ok());
  CHECK(header.error().code == ErrorCode::unsupported_image);
  CHECK(header.error().message.find("RowsPerStrip") != std::string::npos);
  auto decoded = decode_image(reproducer, kDefaultMaxPixels);
  REQUIRE_FALSE(decoded.ok());
  CHECK(decoded.error().code == ErrorCode::unsupported_image);

  // TIFFs as writers make them still decode: OpenCV's own, and ones whose
  // strip is rounded up past the image (8 or 1000 rows declared for 5).
  const cv::Mat image = test::synthetic_image(64, 5, 3);
  std::string tiff = test::encode_with_opencv(image, ".tiff");
  for (const std::uint32_t rows : {0u, 8u, 1000u}) {
    if (rows != 0) set_rows_per_strip(tiff, rows);
    INFO("RowsPerStrip " << rows);
    auto ok = decode_image(tiff, kDefaultMaxPixels);
    REQUIRE(ok.ok());
    CHECK(ok->pixels.rows == 5);
    CHECK(test::psnr(ok->pixels, image) > 99);
  }
  // ... but not 20000 rows of 64 pixels (1.3 MP for a 320-pixel image)
  set_rows_per_strip(tiff, 20000);
  CHECK(decode_image(tiff, kDefaultMaxPixels).error().code == ErrorCode::unsupported_image);
}

namespace {

// A little-endian, 8-bit grey TIFF cut into PackBits-compressed tiles of
// `tile` x `tile` pixels, as libtiff's TIFFWriteTile makes them: the pixels
// are `image`'s, tiles padded with zeros past its right and bottom edges.
// (PackBits: an uncompressed 16x16 grey tile, 256 bytes, is refused by
// libtiff 4.5 when read from memory; see docs/security.md, oom-d90afd71.)
std::string tiled_grey_tiff(const cv::Mat& image, std::uint32_t tile) {
  const auto width = static_cast<std::uint32_t>(image.cols);
  const auto height = static_cast<std::uint32_t>(image.rows);
  const std::uint32_t across = (width + tile - 1) / tile;
  const std::uint32_t down = (height + tile - 1) / tile;
  const std::uint32_t tiles = across * down;
  // Each tile row is literal runs of at most 128 bytes, each after a
  // header byte of its length minus one.
  constexpr std::uint32_t kRun = 128;
  const std::uint32_t tile_bytes = tile * (tile + (tile + kRun - 1) / kRun);
  std::string out;
  const auto put16 = [&](std::uint32_t v) {
    out += static_cast<char>(v & 0xFF);
    out += static_cast<char>(v >> 8 & 0xFF);
  };
  const auto put32 = [&](std::uint32_t v) {
    put16(v & 0xFFFF);
    put16(v >> 16);
  };
  constexpr std::uint32_t kEntries = 10;
  const std::uint32_t ifd = 8;
  const std::uint32_t offsets_at = ifd + 2 + 12 * kEntries + 4;
  const std::uint32_t counts_at = offsets_at + 4 * tiles;
  const std::uint32_t pixels_at = tiles == 1 ? offsets_at : counts_at + 4 * tiles;
  out += "II";
  put16(42);
  put32(ifd);
  put16(kEntries);
  const auto entry = [&](std::uint32_t tag, std::uint32_t type, std::uint32_t count,
                         std::uint32_t value) {
    put16(tag);
    put16(type);
    put32(count);
    if (type == 3 && count == 1) {
      put16(value);
      put16(0);
    } else {
      put32(value);
    }
  };
  entry(256, 3, 1, width);
  entry(257, 3, 1, height);
  entry(258, 3, 1, 8);      // BitsPerSample
  entry(259, 3, 1, 32773);  // PackBits
  entry(262, 3, 1, 1);      // BlackIsZero
  entry(277, 3, 1, 1);      // SamplesPerPixel
  entry(322, 3, 1, tile);
  entry(323, 3, 1, tile);
  // One LONG fits in the entry itself, and TIFF wants it there.
  entry(324, 4, tiles, tiles == 1 ? pixels_at : offsets_at);
  entry(325, 4, tiles, tiles == 1 ? tile_bytes : counts_at);
  put32(0);  // no next IFD
  for (std::uint32_t t = 0; t < tiles && tiles > 1; ++t) put32(pixels_at + t * tile_bytes);
  for (std::uint32_t t = 0; t < tiles && tiles > 1; ++t) put32(tile_bytes);
  const auto pixel = [&](std::uint32_t x, std::uint32_t y) {
    if (x >= width || y >= height) return '\0';
    return static_cast<char>(image.at<std::uint8_t>(static_cast<int>(y), static_cast<int>(x)));
  };
  for (std::uint32_t ty = 0; ty < down; ++ty) {
    for (std::uint32_t tx = 0; tx < across; ++tx) {
      for (std::uint32_t y = ty * tile; y < (ty + 1) * tile; ++y) {
        for (std::uint32_t run = 0; run < tile; run += kRun) {
          const std::uint32_t length = std::min(kRun, tile - run);
          out += static_cast<char>(length - 1);
          for (std::uint32_t x = tx * tile + run; x < tx * tile + run + length; ++x) {
            out += pixel(x, y);
          }
        }
      }
    }
  }
  return out;
}

}  // namespace

// Found fuzzing decode_image (CI, stop 22): a 200-byte TIFF (7x5, LZW) with
// a TileWidth of 1282 and no TileLength. libtiff then calls the file tiled
// and takes RowsPerStrip (63493) for the tile length, and OpenCV allocated
// a 1282x63493 tile, 4 bytes a pixel: 325 MB for 35 pixels. The check read
// tiles only when both tags were present. The reproducer is kept in
// tests/fuzz/corpus/decode/.
TEST_CASE("decode_image: oom-d90afd71 — a TIFF tile with no TileLength asked for 325 MB") {
  const std::string reproducer(
      "\x49\x49\x2a\x00\x32\x00\x00\x00\x80\x06\x5f\x0f\x74\xf3\x39\xba"
      "\x6b\x08\x35\x86\x06\x11\x80\x8c\x1c\x43\x07\x35\xdc\x83\x35\x03"
      "\x50\x14\x16\x10\x92\x1f\xcd\x75\xfa\xcd\x82\x64\x40\x30\x53\x2b"
      "\x88\x08\x0c\x00\x00\x01\x03\x00\x01\x00\x00\x00\x07\x00\x00\x00"
      "\x01\x01\x03\x00\x01\x00\x00\x00\x05\x00\x00\x00\x02\x01\x03\x00"
      "\x01\x00\x00\x00\x08\x00\x00\x00\x03\x01\x03\x00\x01\x00\x00\x00"
      "\x05\x00\x00\x00\x06\x01\x03\x00\x01\x00\x00\x00\x01\x00\x00\x00"
      "\x11\x01\x04\x00\x01\x00\x00\x00\x08\x00\x00\x00\x15\x01\x03\x00"
      "\x01\x00\x00\x00\x01\x00\x00\x00\x16\x01\x03\x00\x01\x00\x00\x00"
      "\x05\xf8\x00\x00\x17\x01\x04\x00\x01\x00\x00\x00\x2a\x00\x00\x00"
      "\x1c\x01\x03\x00\x01\x00\x00\x00\x01\x00\x00\x00\x42\x01\x03\x00"
      "\x01\x00\x00\x00\x02\x05\x00\x00\x53\x01\x03\x00\x01\x00\x00\x00"
      "\x01\x00\x00\x00\x00\x00\x00\x00",
      200);
  auto header = read_header(reproducer);
  REQUIRE_FALSE(header.ok());
  CHECK(header.error().code == ErrorCode::unsupported_image);
  CHECK(header.error().message.find("tiles far larger") != std::string::npos);
  auto decoded = decode_image(reproducer, kDefaultMaxPixels);
  REQUIRE_FALSE(decoded.ok());
  CHECK(decoded.error().code == ErrorCode::unsupported_image);

  // Tiled TIFFs as writers make them still decode, tiles past the image's
  // edges included (16x16 tiles over 40x20, 256x256 over 40x20) ...
  const cv::Mat image = test::synthetic_image(40, 20, 1);
  for (const std::uint32_t tile : {16u, 256u}) {
    INFO("tile " << tile);
    auto ok = decode_image(tiled_grey_tiff(image, tile), kDefaultMaxPixels);
    REQUIRE(ok.ok());
    REQUIRE(ok->pixels.size() == image.size());
    cv::Mat grey = ok->pixels;
    if (grey.channels() == 3) cv::cvtColor(grey, grey, cv::COLOR_BGR2GRAY);
    CHECK(cv::norm(grey, image, cv::NORM_INF) == 0);
  }
  // ... but not a 2048x2048 tile (4 MP) over 800 pixels.
  CHECK(decode_image(tiled_grey_tiff(image, 2048), kDefaultMaxPixels).error().code ==
        ErrorCode::unsupported_image);
}
