#include "bench/runner.hpp"

#include <httplib.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "bench/connection.hpp"
#include "bench/machine.hpp"
#include "filters/codec.hpp"

namespace pixpool::bench {
namespace {

using Clock = std::chrono::steady_clock;

// Set from a signal handler, read by every client thread.
std::atomic<bool> g_stop{false};
static_assert(std::atomic<bool>::is_always_lock_free, "signal handlers need a lock-free flag");

std::string trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return std::string(s);
}

// "HTTP 400 invalid_ops" plus the server's message, from a JSON error body.
VerifyFailure http_failure(int status, const std::string& body) {
  std::string code;
  std::string message = body.substr(0, 300);
  const auto json = nlohmann::json::parse(body, nullptr, false);
  if (json.is_object() && json.contains("error") && json["error"].is_object()) {
    const auto& error = json["error"];
    if (error.contains("code") && error["code"].is_string()) code = error["code"];
    if (error.contains("message") && error["message"].is_string()) message = error["message"];
  }
  std::string kind = "HTTP " + std::to_string(status);
  if (!code.empty()) kind += " " + code;
  return {kind, message};
}

std::string size_text(int width, int height) {
  return std::to_string(width) + "x" + std::to_string(height);
}

// Everything one client thread collects; merged into the StepResult.
struct ThreadTally {
  std::uint64_t requests = 0;
  std::uint64_t images_ok = 0;
  std::uint64_t input_bytes = 0;
  LatencyHistogram latency;
  ErrorCounts errors;
  StageTimes stages;

  void fail(std::uint64_t& category, const VerifyFailure& failure, std::uint64_t images) {
    category += images;
    errors.by_kind[failure.kind] += images;
    errors.first_message.try_emplace(failure.kind, failure.message);
  }
};

// The request path and query for a step (without url= or the body).
std::string process_path(const Target& target, const std::string& backend, bool batch) {
  std::string path = batch ? "/v1/batch?backend=" : "/v1/process?backend=";
  path += url_encode(backend);
  if (!target.ops.empty()) path += "&ops=" + url_encode(target.ops);
  if (!target.format.empty()) path += "&format=" + url_encode(target.format);
  if (target.quality > 0) path += "&quality=" + std::to_string(target.quality);
  return path;
}

// Typed reads of a JSON object's fields that never throw: a fallback when the
// field is missing or of another type (the answer is the server's, untrusted).
const nlohmann::json* field(const nlohmann::json& object, const char* key) {
  if (!object.is_object()) return nullptr;
  const auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}
long long int_field(const nlohmann::json& object, const char* key) {
  const auto* f = field(object, key);
  return f != nullptr && f->is_number_integer() ? f->get<long long>() : -1;
}
double number_field(const nlohmann::json& object, const char* key) {
  const auto* f = field(object, key);
  return f != nullptr && f->is_number() ? f->get<double>() : 0.0;
}
std::string string_field(const nlohmann::json& object, const char* key) {
  const auto* f = field(object, key);
  return f != nullptr && f->is_string() ? f->get<std::string>() : std::string();
}

// Checks a /v1/batch JSON answer item by item against the inputs sent.
void verify_batch(const httplib::Response& response, const Corpus& corpus,
                  const std::vector<std::size_t>& sent, const Target& target,
                  const std::string& backend, ThreadTally& tally) {
  const auto n = static_cast<std::uint64_t>(sent.size());
  const auto json = nlohmann::json::parse(response.body, nullptr, false);
  const auto* items = field(json, "items");
  if (items == nullptr || !items->is_array() || items->size() != sent.size()) {
    tally.fail(
        tally.errors.verification,
        {"verify: batch json", "the answer is not batch JSON with " + std::to_string(sent.size()) +
                                   " items: " + response.body.substr(0, 200)},
        n);
    return;
  }
  if (string_field(json, "backend") != backend) {
    tally.fail(tally.errors.verification,
               {"verify: backend", "batch ran on '" + string_field(json, "backend") +
                                       "' instead of '" + backend + "'"},
               n);
    return;
  }
  for (std::size_t i = 0; i < sent.size(); ++i) {
    const CorpusImage& input = corpus.images[sent[i]];
    const auto& item = (*items)[i];
    const long long status = int_field(item, "status");
    if (status != 200 || string_field(item, "state") != "succeeded") {
      const auto* error = field(item, "error");
      std::string code = error != nullptr ? string_field(*error, "code") : "";
      std::string message = error != nullptr ? string_field(*error, "message") : "";
      if (code.empty()) code = "item_failed";
      if (message.empty()) message = item.dump().substr(0, 300);
      tally.fail(tally.errors.http, {"HTTP " + std::to_string(status) + " " + code, message}, 1);
      continue;
    }
    const long long width = int_field(item, "width");
    const long long height = int_field(item, "height");
    const std::string format = string_field(item, "format");
    const std::string expected(format_name(expected_format(input, target)));
    if (width != input.width || height != input.height) {
      tally.fail(tally.errors.verification,
                 {"verify: size", input.name + ": output is " + std::to_string(width) + "x" +
                                      std::to_string(height) + ", input is " +
                                      size_text(input.width, input.height)},
                 1);
    } else if (format != expected) {
      tally.fail(tally.errors.verification,
                 {"verify: format",
                  input.name + ": output format '" + format + "', expected '" + expected + "'"},
                 1);
    } else {
      ++tally.images_ok;
      tally.input_bytes += input.bytes.size();
      if (const auto* timings = field(item, "timings_ms"); timings != nullptr) {
        std::array<double, kStages.size()> ms{};
        for (std::size_t s = 0; s < kStages.size(); ++s) ms[s] = number_field(*timings, kStages[s]);
        tally.stages.add(ms);
      }
    }
  }
}

// Shared state of one phase (warm-up or measured) of a step.
struct Phase {
  Clock::time_point deadline;  // duration mode
  std::uint64_t budget = 0;    // requests mode: total requests (0 = by deadline)
  std::atomic<std::uint64_t> tickets{0};
  std::atomic<std::uint64_t> next_image{0};

