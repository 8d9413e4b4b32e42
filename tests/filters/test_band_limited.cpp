// Band-limited blur (filters/band_limited.hpp): a JPEG decoded at 1/s,
// blurred at sigma/s and brought back to full size must stay within the
// quality bar of the exact pipeline on real photos:
//   - the blur alone >= 40 dB PSNR against an exact double-precision
//     Gaussian of the full-size image, rounded to 8 bits;
//   - blur then contour >= 40 dB against contour(that exact Gaussian);
//   - blur then contour >= 36 dB against Pillow's GaussianBlur + CONTOUR.
// The photo corpus is Debian opencv-doc's sample photos at 640x480, 1920x1080
// and 4032x3024 (tests/support/reference_blur.hpp). This suite checks the
// scale rule at a subset of sigmas; PIXPOOL_BAND_LIMITED_SWEEP=1 measures
// every photo, size, sigma and scale and prints the table the rule comes from
// (scripts/band-limited-quality, docs/performance.md).
#include <doctest/doctest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "filters/band_limited.hpp"
#include "filters/blur.hpp"
#include "filters/codec.hpp"
#include "filters/contour.hpp"
#include "filters/upsample_taps.hpp"
#include "tests/support/images.hpp"
#include "tests/support/reference_blur.hpp"
#include "tests/support/server_process.hpp"

#ifndef PIXPOOL_PYTHON
#define PIXPOOL_PYTHON "/usr/bin/python3"
#endif

using namespace pixpool;

namespace {

// A StripRunner that cuts the rows into `n` strips and runs them in reverse
// order, so a strip that depended on another's state would show.
StripRunner reversed_strips(int n) {
  return [n](int rows, int, const std::function<void(int, int)>& body) {
    const int strips = std::max(1, std::min(n, rows));
    for (int s = strips - 1; s >= 0; --s) body(rows * s / strips, rows * (s + 1) / strips);
  };
}

cv::Mat reduced(const std::string& jpeg, int scale) {
  auto decoded = decode_image(jpeg, kDefaultMaxPixels, DecodeOptions{scale, {}, {}});
  REQUIRE(decoded.ok());
  return decoded->pixels;
}

struct Quality {
  double blur_db = 0;   // blur alone against the exact Gaussian
  double final_db = 0;  // blur + contour against contour(exact Gaussian)
};

struct Reference {
  cv::Mat exact_blur;
  cv::Mat exact_final;
};

Reference make_reference(const cv::Mat& full, double sigma) {
  Reference ref;
  ref.exact_blur = test::exact_gaussian(full, sigma);
  REQUIRE(contour(ref.exact_blur, ref.exact_final).ok());
  return ref;
}

// The pipeline at `scale` (1: today's full-size blur) against the reference.
Quality measure(const std::string& jpeg, const cv::Mat& full, const Reference& ref, double sigma,
                int scale, cv::Mat* final_out = nullptr) {
  cv::Mat blurred, final;
  if (scale == 1) {
    REQUIRE(blur(full, blurred, sigma).ok());
    REQUIRE(contour(blurred, final).ok());
  } else {
    const cv::Mat small = reduced(jpeg, scale);
    REQUIRE(band_limited_blur(small, blurred, sigma, scale, full.size(), AfterBlur::nothing).ok());
    REQUIRE(band_limited_blur(small, final, sigma, scale, full.size(), AfterBlur::contour).ok());
  }
  if (final_out != nullptr) *final_out = final;
  return {test::psnr(blurred, ref.exact_blur), test::psnr(final, ref.exact_final)};
}

cv::Mat pillow_blur_contour(const cv::Mat& input, double sigma) {
  const std::string dir = test::make_temp_dir("pillow-bl");
  const std::string in = dir + "/in.png";
  const std::string out = dir + "/out.png";
  REQUIRE(cv::imwrite(in, input));
  const std::string command = std::string(PIXPOOL_PYTHON) + " " + PIXPOOL_TOOLS_DIR +
                              "/pillow_reference.py " + in + " " + out + " " +
                              std::to_string(sigma) + " 2>&1";
  const auto result = test::run_command(command);
  INFO("pillow_reference.py said: " << result.output);
  REQUIRE(result.exit_code == 0);
  cv::Mat reference = cv::imread(out, cv::IMREAD_UNCHANGED);
  std::filesystem::remove_all(dir);
  return reference;
}

struct CorpusCase {
  std::string photo;
  bool tiled;
  std::string label() const { return photo + (tiled ? " (tiled)" : ""); }
};

const cv::Size kVga(640, 480), k1080p(1920, 1080), k12mp(4032, 3024);

}  // namespace

