// filters/jpeg_codec: strip-parallel encode (byte-identical to one libjpeg
// encode), scaled decode (identical to TurboJPEG's), strip-parallel decode
// (identical to the serial one, also on corrupt files), strictness.
#include <doctest/doctest.h>
#include <turbojpeg.h>
#include <unistd.h>

// jpeglib.h uses FILE and size_t without declaring them.
// clang-format off
#include <cstddef>
#include <cstdio>
#include <jpeglib.h>
// clang-format on

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "filters/codec.hpp"
#include "filters/jpeg_codec.hpp"
#include "tests/support/images.hpp"

using namespace pixpool;
using detail::JpegDecodePath;

namespace {

// ---- strip runners --------------------------------------------------------

// Cuts [0, rows) into min(n, rows) near-equal pieces, ignoring min_rows, and
// runs them serially in a shuffled order, or each on a std::thread of its own.
StripRunner pieces(int n, bool threads, unsigned seed = 1) {
  return [=](int rows, int /*min_rows*/, const std::function<void(int, int)>& body) {
    const int count = std::clamp(n, 1, std::max(rows, 1));
    std::vector<std::pair<int, int>> ranges;
    ranges.reserve(static_cast<std::size_t>(count));
    for (int i = 0; i < count; ++i) {
      ranges.emplace_back(static_cast<int>(static_cast<long long>(rows) * i / count),
                          static_cast<int>(static_cast<long long>(rows) * (i + 1) / count));
    }
    if (threads) {
      std::vector<std::thread> running;
      running.reserve(ranges.size());
      for (auto [begin, end] : ranges) running.emplace_back(body, begin, end);
      for (auto& t : running) t.join();
    } else {
      std::mt19937 random(seed);
      std::shuffle(ranges.begin(), ranges.end(), random);
      for (auto [begin, end] : ranges) body(begin, end);
    }
  };
}

struct NamedRunner {
  const char* name;
  StripRunner runner;
};

std::vector<NamedRunner> split_runners() {
  return {{"2 shuffled", pieces(2, false)},
          {"3 threads", pieces(3, true)},
          {"7 shuffled", pieces(7, false, 3)},
          {"7 threads", pieces(7, true)},
          {"many shuffled", pieces(1 << 20, false, 5)},
          {"many threads", pieces(1 << 20, true)}};
}

// ---- reference codecs -----------------------------------------------------

struct LibjpegOptions {
  int quality = 90;
  int h = 2, v = 2;  // luma sampling factors (chroma 1x1)
  int restart_in_rows = 0;
  unsigned restart_interval = 0;  // in MCUs
  bool progressive = false;
  std::vector<jpeg_scan_info> scans;  // a custom progressive scan script
};

// One plain libjpeg encode of the whole image, as the libjpeg docs show it.
std::string libjpeg_encode(const cv::Mat& image, const LibjpegOptions& o) {
  const J_COLOR_SPACE space = image.channels() == 1   ? JCS_GRAYSCALE
                              : image.channels() == 3 ? JCS_EXT_BGR
                                                      : JCS_EXT_BGRX;
  return test::libjpeg_write(image, space, [&](jpeg_compress_struct& cinfo) {
    jpeg_set_quality(&cinfo, o.quality, TRUE);
    if (image.channels() == 3) {
      cinfo.comp_info[0].h_samp_factor = o.h;
      cinfo.comp_info[0].v_samp_factor = o.v;
    }
    cinfo.restart_in_rows = o.restart_in_rows;
    cinfo.restart_interval = o.restart_interval;
    if (o.progressive) jpeg_simple_progression(&cinfo);
    if (!o.scans.empty()) {
      cinfo.scan_info = o.scans.data();
      cinfo.num_scans = static_cast<int>(o.scans.size());
    }
  });
}

// What encode_jpeg must equal: libjpeg with restart_in_rows = 1, 4:2:0.
std::string whole_image_encode(const cv::Mat& image, int quality) {
  LibjpegOptions o;
  o.quality = quality;
  o.restart_in_rows = 1;
  return libjpeg_encode(image, o);
}

// The encoder encode_jpeg replaced.
std::string turbojpeg_encode(const cv::Mat& image, int quality) {
  tjhandle tj = tjInitCompress();
  unsigned char* jpeg = nullptr;
  unsigned long size = 0;
  const int channels = image.channels();
  REQUIRE(tjCompress2(tj, image.data, image.cols, static_cast<int>(image.step), image.rows,
                      channels == 1   ? TJPF_GRAY
                      : channels == 3 ? TJPF_BGR
                                      : TJPF_BGRX,
                      &jpeg, &size, channels == 1 ? TJSAMP_GRAY : TJSAMP_420, quality, 0) == 0);
  std::string out(reinterpret_cast<const char*>(jpeg), size);
  tjFree(jpeg);
  tjDestroy(tj);
  return out;
}

// The decoder decode_jpeg replaced, at 1/scale: pixels, or empty and `error`.
cv::Mat turbojpeg_decode(const std::string& jpeg, int scale, std::string* error = nullptr) {
  tjhandle tj = tjInitDecompress();
  auto* data = reinterpret_cast<const unsigned char*>(jpeg.data());
  int width = 0, height = 0, subsamp = 0, colorspace = 0;
  cv::Mat out;
  if (tjDecompressHeader3(tj, data, jpeg.size(), &width, &height, &subsamp, &colorspace) != 0) {
    if (error != nullptr) *error = tjGetErrorStr2(tj);
    tjDestroy(tj);
    return out;
  }
  const bool grey = colorspace == TJCS_GRAY;
  out.create((height + scale - 1) / scale, (width + scale - 1) / scale, grey ? CV_8UC1 : CV_8UC3);
  if (tjDecompress2(tj, data, jpeg.size(), out.data, out.cols, static_cast<int>(out.step), out.rows,
                    grey ? TJPF_GRAY : TJPF_BGR, TJFLAG_STOPONWARNING | TJFLAG_LIMITSCANS) != 0) {
    if (error != nullptr) *error = tjGetErrorStr2(tj);
    out.release();
  }
  tjDestroy(tj);
  return out;
}

bool same_pixels(const cv::Mat& a, const cv::Mat& b) {
  return a.size() == b.size() && a.type() == b.type() &&
         (a.empty() || cv::norm(a, b, cv::NORM_INF) == 0);
}

cv::Mat decoded(const std::string& jpeg, int scale = 1, const StripRunner& strips = {},
                JpegDecodePath* path = nullptr) {
  auto result = detail::decode_jpeg(jpeg, scale, strips, path);
  REQUIRE_MESSAGE(result.ok(), result.error().message);
  return std::move(result.value());
}

struct Size {
  int width, height;
};

}  // namespace

