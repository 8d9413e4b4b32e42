// pixpool bench: the histogram, the corpus, the command line, response
// verification and the report writer as units, then run_bench() end to end
// against the real server on a loopback port.
#include <doctest/doctest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <future>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <thread>

#include "bench/bench.hpp"
#include "bench/connection.hpp"
#include "bench/corpus.hpp"
#include "bench/histogram.hpp"
#include "bench/machine.hpp"
#include "bench/options.hpp"
#include "bench/report.hpp"
#include "bench/runner.hpp"
#include "filters/codec.hpp"
#include "tests/support/images.hpp"
#include "tests/support/server_process.hpp"
#include "tests/support/wait.hpp"

using namespace pixpool;
using namespace pixpool::bench;
namespace fs = std::filesystem;

namespace {

// The exact nearest-rank percentile of sorted samples.
std::int64_t exact_percentile(const std::vector<std::int64_t>& sorted, double p) {
  const auto n = static_cast<double>(sorted.size());
  const auto rank = std::max<std::size_t>(1, static_cast<std::size_t>(std::ceil(p / 100.0 * n)));
  return sorted[rank - 1];
}

double relative_error(std::int64_t value, std::int64_t exact) {
  return std::abs(static_cast<double>(value - exact)) / static_cast<double>(exact);
}

nlohmann::json read_json(const std::string& path) {
  return nlohmann::json::parse(test::read_file(path));
}

bool gnuplot_installed() {
  return test::run_command("command -v gnuplot >/dev/null 2>&1").exit_code == 0;
}

// A loopback port with nothing listening (bound, then released).
int unused_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  socklen_t len = sizeof addr;
  REQUIRE(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  close(fd);
  return ntohs(addr.sin_port);
}

// A listening loopback socket (backlog 8) and its port; the caller closes it.
std::pair<int, int> loopback_listener() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(listen(fd, 8) == 0);
  socklen_t len = sizeof addr;
  REQUIRE(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  return {fd, ntohs(addr.sin_port)};
}

// Splits a table line into its whitespace-separated cells.
std::vector<std::string> cells(const std::string& line) {
  std::istringstream in(line);
  std::vector<std::string> out;
  for (std::string cell; in >> cell;) out.push_back(cell);
  return out;
}

struct TempDir {
  std::string path = test::make_temp_dir("bench");
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path, ignored);
  }
};

}  // namespace

// ---------------------------------------------------------------- histogram

TEST_CASE("histogram: empty gives zeros") {
  LatencyHistogram h;
  CHECK(h.empty());
  CHECK(h.count() == 0);
  CHECK(h.percentile(50) == 0);
  CHECK(h.percentile(100) == 0);
  CHECK(h.min() == 0);
  CHECK(h.max() == 0);
  CHECK(h.mean() == 0.0);
}

