#pragma once
// Runs one benchmark step (one backend at one concurrency) against a server,
// verifies every response, and collects latency, throughput and errors.

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "bench/corpus.hpp"
#include "bench/histogram.hpp"
#include "bench/options.hpp"

namespace httplib {
class Response;
}

namespace pixpool::bench {

// What every step sends, apart from the backend and the concurrency.
struct Target {
  std::string base_url;  // scheme://host:port
  Mode mode = Mode::process;
  std::string ops;         // empty: not sent
  std::string format;      // empty: not sent
  int quality = 0;         // 0: not sent
  std::string source_url;  // url mode: prefix ending in '/'
  int batch_size = 1;
  double timeout_s = 60;
  bool full_verify = true;
};

struct StepSpec {
  std::string backend;
  int concurrency = 1;
  double duration_s = 0;       // measure this long, or
  std::uint64_t requests = 0;  // exactly this many requests (when > 0)
  double warmup_s = 0;
};

// Errors by kind, e.g. "HTTP 400 invalid_ops", "verify: size",
// "connection: timed out". The unit is a request in process and url mode and an
// image in batch mode (a failed batch request fails all its images).
struct ErrorCounts {
  std::uint64_t http = 0;          // the server answered with an error status
  std::uint64_t verification = 0;  // a 200 that did not verify
  std::uint64_t connection = 0;    // no answer: refused, reset, timed out
  std::map<std::string, std::uint64_t> by_kind;
  std::map<std::string, std::string> first_message;  // one example per kind

  std::uint64_t total() const { return http + verification + connection; }
  void merge(const ErrorCounts& other);
};

// The stages of the server's Server-Timing header, in its order.
inline constexpr std::array<const char*, 6> kStages = {"queue",  "download", "decode",
                                                       "filter", "encode",   "total"};
// Sums of the stages' milliseconds over `samples` images; means are sum/samples.
struct StageTimes {
  std::array<double, kStages.size()> sum_ms{};
  std::uint64_t samples = 0;
  void add(const std::array<double, kStages.size()>& ms);
  void merge(const StageTimes& other);
  double mean_ms(std::size_t stage) const { return samples == 0 ? 0 : sum_ms[stage] / samples; }
};

struct StepResult {
  std::string backend;
  int concurrency = 0;
  std::uint64_t requests = 0;     // HTTP requests finished, verified or not
  std::uint64_t images_ok = 0;    // images that verified
  std::uint64_t input_bytes = 0;  // input bytes of those images
  double elapsed_s = 0;           // wall time of the measured phase
  LatencyHistogram latency;       // of requests that verified (upload to last byte)
  ErrorCounts errors;
  StageTimes stages;         // from Server-Timing (or batch timings_ms)
  bool interrupted = false;  // Ctrl-C cut the step short
  // CPU time (user + system) this process spent in the measured phase:
  // sending, receiving and verifying. On a small machine it competes with
  // the server; --verify header lowers it.
  double client_cpu_s = 0;
  // The machine during the measured phase: its CPU busy share (0..1, from
  // /proc/stat) and the 1-minute load average at the end; -1 when unknown.
  double system_busy = -1;
  double load1 = -1;
  int repeat = 1;  // which run of this backend x concurrency (--repeats)

  double images_per_s() const { return elapsed_s > 0 ? images_ok / elapsed_s : 0; }
  double megabytes_per_s() const { return elapsed_s > 0 ? input_bytes / 1e6 / elapsed_s : 0; }
};

// Runs the warm-up (unmeasured) and then the measured phase. Never throws
// for server or network trouble: those become errors in the result.
StepResult run_step(const Target& target, const Corpus& corpus, const StepSpec& spec);

// Parses "queue;dur=0.1, download;dur=0, ..." into milliseconds per stage
// (in kStages order); nullopt when the header lacks any stage or is malformed.
std::optional<std::array<double, kStages.size()>> parse_server_timing(std::string_view header);

// Checks one /v1/process response for `input`: status 200 is assumed; the
// Content-Type, X-Pixpool-Backend, that the body is an image (decoded fully
// or by header) and that its size equals the input's. Returns an error kind
// ("verify: ...") and a message, or nullopt when it verifies.
struct VerifyFailure {
  std::string kind;
  std::string message;
};
std::optional<VerifyFailure> verify_image_response(const httplib::Response& response,
                                                   const CorpusImage& input, const Target& target,
                                                   const std::string& backend);

// The output format the server should answer with for `input`.
ImageFormat expected_format(const CorpusImage& input, const Target& target);

// Percent-encodes everything but RFC 3986 unreserved characters.
std::string url_encode(std::string_view text);

// Ctrl-C support: request_stop() (async-signal-safe) makes running steps end
// early and aborts requests in flight; reset_stop() clears it.
void request_stop();
bool stop_requested();
void reset_stop();

}  // namespace pixpool::bench
