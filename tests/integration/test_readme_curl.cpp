// The curl commands of README.md, run exactly as written (only the port is
// changed) against the real server. Each command must also appear verbatim in
// the README, so the documentation cannot drift from what is tested.
#include <doctest/doctest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <string>

#include "filters/op_registry.hpp"
#include "tests/support/images.hpp"
#include "tests/support/server_process.hpp"

#ifndef PIXPOOL_README
#error "PIXPOOL_README must be defined by the build"
#endif

using namespace pixpool;

namespace {

// Replaces "localhost:8080" with the test server's address and runs the
// command inside `dir` (where photo.jpg lives).
test::CommandResult run_readme_command(const std::string& command, const std::string& dir,
                                       int port) {
  std::string line = command;
  const std::string from = "localhost:8080";
  const std::string to = "127.0.0.1:" + std::to_string(port);
  for (auto at = line.find(from); at != std::string::npos; at = line.find(from, at)) {
    line.replace(at, from.size(), to);
  }
  return test::run_command("cd '" + dir + "' && " + line);
}

void require_in_readme(const std::string& command) {
  static const std::string readme = test::read_file(PIXPOOL_README);
  INFO("README.md must show this command verbatim: " << command);
  CHECK(readme.find(command) != std::string::npos);
}

}  // namespace

TEST_CASE("README curl commands work as written") {
  test::ServerProcess server;
  const std::string dir = test::make_temp_dir("readme");
  test::write_file(dir + "/photo.jpg", test::read_test_data("fruits_320x240.jpg"));
  auto run = [&](const std::string& command) {
    require_in_readme(command);
    return run_readme_command(command, dir, server.port());
  };

  SUBCASE("the sample photo the README copies") {
    const std::string sample_dir = dir + "/tests/data";
    std::filesystem::create_directories(sample_dir);
    test::write_file(sample_dir + "/fruits_320x240.jpg",
                     test::read_test_data("fruits_320x240.jpg"));
    std::filesystem::remove(dir + "/photo.jpg");
    REQUIRE(run("cp tests/data/fruits_320x240.jpg photo.jpg").exit_code == 0);
    CHECK(test::read_file(dir + "/photo.jpg") == test::read_test_data("fruits_320x240.jpg"));
  }
  SUBCASE("a light blur shows clearly darker lines than the default chain") {
    REQUIRE(run("curl --data-binary @photo.jpg localhost:8080/v1/process -o out.jpg").exit_code ==
            0);
    REQUIRE(run("curl --data-binary @photo.jpg "
                "'localhost:8080/v1/process?ops=blur:1,contour' -o lines.jpg")
                .exit_code == 0);
    const double default_mean =
        cv::mean(test::decode_with_opencv(test::read_file(dir + "/out.jpg")))[0];
    const double lines_mean =
        cv::mean(test::decode_with_opencv(test::read_file(dir + "/lines.jpg")))[0];
    CHECK(default_mean > 250);  // the recipe's chain: almost white
    CHECK(lines_mean < default_mean - 5);
  }
  SUBCASE("process one photo") {
    const std::string cmd = "curl --data-binary @photo.jpg localhost:8080/v1/process -o out.jpg";
    REQUIRE(run(cmd).exit_code == 0);
    const cv::Mat out = test::decode_with_opencv(test::read_file(dir + "/out.jpg"));
    CHECK(out.size() == cv::Size(320, 240));
  }
  SUBCASE("the process backend returns the same bytes") {
    REQUIRE(run("curl --data-binary @photo.jpg localhost:8080/v1/process -o out.jpg").exit_code ==
            0);
    REQUIRE(run("curl --data-binary @photo.jpg 'localhost:8080/v1/process?backend=process' -o "
                "out-process.jpg")
                .exit_code == 0);
    const std::string tbb = test::read_file(dir + "/out.jpg");
    CHECK(tbb.size() > 1000);
    CHECK(test::read_file(dir + "/out-process.jpg") == tbb);
  }
  SUBCASE("multipart upload with ops and format") {
    const std::string cmd =
        "curl -F image=@photo.jpg 'localhost:8080/v1/process?ops=blur:2.5,contour&format=png' "
        "-o out.png";
    REQUIRE(run(cmd).exit_code == 0);
    const std::string png = test::read_file(dir + "/out.png");
    CHECK(png.substr(1, 3) == "PNG");
  }
  SUBCASE("webp with quality") {
    const std::string cmd =
        "curl --data-binary @photo.jpg 'localhost:8080/v1/process?format=webp&quality=80' -o "
        "out.webp";
    REQUIRE(run(cmd).exit_code == 0);
    CHECK(test::read_file(dir + "/out.webp").substr(8, 4) == "WEBP");
  }
  SUBCASE("headers show backend and stage timings") {
    const auto r =
        run("curl -s -D - -o /dev/null --data-binary @photo.jpg localhost:8080/v1/process");
    REQUIRE(r.exit_code == 0);
    CHECK(r.output.find("X-Pixpool-Backend: tbb") != std::string::npos);
    CHECK(r.output.find("Server-Timing: queue;dur=") != std::string::npos);
  }
  SUBCASE("a bad op gets a JSON error naming it") {
    const auto r = run("curl -s --data-binary @photo.jpg 'localhost:8080/v1/process?ops=blur:abc'");
    REQUIRE(r.exit_code == 0);
    const auto body = nlohmann::json::parse(r.output);
    CHECK(body["error"]["code"] == "invalid_ops");
  }
  SUBCASE("a POST without a body is answered at once, not after a timeout") {
    const auto r = run_readme_command(
        "curl -s -m 10 -o /dev/null -w '%{http_code}' -X POST localhost:8080/v1/process", dir,
        server.port());
    CHECK(r.output == "400");
  }
  SUBCASE("health") {
    const auto r = run("curl localhost:8080/healthz");
    CHECK(r.output.find("\"ok\"") != std::string::npos);
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("README's table of ops is the registry's") {
  const std::string readme = test::read_file(PIXPOOL_README);
  const std::string table = builtin_registry().markdown();
  INFO("README.md's Filters section must hold exactly:\n" << table);
  CHECK(readme.find(table) != std::string::npos);
}