// ---------------------------------------------------------------------------

TEST_CASE(
    "encode_jpeg: any strips give the bytes of one libjpeg encode with a restart per MCU row") {
  const std::vector<NamedRunner> runners = split_runners();
  for (Size size : {Size{1, 1}, Size{17, 9}, Size{640, 480}, Size{1920, 1080}, Size{33, 1000}}) {
    for (int channels : {1, 3, 4}) {
      const cv::Mat image = test::synthetic_image(size.width, size.height, channels, 11);
      for (int quality : {30, 90, 100}) {
        CAPTURE(size.width);
        CAPTURE(size.height);
        CAPTURE(channels);
        CAPTURE(quality);
        const std::string expected = whole_image_encode(image, quality);
        auto serial = encode_jpeg(image, quality);
        REQUIRE(serial.ok());
        CHECK(serial.value() == expected);
        for (const NamedRunner& split_by : runners) {
          CAPTURE(split_by.name);
          auto split = encode_jpeg(image, quality, split_by.runner);
          REQUIRE(split.ok());
          CHECK(split.value() == expected);
        }
      }
    }
  }
}

// A RowSource over an image in memory that checks how the encoder uses it:
// every stream opens where a strip starts and asks for its rows in order, a
// batch of at most 32 at a time.
struct CheckedRows {
  const cv::Mat* image = nullptr;
  std::atomic<int> streams{0};
  std::atomic<int> rows_made{0};

  class Stream final : public RowStream {
   public:
    Stream(CheckedRows& owner, int first) : owner_(owner), row_(first) {}
    void next(int rows, std::uint8_t* out, std::size_t step) override {
      CHECK(rows >= 1);
      CHECK(rows <= 32);
      CHECK(row_ + rows <= owner_.image->rows);
      const auto bytes = static_cast<std::size_t>(owner_.image->cols) * owner_.image->channels();
      CHECK(step >= bytes);
      for (int i = 0; i < rows; ++i, ++row_) {
        std::memcpy(out + static_cast<std::size_t>(i) * step, owner_.image->ptr(row_), bytes);
      }
      owner_.rows_made += rows;
    }

   private:
    CheckedRows& owner_;
    int row_;
  };

  RowSource source() {
    return RowSource{image->size(), image->type(), [this](int first) {
                       ++streams;
                       CHECK(first >= 0);
                       CHECK(first < image->rows);
                       return std::unique_ptr<RowStream>(std::make_unique<Stream>(*this, first));
                     }};
  }
};

