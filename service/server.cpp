#include "service/server.hpp"

#include <httplib.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "service/batch_api.hpp"
#include "service/http_errors.hpp"
#include "service/request_params.hpp"

namespace pixpool {
namespace {

// Reads and drops a request body the handler will not use, up to `limit`
// bytes (beyond that the read is abandoned and the connection ends).
void discard_body(const httplib::ContentReader* reader, std::size_t limit) {
  if (reader == nullptr) return;
  std::size_t seen = 0;
  (*reader)([&](const char*, std::size_t n) {
    seen += n;
    return seen <= limit;
  });
}

using Clock = std::chrono::steady_clock;
using Handler = httplib::Server::Handler;

// HTTP threads kept free of processing work for health and metrics.
constexpr int kReservedHttpThreads = 4;

// When the current request started; httplib serves a request on one thread
// from pre-routing to logging, so a thread_local is enough.
thread_local std::optional<Clock::time_point> request_started;

double ms_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

std::string utc_timestamp() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t seconds = std::chrono::system_clock::to_time_t(now);
  const auto millis =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char buf[80];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(millis));
  return buf;
}

std::string server_timing(const StageTimes& t, double download_ms, double total_ms) {
  char buf[320];
  std::snprintf(buf, sizeof buf,
                "queue;dur=%.3f, download;dur=%.3f, decode;dur=%.3f, filter;dur=%.3f, "
                "encode;dur=%.3f, total;dur=%.3f",
                t.queue_ms, download_ms, t.decode_ms, t.filter_ms, t.encode_ms, total_ms);
  return buf;
}

void send_json(httplib::Response& res, int status, const nlohmann::json& body) {
  res.status = status;
  // Replace invalid UTF-8 (file names come from clients) rather than throw.
  res.set_content(body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n",
                  "application/json");
}

using StreamingHandler = httplib::Server::HandlerWithContentReader;

// A path and the handler for each method it supports; other methods get 405.
// POST handlers that take image bodies read them through httplib's content
// reader: that path skips httplib's form-urlencoded parsing, which caps bodies
// at 8 KiB and is what `curl --data-binary` announces.
struct Route {
  std::string pattern;
  std::map<std::string, Handler> methods;
  std::optional<StreamingHandler> streaming_post = std::nullopt;
};

}  // namespace

struct Server::Impl {
  Impl(const Config& c, ServerParts p)
      : config(c),
        backends(p.backends),
        downloader(p.downloader),
        results(p.results),
        batches(p.batches),
        metrics(p.metrics),
        // Processing requests may hold all HTTP threads but a few, so
        // /metrics, /healthz and /readyz always find a free one.
        processing_limit(std::max(1, c.http.threads - kReservedHttpThreads)) {}

  const Config config;
  BackendSet& backends;
  Downloader& downloader;
  ResultStore& results;
  BatchRunner& batches;
  Metrics& metrics;
  const int processing_limit;
  std::atomic<int> processing{0};
  httplib::Server http;
  std::mutex log_mutex;

  void install();
  void install_routes(const std::vector<Route>& routes);
  void handle_process(const httplib::Request& req, httplib::Response& res,
                      const httplib::ContentReader* reader);
  void handle_batch(const httplib::Request& req, httplib::Response& res,
                    const httplib::ContentReader& reader, bool async);
  void handle_job_status(const httplib::Request& req, httplib::Response& res);
  void handle_job_cancel(const httplib::Request& req, httplib::Response& res);
  void handle_job_events(const httplib::Request& req, httplib::Response& res);
  void handle_job_archive(const httplib::Request& req, httplib::Response& res);
  void handle_result(const httplib::Request& req, httplib::Response& res);
  std::shared_ptr<Batch> find_batch(const httplib::Request& req, httplib::Response& res);
  void handle_ready(httplib::Response& res);
  void handle_backends(httplib::Response& res);
  // Counts a processing request in; false (and a 429 sent) when only the
  // reserved HTTP threads are left.
  bool admit(httplib::Response& res);
  void log_access(const httplib::Request& req, const httplib::Response& res);
};