TEST_CASE("histogram: buckets are contiguous and at most 1/128 wide") {
  const std::size_t n = LatencyHistogram::bucket_count();
  CHECK(LatencyHistogram::bucket_lower(0) == 0);
  for (std::size_t i = 1; i < n; ++i) {
    REQUIRE(LatencyHistogram::bucket_lower(i) == LatencyHistogram::bucket_upper(i - 1));
    const std::int64_t lower = LatencyHistogram::bucket_lower(i);
    const std::int64_t width = LatencyHistogram::bucket_upper(i) - lower;
    if (lower >= 256) REQUIRE(static_cast<double>(width) / lower <= 1.0 / 128);
  }
  CHECK(LatencyHistogram::bucket_upper(n - 1) > LatencyHistogram::kMaxValueNs);
  for (std::int64_t v :
       {std::int64_t{0}, std::int64_t{255}, std::int64_t{256}, std::int64_t{10'000},
        std::int64_t{123'456'789}, LatencyHistogram::kMaxValueNs}) {
    const std::size_t i = LatencyHistogram::bucket_index(v);
    CHECK(LatencyHistogram::bucket_lower(i) <= v);
    CHECK(v < LatencyHistogram::bucket_upper(i));
  }
}

TEST_CASE("histogram: percentiles match exact sorted samples within 1 percent") {
  // Log-uniform from 10 us to 10 min, the range the histogram promises.
  std::mt19937_64 rng(42);
  std::uniform_real_distribution<double> exponent(std::log(1e4), std::log(6e11));
  for (std::size_t n : {std::size_t{1}, std::size_t{7}, std::size_t{1000}, std::size_t{100'000}}) {
    CAPTURE(n);
    std::vector<std::int64_t> samples;
    LatencyHistogram h;
    for (std::size_t i = 0; i < n; ++i) {
      samples.push_back(static_cast<std::int64_t>(std::exp(exponent(rng))));
      h.record(samples.back());
    }
    std::sort(samples.begin(), samples.end());
    CHECK(h.count() == n);
    CHECK(h.min() == samples.front());
    CHECK(h.max() == samples.back());
    for (double p : {0.0, 1.0, 10.0, 50.0, 90.0, 95.0, 99.0, 99.9, 100.0}) {
      CAPTURE(p);
      CHECK(relative_error(h.percentile(p), exact_percentile(samples, p)) <= 0.01);
    }
    CHECK(h.percentile(100) == samples.back());
    long double sum = 0;
    for (auto s : samples) sum += s;
    CHECK(h.mean() == doctest::Approx(static_cast<double>(sum / n)).epsilon(1e-9));
  }
}

TEST_CASE("histogram: merging per-thread histograms equals one histogram") {
  std::mt19937_64 rng(7);
  std::lognormal_distribution<double> latency(std::log(50e6), 0.8);  // around 50 ms
  LatencyHistogram all;
  std::vector<LatencyHistogram> parts(4);
  std::vector<std::int64_t> samples;
  for (int i = 0; i < 20'000; ++i) {
    const auto v = static_cast<std::int64_t>(latency(rng));
    samples.push_back(v);
    all.record(v);
    parts[static_cast<std::size_t>(i) % parts.size()].record(v);
  }
  LatencyHistogram merged;
  merged.merge(LatencyHistogram());  // merging an empty one changes nothing
  for (const auto& part : parts) merged.merge(part);
  std::sort(samples.begin(), samples.end());
  CHECK(merged.count() == all.count());
  CHECK(merged.min() == samples.front());
  CHECK(merged.max() == samples.back());
  CHECK(merged.mean() == doctest::Approx(all.mean()));
  for (double p : {50.0, 95.0, 99.0, 99.9}) {
    CHECK(merged.percentile(p) == all.percentile(p));
    CHECK(relative_error(merged.percentile(p), exact_percentile(samples, p)) <= 0.01);
  }
}

TEST_CASE("histogram: max is exact even above the range and a single value is exact") {
  LatencyHistogram h;
  h.record(1'234'567);
  CHECK(h.percentile(50) == 1'234'567);
  CHECK(h.percentile(99) == 1'234'567);
  const std::int64_t twenty_minutes = 1'200'000'000'000;
  h.record(twenty_minutes);
  h.record(-5);  // clamped to 0
  CHECK(h.max() == twenty_minutes);
  CHECK(h.percentile(100) == twenty_minutes);
  CHECK(h.min() == 0);
  CHECK(h.count() == 3);
}

// ------------------------------------------------------------------- corpus

TEST_CASE("corpus: size names and WxH parse") {
  CHECK(parse_size("vga")->width == 640);
  CHECK(parse_size("vga")->height == 480);
  CHECK(parse_size("1080p")->width == 1920);
  CHECK(parse_size("1080p")->height == 1080);
  CHECK(parse_size("12MP")->width == 4032);
  CHECK(parse_size("12mp")->height == 3024);
  CHECK(parse_size("320x200")->width == 320);
  CHECK(parse_size("320x200")->height == 200);
  for (const char* bad : {"", "huge", "0x10", "10x", "x10", "-5x5", "20001x5", "1e3x5"}) {
    CAPTURE(bad);
    CHECK_FALSE(parse_size(bad).ok());
  }
}

TEST_CASE("corpus: generated JPEGs have the requested sizes and are deterministic") {
  auto corpus = generate_corpus({*parse_size("vga"), *parse_size("1080p")}, 2);
  REQUIRE(corpus.ok());
  REQUIRE(corpus->images.size() == 4);
  CHECK(corpus->source == "generated");
  const std::vector<std::pair<int, int>> sizes = {
      {640, 480}, {640, 480}, {1920, 1080}, {1920, 1080}};
  std::uint64_t total = 0;
  for (std::size_t i = 0; i < 4; ++i) {
    const auto& image = corpus->images[i];
    CAPTURE(image.name);
    CHECK(image.format == ImageFormat::jpeg);
    CHECK(image.width == sizes[i].first);
    CHECK(image.height == sizes[i].second);
    auto decoded = decode_image(image.bytes, kDefaultMaxPixels);
    REQUIRE(decoded.ok());
    CHECK(decoded->pixels.cols == sizes[i].first);
    CHECK(decoded->pixels.rows == sizes[i].second);
    CHECK(decoded->pixels.channels() == 3);
    // Photo-like, not flat: a VGA JPEG of a smooth gradient alone is ~10 KB.
    CHECK(image.bytes.size() > static_cast<std::size_t>(image.width * image.height / 20));
    total += image.bytes.size();
  }
  CHECK(corpus->images[0].name == "vga-1.jpg");
  CHECK(corpus->images[3].name == "1080p-2.jpg");
  CHECK(corpus->total_bytes() == total);
  CHECK(corpus->images[0].bytes != corpus->images[1].bytes);  // different seeds

  auto again = generate_corpus({*parse_size("vga")}, 1);
  REQUIRE(again.ok());
  CHECK(again->images[0].bytes == corpus->images[0].bytes);
  CHECK(corpus->describe().find("640x480") != std::string::npos);
}

TEST_CASE("corpus: the 12 MP size is 4032x3024") {
  auto corpus = generate_corpus({*parse_size("12mp")}, 1);
  REQUIRE(corpus.ok());
  auto header = read_header(corpus->images.at(0).bytes);
  REQUIRE(header.ok());
  CHECK(header->width == 4032);
  CHECK(header->height == 3024);
  CHECK(header->format == ImageFormat::jpeg);
}

TEST_CASE("corpus: a folder gives its decodable images sorted and skips the rest") {
  TempDir dir;
  test::write_file(dir.path + "/b.png",
                   test::encode_with_opencv(test::synthetic_image(30, 20, 3), ".png"));
  test::write_file(dir.path + "/a.jpg", test::read_test_data("fruits_320x240.jpg"));
  test::write_file(dir.path + "/notes.txt", "not an image");
  std::vector<std::string> skipped;
  auto corpus = load_corpus(dir.path, &skipped);
  REQUIRE(corpus.ok());
  REQUIRE(corpus->images.size() == 2);
  CHECK(corpus->images[0].name == "a.jpg");
  CHECK(corpus->images[0].width == 320);
  CHECK(corpus->images[0].height == 240);
  CHECK(corpus->images[1].name == "b.png");
  CHECK(corpus->images[1].format == ImageFormat::png);
  CHECK(corpus->images[1].width == 30);
  CHECK(skipped == std::vector<std::string>{"notes.txt"});

  CHECK_FALSE(load_corpus(dir.path + "/missing").ok());
  TempDir empty;
  CHECK_FALSE(load_corpus(empty.path).ok());
}

// ------------------------------------------------------------- command line

TEST_CASE("options: the documented command line parses") {
  auto o = parse_bench_args({"--url",         "http://127.0.0.1:8080",
                             "--sizes",       "vga,1080p,12mp",
                             "--backends",    "tbb,process",
                             "--concurrency", "1,4,16",
                             "--duration",    "10s",
                             "--report",      "out",
                             "--ops",         "blur:5,contour",
                             "--format",      "jpeg",
                             "--mode",        "batch",
                             "--batch-size",  "4",
                             "--warmup",      "500ms",
                             "--timeout=2m"});
  REQUIRE(o.ok());
  CHECK(o->url == "http://127.0.0.1:8080");
  CHECK(o->sizes.size() == 3);
  CHECK(o->backends == std::vector<std::string>{"tbb", "process"});
  CHECK(o->concurrency == std::vector<int>{1, 4, 16});
  CHECK(o->duration_s == 10.0);
  CHECK(o->requests == 0);
  CHECK(o->report_dir == "out");
  CHECK(o->ops == "blur:5,contour");
  CHECK(o->format == "jpeg");
  CHECK(o->mode == Mode::batch);
  CHECK(o->batch_size == 4);
  CHECK(o->warmup_s == doctest::Approx(0.5));
  CHECK(o->timeout_s == 120.0);

  auto requests = parse_bench_args(
      {"--requests", "6", "--mode", "url", "--source-url", "http://origin:8000/img"});
  REQUIRE(requests.ok());
  CHECK(requests->requests == 6);
  CHECK(requests->duration_s == 0.0);
  CHECK(requests->warmup_s == 0.0);  // --requests N sends exactly N
  CHECK(requests->source_url == "http://origin:8000/img/");

  auto defaults = parse_bench_args({});
  REQUIRE(defaults.ok());
  CHECK(defaults->duration_s == 10.0);
  CHECK(defaults->warmup_s == 1.0);
  CHECK(parse_bench_args({"--help"})->help);
}

TEST_CASE("options: bad command lines are refused with the flag named") {
  const std::vector<std::vector<std::string>> bad = {
      {"--duration", "10s", "--requests", "5"},
      {"--concurrency", "0"},
      {"--concurrency", "1,x"},
      {"--duration", "soon"},
      {"--requests", "-1"},
      {"--url", "127.0.0.1:8080"},
      {"--url", "http://host/path"},
      {"--format", "gif"},
      {"--mode", "stream"},
      {"--sizes", "huge"},
      {"--backends", "tbb,tbb"},
      {"--source-url", "http://o/"},  // needs --mode url
      {"--bogus", "1"},
      {"--report"},
      {"stray"}};
  for (const auto& args : bad) {
    CAPTURE(args.front());
    auto parsed = parse_bench_args(args);
    REQUIRE_FALSE(parsed.ok());
    CHECK_FALSE(parsed.error().message.empty());
  }
  CHECK(parse_duration_s("500ms") == doctest::Approx(0.5));
  CHECK(parse_duration_s("2m") == 120.0);
  CHECK(parse_duration_s("1.5") == 1.5);
  CHECK(parse_duration_s("") < 0);
  CHECK(parse_duration_s("-1s") < 0);
}

TEST_CASE("options: an unknown or malformed flag is named, alone or with a value") {
  auto message = [](const std::vector<std::string>& args) {
    auto parsed = parse_bench_args(args);
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.error().code == ErrorCode::invalid_parameter);
    return parsed.error().message;
  };
  // Alone it once read as "--bogus needs a value".
  CHECK(message({"--bogus"}) == "unknown flag --bogus");
  CHECK(message({"--bogus", "1"}) == "unknown flag --bogus");
  CHECK(message({"--bogus=1"}) == "unknown flag --bogus");
  CHECK(message({"--requests", "3", "--bogus"}) == "unknown flag --bogus");
  CHECK(message({"-x"}) == "unknown flag -x");
  CHECK(message({"--concurency", "4"}) ==
        "unknown flag --concurency (did you mean --concurrency?)");
  CHECK(message({"-requests", "4"}) == "unknown flag -requests (did you mean --requests?)");
  CHECK(message({"--requests"}) == "--requests needs a value");
  CHECK(message({"--report", "--requests", "5"}) ==
        "--report needs a value, but the next argument is the flag --requests");
  CHECK(message({"--requests", "many"}).find("--requests") != std::string::npos);
  CHECK(message({"--repeats", "0"}).find("--repeats") != std::string::npos);
  CHECK(message({"stray"}).find("'stray'") != std::string::npos);
  // Every documented flag is known.
  for (const std::string flag :
       {"--url",      "--images",   "--sizes",   "--per-size",   "--backends",    "--concurrency",
        "--duration", "--requests", "--warmup",  "--timeout",    "--report",      "--ops",
        "--format",   "--quality",  "--mode",    "--source-url", "--origin-port", "--batch-size",
        "--verify",   "--gnuplot",  "--repeats", "--restarts"}) {
    CAPTURE(flag);
    CHECK(bench_help_text().find(flag + " ") != std::string::npos);
    auto parsed = parse_bench_args({flag});
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.error().message == flag + " needs a value");
  }
}

TEST_CASE("options: --restarts is on or off, off by default") {
  CHECK_FALSE(parse_bench_args({})->restarts);
  CHECK(parse_bench_args({"--restarts", "on"})->restarts);
  CHECK_FALSE(parse_bench_args({"--restarts=off"})->restarts);
  auto bad = parse_bench_args({"--restarts", "yes"});
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().message == "--restarts must be on or off, got 'yes'");
}

