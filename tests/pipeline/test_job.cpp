// run_job: the decode -> filters -> encode function both backends share.
#include <doctest/doctest.h>

#include "filters/op_chain.hpp"
#include "pipeline/job.hpp"
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