TEST_CASE("encode_jpeg(RowSource): the bytes of encoding the same rows from memory, any strips") {
  const std::vector<NamedRunner> runners = split_runners();
  for (Size size : {Size{1, 1}, Size{17, 9}, Size{640, 480}, Size{1920, 1080}, Size{33, 1000}}) {
    for (int channels : {1, 3}) {
      const cv::Mat image = test::synthetic_image(size.width, size.height, channels, 12);
      CAPTURE(size.width);
      CAPTURE(size.height);
      CAPTURE(channels);
      const std::string expected = whole_image_encode(image, 90);
      CheckedRows rows{&image};
      auto serial = encode_jpeg(rows.source(), 90);
      REQUIRE(serial.ok());
      CHECK(serial.value() == expected);
      CHECK(rows.streams == 1);
      CHECK(rows.rows_made == size.height);  // every row made once, none stored
      for (const NamedRunner& split_by : runners) {
        CAPTURE(split_by.name);
        CheckedRows split_rows{&image};
        auto split = encode_jpeg(split_rows.source(), 90, split_by.runner);
        REQUIRE(split.ok());
        CHECK(split.value() == expected);
        CHECK(split_rows.rows_made == size.height);
      }
    }
  }
}

TEST_CASE("encode_jpeg(RowSource): refuses what the image encoder refuses, and BGRA") {
  const cv::Mat image = test::synthetic_image(20, 20, 3, 1);
  CheckedRows rows{&image};
  CHECK(encode_jpeg(rows.source(), 0).error().code == ErrorCode::invalid_parameter);
  RowSource wide = rows.source();
  wide.size.width = 70000;
  CHECK(encode_jpeg(wide, 90).error().code == ErrorCode::too_large_for_format);
  RowSource bgra = rows.source();
  bgra.type = CV_8UC4;
  CHECK(encode_jpeg(bgra, 90).error().code == ErrorCode::internal);
  RowSource unopenable = rows.source();
  unopenable.open = nullptr;
  CHECK(encode_jpeg(unopenable, 90).error().code == ErrorCode::internal);
  CHECK(rows.streams == 0);  // refused before any row was made
}

TEST_CASE("JpegStripEncoder: strips in any order and on any threads give encode_jpeg's bytes") {
  for (Size size : {Size{1, 1}, Size{640, 480}, Size{1920, 1080}, Size{33, 1000}}) {
    for (int channels : {1, 3}) {
      const cv::Mat image = test::synthetic_image(size.width, size.height, channels, 13);
      CAPTURE(size.width);
      CAPTURE(size.height);
      CAPTURE(channels);
      const std::string expected = whole_image_encode(image, 85);
      CheckedRows rows{&image};
      auto encoder = JpegStripEncoder::create(rows.source(), 85);
      REQUIRE(encoder.ok());
      const int unit = channels == 1 ? 64 : 128;
      REQUIRE(encoder->strips() == (size.height + unit - 1) / unit);
      for (int i = 0; i < encoder->strips(); ++i) {
        CHECK(encoder->strip_end(i) == std::min((i + 1) * unit, size.height));
      }
      // Last strip first, the rest from two threads at once.
      std::vector<std::thread> threads;
      encoder->encode(encoder->strips() - 1);
      for (int parity : {0, 1}) {
        threads.emplace_back([&, parity] {
          for (int i = parity; i < encoder->strips() - 1; i += 2) encoder->encode(i);
        });
      }
      for (auto& t : threads) t.join();
      auto jpeg = encoder->finish();
      REQUIRE(jpeg.ok());
      CHECK(jpeg.value() == expected);
      CHECK(rows.streams == encoder->strips());
      CHECK(rows.rows_made == size.height);
    }
  }
  const cv::Mat image = test::synthetic_image(20, 20, 3, 1);
  CheckedRows rows{&image};
  CHECK(JpegStripEncoder::create(rows.source(), 101).error().code == ErrorCode::invalid_parameter);
  RowSource bgra = rows.source();
  bgra.type = CV_8UC4;
  CHECK(JpegStripEncoder::create(bgra, 90).error().code == ErrorCode::internal);
}

TEST_CASE("encode_jpeg: strips run concurrently and ROIs encode like copies") {
  const cv::Mat big = test::synthetic_image(700, 900, 3, 5);
  const cv::Mat roi = big(cv::Rect(13, 21, 641, 611));
  const std::string expected = whole_image_encode(roi.clone(), 85);
  int calls = 0;
  StripRunner counting = [&](int rows, int min_rows, const std::function<void(int, int)>& body) {
    ++calls;
    CHECK(rows == 5);  // 611 rows: 39 MCU rows in units of 8
    CHECK(min_rows >= 1);
    pieces(rows, true)(rows, min_rows, body);
  };
  auto split = encode_jpeg(roi, 85, counting);
  REQUIRE(split.ok());
  CHECK(calls == 1);
  CHECK(split.value() == expected);
}

