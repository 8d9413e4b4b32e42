// Op chain parsing (good and bad input) and application.
#include <doctest/doctest.h>

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>
#include <string>

#include "filters/blur.hpp"
#include "filters/contour.hpp"
#include "filters/op_chain.hpp"
#include "tests/support/images.hpp"

using namespace pixpool;

namespace {

std::string parse_error(const std::string& text) {
  auto r = parse_ops(text);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == ErrorCode::invalid_ops);
  return r.error().message;
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

}  // namespace

TEST_CASE("parse_ops accepts the documented forms") {
  auto a = parse_ops("blur:5,contour");
  REQUIRE(a.ok());
  CHECK(*a == OpChain{{OpKind::blur, 5.0}, {OpKind::contour, 0.0}});

  auto b = parse_ops("blur:sigma=2.5");
  REQUIRE(b.ok());
  CHECK(*b == OpChain{{OpKind::blur, 2.5}});

  auto c = parse_ops("contour,blur:1");
  REQUIRE(c.ok());
  CHECK(*c == OpChain{{OpKind::contour, 0.0}, {OpKind::blur, 1.0}});

  auto d = parse_ops(" blur , contour ");  // spaces are forgiven; blur defaults to sigma 5
  REQUIRE(d.ok());
  CHECK(*d == OpChain{{OpKind::blur, 5.0}, {OpKind::contour, 0.0}});

  auto e = parse_ops(kDefaultOps);
  REQUIRE(e.ok());
  CHECK(format_ops(*e) == "blur:5,contour");

  CHECK(parse_ops("blur:0.1").ok());
  CHECK(parse_ops("blur:100").ok());
  CHECK(parse_ops("blur:1e1").ok());
}

TEST_CASE("format_ops round-trips") {
  for (const char* text : {"blur:5,contour", "blur:2.5", "contour,blur:0.1,contour"}) {
    auto chain = parse_ops(text);
    REQUIRE(chain.ok());
    CHECK(format_ops(*chain) == text);
    CHECK(*parse_ops(format_ops(*chain)) == *chain);
  }
}

TEST_CASE("parse_ops errors name the op and the argument") {
  CHECK(contains(parse_error(""), "empty"));
  CHECK(contains(parse_error("sharpen"), "'sharpen'"));
  CHECK(contains(parse_error("sharpen"), "blur, contour"));

  const std::string not_number = parse_error("blur:abc");
  CHECK(contains(not_number, "'blur'"));
  CHECK(contains(not_number, "'sigma'"));
  CHECK(contains(not_number, "'abc'"));

  CHECK(contains(parse_error("blur:0"), "between 0.1 and 100"));
  CHECK(contains(parse_error("blur:100.01"), "'sigma'"));
  CHECK(contains(parse_error("blur:-3"), "'sigma'"));
  CHECK(contains(parse_error("blur:nan"), "'nan'"));
  CHECK(contains(parse_error("blur:inf"), "'sigma'"));
  CHECK(contains(parse_error("blur:1e999"), "'sigma'"));
  CHECK(contains(parse_error("blur:5x"), "'5x'"));
  CHECK(contains(parse_error("blur:radius=3"), "'radius'"));
  CHECK(contains(parse_error("blur:sigma="), "'sigma'"));
  CHECK(contains(parse_error("blur:"), "'blur'"));
  CHECK(contains(parse_error("contour:3"), "'contour'"));
  CHECK(contains(parse_error("blur,,contour"), "#2"));
  CHECK(contains(parse_error("blur,"), "#2"));

  std::string many = "contour";
  for (int i = 0; i < 16; ++i) many += ",contour";
  CHECK(contains(parse_error(many), "too many"));
}

TEST_CASE("apply_ops runs ops left to right") {
  const cv::Mat src = test::synthetic_image(80, 60, 3, 2);
  cv::Mat blurred, expected;
  REQUIRE(blur(src, blurred, 5.0).ok());
  REQUIRE(contour(blurred, expected).ok());
  cv::Mat out;
  REQUIRE(apply_ops(src, out, *parse_ops("blur:5,contour")).ok());
  CHECK(cv::norm(out, expected, cv::NORM_INF) == 0);

  cv::Mat reversed;
  REQUIRE(apply_ops(src, reversed, *parse_ops("contour,blur:5")).ok());
  CHECK(cv::norm(out, reversed, cv::NORM_INF) > 0);
  CHECK(cv::norm(src, test::synthetic_image(80, 60, 3, 2), cv::NORM_INF) == 0);  // input untouched
}

TEST_CASE("apply_ops keeps alpha unchanged and filters only colour") {
  const cv::Mat bgra = test::synthetic_image(64, 40, 4, 9);
  cv::Mat out;
  REQUIRE(apply_ops(bgra, out, *parse_ops("blur:5,contour")).ok());
  REQUIRE(out.type() == CV_8UC4);
  cv::Mat alpha_in, alpha_out;
  cv::extractChannel(bgra, alpha_in, 3);
  cv::extractChannel(out, alpha_out, 3);
  CHECK(cv::norm(alpha_in, alpha_out, cv::NORM_INF) == 0);

  cv::Mat bgr, expected, out_bgr;
  cv::cvtColor(bgra, bgr, cv::COLOR_BGRA2BGR);
  REQUIRE(apply_ops(bgr, expected, *parse_ops("blur:5,contour")).ok());
  cv::cvtColor(out, out_bgr, cv::COLOR_BGRA2BGR);
  CHECK(cv::norm(expected, out_bgr, cv::NORM_INF) == 0);
}

TEST_CASE("apply_ops keeps grey images grey") {
  const cv::Mat grey = test::synthetic_image(50, 30, 1, 4);
  cv::Mat out;
  REQUIRE(apply_ops(grey, out, *parse_ops("blur:2,contour")).ok());
  CHECK(out.type() == CV_8UC1);
  CHECK(out.size() == grey.size());
}