TEST_CASE("corpus: --restarts on gives the same pictures with a restart marker per MCU row") {
  auto plain = generate_corpus({*parse_size("1080p"), *parse_size("100x40")}, 1);
  auto marked = generate_corpus({*parse_size("1080p"), *parse_size("100x40")}, 1, true);
  REQUIRE(plain.ok());
  REQUIRE(marked.ok());
  for (std::size_t i = 0; i < 2; ++i) {
    const std::string& with = marked->images[i].bytes;
    const std::string& without = plain->images[i].bytes;
    CAPTURE(marked->images[i].name);
    // DRI segment: FF DD, length 4, the interval (MCUs per row: 1920 / 16).
    const std::size_t dri = with.find("\xFF\xDD");
    REQUIRE(dri != std::string::npos);
    const int interval = (static_cast<unsigned char>(with[dri + 4]) << 8) |
                         static_cast<unsigned char>(with[dri + 5]);
    CHECK(interval == (marked->images[i].width + 15) / 16);
    CHECK(without.find("\xFF\xDD") == std::string::npos);
    auto a = decode_image(with, kDefaultMaxPixels);
    auto b = decode_image(without, kDefaultMaxPixels);
    REQUIRE(a.ok());
    REQUIRE(b.ok());
    CHECK(cv::norm(a->pixels, b->pixels, cv::NORM_INF) == 0);
  }
}

TEST_CASE("options: --repeats defaults to 1 and takes 1..100") {
  CHECK(parse_bench_args({})->repeats == 1);
  CHECK(parse_bench_args({"--repeats", "5"})->repeats == 5);
  CHECK(parse_bench_args({"--repeats=100"})->repeats == 100);
  CHECK_FALSE(parse_bench_args({"--repeats", "101"}).ok());
  CHECK_FALSE(parse_bench_args({"--repeats", "-1"}).ok());
}

// ---------------------------------------------------------------- connection

