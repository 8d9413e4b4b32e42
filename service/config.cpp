#include "service/config.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <limits>
#include <sstream>
#include <type_traits>
#include <utility>

#include "core/text.hpp"
#include "filters/op_chain.hpp"
#include "service/auth.hpp"
#include "service/cors.hpp"

namespace pixpool {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr std::uint64_t kKiB = std::uint64_t{1} << 10;
constexpr std::uint64_t kMiB = std::uint64_t{1} << 20;
constexpr std::uint64_t kGiB = std::uint64_t{1} << 30;
constexpr std::uint64_t kTiB = std::uint64_t{1} << 40;
constexpr int kMaxThreads = 1024;
constexpr milliseconds kHour = std::chrono::hours{1};
constexpr milliseconds kWeek = std::chrono::hours{7 * 24};
constexpr std::string_view kEnvPrefix = "PIXPOOL_";

// --max-queue sets both backends' limit, so they must share a default.
static_assert(TbbBackendOptions{}.max_pending == ProcessPoolOptions{}.max_pending,
              "--max-queue has one default: keep the backends' max_pending equal");

// PIXPOOL_* variables read by the project's scripts, not by the server: they
// may well be in its environment, and are not typos. PIXPOOL_TEST_ZYGOTE_FAILURES
// is the one test hook main() reads itself (only under --enable-test-ops).
constexpr std::string_view kToolVariables[] = {"PIXPOOL_BIN", "PIXPOOL_STACK_DIR", "PIXPOOL_URL",
                                               "PIXPOOL_NO_BUFFER_POOL",
                                               "PIXPOOL_TEST_ZYGOTE_FAILURES"};
constexpr std::string_view kToolVariablePrefixes[] = {"PIXPOOL_LB_"};  // nginx's template

std::optional<std::int64_t> parse_int(std::string_view text) {
  std::int64_t value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc{} || ptr != text.data() + text.size()) return std::nullopt;
  return value;
}

std::optional<bool> parse_bool(std::string_view text) {
  if (text == "1" || text == "true" || text == "yes" || text == "on") return true;
  if (text == "0" || text == "false" || text == "no" || text == "off") return false;
  return std::nullopt;
}

// One configurable setting: its flag, how to read it, and its help line.
struct Option {
  std::string flag;        // without the leading "--"
  std::string value_hint;  // e.g. "N", "BYTES", "on|off"
  std::string help;
  std::function<std::string(const Config&)> show_default;
  // Stores `text` into the config; returns an error message or "".
  std::function<std::string(Config&, std::string_view)> set;
  bool is_switch = false;  // on/off: the value may be left out, meaning on
  bool secret = false;     // errors never echo the value (API keys)
};

std::string env_name(std::string_view flag) {
  std::string out(kEnvPrefix);
  for (char c : flag) out += c == '-' ? '_' : static_cast<char>(std::toupper(c));
  return out;
}

// The fields an option reads and writes are named by a generic lambda,
// `[](auto& c) -> auto& { return c.part.field; }`, so the same accessor
// serves the setter (Config&) and the default shown in --help (const Config&).
template <class Get>
using FieldOf = std::remove_cvref_t<std::invoke_result_t<Get, Config&>>;

template <class Get>
Option int_option(std::string flag, std::string help, Get get, int min, int max) {
  static_assert(std::is_same_v<FieldOf<Get>, int>);
  return Option{std::move(flag), "N", std::move(help),
                [get](const Config& c) { return std::to_string(get(c)); },
                [get, min, max](Config& c, std::string_view text) -> std::string {
                  auto v = parse_int(text);
                  if (!v || *v < min || *v > max) {
                    return "must be an integer between " + std::to_string(min) + " and " +
                           std::to_string(max);
                  }
                  get(c) = static_cast<int>(*v);
                  return "";
                }};
}

