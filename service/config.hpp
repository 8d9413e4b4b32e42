#pragma once
// Server configuration: command-line flags, each with an environment
// equivalent (PIXPOOL_<FLAG_IN_CAPS>). Precedence: flag > environment > default.
//
// Defaults live in one place: each part's options struct (TbbBackendOptions,
// DownloadOptions, ...) and the two structs below. Config embeds them as they
// are, --help prints their defaults, and main() hands each part its struct.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"
#include "pipeline/batch.hpp"
#include "pipeline/downloader.hpp"
#include "pipeline/process_pool_backend.hpp"
#include "pipeline/redis_client.hpp"
#include "pipeline/result_store.hpp"
#include "pipeline/tbb_backend.hpp"

namespace pixpool {

// The HTTP listener and how it treats connections. Every limit here is
// described, with why it has its default, in docs/security.md.
struct HttpOptions {
  std::string host = "0.0.0.0";
  int port = 8080;  // 0 = pick a free port (printed at startup)
  // Connection threads, started on demand up to this many; beyond it new
  // connections wait (FIFO). Idle and slow connections each hold one.
  int threads = 512;
  // Requests processing (or waiting on a backend, or streaming job events)
  // at once; more get 429. At most threads - 4, so health probes find a thread.
  int max_processing = 28;
  // Requests served per connection. 1 (the default): every response carries
  // "Connection: close" and the connection closes after it, so a pipelining
  // client gets an explicit close instead of a silently dropped request.
  // Raise it only behind a front that never pipelines (deploy/'s nginx).
  int keep_alive_requests = 1;
  std::chrono::seconds keep_alive_timeout{5};  // wait for a connection's next (or first) request
  std::size_t max_body_bytes = std::size_t{64} << 20;  // larger request bodies get 413
  std::chrono::seconds read_timeout{10};               // per socket read/write stall
  // The request head (request line + headers), which cpp-httplib does not
  // limit: longer or larger and the connection is shut down
  // (service/request_head_watchdog.hpp).
  std::chrono::milliseconds header_timeout = std::chrono::seconds{10};
  std::size_t max_header_bytes = std::size_t{64} << 10;
  std::chrono::seconds shutdown_timeout{30};  // SIGTERM: how long in-flight work may take
  bool access_log = true;
};

// Memory admission (pipeline/pixel_budget.hpp): decoded pixels in flight
// across both backends; a job that finds no room waits up to `wait`, then 429.
struct MemoryAdmissionOptions {
  std::uint64_t max_inflight_pixels = 100'000'000;
  std::chrono::milliseconds wait = std::chrono::seconds{10};
};

// Access control (service/access.hpp): API keys and CORS. Keys are never
// printed: --help shows how many, errors name a key's position.
struct AccessOptions {
  std::vector<std::string> api_keys;       // --api-keys / PIXPOOL_API_KEYS
  std::string api_keys_file;               // --api-keys-file: one key per line
  std::vector<std::string> api_file_keys;  // its keys, read at startup
  bool metrics_auth = false;               // /metrics needs a key too
  std::vector<std::string> cors_origins;   // allowed origins, or just "*"; empty = CORS off
};

struct Config {
  HttpOptions http;
  AccessOptions access;
  MemoryAdmissionOptions admission;
  // --max-queue sets max_pending of both backends; --tbb-threads, --workers,
  // --job-timeout and --worker-memory-mb the rest.
  TbbBackendOptions tbb;
  ProcessPoolOptions process;
  // Downloads (url= and batch URL items).
  DownloadOptions download;
  // Batches, jobs and stored results. Their id_prefix fields are left empty
  // here: main() derives them from replica_id.
  BatchRunnerOptions batches;
  ResultStoreOptions results;

  std::uint64_t max_pixels = 50'000'000;                   // larger images (by header) get 422
  std::size_t buffer_pool_bytes = std::size_t{256} << 20;  // idle pixel buffers kept for reuse
  std::string default_backend = "tbb";                     // tbb or process
  bool enable_test_ops = false;                            // sleep/crash/hog ops, for tests only
  // Default of ?exact=: true always decodes and blurs at full size, false
  // lets a leading blur decode JPEGs at a reduced scale (filters/band_limited.hpp).
  bool exact = false;
  // With the memory store: prefix of job/result ids ("r1" -> "r1-...").
  // With a Redis store: only this replica's name (no prefix; default
  // hostname:pid), in X-Pixpool-Replica and in the items it processed.
  std::string replica_id;
  // Where jobs, results and progress live: "memory" (this process) or a
  // Redis URL (pipeline/redis_job_store.hpp); store_endpoint is parsed from it.
  std::string store = "memory";
  std::optional<RedisEndpoint> store_endpoint;
  // How long a dead replica's claimed item waits before another takes it.
  std::chrono::milliseconds reclaim_after{30000};
};

struct CommandLine {
  Config config;
  bool help = false;
  bool version = false;
  // Not fatal, for stderr: e.g. an unknown PIXPOOL_* variable (likely a typo).
  std::vector<std::string> warnings;
};

// Reads `args` (without the program name) and the environment through
// `getenv` (nullptr = unset). `env_names` lists the names of every variable
// in the environment (as in environ): PIXPOOL_* ones that are not settings
// get a warning. Errors: invalid_parameter naming the flag or variable and
// the accepted range. A bad variable is not an error when a flag overrides it.
Result<CommandLine> parse_command_line(const std::vector<std::string>& args,
                                       const std::function<const char*(const char*)>& getenv,
                                       const std::vector<std::string>& env_names = {});

// The --help text: every flag, its variable, its default and its meaning.
std::string help_text();

// "64MiB", "512k", "1G", "1048576" -> bytes (binary multiples). nullopt if bad.
std::optional<std::uint64_t> parse_byte_size(std::string_view text);

// "30s", "500ms", "2m", "30" (seconds) -> milliseconds. nullopt if bad.
std::optional<std::int64_t> parse_duration_ms(std::string_view text);

// Inverses for display: 64 << 20 -> "64MiB", 1 << 30 -> "1GiB", 1000 -> "1000";
// 30s -> "30s", 1500ms -> "1500ms".
std::string format_byte_size(std::uint64_t bytes);
std::string format_duration(std::chrono::milliseconds duration);

}  // namespace pixpool
