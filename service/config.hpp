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

#include "core/result.hpp"

namespace pixpool {

struct Config {
  std::string host = "0.0.0.0";
  int port = 8080;                         // 0 = pick a free port (printed at startup)
  int http_threads = 32;                   // connections served at once
  int tbb_threads = 0;                     // 0 = number of cores
  std::size_t max_queue = 256;             // pending jobs per backend before 429
  std::size_t max_body_bytes = 64u << 20;  // larger request bodies get 413
  std::uint64_t max_pixels = 50'000'000;   // larger images (by header) get 422
  // Memory admission (pipeline/pixel_budget.hpp): decoded pixels in flight
  // across both backends; more waits up to admission_wait_ms, then 429.
  std::uint64_t max_inflight_pixels = 100'000'000;
  int admission_wait_ms = 10000;
  std::size_t buffer_pool_bytes = 256u << 20;  // idle pixel buffers kept for reuse
  std::string default_backend = "tbb";         // tbb or process
  int workers = 0;                             // process-pool size; 0 = number of cores
  int job_timeout_ms = 30000;                  // process backend: per-job deadline
  std::size_t worker_memory_mb = 0;            // process backend: address-space cap; 0 = none
  int shutdown_timeout_s = 30;                 // SIGTERM: how long in-flight work may take
  int read_timeout_s = 30;                     // per socket read while receiving a request
  bool access_log = true;
  bool enable_test_ops = false;  // sleep/crash/hog ops, for tests only
  // Downloads (url= and batch URL items).
  int io_threads = 16;              // concurrent downloads
  int download_timeout_ms = 10000;  // per download, redirects included
  std::size_t max_download_bytes = 64u << 20;
  bool allow_private_sources = false;        // let downloads reach private addresses
  std::vector<std::string> allowed_sources;  // URL prefixes that may be private
  // Batches, jobs and stored results.
  int batch_threads = 32;  // batch items in flight across all batches
  std::size_t max_batch_items = 1000;
  std::size_t results_max_bytes = std::size_t{1} << 30;
  std::size_t results_max_entries = 100000;
  int results_ttl_s = 3600;
  std::string replica_id;  // prefix of job/result ids ("r1" -> "r1-...")
};

struct CommandLine {
  Config config;
  bool help = false;
  bool version = false;
};

// Reads `args` (without the program name) and the environment through
// `getenv` (nullptr = unset). Errors: invalid_parameter naming the flag or
// variable and the accepted range.
Result<CommandLine> parse_command_line(const std::vector<std::string>& args,
                                       const std::function<const char*(const char*)>& getenv);

// The --help text: every flag, its variable, its default and its meaning.
std::string help_text();

// "64MiB", "512k", "1G", "1048576" -> bytes (binary multiples). nullopt if bad.
std::optional<std::uint64_t> parse_byte_size(std::string_view text);

// "30s", "500ms", "2m", "30" (seconds) -> milliseconds. nullopt if bad.
std::optional<std::int64_t> parse_duration_ms(std::string_view text);

}  // namespace pixpool
