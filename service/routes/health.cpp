// /healthz, /readyz, /metrics and /v1/backends: answered on the HTTP threads
// kept free of processing, never waiting on a backend.
#include <string>

#include "service/routes/routes.hpp"

namespace pixpool {

void healthz(RouteContext& ctx, const httplib::Request&, httplib::Response& res) {
  // Live unless a backend is broken beyond repair (e.g. the process pool
  // lost its zygote): then a supervisor should restart us.
  for (const auto& backend : ctx.backends.all()) {
    if (!backend->healthy()) {
      return send_json(res, 503,
                       {{"status", "unhealthy"}, {"backend", std::string(backend->name())}});
    }
  }
  send_json(res, 200, {{"status", "ok"}});
}

void readyz(RouteContext& ctx, const httplib::Request&, httplib::Response& res) {
  nlohmann::json body = {{"status", "ready"}, {"backends", nlohmann::json::object()}};
  bool all_ready = true;
  for (const auto& backend : ctx.backends.all()) {
    const bool ready = backend->ready();
    const BackendStats stats = backend->stats();
    all_ready = all_ready && ready;
    auto& entry = body["backends"][std::string(backend->name())];
    entry = {{"ready", ready},
             {"workers", stats.workers},
             {"busy", stats.busy},
             {"queued", stats.queued},
             {"restarts", stats.restarts}};
    if (!stats.worker_pids.empty()) entry["worker_pids"] = stats.worker_pids;
  }
  if (!all_ready) body["status"] = "not_ready";
  send_json(res, all_ready ? 200 : 503, body);
}

void metrics_text(RouteContext& ctx, const httplib::Request&, httplib::Response& res) {
  res.status = 200;
  res.set_content(ctx.http_metrics.exposition() + ctx.metrics.exposition(ctx.backends),
                  "text/plain; version=0.0.4");
}

void backends_json(RouteContext& ctx, const httplib::Request&, httplib::Response& res) {
  nlohmann::json body = nlohmann::json::object();
  for (const auto& backend : ctx.backends.all()) {
    const BackendStats s = backend->stats();
    const RecentStats r = ctx.metrics.recent(backend->name());
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

}  // namespace pixpool
