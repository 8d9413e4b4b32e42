#pragma once
// Server configuration: command-line flags, each with an environment
// equivalent (PIXPOOL_<FLAG_IN_CAPS>). Precedence: flag > environment > default.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "filters/status.hpp"

namespace pixpool {

struct Config {
  std::string host = "0.0.0.0";
  int port = 8080;                          // 0 = pick a free port (printed at startup)
  int http_threads = 32;                    // connections served at once
  int tbb_threads = 0;                      // 0 = number of cores
  std::size_t max_queue = 256;              // pending jobs per backend before 429
  std::size_t max_body_bytes = 64u << 20;   // larger request bodies get 413
  std::uint64_t max_pixels = 50'000'000;    // larger images (by header) get 422
  std::string default_backend = "tbb";      // tbb or process
  int workers = 0;                          // process-pool size; 0 = number of cores
  int job_timeout_ms = 30000;               // process backend: per-job deadline
  std::size_t worker_memory_mb = 0;         // process backend: address-space cap; 0 = none
  int shutdown_timeout_s = 30;              // SIGTERM: how long in-flight work may take
  int read_timeout_s = 30;                  // per socket read while receiving a request
  bool access_log = true;
  bool enable_test_ops = false;             // sleep/crash/hog ops, for tests only
};

struct CommandLine {
  Config config;
  bool help = false;
  bool version = false;
};

// Reads `args` (without the program name) and the environment through
// `getenv` (nullptr = unset). Errors: invalid_parameter naming the flag or
// variable and the accepted range.
Result<CommandLine> parse_command_line(
    const std::vector<std::string>& args,
    const std::function<const char*(const char*)>& getenv);

// The --help text: every flag, its variable, its default and its meaning.
std::string help_text();

// "64MiB", "512k", "1G", "1048576" -> bytes (binary multiples). nullopt if bad.
std::optional<std::uint64_t> parse_byte_size(std::string_view text);

// "30s", "500ms", "2m", "30" (seconds) -> milliseconds. nullopt if bad.
std::optional<std::int64_t> parse_duration_ms(std::string_view text);

}  // namespace pixpool