TEST_CASE("encode_jpeg: decodable, and as good as TurboJPEG's encode at the same quality") {
  for (int channels : {1, 3, 4}) {
    for (int quality : {50, 90}) {
      CAPTURE(channels);
      CAPTURE(quality);
      const cv::Mat image = test::synthetic_image(640, 480, channels, 3);
      cv::Mat colour = image;
      if (channels == 4) cv::cvtColor(image, colour, cv::COLOR_BGRA2BGR);
      auto ours = encode_jpeg(image, quality, pieces(3, true));
      REQUIRE(ours.ok());
      const std::string theirs = turbojpeg_encode(image, quality);

      const cv::Mat by_opencv = test::decode_with_opencv(ours.value());
      const cv::Mat by_turbojpeg = turbojpeg_decode(ours.value(), 1);
      REQUIRE(!by_opencv.empty());
      REQUIRE(!by_turbojpeg.empty());
      CHECK(same_pixels(by_opencv, by_turbojpeg));
      const double ours_db = test::psnr(by_turbojpeg, colour);
      const double theirs_db = test::psnr(turbojpeg_decode(theirs, 1), colour);
      CHECK(ours_db > 25.0);
      CHECK(std::abs(ours_db - theirs_db) < 0.2);
      // TurboJPEG uses the fast integer DCT below quality 96, encode_jpeg the
      // accurate one; restart markers cost 2-3 bytes per MCU row.
      const double ratio =
          static_cast<double>(ours.value().size()) / static_cast<double>(theirs.size());
      CHECK(ratio > 0.97);
      CHECK(ratio < 1.03);
    }
  }
}

TEST_CASE("encode_jpeg: refuses bad arguments") {
  const cv::Mat image = test::synthetic_image(16, 16, 3);
  CHECK(encode_jpeg(image, 0).error().code == ErrorCode::invalid_parameter);
  CHECK(encode_jpeg(image, 101).error().code == ErrorCode::invalid_parameter);
  CHECK(encode_jpeg(cv::Mat(4, 4, CV_8UC2, cv::Scalar(1, 2)), 90).error().code ==
        ErrorCode::internal);
  CHECK(encode_jpeg(cv::Mat(4, 4, CV_16UC3, cv::Scalar(1, 2, 3)), 90).error().code ==
        ErrorCode::internal);
  CHECK(encode_jpeg(cv::Mat(), 90).error().code == ErrorCode::internal);
  CHECK(encode_jpeg(cv::Mat(1, 65501, CV_8UC1, cv::Scalar(0)), 90).error().code ==
        ErrorCode::too_large_for_format);
  CHECK(encode_jpeg(cv::Mat(1, 65500, CV_8UC1, cv::Scalar(0)), 90).ok());
}

TEST_CASE("decode_jpeg: the pixels of TurboJPEG's tjDecompress2 at every scale") {
  struct Input {
    const char* name;
    int channels;
    LibjpegOptions options;
  };
  LibjpegOptions s420, s444, s422, s440, progressive, restarts;
  s444.h = s444.v = 1;
  s422.v = 1;
  s440.h = 1;
  progressive.progressive = true;
  restarts.restart_in_rows = 1;
  LibjpegOptions progressive_444 = progressive;
  progressive_444.h = progressive_444.v = 1;
  const std::vector<Input> inputs = {{"baseline 4:2:0", 3, s420},
                                     {"baseline 4:4:4", 3, s444},
                                     {"baseline 4:2:2", 3, s422},
                                     {"baseline 4:4:0", 3, s440},
                                     {"grey", 1, s420},
                                     {"progressive 4:2:0", 3, progressive},
                                     {"progressive 4:4:4", 3, progressive_444},
                                     {"progressive grey", 1, progressive},
                                     {"restarts 4:2:0", 3, restarts}};
  for (Size size : {Size{17, 9}, Size{8, 8}, Size{33, 47}, Size{641, 479}, Size{250, 1001}}) {
    for (const Input& input : inputs) {
      const std::string jpeg = libjpeg_encode(
          test::synthetic_image(size.width, size.height, input.channels, 9), input.options);
      for (int scale : {1, 2, 4, 8}) {
        CAPTURE(input.name);
        CAPTURE(size.width);
        CAPTURE(size.height);
        CAPTURE(scale);
        const cv::Mat expected = turbojpeg_decode(jpeg, scale);
        REQUIRE(!expected.empty());
        const cv::Mat ours = decoded(jpeg, scale);
        CHECK(ours.cols == (size.width + scale - 1) / scale);
        CHECK(ours.rows == (size.height + scale - 1) / scale);
        CHECK(ours.channels() == input.channels);
        CHECK(same_pixels(ours, expected));
      }
    }
  }
  // The repository's photos (cameras' JPEGs via OpenCV).
  for (const char* name : {"fruits_320x240.jpg", "baboon_320x240.jpg"}) {
    const std::string jpeg = test::read_test_data(name);
    for (int scale : {1, 2, 4, 8}) {
      CAPTURE(name);
      CAPTURE(scale);
      CHECK(same_pixels(decoded(jpeg, scale), turbojpeg_decode(jpeg, scale)));
    }
  }
}