// A count ("N"), or with `bytes` a size that takes k/M/G suffixes ("BYTES").
template <class Get>
Option size_option(std::string flag, std::string help, Get get, std::uint64_t min,
                   std::uint64_t max, bool bytes) {
  using Field = FieldOf<Get>;
  static_assert(std::is_unsigned_v<Field>);
  const auto show = [bytes](std::uint64_t v) {
    return bytes ? format_byte_size(v) : std::to_string(v);
  };
  return Option{std::move(flag), bytes ? "BYTES" : "N", std::move(help),
                [get, show](const Config& c) { return show(get(c)); },
                [get, show, min, max, bytes](Config& c, std::string_view text) -> std::string {
                  std::optional<std::uint64_t> v;
                  if (bytes) {
                    v = parse_byte_size(text);
                  } else if (auto i = parse_int(text); i && *i >= 0) {
                    v = static_cast<std::uint64_t>(*i);
                  }
                  if (!v || *v < min || *v > max) {
                    return "must be " + std::string(bytes ? "a size (e.g. 64MiB) " : "a number ") +
                           "between " + show(min) + " and " + show(max);
                  }
                  get(c) = static_cast<Field>(*v);
                  return "";
                }};
}

// A std::chrono field. Fields in seconds take whole seconds only.
template <class Get>
Option duration_option(std::string flag, std::string help, Get get, milliseconds min,
                       milliseconds max) {
  using Field = FieldOf<Get>;
  constexpr bool whole_seconds = std::is_same_v<Field, seconds>;
  static_assert(whole_seconds || std::is_same_v<Field, milliseconds>);
  return Option{std::move(flag), "DURATION", std::move(help),
                [get](const Config& c) { return format_duration(get(c)); },
                [get, min, max](Config& c, std::string_view text) -> std::string {
                  const auto v = parse_duration_ms(text);
                  if (!v || milliseconds{*v} < min || milliseconds{*v} > max ||
                      (whole_seconds && *v % 1000 != 0)) {
                    return std::string(whole_seconds ? "must be whole seconds (e.g. 30s)"
                                                     : "must be a duration (e.g. 30s, 500ms)") +
                           " between " + format_duration(min) + " and " + format_duration(max);
                  }
                  get(c) = std::chrono::duration_cast<Field>(milliseconds{*v});
                  return "";
                }};
}

template <class Get>
Option switch_option(std::string flag, std::string help, Get get) {
  static_assert(std::is_same_v<FieldOf<Get>, bool>);
  return Option{std::move(flag),
                "on|off",
                std::move(help),
                [get](const Config& c) { return std::string(get(c) ? "on" : "off"); },
                [get](Config& c, std::string_view t) -> std::string {
                  auto v = parse_bool(t);
                  if (!v) return "must be on or off";
                  get(c) = *v;
                  return "";
                },
                /*is_switch=*/true};
}

// Runs `after` once `option` has stored a value (for settings with two homes).
Option then(Option option, std::function<void(Config&)> after) {
  option.set = [set = std::move(option.set), after = std::move(after)](
                   Config& c, std::string_view text) -> std::string {
    std::string err = set(c, text);
    if (err.empty()) after(c);
    return err;
  };
  return option;
}

// "" when `path` is a readable file that holds a PEM certificate, else why not.
std::string check_ca_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "cannot open '" + path + "': " + std::strerror(errno);
  struct stat info {};
  std::string text;
  std::string err;
  if (::fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
    err = "'" + path + "' is not a regular file";
  } else {
    char buffer[1 << 16];
    for (;;) {
      const ssize_t n = ::read(fd, buffer, sizeof buffer);
      if (n > 0) {
        text.append(buffer, static_cast<std::size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        if (n < 0) err = "cannot read '" + path + "': " + std::strerror(errno);
        break;
      }
    }
  }
  ::close(fd);
  if (err.empty() && text.find("-----BEGIN CERTIFICATE-----") == std::string::npos) {
    err = "'" + path + "' holds no PEM certificate (-----BEGIN CERTIFICATE-----)";
  }
  return err;
}

// Access control (API keys, CORS): a list of strings shown as its count or
// joined with commas in --help.
std::string show_list(const std::vector<std::string>& items, bool count_only) {
  if (items.empty()) return "none";
  if (count_only) return std::to_string(items.size()) + " key(s)";
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : ",") + item;
  return out;
}

// Settings that only make sense together, checked once all are read.
std::string access_conflicts(const AccessOptions& access) {
  if (access.metrics_auth && access.api_keys.empty() && access.api_file_keys.empty()) {
    return "--metrics-auth needs API keys (--api-keys or --api-keys-file)";
  }
  return "";
}