void Server::Impl::install_routes(const std::vector<Route>& routes) {
  static const char* const kMethods[] = {"GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"};
  for (const Route& route : routes) {
    std::string allow;
    for (const auto& [method, handler] : route.methods) {
      allow += (allow.empty() ? "" : ", ") + method;
    }
    if (route.streaming_post) {
      allow += allow.empty() ? "POST" : ", POST";
      http.Post(route.pattern, *route.streaming_post);
    }
    for (const char* method : kMethods) {
      if (route.streaming_post && std::string_view(method) == "POST") continue;
      Handler handler;
      if (auto it = route.methods.find(method); it != route.methods.end()) {
        handler = it->second;
      } else {
        handler = [allow, method](const httplib::Request&, httplib::Response& res) {
          res.set_header("Allow", allow);
          send_error(res, {ErrorCode::method_not_allowed,
                           std::string(method) + " is not allowed here (allowed: " + allow + ")"});
        };
      }
      const std::string m = method;
      if (m == "GET") http.Get(route.pattern, handler);
      if (m == "POST") http.Post(route.pattern, handler);
      if (m == "PUT") http.Put(route.pattern, handler);
      if (m == "DELETE") http.Delete(route.pattern, handler);
      if (m == "PATCH") http.Patch(route.pattern, handler);
      if (m == "OPTIONS") http.Options(route.pattern, handler);
    }
  }
}

