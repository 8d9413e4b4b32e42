// POST /v1/batch (wait, then answer) and POST /v1/jobs (answer 202, then
// GET /v1/jobs/{id}, its /events and /archive, DELETE to cancel). Jobs live
// in the JobStore (memory or Redis); items run on the BatchRunner or on any
// replica of the cluster. These threads only wait.
#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "service/batch_api.hpp"
#include "service/body_reader.hpp"
#include "service/connection_probe.hpp"
#include "service/http_errors.hpp"
#include "service/request_params.hpp"
#include "service/routes/routes.hpp"

namespace pixpool {
namespace {

// How long an event stream may stay silent before a comment keeps it alive
// through proxies.
constexpr std::chrono::seconds kKeepAliveEvery{15};

void send_tar(httplib::Response& res, const std::string& id, std::string tar) {
  res.status = 200;
  res.set_header("Content-Disposition", "attachment; filename=\"pixpool-" + id + ".tar\"");
  res.set_header("Content-Type", "application/x-tar");
  res.body = std::move(tar);
}

// Waits (this HTTP thread only waits) until job `id` is over. A client that
// closes its connection meanwhile gets its items that have not started
// cancelled. Errors: the store's (store_unavailable).
Result<void> wait_for_job(RouteContext& ctx, const httplib::Request& req, const std::string& id) {
  const ConnectionWatch watch(req);
  std::string cursor;
  for (;;) {
    auto progress = ctx.store.progress(id, cursor, kCancelCheckInterval);
    if (!progress) return progress.error();
    if (!*progress) return Error{ErrorCode::not_found, "job '" + id + "' expired while running"};
    if ((*progress)->done) return {};
    cursor = (*progress)->cursor;
    if (watch.closed()) {
      (void)ctx.store.cancel(id);
      return Error{ErrorCode::client_gone, "the client closed its connection"};
    }
  }
}

void start_batch(RouteContext& ctx, const httplib::Request& req, httplib::Response& res,
                 const httplib::ContentReader& reader, bool async) {
  // Refusals before the body is read drain it; every refusal closes.
  UploadBody upload(req, res, &reader, ctx.config.http.max_body_bytes);
  auto query = parse_query(req.target);
  if (!query) return upload.refuse(query.error());
  // A job answers 202 at once; its tar is a route of its own.
  if (async && query->contains("archive")) {
    return upload.refuse({ErrorCode::invalid_parameter,
                          "archive= is for POST /v1/batch; a job's outputs come as a tar from "
                          "GET /v1/jobs/{id}/archive"});
  }
  std::optional<ProcessingSlot> slot;
  if (!async) {  // a synchronous batch holds its HTTP thread, upload included
    auto admitted = ctx.processing.admit();
    if (!admitted) return upload.refuse(admitted.error());
    slot.emplace(std::move(admitted.value()));
  }
  auto body = upload.read();
  if (!body) return upload.refuse(body.error());
  auto request =
      parse_batch_request(req, std::move(query.value()), std::move(body.value()), ctx.config);
  if (!request) return upload.refuse(request.error());
  auto backend = ctx.backends.find(request->params.backend);
  if (!backend) return upload.refuse(backend.error());
  res.set_header("X-Pixpool-Backend", request->params.backend);
  JobParams params;
  params.ops = std::move(request->params.ops);
  params.format = request->params.format;
  params.quality = request->params.quality;
  params.exact = request->params.exact.value_or(ctx.config.exact);
  params.max_pixels = ctx.config.max_pixels;
  auto job =
      ctx.store.start(std::move(request->inputs), std::move(params), request->params.backend);
  // queue_full, shutting_down, store_unavailable
  if (!job) return upload.refuse(job.error());
  const std::string id = job->id;
  const std::string self = "/v1/jobs/" + id;

  if (async) {
    res.set_header("Location", self);
    return send_json(
        res, 202,
        {{"id", id},
         {"state", "running"},
         {"total", job->summary.total},
         {"links",
          {{"self", self}, {"events", self + "/events"}, {"archive", self + "/archive"}}}});
  }
  if (auto waited = wait_for_job(ctx, req, id); !waited) return send_error(res, waited.error());
  auto finished = ctx.store.find(id);
  if (!finished) return send_error(res, finished.error());
  if (!*finished) return send_error(res, {ErrorCode::not_found, "job '" + id + "' expired"});
  if (request->archive) {
    auto tar = batch_archive(**finished, ctx.store);
    if (!tar) return send_error(res, tar.error());
    return send_tar(res, id, std::move(tar.value()));
  }
  send_json(res, 200, batch_json(**finished));
}

Error no_job(const httplib::Request& req) {
  return {ErrorCode::not_found,
          "no job '" + std::string(req.matches[1]) + "' (unknown or expired)"};
}

// The job of /v1/jobs/{id}..., or nullopt with the error (404, 503) sent.
std::optional<JobSnapshot> find_job(RouteContext& ctx, const httplib::Request& req,
                                    httplib::Response& res) {
  auto job = ctx.store.find(req.matches[1]);
  if (!job) {
    send_error(res, job.error());
    return std::nullopt;
  }
  if (!*job) send_error(res, no_job(req));
  return std::move(job.value());
}

std::string dump(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

void batch_post(RouteContext& ctx, const httplib::Request& req, httplib::Response& res,
                const httplib::ContentReader& reader) {
  start_batch(ctx, req, res, reader, false);
}

void jobs_post(RouteContext& ctx, const httplib::Request& req, httplib::Response& res,
               const httplib::ContentReader& reader) {
  start_batch(ctx, req, res, reader, true);
}

void job_get(RouteContext& ctx, const httplib::Request& req, httplib::Response& res) {
  if (auto job = find_job(ctx, req, res)) send_json(res, 200, batch_json(*job));
}

void job_delete(RouteContext& ctx, const httplib::Request& req, httplib::Response& res) {
  auto cancelled = ctx.store.cancel(req.matches[1]);
  if (!cancelled) return send_error(res, cancelled.error());
  if (!*cancelled) return send_error(res, no_job(req));
  nlohmann::json body = batch_json((*cancelled)->first);
  body["cancelled_now"] = (*cancelled)->second;
  send_json(res, 200, body);
}

void job_events(RouteContext& ctx, const httplib::Request& req, httplib::Response& res) {
  const std::string id = req.matches[1];
  // A reconnecting EventSource resumes after the last event it saw.
  const std::string resume = req.get_header_value("Last-Event-ID");
  auto first = ctx.store.progress(id, resume, std::chrono::milliseconds(0));
  if (!first) return send_error(res, first.error());
  if (!*first) return send_error(res, no_job(req));
  // A stream holds its HTTP thread until the job ends: count it like
  // processing, so the reserved threads stay free for health and metrics.
  auto admitted = ctx.processing.admit();
  if (!admitted) return send_error(res, admitted.error());
  auto slot = std::make_shared<ProcessingSlot>(std::move(admitted.value()));
  // One `item` event per finished item (in finishing order, with the
  // store's cursor as its id), then `done` with the totals. Comments keep
  // idle connections alive through proxies. If the store goes away the
  // stream ends with an `error` event; EventSource reconnects with
  // Last-Event-ID and misses nothing.
  struct Stream {
    std::string cursor;
    std::optional<JobProgress> pending;  // fetched, not written yet
  };
  auto stream = std::make_shared<Stream>(Stream{resume, std::move(**first)});
  JobStore* store = &ctx.store;
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");
  res.set_chunked_content_provider(
      "text/event-stream",
      [store, id, stream](std::size_t, httplib::DataSink& sink) {
        std::string out;
        const auto quiet_until = std::chrono::steady_clock::now() + kKeepAliveEvery;
        bool over = false;
        for (;;) {
          std::optional<JobProgress> got = std::move(stream->pending);
          stream->pending.reset();
          if (!got) {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                quiet_until - std::chrono::steady_clock::now());
            auto fetched =
                store->progress(id, stream->cursor, std::max(left, std::chrono::milliseconds(1)));
            if (!fetched || !*fetched) {
              const Error error = fetched ? Error{ErrorCode::not_found, "job '" + id + "' expired"}
                                          : fetched.error();
              out += "retry: 2000\nevent: error\ndata: " +
                     dump({{"error",
                            {{"code", std::string(code_name(error.code))},
                             {"message", error.message}}}}) +
                     "\n\n";
              over = true;
              break;
            }
            got = std::move(**fetched);
          }
          for (const auto& event : got->finished) {
            out += "id: " + event.cursor +
                   "\nevent: item\ndata: " + dump(item_json(event.item, event.index)) + "\n\n";
          }
          stream->cursor = got->cursor;
          if (got->done) {
            out += "event: done\ndata: " + dump(summary_json(*got->done)) + "\n\n";
            over = true;
          }
          if (!out.empty() || std::chrono::steady_clock::now() >= quiet_until) break;
          if (!sink.is_writable()) return false;  // client went away
        }
        if (out.empty()) out = ": keep-alive\n\n";
        if (!sink.write(out.data(), out.size())) return false;  // client went away
        if (over) sink.done();
        return true;
      },
      [slot](bool) { slot->release(); });
}

void job_archive(RouteContext& ctx, const httplib::Request& req, httplib::Response& res) {
  auto job = find_job(ctx, req, res);
  if (!job) return;
  auto tar = batch_archive(*job, ctx.store);
  if (!tar) return send_error(res, tar.error());
  send_tar(res, job->id, std::move(tar.value()));
}

}  // namespace pixpool