  bool take_ticket() {
    if (stop_requested()) return false;
    if (budget > 0) return tickets.fetch_add(1) < budget;
    return Clock::now() < deadline;
  }
};

// Classifies one finished request: a connection error, an HTTP error, or a
// 200 whose body must verify; records latency and stage times of verified ones.
void record_response(const httplib::Result& result, std::int64_t latency_ns, const Target& target,
                     const Corpus& corpus, const std::string& backend,
                     const std::vector<std::size_t>& sent, const std::string& path,
                     ThreadTally& tally) {
  const std::uint64_t per_request = sent.size();
  if (!result) {
    const auto failure =
        describe_transport_error(result.error(), latency_ns / 1e9, target.timeout_s);
    tally.fail(tally.errors.connection,
               {failure.kind, "no answer from " + target.base_url + path.substr(0, path.find('?')) +
                                  ": " + failure.detail},
               per_request);
    return;
  }
  const httplib::Response& response = result.value();
  if (response.status != 200) {
    tally.fail(tally.errors.http, http_failure(response.status, response.body), per_request);
    return;
  }
  if (target.mode == Mode::batch) {
    const std::uint64_t ok_before = tally.images_ok;
    verify_batch(response, corpus, sent, target, backend, tally);
    if (tally.images_ok - ok_before == per_request) tally.latency.record(latency_ns);
    return;
  }
  const CorpusImage& image = corpus.images[sent.front()];
  if (auto failure = verify_image_response(response, image, target, backend)) {
    tally.fail(tally.errors.verification, *failure, 1);
    return;
  }
  ++tally.images_ok;
  tally.input_bytes += image.bytes.size();
  tally.latency.record(latency_ns);
  if (auto ms = parse_server_timing(response.get_header_value("Server-Timing"))) {
    tally.stages.add(*ms);
  }
}

// One client thread: sends requests until the phase ends.
void client_loop(httplib::Client& client, const Target& target, const Corpus& corpus,
                 const std::string& backend, Phase& phase, ThreadTally& tally) {
  const bool batch = target.mode == Mode::batch;
  const std::string path = process_path(target, backend, batch);
  const std::size_t per_request = batch ? static_cast<std::size_t>(target.batch_size) : 1;
  std::vector<std::size_t> sent;
  while (phase.take_ticket()) {
    // Round-robin over the corpus, shared by all threads of the phase.
    const std::uint64_t first = phase.next_image.fetch_add(per_request);
    sent.clear();
    for (std::size_t i = 0; i < per_request; ++i) {
      sent.push_back(static_cast<std::size_t>((first + i) % corpus.images.size()));
    }
    const CorpusImage& image = corpus.images[sent.front()];

    const auto started = Clock::now();
    httplib::Result result{nullptr, httplib::Error::Unknown};
    switch (target.mode) {
      case Mode::process:
        result = client.Post(path, image.bytes, std::string(mime_type(image.format)));
        break;
      case Mode::url:
        result =
            client.Get(path + "&url=" + url_encode(target.source_url + url_encode(image.name)));
        break;
      case Mode::batch: {
        httplib::MultipartFormDataItems items;
        for (std::size_t index : sent) {
          const CorpusImage& item = corpus.images[index];
          items.push_back({"image", item.bytes, item.name, std::string(mime_type(item.format))});
        }
        result = client.Post(path, items);
        break;
      }
    }
    const auto latency_ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - started).count();
    if (stop_requested()) break;  // aborted by Ctrl-C: neither a result nor an error

    ++tally.requests;
    try {
      record_response(result, latency_ns, target, corpus, backend, sent, path, tally);
    } catch (const std::exception& e) {  // e.g. out of memory while decoding
      tally.fail(tally.errors.verification, {"verify: exception", e.what()}, per_request);
    }
  }
}