const std::vector<Option>& options() {
  static const std::vector<Option> all = {
      Option{"host", "ADDR", "address to listen on", [](const Config& c) { return c.http.host; },
             [](Config& c, std::string_view t) -> std::string {
               if (t.empty()) return "must not be empty";
               c.http.host = std::string(t);
               return "";
             }},
      int_option(
          "port", "TCP port; 0 picks a free one", [](auto& c) -> auto& { return c.http.port; }, 0,
          65535),
      int_option(
          "http-threads",
          "most HTTP connection threads, started on demand (they wait; they do no pixel work); "
          "further connections wait for one",
          [](auto& c) -> auto& { return c.http.threads; }, 1, kMaxThreads),
      int_option(
          "max-processing",
          "requests processing or waiting on a backend at once (capped at http-threads - 4); "
          "more get 429",
          [](auto& c) -> auto& { return c.http.max_processing; }, 1, kMaxThreads),
      int_option(
          "keep-alive-requests",
          "requests per connection; 1 closes every connection after its response (safe for "
          "clients talking to pixpool directly); raise it behind a front that never pipelines",
          [](auto& c) -> auto& { return c.http.keep_alive_requests; }, 1, 100'000),
      duration_option(
          "keep-alive-timeout", "how long a connection may wait idle for its next request",
          [](auto& c) -> auto& { return c.http.keep_alive_timeout; }, seconds{1}, kHour),
      int_option(
          "tbb-threads", "threads in the TBB arena; 0 = number of cores",
          [](auto& c) -> auto& { return c.tbb.threads; }, 0, kMaxThreads),
      then(size_option(
               "max-queue", "jobs queued or running per backend before 429 queue_full",
               [](auto& c) -> auto& { return c.tbb.max_pending; }, 1, 1'000'000, false),
           [](Config& c) { c.process.max_pending = c.tbb.max_pending; }),
      size_option(
          "max-body-bytes", "largest request body; larger gets 413",
          [](auto& c) -> auto& { return c.http.max_body_bytes; }, kKiB, 16 * kGiB, true),
      size_option(
          "max-pixels", "largest image (width*height, from its header); larger gets 422",
          [](auto& c) -> auto& { return c.max_pixels; }, 1, std::uint64_t{1} << 32, false),
      size_option(
          "max-inflight-pixels",
          "memory budget: decoded pixels of all images being processed at once; "
          "more wait, then get 429 (an image over it runs alone)",
          [](auto& c) -> auto& { return c.admission.max_inflight_pixels; }, 1,
          std::uint64_t{1} << 40, false),
      duration_option(
          "admission-wait", "how long a job may wait for room in the memory budget before 429",
          [](auto& c) -> auto& { return c.admission.wait; }, milliseconds{0}, kHour),
      size_option(
          "buffer-pool-bytes",
          "idle pixel buffers kept for reuse (saves page faults), split evenly "
          "between the server and its worker processes; 0 = none",
          [](auto& c) -> auto& { return c.buffer_pool_bytes; }, 0, kTiB, true),
      Option{"default-backend", "NAME", "backend used when a request names none: tbb or process",
             [](const Config& c) { return c.default_backend; },
             [](Config& c, std::string_view t) -> std::string {
               if (t != "tbb" && t != "process") return "must be one of: tbb, process";
               c.default_backend = std::string(t);
               return "";
             }},
      int_option(
          "workers", "worker processes of the process backend; 0 = number of cores",
          [](auto& c) -> auto& { return c.process.workers; }, 0, 256),
      duration_option(
          "job-timeout", "process backend: a job running longer is killed with its worker (504)",
          [](auto& c) -> auto& { return c.process.job_timeout; }, milliseconds{10}, kHour),
      size_option(
          "worker-memory-mb", "process backend: address-space cap per worker in MiB; 0 = none",
          [](auto& c) -> auto& { return c.process.worker_memory_mb; }, 0, kMiB, false),
      duration_option(
          "shutdown-timeout", "on SIGTERM, how long in-flight requests may take before a hard exit",
          [](auto& c) -> auto& { return c.http.shutdown_timeout; }, seconds{1}, kHour),
      duration_option(
          "read-timeout",
          "how long a client may stall while sending a request or reading a response",
          [](auto& c) -> auto& { return c.http.read_timeout; }, seconds{1}, kHour),
      duration_option(
          "header-timeout",
          "how long a client may take to send a request's line and headers (from accept, or "
          "from the previous response); slower connections are shut down",
          [](auto& c) -> auto& { return c.http.header_timeout; }, milliseconds{100}, kHour),
      size_option(
          "max-header-bytes",
          "most bytes of a request's line and headers; a connection sending more is shut down",
          [](auto& c) -> auto& { return c.http.max_header_bytes; }, kKiB, 16 * kMiB, true),
      switch_option(
          "access-log", "one log line per request on stderr",
          [](auto& c) -> auto& { return c.http.access_log; }),
      // Access control: API keys and CORS.
      Option{"api-keys", "KEY,KEY",
             "API keys (comma-separated, 16-256 printable ASCII characters each; several for "
             "rotation): every route but /healthz, /readyz (and /metrics) then needs "
             "Authorization: Bearer KEY. Prefer the variable or --api-keys-file: flags show in ps",
             [](const Config& c) { return show_list(c.access.api_keys, true); },
             [](Config& c, std::string_view t) -> std::string {
               auto keys = parse_api_key_list(t);
               if (!keys) return keys.error().message;
               c.access.api_keys = std::move(*keys);
               return "";
             },
             /*is_switch=*/false, /*secret=*/true},
      Option{"api-keys-file", "PATH",
             "file of API keys, one per line (# comments); read at startup, its keys are "
             "valid together with --api-keys",
             [](const Config& c) {
               return c.access.api_keys_file.empty() ? std::string("none") : c.access.api_keys_file;
             },
             [](Config& c, std::string_view t) -> std::string {
               c.access.api_keys_file = std::string(t);
               c.access.api_file_keys.clear();
               if (t.empty()) return "";
               auto keys = read_api_key_file(c.access.api_keys_file);
               if (!keys) return keys.error().message;
               c.access.api_file_keys = std::move(*keys);
               return "";
             }},
      switch_option(
          "metrics-auth", "/metrics needs an API key too (it is open by default, for scrapers)",
          [](auto& c) -> auto& { return c.access.metrics_auth; }),
      Option{"cors-origins", "ORIGINS",
             "origins whose browser scripts may call the API, comma-separated "
             "(https://app.example,http://localhost:3000), or * for any; CORS is off without it",
             [](const Config& c) { return show_list(c.access.cors_origins, false); },
             [](Config& c, std::string_view t) -> std::string {
               auto origins = parse_cors_origins(t);
               if (!origins) return origins.error().message;
               c.access.cors_origins = std::move(*origins);
               return "";
             }},
      int_option(
          "io-threads", "threads downloading url= sources (separate from compute)",
          [](auto& c) -> auto& { return c.download.io_threads; }, 1, kMaxThreads),
      duration_option(
          "download-timeout", "connect + transfer time allowed per download",
          [](auto& c) -> auto& { return c.download.timeout; }, milliseconds{100},
          std::chrono::minutes{10}),
      size_option(
          "max-download-bytes", "largest source a download may fetch; larger gets 413",
          [](auto& c) -> auto& { return c.download.max_bytes; }, kKiB, 16 * kGiB, true),
      switch_option(
          "allow-private-sources",
          "let downloads reach loopback/private/link-local addresses (SSRF risk)",
          [](auto& c) -> auto& { return c.download.allow_private; }),
      Option{"allowed-sources", "PREFIXES",
             "comma-separated URL prefixes whose hosts may be private (e.g. an internal origin)",
             [](const Config& c) {
               std::string out;
               for (const auto& p : c.download.allowed_prefixes) {
                 out += (out.empty() ? "" : ",") + p;
               }
               return out.empty() ? std::string("none") : out;
             },
             [](Config& c, std::string_view t) -> std::string {
               c.download.allowed_prefixes.clear();
               while (!t.empty()) {
                 const auto comma = t.find(',');
                 std::string_view item = t.substr(0, comma);
                 if (!item.empty()) {
                   if (!item.starts_with("http://") && !item.starts_with("https://")) {
                     return "each prefix must start with http:// or https://";
                   }
                   c.download.allowed_prefixes.emplace_back(item);
                 }
                 if (comma == std::string_view::npos) break;
                 t.remove_prefix(comma + 1);
               }
               return "";
             }},
      Option{"download-ca-file", "PATH",
             "PEM file of CA certificates for https downloads (e.g. a private CA); "
             "replaces libcurl's default CA bundle file",
             [](const Config& c) {
               return c.download.ca_file.empty() ? std::string("none") : c.download.ca_file;
             },
             [](Config& c, std::string_view t) -> std::string {
               std::string path(t);
               if (!path.empty()) {
                 if (std::string err = check_ca_file(path); !err.empty()) return err;
               }
               c.download.ca_file = std::move(path);
               return "";
             }},
      // issue 11 (downloads): the download queue.
      size_option(
          "download-queue",
          "downloads waiting for an I/O thread (beyond --io-threads running); more get 429 "
          "download_queue_full; the wait counts toward --download-timeout",
          [](auto& c) -> auto& { return c.download.max_queued; }, 0, 1'000'000, false),
      int_option(
          "batch-threads", "batch/job items in flight across all batches",
          [](auto& c) -> auto& { return c.batches.threads; }, 1, kMaxThreads),
      size_option(
          "max-batch-items", "most images in one batch or job",
          [](auto& c) -> auto& { return c.batches.max_items; }, 1, 100'000, false),
      size_option(
          "results-max-bytes", "memory for stored batch/job outputs (oldest evicted)",
          [](auto& c) -> auto& { return c.results.max_bytes; }, kMiB, kTiB, true),
      size_option(
          "results-max-entries", "most stored batch/job outputs",
          [](auto& c) -> auto& { return c.results.max_entries; }, 1, 10'000'000, false),
      duration_option(
          "results-ttl", "how long stored outputs stay fetchable",
          [](auto& c) -> auto& { return c.results.ttl; }, seconds{1}, kWeek),
      size_option(
          "max-queued-bytes",
          "input bytes of batch/job items accepted but not finished (with a Redis store: "
          "across the cluster, held in Redis); beyond it 429 queue_full",
          [](auto& c) -> auto& { return c.batches.max_queued_bytes; }, kMiB, kTiB, true),
      Option{"store", "URL",
             "where jobs, results and progress live: memory (this process), or "
             "redis://[:password@]host[:port][/db] to share them (and the work) with every "
             "replica using the same Redis",
             [](const Config& c) {  // never the password
               return c.store_endpoint ? c.store_endpoint->display() : c.store;
             },
             [](Config& c, std::string_view t) -> std::string {
               if (t == "memory") {
                 c.store = "memory";
                 c.store_endpoint.reset();
                 return "";
               }
               auto endpoint = parse_redis_url(t);
               if (!endpoint) return endpoint.error().message;
               c.store = std::string(t);
               c.store_endpoint = std::move(endpoint.value());
               return "";
             },
             /*is_switch=*/false, /*secret=*/true},
      duration_option(
          "reclaim-after",
          "with a Redis store: how long an item may stay claimed by a replica that stopped "
          "heart-beating before another replica takes it over",
          [](auto& c) -> auto& { return c.reclaim_after; }, milliseconds{300}, 24 * kHour),
      Option{
          "replica-id", "NAME",
          "this replica's name; with --store memory also the prefix of job and result ids, so "
          "a load balancer can route them (e.g. r1)",
          [](const Config& c) { return c.replica_id.empty() ? std::string("none") : c.replica_id; },
          [](Config& c, std::string_view t) -> std::string {
            for (char ch : t) {
              if (!std::isalnum(static_cast<unsigned char>(ch))) {
                return "must be letters and digits";
              }
            }
            c.replica_id = std::string(t);
            return "";
          }},
      switch_option(
          "exact",
          "default of ?exact=: decode and blur at full size even where a blur makes a reduced "
          "JPEG decode (1/2, 1/4, 1/8) indistinguishable",
          [](auto& c) -> auto& { return c.exact; }),
      switch_option(
          "enable-test-ops", "allow the test-only ops sleep, crash and hog (never in production)",
          [](auto& c) -> auto& { return c.enable_test_ops; }),
  };
  return all;
}

const Option* find_option(std::string_view flag) {
  for (const Option& o : options()) {
    if (o.flag == flag) return &o;
  }
  return nullptr;
}

char upper(char c) {
  return static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
}

bool starts_with_ignoring_case(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size() &&
         std::equal(prefix.begin(), prefix.end(), text.begin(),
                    [](char x, char y) { return upper(x) == upper(y); });
}

// The candidate `word` was most likely meant to be, or "" when none is
// close: a few edits away (a typo), or the one candidate that extends or
// shortens it (PIXPOOL_MAX_BODY -> PIXPOOL_MAX_BODY_BYTES).
std::string closest(std::string_view word, const std::vector<std::string>& candidates,
                    std::size_t common_prefix = 0) {
  const std::size_t stem = word.size() - std::min(word.size(), common_prefix);
  const std::size_t max_edits = std::max<std::size_t>(2, stem / 4);
  std::string best;
  std::size_t best_distance = max_edits + 1;
  for (const std::string& c : candidates) {
    const std::size_t d = edit_distance(word, c);
    if (d < best_distance) {
      best_distance = d;
      best = c;
    }
  }
  if (!best.empty() || stem < 4) return best;
  std::string only;
  for (const std::string& c : candidates) {
    if (starts_with_ignoring_case(c, word) || starts_with_ignoring_case(word, c)) {
      if (!only.empty()) return "";  // ambiguous
      only = c;
    }
  }
  return only;
}

std::vector<std::string> flag_names() {
  std::vector<std::string> out;
  for (const Option& o : options()) out.push_back(o.flag);
  return out;
}

std::vector<std::string> env_names() {
  std::vector<std::string> out;
  for (const Option& o : options()) out.push_back(env_name(o.flag));
  return out;
}

bool is_tool_variable(std::string_view name) {
  return std::find(std::begin(kToolVariables), std::end(kToolVariables), name) !=
             std::end(kToolVariables) ||
         std::any_of(std::begin(kToolVariablePrefixes), std::end(kToolVariablePrefixes),
                     [name](std::string_view p) { return name.starts_with(p); });
}

// Warnings for PIXPOOL_* variables that set nothing: most likely typos.
std::vector<std::string> unknown_variable_warnings(const std::vector<std::string>& names) {
  const std::vector<std::string> known = env_names();
  std::vector<std::string> warnings;
  for (const std::string& name : names) {
    if (!name.starts_with(kEnvPrefix) || is_tool_variable(name)) continue;
    if (std::find(known.begin(), known.end(), name) != known.end()) continue;
    std::string warning = "unknown environment variable " + name + " is ignored";
    if (const std::string guess = closest(name, known, kEnvPrefix.size()); !guess.empty()) {
      warning += " (did you mean " + guess + "?)";
    }
    warnings.push_back(std::move(warning));
  }
  return warnings;
}

}  // namespace

std::optional<std::uint64_t> parse_byte_size(std::string_view text) {
  std::size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
  if (digits == 0) return std::nullopt;
  auto number = parse_int(text.substr(0, digits));
  if (!number) return std::nullopt;
  std::string unit;
  for (char c : text.substr(digits)) unit += static_cast<char>(std::tolower(c));
  std::uint64_t multiplier = 1;
  if (unit.empty() || unit == "b") {
    multiplier = 1;
  } else if (unit == "k" || unit == "kb" || unit == "kib") {
    multiplier = std::uint64_t{1} << 10;
  } else if (unit == "m" || unit == "mb" || unit == "mib") {
    multiplier = std::uint64_t{1} << 20;
  } else if (unit == "g" || unit == "gb" || unit == "gib") {
    multiplier = std::uint64_t{1} << 30;
  } else {
    return std::nullopt;
  }
  const auto value = static_cast<std::uint64_t>(*number);
  if (value > std::numeric_limits<std::uint64_t>::max() / multiplier) return std::nullopt;
  return value * multiplier;
}

std::optional<std::int64_t> parse_duration_ms(std::string_view text) {
  std::size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
  if (digits == 0 || digits > 12) return std::nullopt;
  auto number = parse_int(text.substr(0, digits));
  if (!number) return std::nullopt;
  const std::string_view unit = text.substr(digits);
  if (unit.empty() || unit == "s") return *number * 1000;
  if (unit == "ms") return *number;
  if (unit == "m") return *number * 60'000;
  return std::nullopt;
}

std::string format_byte_size(std::uint64_t bytes) {
  if (bytes == 0) return "0";
  constexpr std::pair<std::string_view, std::uint64_t> kUnits[] = {
      {"GiB", kGiB}, {"MiB", kMiB}, {"KiB", kKiB}};
  for (const auto& [unit, size] : kUnits) {
    if (bytes % size == 0) return std::to_string(bytes / size) + std::string(unit);
  }
  return std::to_string(bytes);
}

std::string format_duration(milliseconds duration) {
  const auto ms = duration.count();
  return ms % 1000 == 0 ? std::to_string(ms / 1000) + "s" : std::to_string(ms) + "ms";
}

Result<CommandLine> parse_command_line(const std::vector<std::string>& args,
                                       const std::function<const char*(const char*)>& getenv,
                                       const std::vector<std::string>& env_names) {
  CommandLine out;
  // Flags are read first but applied last: a flag overrides its variable,
  // so a bad variable that a flag overrides is not an error.
  std::vector<std::pair<const Option*, std::string>> flags;
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string_view arg = args[i];
    if (arg == "-h" || arg == "--help") {
      out.help = true;
      continue;
    }
    if (arg == "--version") {
      out.version = true;
      continue;
    }
    if (!arg.starts_with("--")) {
      return Error{ErrorCode::invalid_parameter,
                   "unexpected argument '" + std::string(arg) + "' (see --help)"};
    }
    arg.remove_prefix(2);
    std::string_view flag = arg;
    std::optional<std::string> value;
    if (auto eq = arg.find('='); eq != std::string_view::npos) {
      flag = arg.substr(0, eq);
      value = std::string(arg.substr(eq + 1));
    }
    const Option* option = find_option(flag);
    if (option == nullptr) {
      std::string message = "unknown flag --" + std::string(flag);
      if (const std::string guess = closest(flag, flag_names()); !guess.empty()) {
        message += " (did you mean --" + guess + "?)";
      }
      return Error{ErrorCode::invalid_parameter, message + " (see --help)"};
    }
    if (!value) {
      const bool has_next = i + 1 < args.size() && !args[i + 1].starts_with("--");
      if (option->is_switch) {
        // A bare switch means on; "--access-log off" still reads its value.
        value = has_next && parse_bool(args[i + 1]) ? args[++i] : "on";
      } else if (has_next) {
        value = args[++i];
      } else {
        return Error{ErrorCode::invalid_parameter, "--" + option->flag + " needs a value"};
      }
    }
    flags.emplace_back(option, std::move(*value));
  }

  for (const Option& o : options()) {
    const bool overridden =
        std::any_of(flags.begin(), flags.end(), [&o](const auto& f) { return f.first == &o; });
    if (overridden) continue;
    const std::string name = env_name(o.flag);
    if (const char* value = getenv(name.c_str()); value != nullptr) {
      if (std::string err = o.set(out.config, value); !err.empty()) {
        return Error{ErrorCode::invalid_parameter,
                     name + (o.secret ? "" : "=" + std::string(value)) + ": " + err};
      }
    }
  }
  for (const auto& [option, value] : flags) {
    if (std::string err = option->set(out.config, value); !err.empty()) {
      return Error{ErrorCode::invalid_parameter,
                   "--" + option->flag + (option->secret ? "" : "=" + value) + ": " + err};
    }
  }
  if (std::string err = access_conflicts(out.config.access); !err.empty()) {
    return Error{ErrorCode::invalid_parameter, err};
  }
  out.warnings = unknown_variable_warnings(env_names);
  return out;
}

