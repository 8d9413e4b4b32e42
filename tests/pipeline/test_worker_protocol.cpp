// The worker wire format: what the server sends decodes to the same job on
// the worker's side, and every malformed field of either message is refused
// by the one decoder that reads it.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "filters/op_chain.hpp"
#include "pipeline/worker_protocol.hpp"

using namespace pixpool;

namespace {

JobParams sample_params() {
  JobParams p;
  p.ops = *parse_ops("blur:2.5,contour,sleep:0");  // sleep: pipeline_tests registers test ops
  p.format = ImageFormat::webp;
  p.quality = 42;
  p.max_pixels = 1234567;
  return p;
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

}  // namespace

TEST_CASE("wire: a request round-trips through make_request and decode_request") {
  auto request = wire::make_request(sample_params(), 100, 4096, 3);
  REQUIRE(request.ok());
  CHECK(request->strips == 3);
  auto params = wire::decode_request(*request, 4096);
  REQUIRE(params.ok());
  CHECK(params->ops == sample_params().ops);
  CHECK(params->format == ImageFormat::webp);
  CHECK(params->quality == 42);
  CHECK(params->max_pixels == 1234567);
  CHECK_FALSE(params->exact);
  JobParams exact = sample_params();
  exact.exact = true;
  CHECK(wire::decode_request(*wire::make_request(exact, 100, 4096, 1), 4096)->exact);

  JobParams input_format = sample_params();
  input_format.format.reset();
  auto keeps = wire::decode_request(*wire::make_request(input_format, 1, 16, 0), 16);
  REQUIRE(keeps.ok());
  CHECK_FALSE(keeps->format.has_value());
}

TEST_CASE("wire: an op with many arguments crosses as canonical text") {
  JobParams p;
  p.ops = *parse_ops("blur:0.30000000000000004,blur:sigma=99.99999999999999");
  auto params = wire::decode_request(*wire::make_request(p, 0, 0, 1), 0);
  REQUIRE(params.ok());
  CHECK(params->ops == p.ops);  // doubles survive exactly

  JobParams longest;
  for (std::size_t i = 0; i < kMaxOps; ++i) longest.ops.push_back(*parse_ops("blur:0.1")->begin());
  CHECK(wire::make_request(longest, 0, 0, 1).ok());
}

TEST_CASE("wire: decode_request refuses malformed fields") {
  const wire::Request good = *wire::make_request(sample_params(), 100, 4096, 1);
  auto refused = [](const wire::Request& r, std::uint64_t buffer = 4096) {
    auto p = wire::decode_request(r, buffer);
    REQUIRE_FALSE(p.ok());
    CHECK(p.error().code == ErrorCode::internal);
    return p.error().message;
  };
  CHECK(contains(refused(good, 50), "input larger"));
  wire::Request r = good;
  r.quality = 0;
  CHECK(contains(refused(r), "quality"));
  r = good;
  r.format = 99;
  CHECK(contains(refused(r), "format"));
  r = good;
  r.strips = 0;
  CHECK(contains(refused(r), "strips"));
  r = good;
  r.exact = 2;
  CHECK(contains(refused(r), "exact"));
  r = good;
  std::memset(r.ops, 'x', sizeof r.ops);
  CHECK(contains(refused(r), "terminated"));
  r = good;
  std::strcpy(r.ops, "sharpen");
  CHECK(contains(refused(r), "sharpen"));
}

TEST_CASE("wire: decode_reply accepts outputs inside the buffer and workers' errors") {
  JobOutput output;
  output.bytes = std::string(10, 'x');
  output.format = ImageFormat::jpeg;
  output.width = 4;
  output.height = 3;
  output.times.decode_ms = 1.5;
  const wire::Reply ok = wire::output_reply(output, 64, 128);
  auto answer = wire::decode_reply(ok, 128);
  REQUIRE(answer.ok());
  REQUIRE(answer->ok());
  CHECK(answer->value().offset == 64);
  CHECK(answer->value().size == 10);
  CHECK(answer->value().format == ImageFormat::jpeg);
  CHECK(answer->value().times.decode_ms == 1.5);

  const wire::Reply failed =
      wire::error_reply({ErrorCode::too_many_pixels, std::string(5000, 'm')}, 128);
  auto error = wire::decode_reply(failed, 128);
  REQUIRE(error.ok());  // well formed: the job failed, the worker is fine
  REQUIRE_FALSE(error->ok());
  CHECK(error->error().code == ErrorCode::too_many_pixels);
  CHECK(error->error().message.size() == sizeof failed.message - 1);  // truncated, terminated
}

TEST_CASE("wire: decode_reply refuses malformed replies") {
  JobOutput output;
  output.bytes = std::string(10, 'x');
  output.format = ImageFormat::png;
  output.width = 4;
  output.height = 3;
  const wire::Reply good = wire::output_reply(output, 64, 128);
  auto malformed = [](const wire::Reply& r, std::uint64_t buffer = 128) {
    auto a = wire::decode_reply(r, buffer);
    REQUIRE_FALSE(a.ok());
    CHECK(a.error().code == ErrorCode::internal);
    return a.error().message;
  };
  CHECK(contains(malformed(good, 70), "outside"));
  wire::Reply r = good;
  r.output_offset = std::numeric_limits<std::uint64_t>::max();
  CHECK(contains(malformed(r), "outside"));
  r = good;
  r.output_size = std::numeric_limits<std::uint64_t>::max() - 10;  // offset + size wraps
  CHECK(contains(malformed(r), "outside"));
  r = good;
  r.format = -2;
  CHECK(contains(malformed(r), "format"));
  r = good;
  r.width = 0;
  CHECK(contains(malformed(r), "dimensions"));
  r = good;
  r.encode_ms = std::nan("");
  CHECK(contains(malformed(r), "times"));
  // crash-9e51d6ad (fuzz_worker_reply): finite but absurd, it would make
  // the latency sums infinite
  r.encode_ms = 1.6e308;
  CHECK(contains(malformed(r), "times"));
  r.encode_ms = wire::kMaxStageMs;
  CHECK(wire::decode_reply(r, 128).ok());
  r = good;
  r.ok = 7;
  CHECK(contains(malformed(r), "ok flag"));
  for (int scale : {0, 3, 16, -4}) {
    r = good;
    r.decode_scale = scale;
    CHECK(contains(malformed(r), "decode scale"));
  }
  r = good;
  r.decode_scale = 8;
  CHECK(wire::decode_reply(r, 128)->value().times.decode_scale == 8);

  wire::Reply bad_code = wire::error_reply({ErrorCode::timeout, "slow"}, 128);
  bad_code.error_code = static_cast<std::int32_t>(kErrorCodeCount);
  CHECK(contains(malformed(bad_code), "unknown error code"));
  bad_code.error_code = -1;
  CHECK(contains(malformed(bad_code), "unknown error code"));
  wire::Reply unterminated = wire::error_reply({ErrorCode::timeout, "slow"}, 128);
  std::memset(unterminated.message, 'm', sizeof unterminated.message);
  CHECK(contains(malformed(unterminated), "terminated"));
}
