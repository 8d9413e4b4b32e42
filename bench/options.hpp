#pragma once
// The command line of `pixpool bench`.

#include <cstdint>
#include <string>
#include <vector>

#include "bench/corpus.hpp"
#include "core/result.hpp"

namespace pixpool::bench {

// process: POST each image to /v1/process; url: GET /v1/process?url=... so
// the server downloads it (its I/O pool is measured); batch: POST
// --batch-size images per request to /v1/batch.
enum class Mode { process, url, batch };
const char* mode_name(Mode mode);

struct BenchOptions {
  std::string url = "http://127.0.0.1:8080";  // scheme://host[:port], no path
  std::string images_dir;                     // empty: generated corpus
  std::vector<SizeSpec> sizes;                // generated corpus sizes
  int per_size = 4;                           // generated images per size
  bool restarts = false;                      // generated JPEGs with a restart marker per MCU row
  std::vector<std::string> backends = {"tbb", "process"};
  std::vector<int> concurrency = {1, 4, 16};
  double duration_s = 10;      // per step; 0 when `requests` is set
  std::uint64_t requests = 0;  // per step; 0 when `duration_s` is set
  double warmup_s = 0;         // per step, before measuring
  std::string report_dir;      // empty: no report folder
  std::string ops;             // empty: the server's default chain
  std::string format;          // empty: the server's default (input's format)
  int quality = 0;             // 0: the server's default
  Mode mode = Mode::process;
  std::string source_url;  // url mode: origin prefix ending in '/'; empty: built-in origin
  int origin_port = 0;     // url mode, built-in origin: port on 127.0.0.1 (0 = any free)
  int batch_size = 8;
  double timeout_s = 60;    // per request
  bool full_verify = true;  // decode every output (else read its header only)
  int repeats = 1;          // runs of each backend x concurrency step
  std::string gnuplot = "gnuplot";
  bool help = false;
};

// Parses the arguments after `bench`. Flags take `--flag value` or
// `--flag=value`. Errors: invalid_parameter with a message naming the flag.
Result<BenchOptions> parse_bench_args(const std::vector<std::string>& args);

// "unknown flag --bogus", plus "(did you mean --X?)" for a near miss.
std::string unknown_flag_message(const std::string& flag);

// "10s", "500ms", "2m", "1.5" (seconds) -> seconds; -1 when malformed or negative.
double parse_duration_s(const std::string& text);

std::string bench_help_text();

}  // namespace pixpool::bench
