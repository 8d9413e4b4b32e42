// run_bench(): parses the command line, checks the server, builds the corpus,
// runs every backend x concurrency step and writes the report.

#include <httplib.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <thread>

#include "bench/bench.hpp"
#include "bench/connection.hpp"
#include "bench/corpus.hpp"
#include "bench/machine.hpp"
#include "bench/options.hpp"
#include "bench/report.hpp"
#include "bench/runner.hpp"

namespace pixpool {
namespace {

using namespace bench;

constexpr int kExitOk = 0;
constexpr int kExitFailures = 1;
constexpr int kExitUsage = 2;
constexpr int kExitInterrupted = 130;

extern "C" void on_stop_signal(int signal_number) {
  if (stop_requested()) {  // a second Ctrl-C: stop at once
    ::signal(signal_number, SIG_DFL);
    ::raise(signal_number);
    return;
  }
  request_stop();
  static const char kMessage[] =
      "\npixpool bench: interrupted; finishing the report (Ctrl-C again to quit now)\n";
  [[maybe_unused]] const auto written = ::write(STDERR_FILENO, kMessage, sizeof kMessage - 1);
}

// Installs the stop handlers for run_bench's lifetime and restores the old ones.
class SignalScope {
 public:
  SignalScope() {
    reset_stop();
    struct sigaction action {};
    action.sa_handler = on_stop_signal;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, &old_int_);
    sigaction(SIGTERM, &action, &old_term_);
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    sigemptyset(&ignore.sa_mask);
    sigaction(SIGPIPE, &ignore, &old_pipe_);  // a server hanging up must not kill us
  }
  ~SignalScope() {
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
    sigaction(SIGPIPE, &old_pipe_, nullptr);
    reset_stop();
  }
  SignalScope(const SignalScope&) = delete;
  SignalScope& operator=(const SignalScope&) = delete;

