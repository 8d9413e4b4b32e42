// /healthz, /readyz, /metrics and /v1/backends: answered on the HTTP threads
// kept free of processing, never waiting on a backend.
//
// Health is per backend (stats().state: ready, degraded, recovering,
// unavailable, with an estimate until it can take work again):
//  - /healthz (liveness) is 503 only when no backend can take work: the
//    server as a whole cannot serve and a restart may help. A process pool
//    whose zygote is being replaced repairs itself and keeps it 200.
//  - /readyz (readiness) is 200 while the default backend can take work
//    (its state is not unavailable), so the replica stays in rotation while
//    another backend recovers; "status" says "ready" when every backend is
//    ready, else "degraded". 503 with "not_ready" otherwise (e.g. draining).
//  - /v1/backends shows the same state next to each backend's figures.
//  - /readyz also reports the job store ("store": kind, url, state). A
//    Redis store that is away does not make the replica unready: /v1/process
//    needs no store and keeps serving; job routes answer 503
//    store_unavailable until the store is back ("status" says "degraded").
#include <string>

#include "service/routes/routes.hpp"

namespace pixpool {
namespace {

nlohmann::json state_json(const BackendState& state) {
  nlohmann::json out = {{"state", std::string(health_name(state.health))},
                        {"available_in_ms", state.available_in.count()}};
  if (!state.reason.empty()) out["reason"] = state.reason;
  return out;
}

bool can_take_work(const BackendStats& stats) {
  return stats.state.health != BackendHealth::unavailable;
}

}  // namespace

void healthz(RouteContext& ctx, const httplib::Request&, httplib::Response& res) {
  nlohmann::json states = nlohmann::json::object();
  bool any = false;
  for (const auto& backend : ctx.backends.all()) {
    const BackendStats stats = backend->stats();
    any = any || can_take_work(stats);
    states[std::string(backend->name())] = std::string(health_name(stats.state.health));
  }
  if (!any) return send_json(res, 503, {{"status", "unhealthy"}, {"backends", states}});
  send_json(res, 200, {{"status", "ok"}, {"backends", states}});
}

void readyz(RouteContext& ctx, const httplib::Request&, httplib::Response& res) {
  nlohmann::json body = {{"status", "ready"},
                         {"default_backend", ctx.config.default_backend},
                         {"backends", nlohmann::json::object()}};
  bool all_ready = true;
  bool default_serves = false;
  for (const auto& backend : ctx.backends.all()) {
    const BackendStats stats = backend->stats();
    const bool ready = stats.state.health == BackendHealth::ready;
    all_ready = all_ready && ready;
    if (backend->name() == ctx.config.default_backend) default_serves = can_take_work(stats);
    auto& entry = body["backends"][std::string(backend->name())];
    entry = state_json(stats.state);
    entry["ready"] = ready;
    entry["workers"] = stats.workers;
    entry["busy"] = stats.busy;
    entry["queued"] = stats.queued;
    entry["restarts"] = stats.restarts;
    entry["retried"] = stats.retried;
    if (!stats.worker_pids.empty()) entry["worker_pids"] = stats.worker_pids;
    if (stats.zygote_restarts > 0) entry["zygote_restarts"] = stats.zygote_restarts;
  }
  const JobStoreStatus store = ctx.store.status();
  body["store"] = {{"kind", store.kind}, {"state", store.up ? "up" : "down"}};
  if (!store.url.empty()) body["store"]["url"] = store.url;
  if (!store.up) {
    body["store"]["error"] = store.error;
    body["store"]["retry_in_ms"] = store.retry_in.count();
  }
  if (!all_ready || !store.up) body["status"] = default_serves ? "degraded" : "not_ready";
  send_json(res, default_serves ? 200 : 503, body);
}

void metrics_text(RouteContext& ctx, const httplib::Request&, httplib::Response& res) {
  res.status = 200;
  res.set_content(
      ctx.http_metrics.exposition() + ctx.metrics.exposition(ctx.backends) + ctx.store.exposition(),
      "text/plain; version=0.0.4");
}

void backends_json(RouteContext& ctx, const httplib::Request&, httplib::Response& res) {
  nlohmann::json body = nlohmann::json::object();
  for (const auto& backend : ctx.backends.all()) {
    const BackendStats s = backend->stats();
    const RecentStats r = ctx.metrics.recent(backend->name());
    auto& entry = body[std::string(backend->name())];
    entry = {{"ready", s.state.health == BackendHealth::ready},
             {"workers", s.workers},
             {"busy", s.busy},
             {"queue_depth", s.queued},
             {"images_done", s.completed},
             {"images_failed", s.failed},
             {"worker_restarts", s.restarts},
             {"jobs_retried", s.retried},
             {"recent",
              {{"window_s", r.window_s},
               {"images", r.images},
               {"images_per_s", r.images_per_s},
               {"megabytes_per_s", r.megabytes_per_s},
               {"latency_ms", {{"p50", r.p50_ms}, {"p95", r.p95_ms}, {"p99", r.p99_ms}}}}}};
    entry.update(state_json(s.state));
    if (s.zygote_restarts > 0) entry["zygote_restarts"] = s.zygote_restarts;
  }
  send_json(res, 200, body);
}

}  // namespace pixpool