TEST_CASE("decode_jpeg: parallel strips give the serial decode's pixels") {
  struct Input {
    const char* name;
    std::string jpeg;
  };
  std::vector<Input> inputs;
  for (Size size : {Size{641, 479}, Size{97, 1001}, Size{1920, 1080}}) {
    for (int channels : {1, 3}) {
      const cv::Mat image = test::synthetic_image(size.width, size.height, channels, 21);
      inputs.push_back({channels == 1 ? "encode_jpeg grey" : "encode_jpeg 4:2:0",
                        encode_jpeg(image, 90).value()});
    }
    const cv::Mat image = test::synthetic_image(size.width, size.height, 3, 22);
    LibjpegOptions s444, s422, s440, two_rows;
    s444.h = s444.v = 1;
    s422.v = 1;
    s440.h = 1;
    for (LibjpegOptions* o : {&s444, &s422, &s440}) o->restart_in_rows = 1;
    two_rows.restart_in_rows = 2;  // a restart every other MCU row
    inputs.push_back({"4:4:4", libjpeg_encode(image, s444)});
    inputs.push_back({"4:2:2", libjpeg_encode(image, s422)});
    inputs.push_back({"4:4:0", libjpeg_encode(image, s440)});
    inputs.push_back({"4:2:0, restart every 2 MCU rows", libjpeg_encode(image, two_rows)});
  }
  const std::vector<NamedRunner> runners = split_runners();
  for (const Input& input : inputs) {
    for (int scale : {1, 2, 4, 8}) {
      CAPTURE(input.name);
      CAPTURE(scale);
      JpegDecodePath path{};
      const cv::Mat serial = decoded(input.jpeg, scale, {}, &path);
      CHECK(path == JpegDecodePath::serial);
      CHECK(same_pixels(serial, turbojpeg_decode(input.jpeg, scale)));
      for (const NamedRunner& split_by : runners) {
        CAPTURE(split_by.name);
        const cv::Mat split = decoded(input.jpeg, scale, split_by.runner, &path);
        CHECK(path == JpegDecodePath::strips);
        CHECK(same_pixels(split, serial));
      }
    }
  }
}

TEST_CASE("decode_jpeg: on_rows hears of the rows as the serial decoder makes them") {
  const cv::Mat image = test::synthetic_image(333, 517, 3, 4);
  LibjpegOptions progressive;
  progressive.progressive = true;
  for (const std::string& jpeg :
       {libjpeg_encode(image, LibjpegOptions{}), libjpeg_encode(image, progressive)}) {
    for (int scale : {1, 4}) {
      CAPTURE(scale);
      std::vector<int> told;
      const std::uint8_t* told_data = nullptr;
      const cv::Mat expected = turbojpeg_decode(jpeg, scale);
      bool rows_were_final = true;
      auto out = decode_jpeg(jpeg, scale, {}, [&](const cv::Mat& decoding, int rows) {
        told.push_back(rows);
        told_data = decoding.data;
        rows_were_final = rows_were_final && same_pixels(decoding.rowRange(0, rows).clone(),
                                                         expected.rowRange(0, rows));
      });
      REQUIRE(out.ok());
      CHECK(same_pixels(out.value(), expected));
      REQUIRE(told.size() >= 2);
      CHECK(std::is_sorted(told.begin(), told.end()));
      CHECK(told.back() == out->rows);
      CHECK(told_data == out->data);
      CHECK(rows_were_final);
    }
  }
  // Not called for a decode in strips, nor for a file refused at its header.
  const std::string restarts = encode_jpeg(image, 90).value();
  int calls = 0;
  const RowsDecoded count = [&](const cv::Mat&, int) { ++calls; };
  JpegDecodePath path{};
  REQUIRE(detail::decode_jpeg(restarts, 2, pieces(3, true), &path, count).ok());
  CHECK(path == JpegDecodePath::strips);
  CHECK(calls == 0);
  CHECK_FALSE(decode_jpeg("not a jpeg", 1, {}, count).ok());
  CHECK(calls == 0);
  // An exception from it ends the decode.
  const RowsDecoded stop = [](const cv::Mat&, int) { throw std::runtime_error("stop"); };
  CHECK_THROWS_AS((void)decode_jpeg(restarts, 1, {}, stop), std::runtime_error);
}

TEST_CASE("decode_jpeg: files without row-aligned restarts decode serially, runner or not") {
  const cv::Mat image = test::synthetic_image(333, 250, 3, 4);
  LibjpegOptions none, odd_interval, progressive;
  odd_interval.restart_interval = 5;  // 21 MCUs per row
  progressive.progressive = true;
  progressive.restart_in_rows = 1;
  for (const LibjpegOptions* o : {&none, &odd_interval, &progressive}) {
    const std::string jpeg = libjpeg_encode(image, *o);
    for (int scale : {1, 4}) {
      JpegDecodePath path{};
      const cv::Mat ours = decoded(jpeg, scale, pieces(4, true), &path);
      CHECK(path == JpegDecodePath::serial);
      CHECK(same_pixels(ours, turbojpeg_decode(jpeg, scale)));
    }
  }
  // A single MCU row (one restart segment) is nothing to split.
  JpegDecodePath path{};
  decoded(encode_jpeg(test::synthetic_image(300, 16, 3), 90).value(), 1, pieces(4, true), &path);
  CHECK(path == JpegDecodePath::serial);
}

