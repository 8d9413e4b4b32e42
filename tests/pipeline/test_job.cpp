// run_job: the decode -> filters -> encode function both backends share.
#include <doctest/doctest.h>

#include <functional>
#include <opencv2/imgcodecs.hpp>
#include <thread>
#include <vector>

#include "filters/jpeg_codec.hpp"
#include "filters/op_chain.hpp"
#include "pipeline/job.hpp"
#include "pipeline/strip_runner.hpp"
#include "tests/support/images.hpp"

using namespace pixpool;

namespace {

JobSpec job_for(std::string bytes, const std::string& ops = std::string(kDefaultOps)) {
  JobSpec job;
  job.input = std::move(bytes);
  job.params.ops = *parse_ops(ops);
  return job;
}

}  // namespace

TEST_CASE("run_job keeps the input format by default and reports stage times") {
  auto out = run_job(job_for(test::read_test_data("fruits_320x240.jpg")));
  REQUIRE(out.ok());
  CHECK(out->format == ImageFormat::jpeg);
  CHECK(out->width == 320);
  CHECK(out->height == 240);
  CHECK(sniff_format(out->bytes) == ImageFormat::jpeg);
  CHECK(out->times.decode_ms > 0);
  CHECK(out->times.filter_ms > 0);
  CHECK(out->times.encode_ms > 0);
}

TEST_CASE("run_job: BMP and TIFF inputs become PNG, format= overrides") {
  const cv::Mat image = test::synthetic_image(40, 30, 3);
  for (const char* ext : {".bmp", ".tiff"}) {
    auto out = run_job(job_for(test::encode_with_opencv(image, ext)));
    REQUIRE(out.ok());
    CHECK(out->format == ImageFormat::png);
  }
  JobSpec job = job_for(test::encode_with_opencv(image, ".png"));
  job.params.format = ImageFormat::webp;
  auto webp = run_job(job);
  REQUIRE(webp.ok());
  CHECK(sniff_format(webp->bytes) == ImageFormat::webp);
}

TEST_CASE("run_job is deterministic: same job, same bytes") {
  const JobSpec job = job_for(test::read_test_data("baboon_320x240.jpg"), "blur:2,contour");
  auto a = run_job(job);
  auto b = run_job(job);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK(a->bytes == b->bytes);
}

TEST_CASE("run_job returns error values, never throws") {
  CHECK(run_job(job_for("")).error().code == ErrorCode::empty_body);
  CHECK(run_job(job_for("not an image")).error().code == ErrorCode::unsupported_image);

  JobSpec limited = job_for(test::encode_with_opencv(test::synthetic_image(100, 100, 3), ".png"));
  limited.params.max_pixels = 9999;
  CHECK(run_job(limited).error().code == ErrorCode::too_many_pixels);

  JobSpec wide = job_for(test::encode_with_opencv(test::synthetic_image(70000, 1, 3), ".png"));
  wide.params.format = ImageFormat::jpeg;
  CHECK(run_job(wide).error().code == ErrorCode::too_large_for_format);
  wide.params.format = std::nullopt;  // png output is fine at 70000x1
  CHECK(run_job(wide).ok());
}

namespace {

cv::Mat decoded(const std::string& bytes) {
  auto image = decode_image(bytes, kDefaultMaxPixels);
  REQUIRE(image.ok());
  return image->pixels;
}

}  // namespace