void Server::Impl::install() {
  http.new_task_queue = [n = config.http.threads] {
    return new httplib::ThreadPool(static_cast<std::size_t>(n));
  };
  http.set_payload_max_length(config.http.max_body_bytes);
  http.set_read_timeout(config.http.read_timeout);
  http.set_write_timeout(config.http.read_timeout);
  http.set_keep_alive_max_count(100);
  // Each idle keep-alive connection holds an HTTP thread: do not keep it long.
  http.set_keep_alive_timeout(2);
  http.set_tcp_nodelay(true);

  http.set_pre_routing_handler([](const httplib::Request& req, httplib::Response&) {
    request_started = Clock::now();
    // RFC 9112: a request with neither Content-Length nor Transfer-Encoding
    // has an empty body. httplib would instead read until the client closes
    // (`curl -X POST` without data would hang until the read timeout).
    if (!req.has_header("Content-Length") && !req.has_header("Transfer-Encoding")) {
      const_cast<httplib::Request&>(req).set_header("Content-Length", "0");
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  http.set_error_handler(
      httplib::Server::HandlerWithResponse([](const httplib::Request&, httplib::Response& res) {
        fill_error_body(res);
        return httplib::Server::HandlerResponse::Handled;
      }));
  http.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "unknown exception";
        try {
          if (ep) std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        send_error(res, {ErrorCode::internal, "internal error: " + what});
      });
  http.set_logger(
      [this](const httplib::Request& req, const httplib::Response& res) { log_access(req, res); });

  install_routes({
      {"/healthz",
       {{"GET",
         [this](const httplib::Request&, httplib::Response& res) {
           // Live unless a backend is broken beyond repair (e.g. the process
           // pool lost its zygote): then a supervisor should restart us.
           for (const auto& backend : backends.all()) {
             if (!backend->healthy()) {
               return send_json(
                   res, 503, {{"status", "unhealthy"}, {"backend", std::string(backend->name())}});
             }
           }
           send_json(res, 200, {{"status", "ok"}});
         }}}},
      {"/readyz",
       {{"GET", [this](const httplib::Request&, httplib::Response& res) { handle_ready(res); }}}},
      {"/metrics",
       {{"GET",
         [this](const httplib::Request&, httplib::Response& res) {
           res.status = 200;
           res.set_content(metrics.exposition(backends), "text/plain; version=0.0.4");
         }}}},
      {"/v1/backends",
       {{"GET",
         [this](const httplib::Request&, httplib::Response& res) { handle_backends(res); }}}},
      {"/v1/process",
       {{"GET", [this](const httplib::Request& req,
                       httplib::Response& res) { handle_process(req, res, nullptr); }}},
       [this](const httplib::Request& req, httplib::Response& res,
              const httplib::ContentReader& reader) { handle_process(req, res, &reader); }},
      {"/v1/batch",
       {},
       [this](const httplib::Request& req, httplib::Response& res,
              const httplib::ContentReader& reader) { handle_batch(req, res, reader, false); }},
      {"/v1/jobs",
       {},
       [this](const httplib::Request& req, httplib::Response& res,
              const httplib::ContentReader& reader) { handle_batch(req, res, reader, true); }},
      {R"(/v1/jobs/([A-Za-z0-9-]+))",
       {{"GET", [this](const httplib::Request& req,
                       httplib::Response& res) { handle_job_status(req, res); }},
        {"DELETE", [this](const httplib::Request& req,
                          httplib::Response& res) { handle_job_cancel(req, res); }}}},
      {R"(/v1/jobs/([A-Za-z0-9-]+)/events)",
       {{"GET", [this](const httplib::Request& req,
                       httplib::Response& res) { handle_job_events(req, res); }}}},
      {R"(/v1/jobs/([A-Za-z0-9-]+)/archive)",
       {{"GET", [this](const httplib::Request& req,
                       httplib::Response& res) { handle_job_archive(req, res); }}}},
      {R"(/v1/results/([A-Za-z0-9-]+))",
       {{"GET", [this](const httplib::Request& req,
                       httplib::Response& res) { handle_result(req, res); }}}},
  });
}

bool Server::Impl::admit(httplib::Response& res) {
  if (processing.fetch_add(1) < processing_limit) return true;
  --processing;
  send_error(res,
             {ErrorCode::queue_full, "all " + std::to_string(processing_limit) +
                                         " HTTP threads for processing are busy; retry later"});
  return false;
}

void Server::Impl::handle_backends(httplib::Response& res) {
  nlohmann::json body = nlohmann::json::object();
  for (const auto& backend : backends.all()) {
    const BackendStats s = backend->stats();
    const RecentStats r = metrics.recent(backend->name());
    body[std::string(backend->name())] = {
        {"ready", backend->ready()},
        {"workers", s.workers},
        {"busy", s.busy},
        {"queue_depth", s.queued},
        {"images_done", s.completed},
        {"images_failed", s.failed},
        {"worker_restarts", s.restarts},
        {"recent",
         {{"window_s", r.window_s},
          {"images", r.images},
          {"images_per_s", r.images_per_s},
          {"megabytes_per_s", r.megabytes_per_s},
          {"latency_ms", {{"p50", r.p50_ms}, {"p95", r.p95_ms}, {"p99", r.p99_ms}}}}}};
  }
  send_json(res, 200, body);
}

void Server::Impl::handle_ready(httplib::Response& res) {
  nlohmann::json body = {{"status", "ready"}, {"backends", nlohmann::json::object()}};
  bool all_ready = true;
  for (const auto& backend : backends.all()) {
    const bool ready = backend->ready();
    const BackendStats stats = backend->stats();
    all_ready = all_ready && ready;
    body["backends"][std::string(backend->name())] = {{"ready", ready},
                                                      {"workers", stats.workers},
                                                      {"busy", stats.busy},
                                                      {"queued", stats.queued},
                                                      {"restarts", stats.restarts}};
    if (!stats.worker_pids.empty()) {
      body["backends"][std::string(backend->name())]["worker_pids"] = stats.worker_pids;
    }
  }
  if (!all_ready) body["status"] = "not_ready";
  send_json(res, all_ready ? 200 : 503, body);
}

namespace {

// Reads the image from a raw body or from the multipart field `image`,
// within httplib's --max-body-bytes limit.
// Errors: body_too_large, missing_image, empty_body, invalid_parameter.
Result<std::string> read_image_body(const httplib::Request& req, httplib::Response& res,
                                    const httplib::ContentReader& reader,
                                    std::size_t max_body_bytes) {
  std::string image;
  bool ok = true;
  // httplib enforces its payload limit only when Content-Length is given;
  // chunked uploads are counted here.
  std::size_t received = 0;
  bool too_large = false;
  auto count = [&](std::size_t n) {
    received += n;
    too_large = too_large || received > max_body_bytes;
    return !too_large;
  };
  if (req.is_multipart_form_data()) {
    std::vector<std::string> fields;
    bool in_image = false;
    bool have_image = false;
    ok = reader(
        [&](const httplib::MultipartFormData& part) {
          fields.push_back(part.name);
          in_image = part.name == "image" && !have_image;
          have_image = have_image || in_image;
          return true;
        },
        [&](const char* data, std::size_t size) {
          if (!count(size)) return false;
          if (in_image) image.append(data, size);
          return true;
        });
    if (ok && !have_image) {
      std::string got;
      for (const auto& f : fields) got += (got.empty() ? "'" : ", '") + f + "'";
      return Error{ErrorCode::missing_image, "multipart request has no 'image' field (got " +
                                                 (got.empty() ? std::string("no fields") : got) +
                                                 "); send it with curl -F image=@photo.jpg"};
    }
  } else {
    const auto length = req.get_header_value<std::uint64_t>("Content-Length");
    image.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(length, max_body_bytes)));
    ok = reader([&](const char* data, std::size_t size) {
      if (!count(size)) return false;
      image.append(data, size);
      return true;
    });
  }
  if (!ok) {
    if (res.status == 413 || too_large) {
      return Error{ErrorCode::body_too_large, "request body is larger than the limit of " +
                                                  std::to_string(max_body_bytes) + " bytes"};
    }
    return Error{ErrorCode::invalid_parameter, "could not read the request body"};
  }
  if (image.empty()) {
    return Error{ErrorCode::empty_body,
                 "request body is empty: send image bytes "
                 "(curl --data-binary @photo.jpg) or a multipart 'image' field"};
  }
  return image;
}

}  // namespace