TEST_CASE(
    "band_limited_scale: full size for small sigmas and tiny images, coarser as sigma grows") {
  CHECK(band_limited_scale(0.5, 1920, 1080) == 1);
  CHECK(band_limited_scale(1.9, 1920, 1080) == 1);
  CHECK(band_limited_scale(5.0, 1920, 1080) > 1);
  int previous = 1;
  for (double sigma = 0.5; sigma <= 100; sigma *= 1.25) {
    const int scale = band_limited_scale(sigma, 4032, 3024);
    CHECK(scale >= previous);
    CHECK((scale == 1 || scale == 2 || scale == 4 || scale == 8));
    previous = scale;
  }
  // Too few reduced pixels to extrapolate the border from: full size.
  CHECK(band_limited_scale(50.0, 20, 2000) == 1);
  CHECK(band_limited_scale(50.0, 1, 1) == 1);
}

TEST_CASE("band_limited_blur refuses a wrong scale, size, type or sigma") {
  const cv::Mat small = test::synthetic_image(40, 30, 3, 5);
  cv::Mat out;
  CHECK(band_limited_blur(small, out, 5, 3, {160, 120}, AfterBlur::nothing).error().code ==
        ErrorCode::invalid_parameter);
  CHECK(band_limited_blur(small, out, 5, 4, {157, 120}, AfterBlur::nothing)
            .ok());  // ceil(157/4) = 40
  CHECK(band_limited_blur(small, out, 5, 4, {164, 120}, AfterBlur::nothing).error().code ==
        ErrorCode::invalid_parameter);
  CHECK(band_limited_blur(small, out, 0.2, 4, {160, 120}, AfterBlur::nothing).error().code ==
        ErrorCode::invalid_parameter);  // 0.05 at 1/4 is below the blur's range
  const cv::Mat bgra = test::synthetic_image(40, 30, 4, 5);
  CHECK(band_limited_blur(bgra, out, 5, 4, {160, 120}, AfterBlur::nothing).error().code ==
        ErrorCode::invalid_parameter);
}

TEST_CASE("band_limited_blur: a flat image stays exactly flat, a ramp stays a ramp") {
  cv::Mat flat(30, 40, CV_8UC3, cv::Scalar(12, 130, 250));
  cv::Mat out;
  REQUIRE(band_limited_blur(flat, out, 6, 4, {157, 118}, AfterBlur::nothing).ok());
  CHECK(out.size() == cv::Size(157, 118));
  CHECK(cv::norm(out, cv::Mat(out.size(), CV_8UC3, cv::Scalar(12, 130, 250)), cv::NORM_INF) == 0);
  REQUIRE(band_limited_blur(flat, out, 6, 4, {157, 118}, AfterBlur::contour).ok());
  CHECK(cv::norm(out, cv::Mat(out.size(), CV_8UC3, cv::Scalar::all(255)), cv::NORM_INF) == 0);

  // A horizontal ramp of 1 level per full-size pixel, as 1/4 decoding sees
  // it (each pixel the mean of its 4x4 block): the blur of a ramp is the
  // ramp itself away from the ends, and the border extrapolation must carry
  // it to the very edge.
  cv::Mat full(64, 200, CV_8UC1), small(16, 50, CV_8UC1);
  for (int x = 0; x < 200; ++x) full.col(x).setTo(20 + x);
  cv::resize(full, small, small.size(), 0, 0, cv::INTER_AREA);
  REQUIRE(band_limited_blur(small, out, 4, 4, full.size(), AfterBlur::nothing).ok());
  cv::Mat exact = test::exact_gaussian(full, 4);
  CHECK(cv::norm(out, exact, cv::NORM_INF) <= 1);
}