std::string help_text() {
  const Config defaults;
  std::vector<std::pair<std::string, std::string>> rows;  // left column, description lines
  for (const Option& o : options()) {
    const std::string hint = o.is_switch ? " [" + o.value_hint + "]" : " " + o.value_hint;
    rows.emplace_back("--" + o.flag + hint, o.help + "\n[env " + env_name(o.flag) + ", default " +
                                                o.show_default(defaults) + "]");
  }
  rows.emplace_back("-h, --help", "show this help");
  rows.emplace_back("--version", "print the version");

  std::size_t width = 0;
  for (const auto& row : rows) width = std::max(width, row.first.size());
  const std::string indent = "  ";
  const std::size_t column = indent.size() + width + 2;

  std::ostringstream out;
  out << "pixpool: parallel image processing service (Gaussian blur + contour)\n\n"
         "Usage: pixpool [--flag value | --flag=value]...\n"
         "       pixpool bench --help     load-test a running server (see README)\n\n"
         "Every flag can also be set through the environment variable shown; the flag wins.\n"
         "An on|off flag given alone means on.\n\n";
  for (const auto& [left, description] : rows) {
    out << indent << left << std::string(column - indent.size() - left.size(), ' ');
    std::string_view rest = description;
    for (bool first = true; !rest.empty(); first = false) {
      const auto newline = rest.find('\n');
      if (!first) out << std::string(column, ' ');
      out << rest.substr(0, newline) << "\n";
      if (newline == std::string_view::npos) break;
      rest.remove_prefix(newline + 1);
    }
  }
  // The ops come from the registry, like their parsing and error messages.
  out << "\nOps (query parameter ops=, left to right, e.g. ops=blur:2.5,contour; default "
      << kDefaultOps << "):\n"
      << default_registry().help_text();
  return out.str();
}

}  // namespace pixpool