void Server::Impl::handle_process(const httplib::Request& req, httplib::Response& res,
                                  const httplib::ContentReader* reader) {
  // Parameters first: a bad request is refused before its body is stored.
  // The body is still read and dropped: cpp-httplib 0.11 ignores a
  // handler's "Connection: close" and would parse the unread bytes as
  // further requests (each a bogus 400 in the log and the metrics).
  auto refuse_unread = [&](const Error& error) {
    discard_body(reader, config.http.max_body_bytes);
    res.set_header("Connection", "close");
    send_error(res, error);
  };
  auto query = parse_query(req.target);
  if (!query) return refuse_unread(query.error());
  auto params = parse_process_params(*query, config.default_backend, {"url"});
  if (!params) return refuse_unread(params.error());
  auto backend = backends.find(params->backend);
  if (!backend) return refuse_unread(backend.error());
  res.set_header("X-Pixpool-Backend", params->backend);
  const auto url = query->find("url");
  if (!admit(res)) {
    discard_body(reader, config.http.max_body_bytes);
    res.set_header("Connection", "close");
    return;
  }
  struct Release {
    std::atomic<int>& n;
    ~Release() { --n; }
  } release{processing};

  JobSpec job;
  double download_ms = 0;
  if (url != query->end()) {
    if (reader != nullptr && req.get_header_value<std::uint64_t>("Content-Length") > 0) {
      return send_error(
          res, {ErrorCode::invalid_parameter, "send either an image body or url=, not both"});
    }
    const auto download_started = Clock::now();
    auto download = downloader.fetch(url->second).get();  // waits; the I/O pool works
    download_ms = ms_between(download_started, Clock::now());
    if (!download) {
      metrics.record_image((*backend)->name(), Result<JobOutput>(download.error()), 0, download_ms,
                           download_ms);
      return send_error(res, download.error());
    }
    job.input = std::move(download->bytes);
  } else if (reader == nullptr) {
    return send_error(res, {ErrorCode::invalid_parameter,
                            "GET needs url=: GET /v1/process?url=https://... (or POST the image)"});
  } else {
    auto body = read_image_body(req, res, *reader, config.http.max_body_bytes);
    if (!body) return send_error(res, body.error());
    job.input = std::move(body.value());
  }

  const auto started = Clock::now();  // Server-Timing total excludes the upload
  job.params.ops = std::move(params->ops);
  job.params.format = params->format;
  job.params.quality = params->quality;
  job.params.max_pixels = config.max_pixels;

  const std::size_t input_bytes = job.input.size();
  Result<JobOutput> result = (*backend)->submit(std::move(job)).get();
  metrics.record_image((*backend)->name(), result, input_bytes, download_ms,
                       download_ms + ms_between(started, Clock::now()));
  if (!result) return send_error(res, result.error());

  JobOutput& out = result.value();
  res.status = 200;
  res.set_header("Content-Type", std::string(mime_type(out.format)));
  res.set_header("X-Pixpool-Image-Size",
                 std::to_string(out.width) + "x" + std::to_string(out.height));
  res.set_header("Server-Timing",
                 server_timing(out.times, download_ms, ms_between(started, Clock::now())));
  res.body = std::move(out.bytes);
}