TEST_CASE("upsampler taps: the AVX2 filter gives the portable filter's values") {
  if (!upsample::filter4_avx2_available()) return;  // nothing to compare on this CPU
  cv::RNG rng(5);
  std::vector<std::uint8_t> in(4 * 3 + 200);
  for (auto& v : in) v = static_cast<std::uint8_t>(rng.uniform(0, 256));
  // Q13 weights of the shape the cubic gives (a negative tap on each side,
  // summing to 8192), and the extremes the rows can have (0 and 255 runs).
  const std::int32_t weights[][4] = {
      {0, 8192, 0, 0}, {-576, 7488, 1472, -192}, {-512, 4608, 4608, -512}, {-96, 2240, 6592, -544}};
  std::fill(in.begin(), in.begin() + 20, std::uint8_t{255});
  std::fill(in.end() - 20, in.end(), std::uint8_t{0});
  for (const auto& w : weights) {
    for (int stride : {1, 3}) {
      for (int n : {1, 15, 16, 17, 31, 64, 150}) {
        CAPTURE(stride);
        CAPTURE(n);
        std::vector<std::int16_t> portable(n), avx2(n);
        upsample::filter4_portable(in.data(), stride, w, portable.data(), n);
        upsample::filter4_avx2(in.data(), stride, w, avx2.data(), n);
        CHECK(portable == avx2);
      }
    }
  }
}

TEST_CASE("band_limited_blur: each channel of a BGR image is what that channel gives alone") {
  // BGR rows are interleaved by code of their own (four phases at a time at
  // scales 4 and 8); grey rows by the plain copy. Widths with a partial
  // last reduced column.
  for (int scale : {2, 4, 8}) {
    for (int width : {scale * 40, scale * 40 + 1, scale * 40 + scale - 1}) {
      CAPTURE(scale);
      CAPTURE(width);
      const cv::Size full(width, scale * 12 + 3);
      const cv::Mat small = test::synthetic_image((full.width + scale - 1) / scale,
                                                  (full.height + scale - 1) / scale, 3, 14);
      cv::Mat bgr;
      REQUIRE(band_limited_blur(small, bgr, 1.6 * scale, scale, full, AfterBlur::nothing).ok());
      std::vector<cv::Mat> planes;
      cv::split(small, planes);
      for (int c = 0; c < 3; ++c) {
        cv::Mat grey;
        REQUIRE(
            band_limited_blur(planes[c], grey, 1.6 * scale, scale, full, AfterBlur::nothing).ok());
        cv::Mat channel;
        cv::extractChannel(bgr, channel, c);
        CHECK(cv::norm(channel, grey, cv::NORM_INF) == 0);
      }
    }
  }
}

TEST_CASE("band_limited_blur: strips never change the output") {
  for (cv::Size full : {cv::Size(1, 1), cv::Size(33, 7), cv::Size(157, 118), cv::Size(640, 480)}) {
    for (int channels : {1, 3}) {
      for (int scale : {2, 4, 8}) {
        const cv::Size size((full.width + scale - 1) / scale, (full.height + scale - 1) / scale);
        const cv::Mat small = test::synthetic_image(size.width, size.height, channels, 9);
        for (AfterBlur after : {AfterBlur::nothing, AfterBlur::contour}) {
          CAPTURE(full);
          CAPTURE(channels);
          CAPTURE(scale);
          cv::Mat one, many;
          REQUIRE(band_limited_blur(small, one, 2.0 * scale, scale, full, after).ok());
          REQUIRE(
              band_limited_blur(small, many, 2.0 * scale, scale, full, after, reversed_strips(5))
                  .ok());
          CHECK(cv::norm(one, many, cv::NORM_INF) == 0);
        }
      }
    }
  }
}

TEST_CASE("BandLimitedImage: streams from any row make band_limited_blur's rows") {
  const cv::Mat small = test::synthetic_image(40, 30, 3, 6);
  const cv::Size full(157, 118);
  for (AfterBlur after : {AfterBlur::nothing, AfterBlur::contour}) {
    cv::Mat expected;
    REQUIRE(band_limited_blur(small, expected, 6, 4, full, after).ok());
    auto image = BandLimitedImage::prepare(small, 6, 4, full, after);
    REQUIRE(image.ok());
    const RowSource source = image->rows();
    CHECK(source.size == full);
    CHECK(source.type == CV_8UC3);
    // Streams opened at the edges and at rows of every phase, read in
    // uneven batches, each checked against the stored result.
    for (int first : {0, 1, 2, 3, 4, 5, 31, 64, 116, 117}) {
      CAPTURE(first);
      auto stream = source.open(first);
      cv::Mat got(full.height - first, full.width, CV_8UC3);
      int done = 0;
      for (int batch = 1; done < got.rows; batch = batch % 7 + 1) {
        const int n = std::min(batch, got.rows - done);
        stream->next(n, got.ptr<std::uint8_t>(done), got.step);
        done += n;
      }
      CHECK(cv::norm(got, expected.rowRange(first, full.height), cv::NORM_INF) == 0);
    }
  }
  CHECK(BandLimitedImage::prepare(small, 6, 3, full, AfterBlur::nothing).error().code ==
        ErrorCode::invalid_parameter);
}

