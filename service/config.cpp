#include "service/config.hpp"

#include <cctype>
#include <charconv>
#include <limits>
#include <sstream>

namespace pixpool {
namespace {

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
  std::string value_hint;  // e.g. "N", "BYTES"; empty for on/off switches
  std::string help;
  std::function<std::string(const Config&)> show_default;
  // Stores `text` into the config; returns an error message or "".
  std::function<std::string(Config&, std::string_view)> set;
};

std::string env_name(const std::string& flag) {
  std::string out = "PIXPOOL_";
  for (char c : flag) out += c == '-' ? '_' : static_cast<char>(std::toupper(c));
  return out;
}

Option int_option(std::string flag, std::string help, int Config::*field, int min, int max) {
  return Option{flag, "N", std::move(help),
                [field](const Config& c) { return std::to_string(c.*field); },
                [field, min, max](Config& c, std::string_view text) -> std::string {
                  auto v = parse_int(text);
                  if (!v || *v < min || *v > max) {
                    return "must be an integer between " + std::to_string(min) + " and " +
                           std::to_string(max);
                  }
                  c.*field = static_cast<int>(*v);
                  return "";
                }};
}

template <class Field>
Option size_option(std::string flag, std::string help, Field Config::*field, std::uint64_t min,
                   std::uint64_t max, bool bytes) {
  return Option{flag, bytes ? "BYTES" : "N", std::move(help),
                [field](const Config& c) { return std::to_string(c.*field); },
                [field, min, max, bytes](Config& c, std::string_view text) -> std::string {
                  std::optional<std::uint64_t> v;
                  if (bytes) {
                    v = parse_byte_size(text);
                  } else if (auto i = parse_int(text); i && *i >= 0) {
                    v = static_cast<std::uint64_t>(*i);
                  }
                  if (!v || *v < min || *v > max) {
                    return "must be " + std::string(bytes ? "a size (e.g. 64MiB) " : "a number ") +
                           "between " + std::to_string(min) + " and " + std::to_string(max);
                  }
                  c.*field = static_cast<Field>(*v);
                  return "";
                }};
}

Option duration_option(std::string flag, std::string help, int Config::*field_ms,
                       std::int64_t min_ms, std::int64_t max_ms) {
  return Option{flag, "DURATION", std::move(help),
                [field_ms](const Config& c) {
                  const int ms = c.*field_ms;
                  return ms % 1000 == 0 ? std::to_string(ms / 1000) + "s"
                                        : std::to_string(ms) + "ms";
                },
                [field_ms, min_ms, max_ms](Config& c, std::string_view text) -> std::string {
                  auto v = parse_duration_ms(text);
                  if (!v || *v < min_ms || *v > max_ms) {
                    return "must be a duration (e.g. 30s, 500ms) between " +
                           std::to_string(min_ms) + "ms and " + std::to_string(max_ms / 1000) + "s";
                  }
                  c.*field_ms = static_cast<int>(*v);
                  return "";
                }};
}

Option switch_option(std::string flag, std::string help, bool Config::*field) {
  return Option{flag, "on|off", std::move(help),
                [field](const Config& c) { return std::string(c.*field ? "on" : "off"); },
                [field](Config& c, std::string_view t) -> std::string {
                  auto v = parse_bool(t);
                  if (!v) return "must be on or off";
                  c.*field = *v;
                  return "";
                }};
}

Option seconds_option(std::string flag, std::string help, int Config::*field_s, int min_s,
                      int max_s) {
  return Option{flag, "DURATION", std::move(help),
                [field_s](const Config& c) { return std::to_string(c.*field_s) + "s"; },
                [field_s, min_s, max_s](Config& c, std::string_view text) -> std::string {
                  auto v = parse_duration_ms(text);
                  if (!v || *v % 1000 != 0 || *v / 1000 < min_s || *v / 1000 > max_s) {
                    return "must be whole seconds (e.g. 30s) between " + std::to_string(min_s) +
                           "s and " + std::to_string(max_s) + "s";
                  }
                  c.*field_s = static_cast<int>(*v / 1000);
                  return "";
                }};
}

const std::vector<Option>& options() {
  static const std::vector<Option> all = {
      Option{"host", "ADDR", "address to listen on", [](const Config& c) { return c.host; },
             [](Config& c, std::string_view t) -> std::string {
               if (t.empty()) return "must not be empty";
               c.host = std::string(t);
               return "";
             }},
      int_option("port", "TCP port; 0 picks a free one", &Config::port, 0, 65535),
      int_option("http-threads", "HTTP connection threads (they wait; they do no pixel work)",
                 &Config::http_threads, 1, 1024),
      int_option("tbb-threads", "threads in the TBB arena; 0 = number of cores",
                 &Config::tbb_threads, 0, 1024),
      size_option("max-queue", "jobs queued or running per backend before 429 queue_full",
                  &Config::max_queue, 1, 1'000'000, false),
      size_option("max-body-bytes", "largest request body; larger gets 413",
                  &Config::max_body_bytes, 1024, std::uint64_t{1} << 34, true),
      size_option("max-pixels", "largest image (width*height, from its header); larger gets 422",
                  &Config::max_pixels, 1, std::uint64_t{1} << 32, false),
      size_option("max-inflight-pixels",
                  "memory budget: decoded pixels of all images being processed at once; "
                  "more wait, then get 429 (an image over it runs alone)",
                  &Config::max_inflight_pixels, 1, std::uint64_t{1} << 40, false),
      duration_option("admission-wait",
                      "how long a job may wait for room in the memory budget before 429",
                      &Config::admission_wait_ms, 0, 3'600'000),
      size_option("buffer-pool-bytes",
                  "idle pixel buffers kept for reuse (saves page faults), split evenly "
                  "between the server and its worker processes; 0 = none",
                  &Config::buffer_pool_bytes, 0, std::uint64_t{1} << 40, true),
      Option{"default-backend", "NAME", "backend used when a request names none: tbb or process",
             [](const Config& c) { return c.default_backend; },
             [](Config& c, std::string_view t) -> std::string {
               if (t != "tbb" && t != "process") return "must be one of: tbb, process";
               c.default_backend = std::string(t);
               return "";
             }},
      int_option("workers", "worker processes of the process backend; 0 = number of cores",
                 &Config::workers, 0, 256),
      duration_option("job-timeout",
                      "process backend: a job running longer is killed with its worker (504)",
                      &Config::job_timeout_ms, 10, 3'600'000),
      size_option("worker-memory-mb",
                  "process backend: address-space cap per worker in MiB; 0 = none",
                  &Config::worker_memory_mb, 0, 1u << 20, false),
      seconds_option("shutdown-timeout",
                     "on SIGTERM, how long in-flight requests may take before a hard exit",
                     &Config::shutdown_timeout_s, 1, 3600),
      seconds_option("read-timeout", "how long a client may stall while sending a request",
                     &Config::read_timeout_s, 1, 3600),
      switch_option("access-log", "one log line per request on stderr", &Config::access_log),
      int_option("io-threads", "threads downloading url= sources (separate from compute)",
                 &Config::io_threads, 1, 1024),
      duration_option("download-timeout", "connect + transfer time allowed per download",
                      &Config::download_timeout_ms, 100, 600'000),
      size_option("max-download-bytes", "largest source a download may fetch; larger gets 413",
                  &Config::max_download_bytes, 1024, std::uint64_t{1} << 34, true),
      switch_option("allow-private-sources",
                    "let downloads reach loopback/private/link-local addresses (SSRF risk)",
                    &Config::allow_private_sources),
      Option{"allowed-sources", "PREFIXES",
             "comma-separated URL prefixes whose hosts may be private (e.g. an internal origin)",
             [](const Config& c) {
               std::string out;
               for (const auto& p : c.allowed_sources) out += (out.empty() ? "" : ",") + p;
               return out.empty() ? std::string("none") : out;
             },
             [](Config& c, std::string_view t) -> std::string {
               c.allowed_sources.clear();
               while (!t.empty()) {
                 const auto comma = t.find(',');
                 std::string_view item = t.substr(0, comma);
                 if (!item.empty()) {
                   if (!item.starts_with("http://") && !item.starts_with("https://")) {
                     return "each prefix must start with http:// or https://";
                   }
                   c.allowed_sources.emplace_back(item);
                 }
                 if (comma == std::string_view::npos) break;
                 t.remove_prefix(comma + 1);
               }
               return "";
             }},
      int_option("batch-threads", "batch/job items in flight across all batches",
                 &Config::batch_threads, 1, 1024),
      size_option("max-batch-items", "most images in one batch or job", &Config::max_batch_items, 1,
                  100'000, false),
      size_option("results-max-bytes", "memory for stored batch/job outputs (oldest evicted)",
                  &Config::results_max_bytes, 1u << 20, std::uint64_t{1} << 40, true),
      size_option("results-max-entries", "most stored batch/job outputs",
                  &Config::results_max_entries, 1, 10'000'000, false),
      seconds_option("results-ttl", "how long stored outputs stay fetchable",
                     &Config::results_ttl_s, 1, 7 * 24 * 3600),
      Option{
          "replica-id", "NAME",
          "prefix of job and result ids, so a load balancer can route them (e.g. r1)",
          [](const Config& c) { return c.replica_id.empty() ? std::string("none") : c.replica_id; },
          [](Config& c, std::string_view t) -> std::string {
            for (char ch : t) {
              if (!std::isalnum(static_cast<unsigned char>(ch)))
                return "must be letters and digits";
            }
            c.replica_id = std::string(t);
            return "";
          }},
      switch_option("enable-test-ops",
                    "allow the test-only ops sleep, crash and hog (never in production)",
                    &Config::enable_test_ops),
  };
  return all;
}

const Option* find_option(std::string_view flag) {
  for (const Option& o : options()) {
    if (o.flag == flag) return &o;
  }
  return nullptr;
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

Result<CommandLine> parse_command_line(const std::vector<std::string>& args,
                                       const std::function<const char*(const char*)>& getenv) {
  CommandLine out;
  // Environment first, so flags override it.
  for (const Option& o : options()) {
    const std::string name = env_name(o.flag);
    if (const char* value = getenv(name.c_str()); value != nullptr) {
      if (std::string err = o.set(out.config, value); !err.empty()) {
        return Error{ErrorCode::invalid_parameter, name + "=" + value + ": " + err};
      }
    }
  }
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
      return Error{ErrorCode::invalid_parameter,
                   "unknown flag --" + std::string(flag) + " (see --help)"};
    }
    if (!value) {
      if (i + 1 >= args.size()) {
        return Error{ErrorCode::invalid_parameter, "--" + option->flag + " needs a value"};
      }
      value = args[++i];
    }
    if (std::string err = option->set(out.config, *value); !err.empty()) {
      return Error{ErrorCode::invalid_parameter, "--" + option->flag + "=" + *value + ": " + err};
    }
  }
  return out;
}

std::string help_text() {
  std::ostringstream out;
  const Config defaults;
  out << "pixpool: parallel image processing service (Gaussian blur + contour)\n\n"
         "Usage: pixpool [--flag value | --flag=value]...\n"
         "       pixpool bench --help     load-test a running server (see README)\n\n"
         "Every flag can also be set through the environment variable shown.\n\n";
  for (const Option& o : options()) {
    std::string left = "  --" + o.flag + (o.value_hint.empty() ? "" : " " + o.value_hint);
    out << left << std::string(left.size() < 28 ? 28 - left.size() : 1, ' ') << o.help << "\n"
        << std::string(28, ' ') << "[env " << env_name(o.flag) << ", default "
        << o.show_default(defaults) << "]\n";
  }
  out << "  -h, --help                  show this help\n"
         "  --version                   print the version\n";
  return out.str();
}

}  // namespace pixpool