TEST_CASE("run_job decodes a JPEG at a reduced scale for a leading blur, at full size if exact") {
  const std::string jpeg = test::read_test_data("fruits_320x240.jpg");
  JobSpec fast = job_for(jpeg);  // blur:5,contour
  auto reduced = run_job(fast);
  REQUIRE(reduced.ok());
  CHECK(reduced->times.decode_scale == 4);
  CHECK(reduced->width == 320);
  CHECK(reduced->height == 240);

  JobSpec exact = fast;
  exact.params.exact = true;
  auto full = run_job(exact);
  REQUIRE(full.ok());
  CHECK(full->times.decode_scale == 1);
  // The same picture, within the quality bar (JPEG re-encoding included).
  CHECK(test::psnr(decoded(reduced->bytes), decoded(full->bytes)) >= 38.0);

  // Only a leading blur, only JPEG, only a sigma the rule allows.
  CHECK(run_job(job_for(jpeg, "contour,blur:5"))->times.decode_scale == 1);
  CHECK(run_job(job_for(jpeg, "blur:1"))->times.decode_scale == 1);
  CHECK(run_job(job_for(jpeg, "blur:2.5"))->times.decode_scale == 2);
  CHECK(run_job(job_for(jpeg, "blur:40"))->times.decode_scale == 8);
  const cv::Mat pixels = decoded(jpeg);
  CHECK(run_job(job_for(test::encode_with_opencv(pixels, ".png")))->times.decode_scale == 1);

  // Ops after the blur (and its fused contour) run at full size.
  auto chained = run_job(job_for(jpeg, "blur:8,contour,blur:1"));
  REQUIRE(chained.ok());
  CHECK(chained->times.decode_scale == 8);
  CHECK(chained->width == 320);
}

TEST_CASE("run_job: blur and contour into a JPEG are fused with the encoder, same bytes") {
  // The fused path never stores the full-size result; it must give the
  // bytes of storing it and encoding it (here: the PNG output's pixels, from
  // the unfused path, encoded as JPEG), with strips or without.
  const std::string jpeg = test::encode_with_opencv(test::synthetic_image(700, 530, 3, 8), ".jpg");
  for (const char* ops : {"blur:5,contour", "blur:9", "blur:2,contour"}) {
    CAPTURE(ops);
    JobSpec fused = job_for(jpeg, ops);
    JobSpec stored = fused;
    stored.params.format = ImageFormat::png;
    auto png = run_job(stored);
    REQUIRE(png.ok());
    auto expected = encode_jpeg(decoded(png->bytes), fused.params.quality);
    REQUIRE(expected.ok());
    auto one = run_job(fused);
    REQUIRE(one.ok());
    CHECK(one->times.decode_scale > 1);
    CHECK(one->width == 700);
    CHECK(one->height == 530);
    CHECK(one->bytes == expected.value());
    const StripRunner threads = [](int rows, int, const std::function<void(int, int)>& body) {
      std::thread other(body, 0, rows / 2);
      body(rows / 2, rows);
      other.join();
    };
    auto split = run_job(fused, threads);
    REQUIRE(split.ok());
    CHECK(split->bytes == expected.value());
  }
}

TEST_CASE("run_job: a rotated JPEG runs band-limited only when its blocks stay aligned") {
  const cv::Mat pixels = test::synthetic_image(320, 240, 3, 8);
  // EXIF 6 turns the image: the output is 240x320 either way.
  const std::string aligned =
      test::with_exif_orientation(test::encode_with_opencv(pixels, ".jpg"), 6);
  auto out = run_job(job_for(aligned));
  REQUIRE(out.ok());
  CHECK(out->times.decode_scale == 4);
  CHECK(out->width == 240);
  CHECK(out->height == 320);
  JobSpec exact = job_for(aligned);
  exact.params.exact = true;
  auto full = run_job(exact);
  REQUIRE(full.ok());
  CHECK(test::psnr(decoded(out->bytes), decoded(full->bytes)) >= 38.0);

  // 322 is not a multiple of 4: flipping would move the partial block.
  const cv::Mat odd = test::synthetic_image(322, 240, 3, 8);
  auto unaligned =
      run_job(job_for(test::with_exif_orientation(test::encode_with_opencv(odd, ".jpg"), 3)));
  REQUIRE(unaligned.ok());
  CHECK(unaligned->times.decode_scale == 1);
  // Orientation 1 needs no alignment.
  auto plain = run_job(job_for(test::encode_with_opencv(odd, ".jpg")));
  REQUIRE(plain.ok());
  CHECK(plain->times.decode_scale == 4);
  CHECK(plain->width == 322);
}