TEST_CASE("BandLimitedImage built row by row: each strip, once ready, makes prepare()'s rows") {
  // Sizes with partial last blocks and a reduced image only a few rows
  // tall; sigmas on both sides of the blur's exact/box switch (sigma / scale
  // 1.5); rows arriving one, a few, or all at a time.
  struct Case {
    cv::Size full;
    int scale;
    double sigma;
  };
  for (const Case& c : {Case{{157, 118}, 4, 5}, Case{{157, 118}, 4, 9}, Case{{640, 480}, 4, 5},
                        Case{{333, 701}, 8, 30}, Case{{101, 67}, 2, 2.5}, Case{{64, 33}, 2, 4}}) {
    for (int channels : {1, 3}) {
      const cv::Size size((c.full.width + c.scale - 1) / c.scale,
                          (c.full.height + c.scale - 1) / c.scale);
      const cv::Mat small = test::synthetic_image(size.width, size.height, channels, 11);
      for (AfterBlur after : {AfterBlur::nothing, AfterBlur::contour}) {
        cv::Mat expected;
        REQUIRE(band_limited_blur(small, expected, c.sigma, c.scale, c.full, after).ok());
        for (int step : {1, 3, 17, size.height}) {
          CAPTURE(c.full);
          CAPTURE(c.sigma);
          CAPTURE(channels);
          CAPTURE(step);
          auto image = BandLimitedImage::start(size, small.type(), c.sigma, c.scale, c.full, after);
          REQUIRE(image.ok());
          const RowSource source = image->rows();
          cv::Mat got(c.full, small.type(), cv::Scalar::all(7));
          // Strips of 16 rows, each made as soon as ready_rows() allows.
          constexpr int kStrip = 16;
          int made = 0;
          int last_ready = 0;
          int made_early = 0;  // rows made before the last reduced row came
          for (int rows = 0; rows < size.height;) {
            if (rows + step < size.height) made_early = made;
            rows = std::min(size.height, rows + step);
            REQUIRE(image->take_rows(small, rows).ok());
            CHECK(image->ready_rows() >= last_ready);
            last_ready = image->ready_rows();
            while (made < c.full.height && std::min(made + kStrip, c.full.height) <= last_ready) {
              const int n = std::min(kStrip, c.full.height - made);
              source.open(made)->next(n, got.ptr<std::uint8_t>(made), got.step);
              made += n;
            }
          }
          CHECK(last_ready == c.full.height);
          CHECK(made == c.full.height);
          // The point of it: on a tall image, most strips can go early.
          if (c.full.height >= 400 && step < size.height) CHECK(made_early > c.full.height / 2);
          CHECK(cv::norm(got, expected, cv::NORM_INF) == 0);
        }
      }
    }
  }
}