namespace {

// decode_jpeg with strips must answer exactly as without: the same error
// message, or the same pixels.
void check_same_answer(const std::string& jpeg, const StripRunner& runner, int scale,
                       JpegDecodePath* path = nullptr) {
  auto serial = detail::decode_jpeg(jpeg, scale, {}, nullptr);
  auto split = detail::decode_jpeg(jpeg, scale, runner, path);
  REQUIRE(serial.ok() == split.ok());
  if (serial.ok()) {
    CHECK(same_pixels(serial.value(), split.value()));
  } else {
    CHECK(split.error().code == serial.error().code);
    CHECK(split.error().message == serial.error().message);
  }
}

// Offsets of the RST markers in a JPEG's entropy-coded data.
std::vector<std::size_t> restart_markers(const std::string& jpeg) {
  std::vector<std::size_t> at;
  const std::size_t sos = jpeg.find("\xFF\xDA");
  for (std::size_t i = sos + 2; i + 1 < jpeg.size(); ++i) {
    const auto b = static_cast<unsigned char>(jpeg[i + 1]);
    if (static_cast<unsigned char>(jpeg[i]) == 0xFF && b >= 0xD0 && b <= 0xD7) at.push_back(i);
  }
  return at;
}

}  // namespace

TEST_CASE("decode_jpeg: a corrupt file gives the serial decoder's error or pixels, strips or not") {
  const std::string jpeg = encode_jpeg(test::synthetic_image(320, 333, 3, 8), 90).value();
  const std::vector<std::size_t> rst = restart_markers(jpeg);
  REQUIRE(rst.size() == 20);  // 21 MCU rows
  const StripRunner runner = pieces(4, true);
  JpegDecodePath path{};

  SUBCASE("RST out of order") {
    std::string bad = jpeg;
    bad[rst[9] + 1] = static_cast<char>(0xD3);
    check_same_answer(bad, runner, 1, &path);
    CHECK(path == JpegDecodePath::serial);
    CHECK_FALSE(detail::decode_jpeg(bad, 1, runner, nullptr).ok());
  }
  SUBCASE("RST missing") {
    std::string bad = jpeg;
    bad.erase(rst[12], 2);
    check_same_answer(bad, runner, 2, &path);
    CHECK(path == JpegDecodePath::serial);
  }
  SUBCASE("truncated") {
    for (std::size_t keep : {rst[15] + 1, jpeg.size() - 2, jpeg.size() / 2}) {
      check_same_answer(jpeg.substr(0, keep), runner, 1, &path);
      CHECK(path == JpegDecodePath::serial);
      auto cut = decode_jpeg(jpeg.substr(0, keep), 1, runner);
      REQUIRE_FALSE(cut.ok());
      CHECK(cut.error().code == ErrorCode::unsupported_image);
    }
  }
  SUBCASE("garbage inside a segment in the middle") {
    std::string bad = jpeg;
    // 0x20..0x9F: never 0xFF, nor a byte that would turn a stuffed 0xFF00
    // into a marker, so the damage stays inside the segment whatever the
    // image's bytes (they differ between compilers' builds of the test image).
    for (std::size_t i = rst[10] - 40; i < rst[10] - 10; ++i) {
      bad[i] = static_cast<char>(0x20 + (i * 7) % 0x80);
    }
    check_same_answer(bad, runner, 1, &path);
    CHECK(path == JpegDecodePath::strips_fell_back);
  }
  SUBCASE("extraneous bytes before a restart marker") {
    for (int extra : {1, 2, 3, 6, 9, 40}) {
      for (std::size_t which : {std::size_t{0}, std::size_t{4}, std::size_t{9}, std::size_t{19}}) {
        CAPTURE(extra);
        CAPTURE(which);
        std::string bad = jpeg;
        bad.insert(rst[which], std::string(static_cast<std::size_t>(extra), '\x5A'));
        check_same_answer(bad, runner, 1);
        check_same_answer(bad, pieces(20, false), 2);
      }
    }
  }
  SUBCASE("trailing bytes after EOI are ignored, as libjpeg does") {
    check_same_answer(jpeg + "trailing", runner, 1, &path);
    CHECK(path == JpegDecodePath::strips);
  }
  SUBCASE("random byte changes") {
    std::mt19937 random(42);
    const std::size_t scan = jpeg.find("\xFF\xDA");
    for (int trial = 0; trial < 300; ++trial) {
      std::string bad = jpeg;
      const int changes = 1 + trial % 3;
      for (int c = 0; c < changes; ++c) {
        const std::size_t at = scan + random() % (jpeg.size() - scan);
        bad[at] = trial % 5 == 0 ? '\xFF' : static_cast<char>(random() & 0xFF);
      }
      CAPTURE(trial);
      check_same_answer(bad, trial % 2 == 0 ? runner : pieces(9, false, trial), 1 + trial % 2);
    }
  }
}