TEST_CASE(
    "run_job: with cores to spare, decode, filter and encode overlap and give the same bytes") {
  // run_job with a parallel runner takes pipeline/overlapped_job.cpp for a
  // fused chain: strips encoded on TBB threads while the decoder still runs.
  // Its bytes must be the sequential fused path's (no runner), for every
  // kind of JPEG: baseline (rows announced as decoded), progressive (all at
  // once), and those the overlap hands back to the sequential path:
  // restart-marked (decoded in parallel strips instead) and rotated by EXIF
  // (turned after decoding); grey, and odd sizes.
  const cv::Mat photo = test::synthetic_image(1283, 961, 3, 17);
  std::vector<unsigned char> progressive;
  REQUIRE(cv::imencode(".jpg", photo, progressive, {cv::IMWRITE_JPEG_PROGRESSIVE, 1}));
  struct Input {
    const char* name;
    std::string jpeg;
  };
  const std::vector<Input> inputs{
      {"baseline", test::encode_with_opencv(photo, ".jpg", 90)},
      {"progressive", std::string(progressive.begin(), progressive.end())},
      {"restart markers", encode_jpeg(photo, 90).value()},
      {"EXIF rotated", test::with_exif_orientation(
                           test::encode_with_opencv(photo(cv::Rect(0, 0, 1280, 960)), ".jpg"), 6)},
      {"grey", test::encode_with_opencv(test::synthetic_image(777, 1501, 1, 3), ".jpg")},
      {"small", test::encode_with_opencv(test::synthetic_image(70, 65, 3, 3), ".jpg")},
  };
  const StripRunner spare_cores = tbb_strip_runner(4);
  for (const Input& input : inputs) {
    for (const char* ops : {"blur:5,contour", "blur:9", "blur:2.5,contour", "blur:40,contour"}) {
      CAPTURE(input.name);
      CAPTURE(ops);
      const JobSpec job = job_for(input.jpeg, ops);
      auto sequential = run_job(job);
      REQUIRE(sequential.ok());
      auto overlapped = run_job(job, spare_cores);
      REQUIRE(overlapped.ok());
      CHECK(overlapped->bytes == sequential->bytes);
      CHECK(overlapped->width == sequential->width);
      CHECK(overlapped->height == sequential->height);
      CHECK(overlapped->times.decode_scale == sequential->times.decode_scale);
      CHECK(overlapped->times.decode_scale > 1);
      CHECK(overlapped->times.encode_ms >= 0);
    }
  }

  // A corrupt file fails as it does sequentially, strips started or not.
  const std::string whole = inputs[0].jpeg;
  for (std::size_t keep : {whole.size() / 10, whole.size() / 2, whole.size() - 3}) {
    CAPTURE(keep);
    const JobSpec cut = job_for(whole.substr(0, keep));
    auto sequential = run_job(cut);
    auto overlapped = run_job(cut, spare_cores);
    REQUIRE_FALSE(sequential.ok());
    REQUIRE_FALSE(overlapped.ok());
    CHECK(overlapped.error().code == sequential.error().code);
    CHECK(overlapped.error().message == sequential.error().message);
  }

  // A CMYK JPEG cannot be decoded reduced: the ordinary full-size path.
  const JobSpec cmyk = job_for(test::cmyk_jpeg(test::synthetic_image(300, 200, 4, 5)));
  auto sequential = run_job(cmyk);
  auto overlapped = run_job(cmyk, spare_cores);
  REQUIRE(sequential.ok());
  REQUIRE(overlapped.ok());
  CHECK(overlapped->bytes == sequential->bytes);
  CHECK(overlapped->times.decode_scale == 1);
}