TEST_CASE("BandLimitedImage blurred band by band on another thread while rows are padded") {
  // As pipeline/overlapped_job does it: one thread pads rows as they come,
  // another blurs one band at a time. Under TSan this also checks that the
  // two share no row while they run.
  const cv::Size full(640, 1200);
  const int scale = 4;
  const cv::Size size(full.width / scale, full.height / scale);
  const cv::Mat small = test::synthetic_image(size.width, size.height, 3, 12);
  cv::Mat expected;
  REQUIRE(band_limited_blur(small, expected, 5, scale, full, AfterBlur::contour).ok());
  auto image = BandLimitedImage::start(size, small.type(), 5, scale, full, AfterBlur::contour);
  REQUIRE(image.ok());

  std::mutex mutex;  // guards the image's bookkeeping, not its pixels
  int bands = 0;
  // Only CHECKs on the second thread (a failed REQUIRE throws), and a
  // deadline so that a failure on the first cannot leave it spinning.
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  std::thread blurrer([&] {
    while (std::chrono::steady_clock::now() < give_up) {
      std::optional<BandLimitedImage::Band> band;
      {
        const std::lock_guard lock(mutex);
        if (image->ready_rows() == full.height) return;
        band = image->next_band();
        // Not done yet, so given again: one band in flight at a time.
        if (band) {
          const auto again = image->next_band();
          CHECK((again && again->first == band->first));
        }
      }
      if (!band) {
        std::this_thread::yield();
        continue;
      }
      image->blur_band(*band);
      const std::lock_guard lock(mutex);
      image->band_done(*band);
      ++bands;
    }
  });
  const auto ready = [&] {
    const std::lock_guard lock(mutex);
    return image->ready_rows();
  };
  for (int rows = 0; rows < size.height;) {
    rows = std::min(size.height, rows + 7);
    {
      const std::lock_guard lock(mutex);
      CHECK(image->pad_rows(small, rows).ok());
    }
    if (rows >= size.height / 2 && rows < size.height / 2 + 7) {
      // Half way: let the first bands be blurred before padding the rest,
      // so that at least one is blurred while rows are still to come.
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
      while (ready() == 0 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::yield();
      }
      CHECK(ready() > 0);
      CHECK(ready() < full.height);
    }
  }
  blurrer.join();
  CHECK(bands > 1);  // band by band, not all at the end
  cv::Mat got(full, small.type());
  image->rows().open(0)->next(full.height, got.ptr<std::uint8_t>(0), got.step);
  CHECK(cv::norm(got, expected, cv::NORM_INF) == 0);
}

TEST_CASE("BandLimitedImage::start and take_rows refuse what does not fit") {
  const cv::Mat small = test::synthetic_image(40, 30, 3, 6);
  const cv::Size full(157, 118);
  CHECK(
      BandLimitedImage::start(small.size(), CV_8UC3, 6, 3, full, AfterBlur::nothing).error().code ==
      ErrorCode::invalid_parameter);
  CHECK(BandLimitedImage::start({41, 30}, CV_8UC3, 6, 4, full, AfterBlur::nothing).error().code ==
        ErrorCode::invalid_parameter);
  auto image = BandLimitedImage::start(small.size(), CV_8UC3, 6, 4, full, AfterBlur::nothing);
  REQUIRE(image.ok());
  CHECK(image->ready_rows() == 0);
  REQUIRE(image->take_rows(small, 10).ok());
  CHECK(image->take_rows(small, 9).error().code == ErrorCode::internal);
  CHECK(image->take_rows(small, 31).error().code == ErrorCode::internal);
  const cv::Mat grey = test::synthetic_image(40, 30, 1, 6);
  CHECK(image->take_rows(grey, 20).error().code == ErrorCode::internal);
  REQUIRE(image->take_rows(small, 30).ok());
  CHECK(image->ready_rows() == full.height);
}

TEST_CASE("band_limited_blur with contour is the upsampled blur followed by contour") {
  const cv::Mat small = test::synthetic_image(100, 60, 3, 4);
  cv::Mat blurred, expected, fused;
  REQUIRE(band_limited_blur(small, blurred, 9, 4, {399, 237}, AfterBlur::nothing).ok());
  REQUIRE(contour(blurred, expected).ok());
  REQUIRE(band_limited_blur(small, fused, 9, 4, {399, 237}, AfterBlur::contour).ok());
  CHECK(cv::norm(fused, expected, cv::NORM_INF) == 0);
}