namespace {

// A valid progressive grey JPEG with 1 DC scan and, for each of the 63 AC
// coefficients, a first scan at Al = `al` and `al` refinement scans.
std::string progressive_with_scans(int al) {
  std::vector<jpeg_scan_info> scans;
  scans.push_back({1, {0, 0, 0, 0}, 0, 0, 0, 0});
  for (int k = 1; k < 64; ++k) {
    scans.push_back({1, {0, 0, 0, 0}, k, k, 0, al});
    for (int a = al; a > 0; --a) scans.push_back({1, {0, 0, 0, 0}, k, k, a, a - 1});
  }
  LibjpegOptions o;
  o.scans = scans;
  return libjpeg_encode(test::synthetic_image(64, 48, 1, 2), o);
}

// What the process writes to stderr while `run` runs.
std::string stderr_of(const std::function<void()>& run) {
  std::fflush(stderr);
  const std::string dir = test::make_temp_dir("stderr");
  const std::string path = dir + "/stderr";
  std::FILE* file = std::fopen(path.c_str(), "w");
  REQUIRE(file != nullptr);
  const int saved = dup(2);
  dup2(fileno(file), 2);
  run();
  std::fflush(stderr);
  dup2(saved, 2);
  close(saved);
  std::fclose(file);
  std::string written = test::read_file(path);
  std::filesystem::remove_all(dir);
  return written;
}

}  // namespace

TEST_CASE("decode_jpeg: strict like tjDecompress2 with STOPONWARNING and LIMITSCANS, and silent") {
  const std::string jpeg = test::read_test_data("fruits_320x240.jpg");
  std::string garbage = jpeg;
  for (std::size_t i = 700; i < garbage.size(); i += 3) garbage[i] = static_cast<char>(i * 31);
  std::string extraneous = jpeg;
  extraneous.insert(extraneous.size() - 2,
                    std::string(40, 'j'));                     // 4 would be prefetched, unnoticed
  std::string many_scans = progressive_with_scans(9);          // 1 + 63 * 10 = 631 scans
  const std::string enough_scans = progressive_with_scans(6);  // 1 + 63 * 7 = 442 scans

  std::string truncated = jpeg.substr(0, jpeg.size() / 2);
  for (const std::string* input : {&garbage, &extraneous, &many_scans, &truncated}) {
    CAPTURE(input->size());
    std::string tj_error;
    CHECK(turbojpeg_decode(*input, 1, &tj_error).empty());
    Result<cv::Mat> ours = cv::Mat();
    const std::string printed = stderr_of([&] { ours = decode_jpeg(*input, 1); });
    CHECK(printed.empty());
    REQUIRE_FALSE(ours.ok());
    CHECK(ours.error().code == ErrorCode::unsupported_image);
    CHECK(ours.error().message == "corrupt or truncated JPEG: " + tj_error);
  }
  CHECK(decode_jpeg(many_scans, 1).error().message.find("more than 500 scans") !=
        std::string::npos);
  CHECK(same_pixels(decoded(enough_scans, 2), turbojpeg_decode(enough_scans, 2)));

  CHECK(decode_jpeg("", 1).error().code == ErrorCode::unsupported_image);
  CHECK(decode_jpeg("not a jpeg", 1).error().code == ErrorCode::unsupported_image);
  CHECK(decode_jpeg(jpeg, 3).error().code == ErrorCode::internal);
  CHECK(decode_jpeg(jpeg, 16).error().code == ErrorCode::internal);
}

TEST_CASE("decode_jpeg refuses CMYK recognisably, and decode_image decodes it at full size") {
  const std::string cmyk = test::cmyk_jpeg(test::synthetic_image(40, 30, 4, 6));
  auto refused = decode_jpeg(cmyk, 1);
  REQUIRE_FALSE(refused.ok());
  CHECK(is_cmyk_jpeg_error(refused.error()));
  CHECK_FALSE(is_cmyk_jpeg_error(decode_jpeg("nope", 1).error()));

  for (int scale : {1, 2}) {
    DecodeOptions options;
    options.scale_denom = scale;
    auto full = decode_image(cmyk, kDefaultMaxPixels, options);
    REQUIRE(full.ok());
    CHECK(full->pixels.cols == 40);  // full size whatever the scale: the caller checks
    CHECK(full->pixels.rows == 30);
    CHECK(full->pixels.type() == CV_8UC3);
  }
}