 private:
  struct sigaction old_int_ {};
  struct sigaction old_term_ {};
  struct sigaction old_pipe_ {};
};

std::string utc_timestamp() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string command_line(const std::vector<std::string>& args) {
  std::string out = "pixpool bench";
  for (const auto& arg : args) out += " " + shell_quote(arg);
  return out;
}

// Serves the corpus by file name on 127.0.0.1 for --mode url without
// --source-url.
class Origin {
 public:
  Origin(const Corpus& corpus, int port) {
    for (const auto& image : corpus.images) by_name_[image.name] = &image;
    server_.new_task_queue = [] { return new httplib::ThreadPool(32); };
    server_.Get(R"(/([^/]+))", [this](const httplib::Request& req, httplib::Response& res) {
      const auto it = by_name_.find(std::string(req.matches[1]));
      if (it == by_name_.end()) {
        res.status = 404;
        return;
      }
      res.set_content(it->second->bytes, std::string(mime_type(it->second->format)));
    });
    if (port == 0) {
      port_ = server_.bind_to_any_port("127.0.0.1");
    } else if (server_.bind_to_port("127.0.0.1", port)) {
      port_ = port;
    }
    if (port_ > 0) thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  ~Origin() {
    if (thread_.joinable()) {
      // httplib's stop() does nothing until the listen loop has started, and
      // then the loop would never end: wait for it (bounded) first.
      for (int i = 0; i < 2000 && !server_.is_running(); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      server_.stop();
      thread_.join();
    }
  }
  Origin(const Origin&) = delete;
  Origin& operator=(const Origin&) = delete;

  int port() const { return port_; }  // <= 0 when it could not bind

 private:
  std::map<std::string, const CorpusImage*> by_name_;
  httplib::Server server_;
  int port_ = -1;
  std::thread thread_;
};

// GET /healthz, then /v1/backends (which may be absent behind some proxies).
// Returns the backends JSON (or null); false when the server is unreachable
// or unhealthy.
bool check_server(const BenchOptions& o, Json& backends) {
  // Within --timeout when that is shorter, so a silent server fails promptly.
  const double connect_s = std::min(5.0, o.timeout_s);
  const double read_s = std::min(10.0, o.timeout_s);
  httplib::Client client(o.url);
  client.set_connection_timeout(std::chrono::duration_cast<std::chrono::microseconds>(
      std::chrono::duration<double>(connect_s)));
  client.set_read_timeout(
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::duration<double>(read_s)));
  const auto started = std::chrono::steady_clock::now();
  auto health = client.Get("/healthz");
  if (!health) {
    // httplib says only "Connection" or "Read": ask the socket why, in words.
    const double elapsed_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    const auto failure = describe_transport_error(health.error(), elapsed_s, read_s);
    // A timeout is already known for what it is: waiting again would only
    // double the delay before the message.
    const bool timed_out = failure.kind == "connection: timed out";
    const auto diagnosis =
        timed_out
            ? ConnectionDiagnosis{true, "no answer within " + seconds_text(read_s) + " (timed out)"}
            : diagnose_connection(o.url, connect_s);
    std::fprintf(stderr, "pixpool bench: %s\n",
                 unreachable_message(o.url, diagnosis, failure.detail).c_str());
    return false;
  }
  if (health->status != 200) {
    std::fprintf(stderr, "pixpool bench: no healthy pixpool at %s (GET /healthz: status %d)\n",
                 o.url.c_str(), health->status);
    return false;
  }
  backends = nullptr;
  if (auto res = client.Get("/v1/backends"); res && res->status == 200) {
    auto json = Json::parse(res->body, nullptr, false);
    if (json.is_object()) backends = std::move(json);
  }
  return true;
}

void print_corpus(const Corpus& corpus) {
  std::printf("corpus: %zu images, %.1f MB (%s)\n%s", corpus.images.size(),
              static_cast<double>(corpus.total_bytes()) / 1e6, corpus.source.c_str(),
              corpus.describe().c_str());
}

}  // namespace

int run_bench(const std::vector<std::string>& args) {
  auto parsed = parse_bench_args(args);
  if (!parsed) {
    std::fprintf(stderr, "pixpool bench: %s; see pixpool bench --help\n",
                 parsed.error().message.c_str());
    return kExitUsage;
  }
  BenchOptions& o = parsed.value();
  if (o.help) {
    std::fputs(bench_help_text().c_str(), stdout);
    return kExitOk;
  }
  SignalScope signals;
  RunInfo info;
  info.command_line = command_line(args);
  info.timestamp = utc_timestamp();

  if (!o.report_dir.empty()) {
    if (auto ok = prepare_report_dir(o.report_dir); !ok) {
      std::fprintf(stderr, "pixpool bench: %s\n", ok.error().message.c_str());
      return kExitUsage;
    }
  }
  if (!check_server(o, info.server)) return kExitUsage;
  if (info.server.is_object()) {
    for (const auto& backend : o.backends) {
      if (info.server.contains(backend)) continue;
      std::string valid;
      for (const auto& item : info.server.items()) {
        valid += (valid.empty() ? "" : ", ") + item.key();
      }
      std::fprintf(stderr, "pixpool bench: the server has no backend '%s' (it has: %s)\n",
                   backend.c_str(), valid.c_str());
      return kExitUsage;
    }
  }

  std::vector<std::string> skipped;
  auto corpus = o.images_dir.empty() ? generate_corpus(o.sizes, o.per_size, o.restarts)
                                     : load_corpus(o.images_dir, &skipped);
  if (!corpus) {
    std::fprintf(stderr, "pixpool bench: %s\n", corpus.error().message.c_str());
    return kExitUsage;
  }
  for (const auto& name : skipped) {
    std::fprintf(stderr, "pixpool bench: skipping %s: not a decodable image\n", name.c_str());
  }
  print_corpus(*corpus);
  info.corpus = corpus_json(*corpus);

  Target target;
  target.base_url = o.url;
  target.mode = o.mode;
  target.ops = o.ops;
  target.format = o.format;
  target.quality = o.quality;
  target.batch_size = o.mode == Mode::batch ? o.batch_size : 1;
  target.timeout_s = o.timeout_s;
  target.full_verify = o.full_verify;

  std::unique_ptr<Origin> origin;
  if (o.mode == Mode::url) {
    if (o.source_url.empty()) {
      origin = std::make_unique<Origin>(*corpus, o.origin_port);
      if (origin->port() <= 0) {
        std::fprintf(stderr, "pixpool bench: the built-in origin cannot listen on 127.0.0.1:%d\n",
                     o.origin_port);
        return kExitUsage;
      }
      o.source_url = "http://127.0.0.1:" + std::to_string(origin->port()) + "/";
      std::printf("origin: serving the corpus at %s\n", o.source_url.c_str());
    }
    target.source_url = o.source_url;
    // One probe: a server that may not download from the origin would fail
    // every request, which is a setup problem rather than a result.
    httplib::Client probe(o.url);
    probe.set_connection_timeout(5, 0);
    probe.set_read_timeout(std::chrono::duration_cast<std::chrono::microseconds>(
        std::chrono::duration<double>(o.timeout_s)));
    const std::string path = "/v1/process?backend=" + url_encode(o.backends.front()) + "&url=" +
                             url_encode(o.source_url + url_encode(corpus->images.front().name));
    if (auto res = probe.Get(path); res && res->status == 403) {
      while (!res->body.empty() && std::isspace(static_cast<unsigned char>(res->body.back()))) {
        res->body.pop_back();
      }
      std::fprintf(stderr,
                   "pixpool bench: the server may not download from %s (403: %s)\n"
                   "  start it with --allowed-sources %s (or --allow-private-sources on)\n",
                   o.source_url.c_str(), res->body.c_str(), o.source_url.c_str());
      return kExitUsage;
    }
  }
  info.options = o;

  std::printf("\n%s", table_header(o.mode).c_str());
  std::fflush(stdout);
  info.cores = online_cores();
  info.load1_before = read_load1().value_or(-1);
  std::vector<StepResult> steps;
  for (const auto& backend : o.backends) {
    for (int concurrency : o.concurrency) {
      // Back to back, so the repeats of a step see the same conditions.
      for (int repeat = 1; repeat <= o.repeats && !stop_requested(); ++repeat) {
        StepSpec spec{backend, concurrency, o.duration_s, o.requests, o.warmup_s};
        steps.push_back(run_step(target, *corpus, spec));
        steps.back().repeat = repeat;
        std::fputs(table_row(step_json(steps.back()), o.mode).c_str(), stdout);
        std::fflush(stdout);
      }
    }
  }

  std::uint64_t errors = 0;
  for (const auto& step : steps) errors += step.errors.total();
  const bool interrupted = stop_requested();
  const int status = interrupted ? kExitInterrupted : errors > 0 ? kExitFailures : kExitOk;

  for (const auto& step : steps) {
    for (const auto& [kind, count] : step.errors.by_kind) {
      std::fprintf(stderr, "pixpool bench: %s c=%d: %llu x %s: %s\n", step.backend.c_str(),
                   step.concurrency, static_cast<unsigned long long>(count), kind.c_str(),
                   step.errors.first_message.at(kind).c_str());
    }
  }

  auto report = report_json(info, steps, status, interrupted);
  std::fputs(format_summary(report).c_str(), stdout);
  if (!o.report_dir.empty()) {
    auto written = write_report(o.report_dir, report, o.gnuplot);
    if (!written) {
      std::fprintf(stderr, "pixpool bench: %s\n", written.error().message.c_str());
      return status == kExitOk ? kExitFailures : status;
    }
    if (!written->plots) std::fprintf(stderr, "pixpool bench: %s\n", written->note.c_str());
    std::printf("\nreport: %s/index.html%s\n", o.report_dir.c_str(),
                written->plots ? " (+ report.json, throughput.svg, latency.svg)"
                               : " (+ report.json; no plots)");
  }
  if (errors > 0) {
    std::printf("%llu error%s (%s): see the messages above\n",
                static_cast<unsigned long long>(errors), errors == 1 ? "" : "s",
                o.mode == Mode::batch ? "images" : "requests");
  }
  return status;
}

}  // namespace pixpool