void Server::Impl::handle_batch(const httplib::Request& req, httplib::Response& res,
                                const httplib::ContentReader& reader, bool async) {
  auto request = parse_batch_request(req, res, reader, config);
  if (!request) {
    res.set_header("Connection", "close");  // the body may be partly unread
    return send_error(res, request.error());
  }
  auto backend = backends.find(request->params.backend);
  if (!backend) return send_error(res, backend.error());
  res.set_header("X-Pixpool-Backend", request->params.backend);
  JobParams params;
  params.ops = std::move(request->params.ops);
  params.format = request->params.format;
  params.quality = request->params.quality;
  params.max_pixels = config.max_pixels;
  if (!async && !admit(res)) return;  // a synchronous batch holds its HTTP thread
  struct Release {
    std::atomic<int>* n;
    ~Release() {
      if (n != nullptr) --*n;
    }
  } release{async ? nullptr : &processing};
  auto batch = batches.start(std::move(request->inputs), std::move(params), **backend);
  if (!batch) return send_error(res, batch.error());
  const std::string self = "/v1/jobs/" + (*batch)->id();

  if (async) {
    res.set_header("Location", self);
    return send_json(
        res, 202,
        {{"id", (*batch)->id()},
         {"state", "running"},
         {"total", (*batch)->summary().total},
         {"links",
          {{"self", self}, {"events", self + "/events"}, {"archive", self + "/archive"}}}});
  }
  (*batch)->wait_until_done();  // items run on the runner; this thread only waits
  if (request->archive) {
    auto tar = batch_archive(**batch, results);
    if (!tar) return send_error(res, tar.error());
    res.status = 200;
    res.set_header("Content-Disposition",
                   "attachment; filename=\"pixpool-" + (*batch)->id() + ".tar\"");
    res.set_header("Content-Type", "application/x-tar");
    res.body = std::move(tar.value());
    return;
  }
  send_json(res, 200, batch_json(**batch));
}

std::shared_ptr<Batch> Server::Impl::find_batch(const httplib::Request& req,
                                                httplib::Response& res) {
  auto batch = batches.find(req.matches[1]);
  if (!batch) {
    send_error(res, {ErrorCode::not_found,
                     "no job '" + std::string(req.matches[1]) + "' (unknown or expired)"});
  }
  return batch;
}

void Server::Impl::handle_job_status(const httplib::Request& req, httplib::Response& res) {
  if (auto batch = find_batch(req, res)) send_json(res, 200, batch_json(*batch));
}

void Server::Impl::handle_job_cancel(const httplib::Request& req, httplib::Response& res) {
  auto batch = find_batch(req, res);
  if (!batch) return;
  const std::size_t cancelled = batch->cancel();
  nlohmann::json body = batch_json(*batch);
  body["cancelled_now"] = cancelled;
  send_json(res, 200, body);
}

void Server::Impl::handle_job_events(const httplib::Request& req, httplib::Response& res) {
  auto batch = find_batch(req, res);
  if (!batch) return;
  // A stream holds its HTTP thread until the job ends: count it like
  // processing, so the reserved threads stay free for health and metrics.
  if (!admit(res)) return;
  // One `item` event per finished item (in finishing order), then `done`
  // with the totals. Comments keep idle connections alive through proxies.
  auto cursor = std::make_shared<std::size_t>(0);
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");
  res.set_chunked_content_provider(
      "text/event-stream",
      [batch, cursor](std::size_t, httplib::DataSink& sink) {
        const auto order = batch->wait_for_progress(*cursor, std::chrono::seconds(15));
        std::string out;
        for (; *cursor < order.size(); ++*cursor) {
          const std::size_t index = order[*cursor];
          out += "event: item\ndata: " +
                 item_json(batch->item(index), index)
                     .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) +
                 "\n\n";
        }
        const bool over = batch->over() && *cursor == batch->summary().total;
        if (over) {
          out += "event: done\ndata: " + summary_json(batch->summary()).dump() + "\n\n";
        } else if (out.empty()) {
          out = ": keep-alive\n\n";
        }
        if (!sink.write(out.data(), out.size())) return false;  // client went away
        if (over) sink.done();
        return true;
      },
      [this](bool) { --processing; });
}