TEST_CASE("decode_image: scaled JPEG decode, EXIF orientation after it, JPEG only") {
  const cv::Mat image = test::synthetic_image(101, 50, 3, 12);
  const std::string jpeg = encode_jpeg(image, 90).value();
  DecodeOptions options;
  options.scale_denom = 4;
  options.strips = pieces(3, true);
  auto quarter = decode_image(jpeg, kDefaultMaxPixels, options);
  REQUIRE(quarter.ok());
  CHECK(quarter->pixels.cols == 26);
  CHECK(quarter->pixels.rows == 13);
  CHECK(same_pixels(quarter->pixels, turbojpeg_decode(jpeg, 4)));

  // EXIF orientation 6 (rotate 90 clockwise) after the scaled decode.
  std::string tiff("II*\0\x08\0\0\0\x01\0\x12\x01\x03\0\x01\0\0\0\x06\0\0\0\0\0\0\0", 26);
  std::string payload = std::string("Exif\0\0", 6) + tiff;
  std::string app1("\xFF\xE1", 2);
  app1 += static_cast<char>((payload.size() + 2) >> 8);
  app1 += static_cast<char>((payload.size() + 2) & 0xFF);
  const std::string rotated_jpeg = jpeg.substr(0, 2) + app1 + payload + jpeg.substr(2);
  REQUIRE(jpeg_exif_orientation(rotated_jpeg) == 6);
  auto rotated = decode_image(rotated_jpeg, kDefaultMaxPixels, options);
  REQUIRE(rotated.ok());
  cv::Mat expected;
  cv::rotate(quarter->pixels, expected, cv::ROTATE_90_CLOCKWISE);
  CHECK(same_pixels(rotated->pixels, expected));

  // on_rows is told of the rows only when they need no turning after.
  int calls = 0;
  options.strips = {};
  options.on_rows = [&](const cv::Mat&, int) { ++calls; };
  REQUIRE(decode_image(rotated_jpeg, kDefaultMaxPixels, options).ok());
  CHECK(calls == 0);
  REQUIRE(decode_image(jpeg, kDefaultMaxPixels, options).ok());
  CHECK(calls > 0);
  options.on_rows = {};
  options.strips = pieces(3, true);

  const std::string png = test::encode_with_opencv(image, ".png");
  auto png_scaled = decode_image(png, kDefaultMaxPixels, options);
  REQUIRE_FALSE(png_scaled.ok());
  CHECK(png_scaled.error().code == ErrorCode::internal);
  CHECK(decode_image(png, kDefaultMaxPixels, DecodeOptions{1, pieces(2, true), {}}).ok());
  CHECK(decode_image(jpeg, kDefaultMaxPixels, DecodeOptions{3, {}, {}}).error().code ==
        ErrorCode::internal);
  // The pixel limit is the full image's, whatever the scale.
  CHECK(decode_image(jpeg, 101 * 50 - 1, options).error().code == ErrorCode::too_many_pixels);
}

TEST_CASE("encode_image: JPEG through encode_jpeg, strips or not") {
  const cv::Mat image = test::synthetic_image(300, 200, 4, 2);
  auto serial = encode_image(image, ImageFormat::jpeg, 80);
  auto split = encode_image(image, ImageFormat::jpeg, 80, pieces(2, true));
  REQUIRE(serial.ok());
  REQUIRE(split.ok());
  CHECK(serial.value() == split.value());
  CHECK(serial.value() == encode_jpeg(image, 80).value());
  CHECK(encode_image(image, ImageFormat::png, 80, pieces(2, true)).ok());
}

TEST_CASE("decode_image: every fuzz seed, scaled and in strips, as the fuzz target checks") {
  const std::filesystem::path seeds = PIXPOOL_DECODE_SEEDS_DIR;
  REQUIRE(std::filesystem::is_directory(seeds));
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(seeds)) {
    const std::string bytes = test::read_file(entry.path().string());
    CAPTURE(entry.path().filename().string());
    ++files;
    auto header = read_header(bytes);
    const bool jpeg = header.ok() && header->format == ImageFormat::jpeg;
    for (int scale : {1, 2, 8}) {
      if (scale != 1 && !jpeg) continue;
      for (bool split : {false, true}) {
        DecodeOptions options{scale, split ? pieces(3, true) : StripRunner{}, {}};
        auto result = decode_image(bytes, 1'000'000, options);
        if (!result.ok()) {
          const ErrorCode code = result.error().code;
          CHECK((code == ErrorCode::unsupported_image || code == ErrorCode::too_many_pixels ||
                 code == ErrorCode::empty_body));
          continue;
        }
        const cv::Mat& pixels = result->pixels;
        CHECK(!pixels.empty());
        CHECK(pixels.depth() == CV_8U);
        REQUIRE(header.ok());
        CHECK(static_cast<std::uint64_t>(pixels.total()) <= header->pixels());
      }
      if (jpeg) check_same_answer(bytes, pieces(3, true), scale);
    }
  }
  CHECK(files > 10);
}
