// The classic recipe's output, Pillow's GaussianBlur(radius=5) + CONTOUR,
// computed by Pillow itself at test time, must agree with pixpool's default
// chain to at least 36 dB PSNR on the image interior (2 px border excluded,
// where Pillow's 3x3 filter copies input pixels instead of filtering).
#include <doctest/doctest.h>

#include <filesystem>
#include <opencv2/imgcodecs.hpp>
#include <string>

#include "filters/codec.hpp"
#include "filters/op_chain.hpp"
#include "tests/support/images.hpp"
#include "tests/support/server_process.hpp"

#ifndef PIXPOOL_PYTHON
#define PIXPOOL_PYTHON "/usr/bin/python3"
#endif
#ifndef PIXPOOL_TOOLS_DIR
#error "PIXPOOL_TOOLS_DIR must be defined by the build"
#endif

using namespace pixpool;

namespace {

cv::Mat pillow_reference(const cv::Mat& input, const std::string& dir) {
  const std::string in = dir + "/in.png";
  const std::string out = dir + "/out.png";
  REQUIRE(cv::imwrite(in, input));
  const std::string command = std::string(PIXPOOL_PYTHON) + " " + PIXPOOL_TOOLS_DIR +
                              "/pillow_reference.py " + in + " " + out + " 2>&1";
  const auto result = test::run_command(command);
  INFO("pillow_reference.py said: " << result.output);
  REQUIRE(result.exit_code == 0);
  return cv::imread(out, cv::IMREAD_UNCHANGED);
}

}  // namespace

TEST_CASE("default chain agrees with Pillow GaussianBlur(5) + CONTOUR to >= 36 dB") {
  const std::string dir = test::make_temp_dir("pillow");
  struct Case {
    std::string name;
    cv::Mat pixels;
  };
  std::vector<Case> cases;
  for (const char* file : {"fruits_320x240.jpg", "baboon_320x240.jpg"}) {
    auto decoded = decode_image(test::read_test_data(file), kDefaultMaxPixels);
    REQUIRE(decoded.ok());
    cases.push_back({file, decoded->pixels});
  }
  cases.push_back({"synthetic colour", test::synthetic_image(200, 150, 3, 21)});
  cases.push_back({"synthetic grey", test::synthetic_image(200, 150, 1, 22)});

  const OpChain chain = *parse_ops(kDefaultOps);
  for (const Case& c : cases) {
    CAPTURE(c.name);
    const cv::Mat reference = pillow_reference(c.pixels, dir);
    REQUIRE(reference.size() == c.pixels.size());
    REQUIRE(reference.type() == c.pixels.type());
    cv::Mat ours;
    REQUIRE(apply_ops(c.pixels, ours, chain).ok());
    const double db = test::psnr(ours, reference, 2);
    MESSAGE(c.name << ": " << db << " dB against Pillow");
    CHECK(db >= 36.0);
  }
  std::filesystem::remove_all(dir);
}