// User + system CPU seconds of this process so far.
double process_cpu_s() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& tv) { return tv.tv_sec + tv.tv_usec / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

// Runs `clients.size()` threads through one phase; returns the tallies.
std::vector<ThreadTally> run_phase(std::vector<std::unique_ptr<httplib::Client>>& clients,
                                   const Target& target, const Corpus& corpus,
                                   const std::string& backend, Phase& phase) {
  std::vector<ThreadTally> tallies(clients.size());
  std::atomic<bool> done{false};
  // Ctrl-C must not wait for requests in flight (up to --timeout): stop()
  // shuts the clients' sockets down from this watcher thread.
  std::thread watcher([&] {
    while (!done.load()) {
      if (stop_requested()) {
        for (auto& client : clients) client->stop();
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  std::vector<std::thread> threads;
  threads.reserve(clients.size());
  for (std::size_t i = 0; i < clients.size(); ++i) {
    threads.emplace_back(
        [&, i] { client_loop(*clients[i], target, corpus, backend, phase, tallies[i]); });
  }
  for (auto& thread : threads) thread.join();
  done = true;
  watcher.join();
  return tallies;
}

}  // namespace

void ErrorCounts::merge(const ErrorCounts& other) {
  http += other.http;
  verification += other.verification;
  connection += other.connection;
  for (const auto& [kind, count] : other.by_kind) by_kind[kind] += count;
  for (const auto& [kind, message] : other.first_message) first_message.try_emplace(kind, message);
}

void StageTimes::add(const std::array<double, kStages.size()>& ms) {
  for (std::size_t i = 0; i < ms.size(); ++i) sum_ms[i] += ms[i];
  ++samples;
}

void StageTimes::merge(const StageTimes& other) {
  for (std::size_t i = 0; i < sum_ms.size(); ++i) sum_ms[i] += other.sum_ms[i];
  samples += other.samples;
}

void request_stop() {
  g_stop.store(true);
}
bool stop_requested() {
  return g_stop.load();
}
void reset_stop() {
  g_stop.store(false);
}

std::string url_encode(std::string_view text) {
  static const char* const kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::optional<std::array<double, kStages.size()>> parse_server_timing(std::string_view header) {
  std::array<double, kStages.size()> ms{};
  std::array<bool, kStages.size()> seen{};
  while (!header.empty()) {
    const std::size_t comma = header.find(',');
    const std::string entry = trim(header.substr(0, comma));
    header = comma == std::string_view::npos ? std::string_view() : header.substr(comma + 1);
    const std::size_t semi = entry.find(';');
    if (semi == std::string::npos) continue;
    const std::string name = trim(std::string_view(entry).substr(0, semi));
    // Parameters in any order: "dur=1.8", "dur=1.8;desc=\"1/4\"".
    std::string params;
    for (std::string_view rest = std::string_view(entry).substr(semi + 1); !rest.empty();) {
      const std::size_t next = rest.find(';');
      const std::string param = trim(rest.substr(0, next));
      rest = next == std::string_view::npos ? std::string_view() : rest.substr(next + 1);
      if (param.starts_with("dur=")) params = param;
    }
    if (params.empty()) continue;
    for (std::size_t i = 0; i < kStages.size(); ++i) {
      if (name != kStages[i]) continue;
      try {
        std::size_t used = 0;
        ms[i] = std::stod(params.substr(4), &used);
        if (used != params.size() - 4) return std::nullopt;
      } catch (const std::exception&) {
        return std::nullopt;
      }
      seen[i] = true;
    }
  }
  if (std::find(seen.begin(), seen.end(), false) != seen.end()) return std::nullopt;
  return ms;
}

ImageFormat expected_format(const CorpusImage& input, const Target& target) {
  if (!target.format.empty()) {
    if (auto format = parse_output_format(target.format)) return *format;
  }
  return default_output_format(input.format);
}

std::optional<VerifyFailure> verify_image_response(const httplib::Response& response,
                                                   const CorpusImage& input, const Target& target,
                                                   const std::string& backend) {
  const ImageFormat format = expected_format(input, target);
  const std::string content_type = response.get_header_value("Content-Type");
  if (content_type != mime_type(format)) {
    return VerifyFailure{"verify: content-type", input.name + ": Content-Type '" + content_type +
                                                     "', expected '" +
                                                     std::string(mime_type(format)) + "'"};
  }
  const std::string served_by = response.get_header_value("X-Pixpool-Backend");
  if (served_by != backend) {
    return VerifyFailure{"verify: backend", input.name + ": X-Pixpool-Backend '" + served_by +
                                                "', expected '" + backend + "'"};
  }
  int width = 0;
  int height = 0;
  if (target.full_verify) {
    auto decoded = decode_image(response.body, std::uint64_t{1} << 40);
    if (!decoded) {
      return VerifyFailure{"verify: undecodable",
                           input.name + ": the output does not decode: " + decoded.error().message};
    }
    if (sniff_format(response.body) != format) {
      return VerifyFailure{"verify: format",
                           input.name + ": the output is not " + std::string(format_name(format))};
    }
    width = decoded->pixels.cols;
    height = decoded->pixels.rows;
  } else {
    auto header = read_header(response.body);
    if (!header || header->format != format) {
      return VerifyFailure{"verify: undecodable", input.name + ": the output has no valid " +
                                                      std::string(format_name(format)) + " header"};
    }
    width = header->width;
    height = header->height;
  }
  if (width != input.width || height != input.height) {
    return VerifyFailure{"verify: size", input.name + ": output is " + size_text(width, height) +
                                             ", input is " + size_text(input.width, input.height)};
  }
  return std::nullopt;
}

StepResult run_step(const Target& target, const Corpus& corpus, const StepSpec& spec) {
  std::vector<std::unique_ptr<httplib::Client>> clients;
  const auto timeout_us = static_cast<long long>(target.timeout_s * 1e6);
  const auto connect_us = std::min<long long>(timeout_us, 5'000'000);
  for (int i = 0; i < spec.concurrency; ++i) {
    auto client = std::make_unique<httplib::Client>(target.base_url);
    client->set_keep_alive(true);
    // As curl and wrk do: without it, Nagle holds the body's last segment until
    // the server's delayed ACK, adding ~40 ms to every keep-alive request.
    client->set_tcp_nodelay(true);
    client->set_connection_timeout(connect_us / 1'000'000, connect_us % 1'000'000);
    client->set_read_timeout(timeout_us / 1'000'000, timeout_us % 1'000'000);
    client->set_write_timeout(timeout_us / 1'000'000, timeout_us % 1'000'000);
    clients.push_back(std::move(client));
  }

  if (spec.warmup_s > 0) {
    Phase warmup;
    warmup.deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                         std::chrono::duration<double>(spec.warmup_s));
    run_phase(clients, target, corpus, spec.backend, warmup);  // results dropped
  }

  StepResult step;
  step.backend = spec.backend;
  step.concurrency = spec.concurrency;
  Phase measured;
  measured.budget = spec.requests;
  const double cpu_before = process_cpu_s();
  const auto machine_before = read_cpu_times();
  const auto started = Clock::now();
  measured.deadline = started + std::chrono::duration_cast<Clock::duration>(
                                    std::chrono::duration<double>(spec.duration_s));
  auto tallies = run_phase(clients, target, corpus, spec.backend, measured);
  step.elapsed_s = std::chrono::duration<double>(Clock::now() - started).count();
  step.client_cpu_s = process_cpu_s() - cpu_before;
  step.system_busy = busy_share(machine_before, read_cpu_times()).value_or(-1);
  step.load1 = read_load1().value_or(-1);
  step.interrupted = stop_requested();
  for (const auto& tally : tallies) {
    step.requests += tally.requests;
    step.images_ok += tally.images_ok;
    step.input_bytes += tally.input_bytes;
    step.latency.merge(tally.latency);
    step.errors.merge(tally.errors);
    step.stages.merge(tally.stages);
  }
  return step;
}

}  // namespace pixpool::bench