TEST_CASE("connection: nothing listening is 'connection refused' in words") {
  const std::string url = "http://127.0.0.1:" + std::to_string(unused_port());
  const auto diagnosis = diagnose_connection(url, 2.0);
  CHECK_FALSE(diagnosis.connected);
  CHECK(diagnosis.problem == "connection refused (is pixpool running?)");
  CHECK(unreachable_message(url, diagnosis, "x") ==
        "cannot connect to " + url + ": connection refused (is pixpool running?)");
}

TEST_CASE("connection: a silent server times out and a resetting one is a reset, in words") {
  SUBCASE("a listener that never accepts: the handshake completes, nothing answers") {
    const auto [fd, port] = loopback_listener();
    const std::string url = "http://127.0.0.1:" + std::to_string(port);
    const auto diagnosis = diagnose_connection(url, 0.3);
    close(fd);
    CHECK(diagnosis.connected);
    CHECK(diagnosis.problem == "no answer within 0.3 s (timed out)");
    CHECK(unreachable_message(url, diagnosis, "x") ==
          "no answer from " + url + "/healthz: no answer within 0.3 s (timed out)");
  }
  SUBCASE("a listener that reads the request and resets the connection (linger 0)") {
    const auto [fd, port] = loopback_listener();
    auto resetter = std::async(std::launch::async, [fd = fd] {
      const int conn = accept(fd, nullptr, nullptr);
      if (conn < 0) return false;
      char buf[512];
      [[maybe_unused]] const auto got = recv(conn, buf, sizeof buf, 0);
      linger hard{1, 0};
      setsockopt(conn, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
      close(conn);
      return true;
    });
    const auto diagnosis = diagnose_connection("http://127.0.0.1:" + std::to_string(port), 10.0);
    REQUIRE(resetter.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
    CHECK(resetter.get());
    close(fd);
    CHECK(diagnosis.connected);
    CHECK(diagnosis.problem == "the server reset the connection");
  }
}

TEST_CASE("connection: httplib errors become words, and a read error at the timeout is a timeout") {
  auto timeout = describe_transport_error(httplib::Error::Read, 59.9, 60);
  CHECK(timeout.kind == "connection: timed out");
  CHECK(timeout.detail == "no answer within the 60 s timeout (--timeout)");
  auto reset = describe_transport_error(httplib::Error::Read, 0.01, 60);
  CHECK(reset.kind == "connection: closed or reset");
  CHECK(reset.detail.find("closed or reset the connection") != std::string::npos);
  auto refused = describe_transport_error(httplib::Error::Connection, 0.001, 60);
  CHECK(refused.kind == "connection: cannot connect");
  CHECK(refused.detail.find("refused") != std::string::npos);
  CHECK(describe_transport_error(httplib::Error::Write, 2, 2).kind == "connection: timed out");
  CHECK(describe_transport_error(httplib::Error::ConnectionTimeout, 5, 60).kind ==
        "connection: connect timed out");
}

TEST_CASE("run_bench: a server that accepts but never answers fails within --timeout, exit 2") {
  const auto [fd, port] = loopback_listener();
  auto run = std::async(std::launch::async, [port = port] {
    return run_bench({"--url", "http://127.0.0.1:" + std::to_string(port), "--sizes", "vga",
                      "--requests", "1", "--timeout", "500ms"});
  });
  // Bounded wait: the health check gives up at the 500 ms timeout, not at its usual 10 s.
  REQUIRE(run.wait_for(std::chrono::seconds(8)) == std::future_status::ready);
  CHECK(run.get() == 2);
  close(fd);
}

// ------------------------------------------------------------- verification

TEST_CASE("Server-Timing parses into the six stages") {
  auto ms = parse_server_timing(
      "queue;dur=0.016, download;dur=0.000, decode;dur=0.661, filter;dur=2.020, "
      "encode;dur=0.187, total;dur=3.183");
  REQUIRE(ms.has_value());
  CHECK((*ms)[0] == doctest::Approx(0.016));
  CHECK((*ms)[2] == doctest::Approx(0.661));
  CHECK((*ms)[3] == doctest::Approx(2.020));
  CHECK((*ms)[5] == doctest::Approx(3.183));
  // The decode stage names its scale (band-limited decode), before or after dur.
  auto described = parse_server_timing(
      "queue;dur=0.016, download;dur=0.000, decode;dur=0.661;desc=\"1/4\", filter;dur=2.020, "
      "encode;desc=\"x\";dur=0.187, total;dur=3.183");
  REQUIRE(described.has_value());
  CHECK((*described)[2] == doctest::Approx(0.661));
  CHECK((*described)[4] == doctest::Approx(0.187));
  CHECK_FALSE(parse_server_timing("").has_value());
  CHECK_FALSE(parse_server_timing("queue;dur=1, decode;dur=2").has_value());
  CHECK_FALSE(parse_server_timing("queue;dur=x, download;dur=0, decode;dur=0, filter;dur=0, "
                                  "encode;dur=0, total;dur=0")
                  .has_value());
}

TEST_CASE("a response verifies only with the right type and backend and a same-size image") {
  const std::string photo = test::read_test_data("fruits_320x240.jpg");
  const CorpusImage input{"fruits.jpg", photo, ImageFormat::jpeg, 320, 240};
  Target target;
  auto response = [](std::string body, const std::string& type, const std::string& backend) {
    httplib::Response res;
    res.status = 200;
    res.body = std::move(body);
    res.set_header("Content-Type", type);
    res.set_header("X-Pixpool-Backend", backend);
    return res;
  };
  for (bool full : {true, false}) {
    CAPTURE(full);
    target.full_verify = full;
    CHECK_FALSE(verify_image_response(response(photo, "image/jpeg", "tbb"), input, target, "tbb"));
    auto wrong_type =
        verify_image_response(response(photo, "image/png", "tbb"), input, target, "tbb");
    REQUIRE(wrong_type);
    CHECK(wrong_type->kind == "verify: content-type");
    auto wrong_backend =
        verify_image_response(response(photo, "image/jpeg", "tbb"), input, target, "process");
    REQUIRE(wrong_backend);
    CHECK(wrong_backend->kind == "verify: backend");
    auto garbage =
        verify_image_response(response("not a jpeg", "image/jpeg", "tbb"), input, target, "tbb");
    REQUIRE(garbage);
    CHECK(garbage->kind == "verify: undecodable");
    const std::string small =
        test::encode_with_opencv(test::synthetic_image(32, 24, 3), ".jpg", 90);
    auto wrong_size =
        verify_image_response(response(small, "image/jpeg", "tbb"), input, target, "tbb");
    REQUIRE(wrong_size);
    CHECK(wrong_size->kind == "verify: size");
  }
  // format=png: a PNG of the same size is expected.
  target.format = "png";
  const std::string png = test::encode_with_opencv(test::synthetic_image(320, 240, 3), ".png");
  CHECK_FALSE(verify_image_response(response(png, "image/png", "tbb"), input, target, "tbb"));
  CHECK(verify_image_response(response(photo, "image/jpeg", "tbb"), input, target, "tbb"));
}

// ------------------------------------------------------------------- report

TEST_CASE("report: report.json and the table and index.html agree") {
  StepResult ok;
  ok.backend = "tbb";
  ok.concurrency = 4;
  ok.requests = 10;
  ok.images_ok = 10;
  ok.input_bytes = 9'000'000;
  ok.elapsed_s = 2.0;
  for (int i = 1; i <= 10; ++i) ok.latency.record(i * 10'000'000LL);  // 10..100 ms
  ok.stages.add({1, 0, 2, 3, 4, 10});
  ok.stages.add({3, 0, 2, 5, 4, 14});

  StepResult bad;
  bad.backend = "process";
  bad.concurrency = 1;
  bad.requests = 3;
  bad.elapsed_s = 0.5;
  bad.errors.http = 3;
  bad.errors.by_kind["HTTP 400 invalid_ops"] = 3;
  bad.errors.first_message["HTTP 400 invalid_ops"] = "op 'blur': <bad> & worse";

  BenchOptions options;
  options.concurrency = {1, 4};
  RunInfo info{"pixpool bench --requests 10", "2026-01-02T03:04:05Z", options,
               corpus_json(Corpus{"generated",
                                  {CorpusImage{"vga-1.jpg", std::string(900'000, 'x'),
                                               ImageFormat::jpeg, 640, 480}}}),
               nullptr};
  auto report = report_json(info, {ok, bad}, 1, false);

  CHECK(report["command_line"] == "pixpool bench --requests 10");
  CHECK(report["timestamp"] == "2026-01-02T03:04:05Z");
  CHECK(report["server_url"] == "http://127.0.0.1:8080");
  CHECK(report["corpus"]["count"] == 1);
  CHECK(report["corpus"]["total_bytes"] == 900'000);
  CHECK(report["exit_status"] == 1);
  CHECK(report["totals"]["requests"] == 13);
  CHECK(report["totals"]["errors"] == 3);
  REQUIRE(report["steps"].size() == 2);
  const auto& s0 = report["steps"][0];
  CHECK(s0["images_per_s"].get<double>() == 5.0);
  CHECK(s0["megabytes_per_s"].get<double>() == 4.5);
  CHECK(s0["latency_ms"]["count"] == 10);
  CHECK(s0["latency_ms"]["p50"].get<double>() == doctest::Approx(50.0).epsilon(0.005));
  CHECK(s0["latency_ms"]["p95"].get<double>() == doctest::Approx(100.0).epsilon(0.005));
  CHECK(s0["latency_ms"]["max"].get<double>() == 100.0);
  CHECK(s0["latency_ms"]["mean"].get<double>() == doctest::Approx(55.0));
  CHECK(s0["server_timing_ms"]["samples"] == 2);
  CHECK(s0["server_timing_ms"]["queue"].get<double>() == 2.0);
  CHECK(s0["server_timing_ms"]["total"].get<double>() == 12.0);
  CHECK(report["steps"][1]["errors"]["by_kind"]["HTTP 400 invalid_ops"] == 3);
  CHECK(report["steps"][1]["latency_ms"]["count"] == 0);

  // Each table row shows its step's JSON figures.
  const std::string table = format_table(report);
  std::vector<std::string> lines;
  std::istringstream in(table);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  REQUIRE(lines.size() == 3);
  CHECK(cells(lines[0]) == std::vector<std::string>{"backend", "conc", "requests", "img/s", "MB/s",
                                                    "p50", "ms", "p95", "ms", "p99", "ms", "max",
                                                    "ms", "errors"});
  for (std::size_t i = 0; i < 2; ++i) {
    const auto& step = report["steps"][i];
    const auto row = cells(lines[i + 1]);
    REQUIRE(row.size() == 10);
    CHECK(row[0] == step["backend"]);
    CHECK(std::stoi(row[1]) == step["concurrency"]);
    CHECK(std::stoull(row[2]) == step["requests"]);
    CHECK(std::stod(row[3]) == doctest::Approx(step["images_per_s"].get<double>()).epsilon(0.01));
    CHECK(std::stod(row[4]) ==
          doctest::Approx(step["megabytes_per_s"].get<double>()).epsilon(0.01));
    CHECK(std::stoull(row[9]) == step["errors"]["total"]);
    if (step["latency_ms"]["count"] == 0) {
      CHECK(row[5] == "-");
    } else {
      CHECK(std::stod(row[5]) ==
            doctest::Approx(step["latency_ms"]["p50"].get<double>()).epsilon(0.002));
      CHECK(std::stod(row[8]) ==
            doctest::Approx(step["latency_ms"]["max"].get<double>()).epsilon(0.002));
    }
  }

  // Written to a folder: the JSON round-trips and the page holds the table.
  for (bool with_gnuplot : {true, false}) {
    CAPTURE(with_gnuplot);
    TempDir dir;
    auto copy = report;
    auto outcome = write_report(dir.path, copy, with_gnuplot ? "gnuplot" : "/nonexistent/gnuplot");
    REQUIRE(outcome.ok());
    const bool plots = with_gnuplot && gnuplot_installed();
    CHECK(outcome->plots == plots);
    const auto written = read_json(dir.path + "/report.json");
    CHECK(written["steps"] == nlohmann::json::parse(report["steps"].dump()));
    CHECK(written["plots"]["throughput"].is_string() == plots);
    const std::string html = test::read_file(dir.path + "/index.html");
    CHECK(html.find("<td class=\"l\">tbb</td><td>4</td><td>10</td><td>5.00</td><td>4.50</td>") !=
          std::string::npos);
    CHECK(html.find("HTTP 400 invalid_ops") != std::string::npos);
    CHECK(html.find("&lt;bad&gt; &amp; worse") != std::string::npos);  // escaped
    CHECK(fs::exists(dir.path + "/throughput.svg") == plots);
    CHECK(fs::exists(dir.path + "/latency.svg") == plots);
    if (plots) {
      CHECK(html.find("<svg") != std::string::npos);
      CHECK(html.find("<?xml") == std::string::npos);
      // Both plots define the same ids; inlined, each copy gets a prefix.
      CHECK(html.find("id='gpDot'") == std::string::npos);
      CHECK(html.find("id='throughput_gpDot'") != std::string::npos);
      CHECK(html.find("id='latency_gpDot'") != std::string::npos);
    } else {
      CHECK(html.find("plots skipped") != std::string::npos);
      CHECK(written["plots"]["note"].get<std::string>().find("gnuplot") != std::string::npos);
    }
  }
}

// ------------------------------------------------------------------ machine

TEST_CASE("machine: /proc/stat and /proc/loadavg text parse") {
  // user nice system idle iowait irq softirq steal guest guest_nice
  const auto cpu =
      parse_proc_stat("cpu  100 5 45 800 50 0 0 0 0 0\ncpu0 50 2 20 400 25 0 0 0 0 0\n");
  REQUIRE(cpu);
  CHECK(cpu->total == 1000);
  CHECK(cpu->busy == 150);  // idle and iowait are not busy
  CHECK_FALSE(parse_proc_stat("intr 1 2 3"));
  CHECK_FALSE(parse_proc_stat("cpu  1 2"));
  CHECK(parse_loadavg("2.50 1.00 0.50 3/120 4567\n") == 2.5);
  CHECK_FALSE(parse_loadavg("busy"));
  CHECK(busy_share(CpuTimes{100, 1000}, CpuTimes{400, 1400}) == doctest::Approx(0.75));
  CHECK_FALSE(busy_share(std::nullopt, CpuTimes{1, 2}));
  CHECK_FALSE(busy_share(CpuTimes{1, 2}, CpuTimes{1, 2}));  // no time passed
  // The live values exist on Linux and are in range.
  REQUIRE(read_cpu_times());
  CHECK(read_cpu_times()->busy <= read_cpu_times()->total);
  CHECK(read_load1().value_or(-1) >= 0);
  CHECK(online_cores() >= 1);
}

TEST_CASE("machine: warnings for a busy client or a load above the core count, from fake samples") {
  MachineLoad quiet;
  quiet.cores = 2;
  quiet.load1_before = 0.3;
  quiet.steps = {{"tbb c=1", 0.2, 0.4, 0.9}, {"tbb c=16", 0.5, 0.95, 1.9}};
  CHECK(busy_warnings(quiet).empty());  // half a core of 2 is the limit, not over it

  MachineLoad busy_client = quiet;
  busy_client.steps.push_back({"process c=16", 0.8, 1.0, 1.5});
  auto warnings = busy_warnings(busy_client);
  REQUIRE(warnings.size() == 1);
  CHECK(warnings[0].find("the client itself used 0.80 of the 2 cores (40%) in step process c=16") ==
        0);
  CHECK(warnings[0].find("may be low") != std::string::npos);

  // The same client on 8 cores is a small share.
  busy_client.cores = 8;
  CHECK(busy_warnings(busy_client).empty());

  MachineLoad loaded_during = quiet;
  loaded_during.steps[1].load1 = 3.1;
  warnings = busy_warnings(loaded_during);
  REQUIRE(warnings.size() == 1);
  CHECK(warnings[0].find(
            "the load average reached 3.10 (after step tbb c=16), above the 2 cores") == 0);

  MachineLoad loaded_before = quiet;
  loaded_before.load1_before = 4;
  warnings = busy_warnings(loaded_before);
  REQUIRE(warnings.size() == 1);
  CHECK(warnings[0].find("the load average was 4.00 before the run, above the 2 cores") == 0);

  MachineLoad unknown;  // no /proc: no steps, loads unknown
  unknown.cores = 2;
  CHECK(busy_warnings(unknown).empty());
}

// ------------------------------------------------------------------- spread

TEST_CASE("spread: median, min..max and stddev over repeats") {
  CHECK_FALSE(spread_of({}));
  auto one = spread_of({5});
  REQUIRE(one);
  CHECK(one->runs == 1);
  CHECK(one->median == 5);
  CHECK(one->min == 5);
  CHECK(one->max == 5);
  CHECK(one->stddev == 0);
  auto odd = spread_of({30, 10, 20});
  REQUIRE(odd);
  CHECK(odd->median == 20);
  CHECK(odd->min == 10);
  CHECK(odd->max == 30);
  CHECK(odd->stddev == doctest::Approx(10));  // sample standard deviation
  auto even = spread_of({4, 1, 3, 2});
  REQUIRE(even);
  CHECK(even->median == 2.5);
  CHECK(even->stddev == doctest::Approx(std::sqrt(5.0 / 3.0)));
}

TEST_CASE("spread: repeats group by backend and concurrency in the JSON, table and page") {
  auto run = [](const std::string& backend, int concurrency, int repeat, double seconds,
                std::initializer_list<int> latencies_ms) {
    StepResult step;
    step.backend = backend;
    step.concurrency = concurrency;
    step.repeat = repeat;
    step.requests = step.images_ok = 10;
    step.elapsed_s = seconds;  // 10 images: 10 / seconds img/s
    step.client_cpu_s = seconds * 0.1;
    step.system_busy = 0.5;
    step.load1 = 1.0;
    for (int ms : latencies_ms) step.latency.record(ms * 1'000'000LL);
    return step;
  };
  std::vector<StepResult> steps = {run("tbb", 1, 1, 1.0, {10}), run("tbb", 1, 2, 2.0, {30}),
                                   run("tbb", 1, 3, 0.5, {20}), run("tbb", 4, 1, 1.0, {40}),
                                   run("tbb", 4, 2, 1.0, {40})};
  steps.push_back(run("process", 1, 1, 1.0, {}));  // nothing verified: no latency
  steps.back().images_ok = 0;
  BenchOptions options;
  options.repeats = 3;
  RunInfo info{"pixpool bench --repeats 3",
               "2026-01-02T03:04:05Z",
               options,
               corpus_json(Corpus{"generated", {}}),
               nullptr,
               2,
               0.5};
  auto report = report_json(info, steps, 0, false);
  CHECK(report["settings"]["repeats"] == 3);
  CHECK(report["steps"][1]["repeat"] == 2);
  const auto& spread = report["spread"];
  REQUIRE(spread.size() == 3);
  CHECK(spread[0]["backend"] == "tbb");
  CHECK(spread[0]["concurrency"] == 1);
  CHECK(spread[0]["runs"] == 3);
  CHECK(spread[0]["images_per_s"]["median"].get<double>() == 10.0);  // of 10, 5, 20
  CHECK(spread[0]["images_per_s"]["min"].get<double>() == 5.0);
  CHECK(spread[0]["images_per_s"]["max"].get<double>() == 20.0);
  CHECK(spread[0]["p50_ms"]["median"].get<double>() == doctest::Approx(20).epsilon(0.005));
  CHECK(spread[0]["p99_ms"]["max"].get<double>() == doctest::Approx(30).epsilon(0.005));
  CHECK(spread[1]["runs"] == 2);
  CHECK(spread[1]["images_per_s"]["stddev"].get<double>() == 0.0);
  CHECK(spread[2]["backend"] == "process");
  CHECK(spread[2]["p50_ms"].is_null());
  // The machine figures: 0.1 client cores of 2, under the limit; no warning.
  CHECK(report["machine"]["cores"] == 2);
  CHECK(report["machine"]["client_cores_max"].get<double>() == doctest::Approx(0.1));
  CHECK(report["machine"]["load1_before"].get<double>() == 0.5);
  CHECK(report["machine"]["system_busy_pct_mean"].get<double>() == 50.0);
  CHECK(report["machine"]["warnings"].empty());
  CHECK(report["steps"][0]["machine"]["client_cores"].get<double>() == doctest::Approx(0.1));

  const std::string summary = format_summary(report);
  CHECK(summary.find("spread over 3 repeats: median (min..max)") != std::string::npos);
  CHECK(summary.find("10.00 (5.00..20.00)") != std::string::npos);
  CHECK(summary.find("warning") == std::string::npos);
  const std::string html = html_report(report, "", "");
  CHECK(html.find("<h2>Spread over 3 repeats</h2>") != std::string::npos);
  CHECK(html.find("<td>10.00</td><td>5.00..20.00</td>") != std::string::npos);
  CHECK(html.find("<h2>Machine</h2>") != std::string::npos);
  CHECK(html.find("class=\"warn\"") == std::string::npos);
  CHECK(gnuplot_script(report).find("yerrorlines") != std::string::npos);

  // A busy client makes a warning in the text and on the page.
  steps[0].client_cpu_s = 1.6;  // 1.6 of 2 cores
  report = report_json(info, steps, 0, false);
  REQUIRE(report["machine"]["warnings"].size() == 1);
  CHECK(format_summary(report).find("warning: the client itself used 1.60 of the 2 cores") !=
        std::string::npos);
  CHECK(html_report(report, "", "").find("<p class=\"warn\"><b>Warning</b>: the client itself") !=
        std::string::npos);

  // One run per step: no spread table, and the plot is the plain one.
  options.repeats = 1;
  info.options = options;
  report = report_json(info, {steps[0]}, 0, false);
  CHECK(report["spread"].size() == 1);
  CHECK(format_summary(report).find("spread") == std::string::npos);
  CHECK(html_report(report, "", "").find("Spread over") == std::string::npos);
  CHECK(gnuplot_script(report).find("yerrorlines") == std::string::npos);
}

// --------------------------------------------------------------- end to end

TEST_CASE("run_bench: a tiny run against the real server verifies every response") {
  test::ServerProcess server({"--workers", "2", "--access-log", "off"});
  TempDir dir;
  const std::string report_dir = dir.path + "/report";
  const int status =
      run_bench({"--url", server.base_url(), "--sizes", "vga", "--per-size", "2", "--backends",
                 "tbb,process", "--concurrency", "1,2", "--requests", "6", "--report", report_dir});
  CHECK(status == 0);
  const auto report = read_json(report_dir + "/report.json");
  CHECK(report["exit_status"] == 0);
  CHECK(report["server_url"] == server.base_url());
  CHECK(report["command_line"].get<std::string>().find("--requests 6") != std::string::npos);
  CHECK(report["corpus"]["count"] == 2);
  CHECK(report["server"]["process"]["workers"] == 2);
  REQUIRE(report["steps"].size() == 4);
  const std::vector<std::pair<std::string, int>> expected = {
      {"tbb", 1}, {"tbb", 2}, {"process", 1}, {"process", 2}};
  for (std::size_t i = 0; i < 4; ++i) {
    const auto& step = report["steps"][i];
    CAPTURE(i);
    CHECK(step["backend"] == expected[i].first);
    CHECK(step["concurrency"] == expected[i].second);
    CHECK(step["requests"] == 6);
    CHECK(step["images"] == 6);
    CHECK(step["errors"]["total"] == 0);
    CHECK(step["latency_ms"]["count"] == 6);
    CHECK(step["latency_ms"]["p50"].get<double>() > 0);
    CHECK(step["latency_ms"]["max"].get<double>() >= step["latency_ms"]["p99"].get<double>());
    CHECK(step["images_per_s"].get<double>() > 0);
    CHECK(step["server_timing_ms"]["samples"] == 6);
    CHECK(step["server_timing_ms"]["filter"].get<double>() > 0);
  }
  CHECK(fs::exists(report_dir + "/index.html"));
  CHECK(fs::exists(report_dir + "/throughput.svg") == gnuplot_installed());
  CHECK(fs::exists(report_dir + "/latency.svg") == gnuplot_installed());
}

TEST_CASE("run_bench: --repeats runs each step that many times and reports the spread") {
  test::ServerProcess server({"--workers", "1", "--access-log", "off"});
  TempDir dir;
  CHECK(run_bench({"--url", server.base_url(), "--sizes", "64x48", "--per-size", "1", "--backends",
                   "tbb", "--concurrency", "1,2", "--requests", "2", "--repeats", "3", "--report",
                   dir.path}) == 0);
  const auto report = read_json(dir.path + "/report.json");
  CHECK(report["settings"]["repeats"] == 3);
  REQUIRE(report["steps"].size() == 6);
  for (std::size_t i = 0; i < 6; ++i) {
    CAPTURE(i);
    CHECK(report["steps"][i]["concurrency"] == (i < 3 ? 1 : 2));
    CHECK(report["steps"][i]["repeat"] == i % 3 + 1);
    CHECK(report["steps"][i]["images"] == 2);
  }
  REQUIRE(report["spread"].size() == 2);
  for (const auto& group : report["spread"]) {
    CHECK(group["runs"] == 3);
    const auto& t = group["images_per_s"];
    CHECK(t["min"].get<double>() <= t["median"].get<double>());
    CHECK(t["median"].get<double>() <= t["max"].get<double>());
    CHECK(group["p99_ms"]["min"].get<double>() > 0);
  }
  CHECK(report["machine"]["cores"].get<int>() >= 1);
  CHECK(report["machine"]["warnings"].is_array());
  CHECK(report["steps"][0]["machine"]["client_cores"].get<double>() >= 0);
}

TEST_CASE("run_bench: url mode with the built-in origin and batch mode verify too") {
  test::ServerProcess server(
      {"--workers", "2", "--access-log", "off", "--allow-private-sources", "on"});
  TempDir dir;
  CHECK(run_bench({"--url", server.base_url(), "--sizes", "320x240", "--per-size", "2",
                   "--backends", "tbb,process", "--concurrency", "2", "--requests", "4", "--mode",
                   "url", "--format", "png", "--report", dir.path + "/url"}) == 0);
  const auto url = read_json(dir.path + "/url/report.json");
  REQUIRE(url["steps"].size() == 2);
  for (const auto& step : url["steps"]) {
    CHECK(step["images"] == 4);
    CHECK(step["errors"]["total"] == 0);
  }
  CHECK(url["settings"]["source_url"].get<std::string>().starts_with("http://127.0.0.1:"));

  CHECK(run_bench({"--url", server.base_url(), "--sizes", "320x240", "--per-size", "3",
                   "--backends", "process", "--concurrency", "1", "--requests", "2", "--mode",
                   "batch", "--batch-size", "3", "--report", dir.path + "/batch"}) == 0);
  const auto batch = read_json(dir.path + "/batch/report.json");
  REQUIRE(batch["steps"].size() == 1);
  CHECK(batch["steps"][0]["requests"] == 2);
  CHECK(batch["steps"][0]["images"] == 6);
  CHECK(batch["steps"][0]["server_timing_ms"]["samples"] == 6);
  CHECK(batch["steps"][0]["errors"]["total"] == 0);
}

TEST_CASE("run_bench: url mode against a server that refuses the origin is a setup error") {
  test::ServerProcess server({"--access-log", "off"});  // loopback downloads forbidden
  CHECK(run_bench({"--url", server.base_url(), "--sizes", "64x48", "--per-size", "1", "--backends",
                   "tbb", "--concurrency", "1", "--requests", "1", "--mode", "url"}) == 2);
}

TEST_CASE("run_bench: an unreachable server and usage errors exit 2") {
  TempDir dir;
  const std::string url = "http://127.0.0.1:" + std::to_string(unused_port());
  CHECK(run_bench(
            {"--url", url, "--sizes", "vga", "--requests", "1", "--report", dir.path + "/r"}) == 2);
  CHECK_FALSE(fs::exists(dir.path + "/r/report.json"));
  CHECK(run_bench({"--duration", "1s", "--requests", "1"}) == 2);
  CHECK(run_bench({"--concurrency", "zero"}) == 2);
  CHECK(run_bench({"--help"}) == 0);

  test::ServerProcess server({"--access-log", "off"});
  CHECK(run_bench({"--url", server.base_url(), "--backends", "gpu", "--sizes", "vga", "--requests",
                   "1"}) == 2);
}

TEST_CASE("run_bench: every request rejected by the server exits 1 with the errors counted") {
  test::ServerProcess server({"--workers", "1", "--access-log", "off"});
  TempDir dir;
  const int status = run_bench({"--url", server.base_url(), "--sizes", "64x48", "--per-size", "1",
                                "--backends", "tbb", "--concurrency", "1,2", "--requests", "5",
                                "--ops", "blur:abc", "--report", dir.path});
  CHECK(status == 1);
  const auto report = read_json(dir.path + "/report.json");
  CHECK(report["exit_status"] == 1);
  CHECK(report["totals"]["errors"] == 10);
  REQUIRE(report["steps"].size() == 2);
  for (const auto& step : report["steps"]) {
    CHECK(step["requests"] == 5);
    CHECK(step["images"] == 0);
    CHECK(step["images_per_s"] == 0.0);
    CHECK(step["errors"]["total"] == 5);
    CHECK(step["errors"]["http"] == 5);
    // The server closes the connection when it refuses a request before
    // reading its body, so every answer is the real invalid_ops error (an
    // unread body once came back as "malformed HTTP request" 400s).
    CHECK(step["errors"]["by_kind"]["HTTP 400 invalid_ops"].get<int>() == 5);
    CHECK(step["errors"]["examples"]["HTTP 400 invalid_ops"].get<std::string>().find("blur") !=
          std::string::npos);
    CHECK(step["latency_ms"]["count"] == 0);
  }
  CHECK(fs::exists(dir.path + "/index.html"));
}

TEST_CASE("run_bench: SIGINT ends a long run early with status 130 and a report") {
  // The access log shows when the step's requests are flowing.
  test::ServerProcess server({"--workers", "1", "--access-log", "on"});
  TempDir dir;
  auto run = std::async(std::launch::async, [&] {
    return run_bench({"--url", server.base_url(), "--sizes", "vga", "--per-size", "1", "--backends",
                      "tbb,process", "--concurrency", "1", "--duration", "15s", "--warmup", "0",
                      "--report", dir.path});
  });
  // SIGINT once the tbb step is under way (a request served), not after a
  // guessed delay; bounded by a deadline.
  (void)test::wait_until(
      [&] {
        return server.log().find("POST /v1/process 200") != std::string::npos ||
               run.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
      },
      std::chrono::seconds(30), std::chrono::milliseconds(20));
  REQUIRE(server.log().find("POST /v1/process 200") != std::string::npos);
  kill(getpid(), SIGINT);
  // It stops at once rather than after the 15 s step: a deadline well short of it.
  REQUIRE(run.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
  CHECK(run.get() == 130);
  const auto report = read_json(dir.path + "/report.json");
  CHECK(report["interrupted"] == true);
  CHECK(report["exit_status"] == 130);
  REQUIRE(report["steps"].size() == 1);  // the process step never started
  CHECK(report["steps"][0]["interrupted"] == true);
  CHECK(report["steps"][0]["errors"]["total"] == 0);  // aborted requests are not errors
}