TEST_CASE("band-limited decode holds the quality bar on the photo corpus") {
  // Every size, at the sigmas where the rule changes scale and at the ends
  // of the range; 12 MP at fewer sigmas (its exact reference takes seconds).
  struct Step {
    cv::Size size;
    std::vector<double> sigmas;
    std::vector<CorpusCase> photos;
  };
  const std::vector<CorpusCase> two = {{"baboon.jpg", false}, {"fruits.jpg", false}};
  const std::vector<Step> steps = {
      {kVga,
       {0.5, 1, 2, 3, 4, 5, 8, 12, 25, 100},
       {{"baboon.jpg", false},
        {"fruits.jpg", false},
        {"starry_night.jpg", false},
        {"baboon.jpg", true}}},
      {k1080p, {2, 4, 5, 8, 16, 100}, {{"building.jpg", false}, {"baboon.jpg", true}}},
      {k12mp, {5, 100}, {{"leuvenA.jpg", false}}},
  };
  for (const Step& step : steps) {
    for (const CorpusCase& photo : step.photos) {
      const cv::Mat source = test::corpus_photo(photo.photo, step.size, photo.tiled);
      const std::string jpeg = test::encode_with_opencv(source, ".jpg", 90);
      const cv::Mat full = reduced(jpeg, 1);
      for (double sigma : step.sigmas) {
        const int scale = band_limited_scale(sigma, full.cols, full.rows);
        if (scale == 1) continue;  // today's path, covered by test_blur.cpp
        CAPTURE(photo.label());
        CAPTURE(step.size);
        CAPTURE(sigma);
        CAPTURE(scale);
        const Reference ref = make_reference(full, sigma);
        const Quality q = measure(jpeg, full, ref, sigma, scale);
        MESSAGE(photo.label() << " " << step.size << " sigma " << sigma << " at 1/" << scale
                              << ": blur " << q.blur_db << " dB, blur+contour " << q.final_db
                              << " dB");
        CHECK(q.blur_db >= 40.0);
        CHECK(q.final_db >= 40.0);
      }
    }
  }
}

TEST_CASE("band-limited default chain agrees with Pillow GaussianBlur + CONTOUR to >= 36 dB") {
  for (cv::Size size : {kVga, k1080p}) {
    for (const char* name : {"fruits.jpg", "baboon.jpg"}) {
      for (double sigma : {5.0, 25.0}) {
        const std::string jpeg =
            test::encode_with_opencv(test::corpus_photo(name, size), ".jpg", 90);
        const cv::Mat full = reduced(jpeg, 1);
        const int scale = band_limited_scale(sigma, full.cols, full.rows);
        REQUIRE(scale > 1);
        cv::Mat ours;
        REQUIRE(band_limited_blur(reduced(jpeg, scale), ours, sigma, scale, full.size(),
                                  AfterBlur::contour)
                    .ok());
        // Pillow copies the outermost pixels instead of filtering them: 2 px
        // border excluded, as in test_pillow_reference.cpp.
        const double db = test::psnr(ours, pillow_blur_contour(full, sigma), 2);
        MESSAGE(name << " " << size << " sigma " << sigma << " at 1/" << scale << ": " << db
                     << " dB against Pillow");
        CHECK(db >= 36.0);
      }
    }
  }
}

// The measurements the scale rule comes from. Skipped unless
// PIXPOOL_BAND_LIMITED_SWEEP=1; prints one Markdown row per photo, size,
// sigma and scale (scale 1 is today's full-size path).
TEST_CASE("band-limited sweep (PIXPOOL_BAND_LIMITED_SWEEP=1)") {
  const char* sweep = std::getenv("PIXPOOL_BAND_LIMITED_SWEEP");
  if (sweep == nullptr || std::string(sweep) != "1") return;
  const std::vector<CorpusCase> photos = {
      {"baboon.jpg", false},   {"fruits.jpg", false},  {"starry_night.jpg", false},
      {"building.jpg", false}, {"leuvenA.jpg", false}, {"aloeL.jpg", false},
      {"messi5.jpg", false},   {"board.jpg", false},   {"baboon.jpg", true}};
  const std::vector<double> sigmas = {0.5, 1, 1.5, 2, 3, 4, 5, 6, 8, 12, 16, 25, 50, 100};
  std::printf(
      "| size | photo | sigma | scale | blur dB | blur+contour dB |\n|---|---|---|---|---|---|\n");
  for (cv::Size size : {kVga, k1080p, k12mp}) {
    for (const CorpusCase& photo : photos) {
      const std::string jpeg =
          test::encode_with_opencv(test::corpus_photo(photo.photo, size, photo.tiled), ".jpg", 90);
      const cv::Mat full = reduced(jpeg, 1);
      for (double sigma : sigmas) {
        const Reference ref = make_reference(full, sigma);
        for (int scale : {1, 2, 4, 8}) {
          if (sigma / scale < kBlurMinSigma) continue;
          const Quality q = measure(jpeg, full, ref, sigma, scale);
          std::printf("| %dx%d | %s | %g | %d | %.2f | %.2f |\n", size.width, size.height,
                      photo.label().c_str(), sigma, scale, q.blur_db, q.final_db);
          std::fflush(stdout);
        }
      }
    }
  }
}