void Server::Impl::handle_job_archive(const httplib::Request& req, httplib::Response& res) {
  auto batch = find_batch(req, res);
  if (!batch) return;
  auto tar = batch_archive(*batch, results);
  if (!tar) return send_error(res, tar.error());
  res.status = 200;
  res.set_header("Content-Disposition", "attachment; filename=\"pixpool-" + batch->id() + ".tar\"");
  res.set_header("Content-Type", "application/x-tar");
  res.body = std::move(tar.value());
}

void Server::Impl::handle_result(const httplib::Request& req, httplib::Response& res) {
  auto stored = results.get(req.matches[1]);
  if (!stored) {
    return send_error(res, {ErrorCode::not_found, "no result '" + std::string(req.matches[1]) +
                                                      "' (unknown, evicted or expired)"});
  }
  res.status = 200;
  res.set_header("Content-Type", stored->content_type);
  res.set_header("Content-Disposition", "inline; filename=\"" + stored->name + "\"");
  res.body = stored->bytes;
}

// The route pattern of a path, for metrics labels ("other" for unknown).
static std::string route_of(const std::string& path) {
  static const char* const kFixed[] = {"/healthz",    "/readyz",   "/metrics", "/v1/backends",
                                       "/v1/process", "/v1/batch", "/v1/jobs"};
  for (const char* route : kFixed) {
    if (path == route) return route;
  }
  if (path.rfind("/v1/results/", 0) == 0) return "/v1/results/{id}";
  if (path.rfind("/v1/jobs/", 0) == 0) {
    if (path.ends_with("/events")) return "/v1/jobs/{id}/events";
    if (path.ends_with("/archive")) return "/v1/jobs/{id}/archive";
    return "/v1/jobs/{id}";
  }
  return "other";
}

void Server::Impl::log_access(const httplib::Request& req, const httplib::Response& res) {
  metrics.record_request(route_of(req.path), res.status);
  if (!config.http.access_log) return;
  std::string duration = "-";
  if (request_started) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.3f", ms_between(*request_started, Clock::now()));
    duration = buf;
    request_started.reset();
  }
  const std::string bytes_in =
      req.has_header("Content-Length") ? req.get_header_value("Content-Length") : "0";
  const std::string backend =
      res.has_header("X-Pixpool-Backend") ? res.get_header_value("X-Pixpool-Backend") : "-";
  char line[2048];
  std::snprintf(line, sizeof line, "%s %s %s %d in=%s out=%zu backend=%s ms=%s\n",
                utc_timestamp().c_str(), req.method.c_str(), req.path.c_str(), res.status,
                bytes_in.c_str(), res.body.size(), backend.c_str(), duration.c_str());
  std::lock_guard lock(log_mutex);
  std::fputs(line, stderr);
}

Server::Server(const Config& config, ServerParts parts)
    : impl_(std::make_unique<Impl>(config, parts)) {
  impl_->install();
}

Server::~Server() = default;

Result<int> Server::bind() {
  const HttpOptions& c = impl_->config.http;
  // Debian's cpp-httplib 0.11 library listens with a compiled-in backlog of
  // 5: a burst of new connections beyond that (64 clients at once in the
  // memory test) had some of them reset mid-upload. listen() again on a
  // listening socket only changes its backlog, so raise it after binding.
  int listen_fd = -1;
  impl_->http.set_socket_options([&listen_fd](socket_t sock) {
    httplib::default_socket_options(sock);
    listen_fd = sock;
  });
  struct RestoreOptions {
    httplib::Server& http;
    ~RestoreOptions() { http.set_socket_options(httplib::default_socket_options); }
  } restore{impl_->http};
  if (c.port == 0) {
    const int port = impl_->http.bind_to_any_port(c.host);
    if (port > 0) {
      ::listen(listen_fd, SOMAXCONN);
      return port;
    }
  } else if (impl_->http.bind_to_port(c.host, c.port)) {
    ::listen(listen_fd, SOMAXCONN);
    return c.port;
  }
  return Error{ErrorCode::internal, "cannot listen on " + c.host + ":" + std::to_string(c.port) +
                                        " (address in use or not available?)"};
}

bool Server::run() {
  return impl_->http.listen_after_bind();
}

void Server::stop() {
  impl_->http.stop();
}

}  // namespace pixpool
