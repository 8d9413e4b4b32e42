// Query-string parsing and the processing parameters.
#include <doctest/doctest.h>

#include "service/http_errors.hpp"
#include "service/request_params.hpp"

using namespace pixpool;

TEST_CASE("parse_query decodes %-escapes and '+'") {
  auto q = parse_query("/v1/process?ops=blur%3A2.5%2Ccontour&format=png&x=a+b&flag");
  REQUIRE(q.ok());
  CHECK(q->find("ops")->second == "blur:2.5,contour");
  CHECK(q->find("format")->second == "png");
  CHECK(q->find("x")->second == "a b");
  CHECK(q->find("flag")->second == "");
  CHECK(parse_query("/v1/process")->empty());
  CHECK_FALSE(parse_query("/v1/process?ops=%zz").ok());
  CHECK_FALSE(parse_query("/v1/process?ops=%4").ok());
}

TEST_CASE("parse_process_params: defaults and every parameter") {
  auto defaults = parse_process_params({}, "tbb");
  REQUIRE(defaults.ok());
  CHECK(defaults->ops == *parse_ops("blur:5,contour"));
  CHECK_FALSE(defaults->format.has_value());
  CHECK(defaults->quality == 90);
  CHECK(defaults->backend == "tbb");

  auto all = parse_process_params(
      *parse_query("/?ops=contour&format=webp&quality=40&backend=process"), "tbb");
  REQUIRE(all.ok());
  CHECK(all->ops == *parse_ops("contour"));
  CHECK(all->format == ImageFormat::webp);
  CHECK(all->quality == 40);
  CHECK(all->backend == "process");
}

TEST_CASE("parse_process_params refuses bad values with clear messages") {
  auto err = [](const char* target) {
    auto r = parse_process_params(*parse_query(target), "tbb");
    REQUIRE_FALSE(r.ok());
    return r.error();
  };
  CHECK(err("/?ops=blur:abc").code == ErrorCode::invalid_ops);
  CHECK(err("/?format=gif").message.find("gif") != std::string::npos);
  CHECK(err("/?quality=0").code == ErrorCode::invalid_parameter);
  CHECK(err("/?quality=101").code == ErrorCode::invalid_parameter);
  CHECK(err("/?quality=high").code == ErrorCode::invalid_parameter);
  CHECK(err("/?op=blur").message.find("unknown parameter 'op'") != std::string::npos);
  CHECK(err("/?ops=blur&ops=contour").message.find("more than once") != std::string::npos);
}

TEST_CASE("every error code maps to its documented HTTP status") {
  CHECK(http_status(ErrorCode::invalid_parameter) == 400);
  CHECK(http_status(ErrorCode::invalid_ops) == 400);
  CHECK(http_status(ErrorCode::unknown_backend) == 400);
  CHECK(http_status(ErrorCode::empty_body) == 400);
  CHECK(http_status(ErrorCode::not_found) == 404);
  CHECK(http_status(ErrorCode::method_not_allowed) == 405);
  CHECK(http_status(ErrorCode::body_too_large) == 413);
  CHECK(http_status(ErrorCode::unsupported_image) == 415);
  CHECK(http_status(ErrorCode::too_many_pixels) == 422);
  CHECK(http_status(ErrorCode::queue_full) == 429);
  CHECK(http_status(ErrorCode::internal) == 500);
  CHECK(http_status(ErrorCode::timeout) == 504);
  CHECK(error_body({ErrorCode::invalid_ops, "bad \"x\""}) ==
        "{\"error\":{\"code\":\"invalid_ops\",\"message\":\"bad \\\"x\\\"\"}}\n");
}
