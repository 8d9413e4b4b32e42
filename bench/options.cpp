#include "bench/options.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <set>
#include <string_view>

#include "core/text.hpp"
#include "filters/image_format.hpp"

namespace pixpool::bench {
namespace {

Error bad(std::string message) {
  return Error{ErrorCode::invalid_parameter, std::move(message)};
}

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= text.size()) {
    const std::size_t comma = text.find(',', start);
    const std::size_t end = comma == std::string::npos ? text.size() : comma;
    if (end > start) out.push_back(text.substr(start, end - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

// A whole-string integer in [lo, hi]; false otherwise.
bool parse_int(const std::string& text, long long lo, long long hi, long long& out) {
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, out);
  return ec == std::errc() && ptr == end && out >= lo && out <= hi;
}

// Every flag bench knows; all but --help and -h take a value.
constexpr std::array<std::string_view, 24> kFlags = {
    "--url",         "--images",   "--sizes",    "--per-size", "--restarts",   "--backends",
    "--concurrency", "--duration", "--requests", "--warmup",   "--timeout",    "--report",
    "--ops",         "--format",   "--quality",  "--mode",     "--source-url", "--origin-port",
    "--batch-size",  "--verify",   "--gnuplot",  "--repeats",  "--help",       "-h"};

bool is_known_flag(const std::string& flag) {
  return std::find(kFlags.begin(), kFlags.end(), flag) != kFlags.end();
}

}  // namespace

std::string unknown_flag_message(const std::string& flag) {
  std::string message = "unknown flag " + flag;
  std::string_view best;
  std::size_t best_distance = 3;  // suggest only close misspellings
  for (std::string_view known : kFlags) {
    if (known.size() < 3) continue;  // not -h
    const std::size_t d = edit_distance(flag.starts_with("--") ? flag : "-" + flag, known);
    if (d < best_distance) {
      best_distance = d;
      best = known;
    }
  }
  if (!best.empty()) message += " (did you mean " + std::string(best) + "?)";
  return message;
}

const char* mode_name(Mode mode) {
  switch (mode) {
    case Mode::process:
      return "process";
    case Mode::url:
      return "url";
    case Mode::batch:
      return "batch";
  }
  return "?";
}

double parse_duration_s(const std::string& text) {
  double scale = 1.0;
  std::string number = text;
  if (text.ends_with("ms")) {
    scale = 0.001;
    number = text.substr(0, text.size() - 2);
  } else if (text.ends_with("s")) {
    number = text.substr(0, text.size() - 1);
  } else if (text.ends_with("m")) {
    scale = 60.0;
    number = text.substr(0, text.size() - 1);
  } else if (text.ends_with("h")) {
    scale = 3600.0;
    number = text.substr(0, text.size() - 1);
  }
  double value = 0;
  const char* end = number.data() + number.size();
  auto [ptr, ec] = std::from_chars(number.data(), end, value);
  if (number.empty() || ec != std::errc() || ptr != end || !std::isfinite(value) || value < 0) {
    return -1;
  }
  return value * scale;
}

Result<BenchOptions> parse_bench_args(const std::vector<std::string>& args) {
  BenchOptions o;
  bool have_duration = false;
  bool have_requests = false;
  bool have_warmup = false;
  std::string sizes = "vga,1080p,12mp";

  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string flag = args[i];
    std::string value;
    bool inline_value = false;
    if (const auto eq = flag.find('='); flag.starts_with("--") && eq != std::string::npos) {
      value = flag.substr(eq + 1);
      flag = flag.substr(0, eq);
      inline_value = true;
    }
    if (flag == "--help" || flag == "-h") {
      o.help = true;
      continue;
    }
    if (!flag.starts_with("--")) {
      if (flag.starts_with("-") && flag.size() > 1) return bad(unknown_flag_message(flag));
      return bad("unexpected argument '" + flag + "' (flags start with --)");
    }
    // Known before its value is looked at: `--bogus` alone must not read as
    // "--bogus needs a value".
    if (!is_known_flag(flag)) return bad(unknown_flag_message(flag));
    if (!inline_value) {
      if (i + 1 >= args.size()) return bad(flag + " needs a value");
      if (args[i + 1].starts_with("--")) {
        return bad(flag + " needs a value, but the next argument is the flag " + args[i + 1]);
      }
      value = args[++i];
    }
    long long n = 0;
    if (flag == "--url") {
      if (!value.starts_with("http://") && !value.starts_with("https://")) {
        return bad("--url must start with http:// or https://, got '" + value + "'");
      }
      while (value.ends_with("/")) value.pop_back();
      if (value.find('/', value.find("//") + 2) != std::string::npos) {
        return bad("--url takes scheme://host[:port] without a path, got '" + value + "'");
      }
      o.url = value;
    } else if (flag == "--images") {
      o.images_dir = value;
    } else if (flag == "--sizes") {
      sizes = value;
    } else if (flag == "--per-size") {
      if (!parse_int(value, 1, 1000, n))
        return bad("--per-size must be 1..1000, got '" + value + "'");
      o.per_size = static_cast<int>(n);
    } else if (flag == "--restarts") {
      if (value != "on" && value != "off") {
        return bad("--restarts must be on or off, got '" + value + "'");
      }
      o.restarts = value == "on";
    } else if (flag == "--backends") {
      o.backends = split_list(value);
      if (o.backends.empty()) return bad("--backends needs at least one name");
    } else if (flag == "--concurrency") {
      o.concurrency.clear();
      for (const auto& item : split_list(value)) {
        if (!parse_int(item, 1, 1024, n)) {
          return bad("--concurrency takes numbers 1..1024 separated by commas, got '" + item + "'");
        }
        o.concurrency.push_back(static_cast<int>(n));
      }
      if (o.concurrency.empty()) return bad("--concurrency needs at least one number");
    } else if (flag == "--duration") {
      o.duration_s = parse_duration_s(value);
      if (o.duration_s <= 0 || o.duration_s > 86400) {
        return bad("--duration must be a duration like 10s, 500ms or 2m, got '" + value + "'");
      }
      have_duration = true;
    } else if (flag == "--requests") {
      if (!parse_int(value, 1, 100'000'000, n)) {
        return bad("--requests must be 1..100000000, got '" + value + "'");
      }
      o.requests = static_cast<std::uint64_t>(n);
      have_requests = true;
    } else if (flag == "--warmup") {
      o.warmup_s = parse_duration_s(value);
      if (o.warmup_s < 0 || o.warmup_s > 3600) {
        return bad("--warmup must be a duration like 1s or 0, got '" + value + "'");
      }
      have_warmup = true;
    } else if (flag == "--timeout") {
      o.timeout_s = parse_duration_s(value);
      if (o.timeout_s < 0.001 || o.timeout_s > 3600) {
        return bad("--timeout must be a duration like 60s, got '" + value + "'");
      }
    } else if (flag == "--report") {
      if (value.empty()) return bad("--report needs a folder");
      o.report_dir = value;
    } else if (flag == "--ops") {
      o.ops = value;
    } else if (flag == "--format") {
      if (!parse_output_format(value)) {
        return bad("--format must be jpeg, jpg, png or webp, got '" + value + "'");
      }
      o.format = value;
    } else if (flag == "--quality") {
      if (!parse_int(value, 1, 100, n)) return bad("--quality must be 1..100, got '" + value + "'");
      o.quality = static_cast<int>(n);
    } else if (flag == "--mode") {
      if (value == "process") {
        o.mode = Mode::process;
      } else if (value == "url") {
        o.mode = Mode::url;
      } else if (value == "batch") {
        o.mode = Mode::batch;
      } else {
        return bad("--mode must be process, url or batch, got '" + value + "'");
      }
    } else if (flag == "--source-url") {
      if (!value.starts_with("http://") && !value.starts_with("https://")) {
        return bad("--source-url must start with http:// or https://, got '" + value + "'");
      }
      if (!value.ends_with("/")) value += "/";
      o.source_url = value;
    } else if (flag == "--origin-port") {
      if (!parse_int(value, 0, 65535, n)) return bad("--origin-port must be 0..65535");
      o.origin_port = static_cast<int>(n);
    } else if (flag == "--batch-size") {
      if (!parse_int(value, 1, 1000, n))
        return bad("--batch-size must be 1..1000, got '" + value + "'");
      o.batch_size = static_cast<int>(n);
    } else if (flag == "--verify") {
      if (value != "full" && value != "header") {
        return bad("--verify must be full or header, got '" + value + "'");
      }
      o.full_verify = value == "full";
    } else if (flag == "--gnuplot") {
      o.gnuplot = value;
    } else if (flag == "--repeats") {
      if (!parse_int(value, 1, 100, n)) return bad("--repeats must be 1..100, got '" + value + "'");
      o.repeats = static_cast<int>(n);
    } else {
      return bad(unknown_flag_message(flag));  // in kFlags but not handled above
    }
  }
  if (o.help) return o;

  if (have_duration && have_requests) return bad("give either --duration or --requests, not both");
  if (have_requests) o.duration_s = 0;
  // Warm-up by default only for timed runs, so --requests N sends exactly N.
  if (!have_warmup && !have_requests) o.warmup_s = 1;

  std::set<std::string> seen;
  for (const auto& backend : o.backends) {
    if (!seen.insert(backend).second) return bad("--backends names '" + backend + "' twice");
  }
  if (o.images_dir.empty()) {
    for (const auto& item : split_list(sizes)) {
      auto size = parse_size(item);
      if (!size) return bad("--sizes: " + size.error().message);
      o.sizes.push_back(*size);
    }
    if (o.sizes.empty()) return bad("--sizes needs at least one size");
  }
  if (o.mode != Mode::url && (!o.source_url.empty() || o.origin_port != 0)) {
    return bad("--source-url and --origin-port need --mode url");
  }
  if (!o.source_url.empty() && o.origin_port != 0) {
    return bad("--origin-port is for the built-in origin; it cannot go with --source-url");
  }
  return o;
}

std::string bench_help_text() {
  return R"(Usage: pixpool bench --url URL --backends tbb,process --concurrency 1,4,16
                     (--duration 10s | --requests N) [--report DIR] [options]

Load-tests a running pixpool server. For each backend and each concurrency
it runs that many client threads (one keep-alive connection each), verifies
every response, and prints images/s, MB/s (input), latency percentiles and
errors. With --report it writes report.json, throughput.svg, latency.svg
(made by gnuplot, when installed) and a self-contained index.html.

Target and workload:
  --url URL            the server (default http://127.0.0.1:8080); /healthz must answer
  --backends LIST      backends to compare, comma-separated (default tbb,process)
  --concurrency LIST   concurrent clients per step, 1..1024 each (default 1,4,16)
  --duration D         how long each step measures: 10s, 500ms, 2m (default 10s)
  --requests N         or: exactly N requests per step (with no warm-up by default)
  --warmup D           unmeasured traffic before each step (default 1s, 0 with --requests)
  --timeout D          per-request timeout (default 60s)
  --repeats N          run each step N times, 1..100 (default 1); the report then
                       shows the median and min..max of img/s, p50 and p99
  --ops CHAIN          the op chain, e.g. blur:5,contour (default: the server's)
  --format F           output format jpeg, png or webp (default: the server's choice)
  --quality Q          JPEG/WebP quality 1..100 (default: the server's)

Images:
  --images DIR         send the images in DIR (JPEG, PNG, WebP, BMP, TIFF)
  --sizes LIST         else generate photo-like JPEGs (quality 90) of these sizes:
                       vga (640x480), 720p, 1080p (1920x1080), 4k, 12mp (4032x3024)
                       or WxH (default vga,1080p,12mp)
  --per-size N         generated images per size (default 4)
  --restarts on|off    on: the generated JPEGs have a restart marker at every MCU
                       row, as many cameras write them, so the server decodes
                       them in parallel strips (default off: like cv::imencode)

Modes:
  --mode process       POST each image to /v1/process (default)
  --mode url           GET /v1/process?url=SOURCE/NAME: the server downloads each
                       image, so its I/O pool is measured too
  --source-url PREFIX  url mode: an origin that serves the images by file name;
                       without it, a built-in origin on 127.0.0.1 serves them. The
                       server must allow it: --allowed-sources PREFIX or
                       --allow-private-sources on
  --origin-port P      url mode: the built-in origin's port (default: any free port)
  --mode batch         POST --batch-size images per request to /v1/batch
  --batch-size N       images per batch request, 1..1000 (default 8)

Checks and output:
  --verify full|header full (default) decodes every output image; header reads only
                       its header. Both check the status, the Content-Type, the
                       backend and the size (the same as the input's). Decoding
                       costs client CPU (report.json: client_cpu_s), which on one
                       machine competes with the server
  --report DIR         write report.json, throughput.svg, latency.svg, index.html
  --gnuplot PATH       the gnuplot to run (default gnuplot; plots are skipped without it)
  --help               this text

Exit status: 0 when every response was verified, 1 when any request failed
or a response did not verify, 2 on usage errors or when the server is not
reachable at the start, 130 when interrupted (Ctrl-C; the report still covers
the steps run so far).
)";
}

}  // namespace pixpool::bench
