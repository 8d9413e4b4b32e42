// Op chain parsing (good and bad input) and application.
#include <doctest/doctest.h>

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>
#include <string>

#include "filters/blur.hpp"
#include "filters/contour.hpp"
#include "filters/op_chain.hpp"
#include "filters/ops/builtin_ops.hpp"
#include "filters/test_ops/test_ops.hpp"
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
  const Op blur5{&blur_op(), {5.0}};
  const Op contour_plain{&contour_op(), {}};
  CHECK(*a == OpChain{blur5, contour_plain});

  auto b = parse_ops("blur:sigma=2.5");
  REQUIRE(b.ok());
  CHECK(*b == OpChain{{&blur_op(), {2.5}}});

  auto c = parse_ops("contour,blur:1");
  REQUIRE(c.ok());
  CHECK(*c == OpChain{contour_plain, {&blur_op(), {1.0}}});

  auto d = parse_ops(" blur , contour ");  // spaces are forgiven; blur defaults to sigma 5
  REQUIRE(d.ok());
  CHECK(*d == OpChain{blur5, contour_plain});

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

TEST_CASE("the registry declares each op once, with ranges its parser enforces") {
  const OpRegistry registry = builtin_registry();
  CHECK(registry.names() == "blur, contour");
  CHECK(registry.find("blur") == &blur_op());
  CHECK(registry.find("sharpen") == nullptr);
  OpRegistry twice = builtin_registry();
  CHECK_FALSE(twice.add(blur_op()).ok());  // a name is registered once

  // Every declared argument: its bounds parse, just outside them does not,
  // and the canonical form round-trips.
  for (const OpDef* def : registry.ops()) {
    for (const OpArg& arg : def->args) {
      const std::string name(def->name);
      const std::string key(arg.name);
      CHECK(parse_ops(name + ":" + key + "=" + std::to_string(arg.max), registry).ok());
      auto low = parse_ops(name + ":" + key + "=" + std::to_string(arg.min), registry);
      REQUIRE(low.ok());
      CHECK(*parse_ops(format_ops(*low), registry) == *low);
      const std::string over = name + ":" + std::to_string(arg.max * 2 + 1);
      auto refused = parse_ops(over, registry);
      REQUIRE_FALSE(refused.ok());
      CHECK(contains(refused.error().message, "'" + key + "'"));
    }
  }
  CHECK(contains(registry.help_text(), "sigma"));
  CHECK(contains(registry.markdown(), "| `blur` |"));
}

TEST_CASE("test ops parse only in a registry they were registered in") {
  // The default registry of filters_tests is the production one.
  CHECK(contains(parse_error("sleep:5"), "unknown op 'sleep'"));
  CHECK(contains(parse_error("crash"), "unknown op 'crash'"));
  OpRegistry with_test_ops = builtin_registry();
  REQUIRE(register_test_ops(with_test_ops).ok());
  auto chain = parse_ops("sleep:5,blur:2,crash,hog:1", with_test_ops);
  REQUIRE(chain.ok());
  CHECK(format_ops(*chain) == "sleep:5,blur:2,crash,hog:1");
  auto fraction = parse_ops("sleep:1.5", with_test_ops);  // integer argument
  REQUIRE_FALSE(fraction.ok());
  CHECK(contains(fraction.error().message, "whole number"));
  auto missing = parse_ops("hog", with_test_ops);  // required argument
  REQUIRE_FALSE(missing.ok());
  CHECK(contains(missing.error().message, "'mb' is required"));
}

TEST_CASE("ops with several arguments: positional, named, defaults, repeats") {
  // A registry-only op, to pin down the multi-argument grammar.
  static const OpDef pair{
      .name = "pair",
      .help = "two arguments",
      .args = {OpArg{.name = "a",
                     .type = ArgType::number,
                     .min = 0,
                     .max = 10,
                     .default_value = 1.0,
                     .help = "first"},
               OpArg{.name = "b",
                     .type = ArgType::number,
                     .min = 0,
                     .max = 10,
                     .default_value = 2.0,
                     .help = "second"}},
      .run = [](std::span<const double>, const cv::Mat&, cv::Mat&,
                const StripRunner&) { return Result<void>(); },
      .fuses_with = {},
      .run_fused = nullptr,
  };
  OpRegistry registry;
  REQUIRE(registry.add(pair).ok());
  CHECK(parse_ops("pair", registry)->front().args == std::vector<double>{1.0, 2.0});
  CHECK(parse_ops("pair:3", registry)->front().args == std::vector<double>{3.0, 2.0});
  CHECK(parse_ops("pair:3:4", registry)->front().args == std::vector<double>{3.0, 4.0});
  CHECK(parse_ops("pair:b=4", registry)->front().args == std::vector<double>{1.0, 4.0});
  CHECK(parse_ops("pair:b=4:a=0", registry)->front().args == std::vector<double>{0.0, 4.0});
  CHECK(format_ops(*parse_ops("pair:b=4", registry)) == "pair:1:4");
  CHECK(contains(parse_ops("pair:1:2:3", registry).error().message, "at most 2"));
  CHECK(contains(parse_ops("pair:a=1:a=2", registry).error().message, "twice"));
  CHECK(contains(parse_ops("pair:c=1", registry).error().message, "(valid: a, b)"));
}
