// POST /v1/batch and /v1/jobs bodies (service/batch_api.hpp): what a JSON or
// multipart body turns into, and the bounds found by fuzzing (tests/fuzz,
// batch_json and batch_multipart; reproducers in tests/fuzz/corpus/).
#include <doctest/doctest.h>
#include <httplib.h>

#include <string>

#include "service/batch_api.hpp"
#include "service/body_reader.hpp"

using namespace pixpool;

namespace {

Result<BatchRequest> parse_json(const std::string& body, const Config& config = {},
                                QueryParams query = {}) {
  httplib::Request req;
  req.set_header("Content-Type", "application/json");
  RequestBody raw;
  raw.raw = body;
  return parse_batch_request(req, std::move(query), std::move(raw), config);
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

}  // namespace

TEST_CASE("batch json: urls and settings become items and parameters") {
  auto r =
      parse_json(R"({"urls":["http://127.0.0.1/a.jpg","http://127.0.0.1/b.png"],"ops":"contour",)"
                 R"("format":"webp","quality":70,"backend":"process"})");
  REQUIRE(r.ok());
  REQUIRE(r->inputs.size() == 2);
  CHECK(r->inputs[1].url == "http://127.0.0.1/b.png");
  CHECK(r->params.ops.size() == 1);
  CHECK(r->params.format == ImageFormat::webp);
  CHECK(r->params.quality == 70);
  CHECK(r->params.backend == "process");

  CHECK(contains(parse_json("[1]").error().message, "not a JSON object"));
  CHECK(contains(parse_json(R"({"urls":["http://127.0.0.1/a"]} x)").error().message,
                 "not a JSON object"));
  CHECK(contains(parse_json(R"({"urls":[["http://127.0.0.1/a"]]})").error().message,
                 "must be a string"));
  CHECK(contains(parse_json(R"({"urls":["http://127.0.0.1/a"],"x":1})").error().message,
                 "unknown JSON field 'x'"));
}

// Found fuzzing batch_json: nlohmann's DOM costs ~70 bytes per nested '[',
// so the 64 MiB body limit let one request take 2.3 GB and minutes of CPU.
// The body's shape is now checked by a SAX pass before the DOM is built.
TEST_CASE("batch json: oom-deep-nesting — nested arrays are refused before the DOM is built") {
  const std::string deep =
      "{\"urls\":" + std::string(100'000, '[') + std::string(100'000, ']') + "}";
  auto r = parse_json(deep);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == ErrorCode::invalid_parameter);
  CHECK(contains(r.error().message, "nests deeper than 16 levels"));

  const std::string bare(50'000, '[');  // not even closed: still refused for its depth
  CHECK(contains(parse_json(bare).error().message, "nests deeper"));

  // 16 levels still parse, and get the precise message.
  const std::string fine = R"({"urls":["http://127.0.0.1/a"],"ops":)" + std::string(15, '[') +
                           std::string(15, ']') + "}";
  CHECK(contains(parse_json(fine).error().message, "JSON field 'ops' must be a string"));
}

TEST_CASE(
    "batch json: oom-many-values — more values than items allowed are refused while parsing") {
  Config config;
  config.batches.max_items = 4;
  std::string urls = R"({"urls":[)";
  for (int i = 0; i < 4; ++i)
    urls += std::string(i ? "," : "") + "\"http://127.0.0.1/" + std::to_string(i) + "\"";
  CHECK(parse_json(urls + "]}", config).ok());

  std::string many = R"({"urls":["http://127.0.0.1/a"],"x":[)";
  for (int i = 0; i < 100'000; ++i) many += i ? ",0" : "0";
  auto r = parse_json(many + "]}", config);
  REQUIRE_FALSE(r.ok());
  CHECK(contains(r.error().message, "too many items"));

  std::string keys = "{";
  for (int i = 0; i < 100'000; ++i) keys += (i ? ",\"k" : "\"k") + std::to_string(i) + "\":1";
  CHECK(contains(parse_json(keys + "}", config).error().message, "too many items"));
}

// Seen fuzzing batch_multipart: every part costs a BodyPart however small it
// is, so a body of empty parts was a memory multiplier until the part count
// was bounded.
TEST_CASE("upload body: oom-many-parts — more than kMaxBodyParts parts is too many items") {
  httplib::Request req;
  req.set_header("Content-Type", "multipart/form-data; boundary=b");
  auto reader_of = [](std::size_t parts) {
    return httplib::ContentReader([](const httplib::ContentReceiver&) { return false; },
                                  [parts](const httplib::MultipartContentHeader& header,
                                          const httplib::ContentReceiver& receiver) {
                                    httplib::MultipartFormData part;
                                    part.name = "url";
                                    for (std::size_t i = 0; i < parts; ++i) {
                                      if (!header(part) || !receiver("x", 1)) return false;
                                    }
                                    return true;
                                  });
  };

  httplib::Response res;
  const auto most = reader_of(kMaxBodyParts);
  auto body = UploadBody(req, res, &most, std::size_t{1} << 30).read();
  REQUIRE(body.ok());
  CHECK(body->parts.size() == kMaxBodyParts);

  const auto over = reader_of(kMaxBodyParts + 5);
  auto refused = UploadBody(req, res, &over, std::size_t{1} << 30).read();
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().code == ErrorCode::invalid_parameter);
  CHECK(contains(refused.error().message, "too many items"));
}
