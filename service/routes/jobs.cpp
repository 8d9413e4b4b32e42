// POST /v1/batch (wait, then answer) and POST /v1/jobs (answer 202, then
// GET /v1/jobs/{id}, its /events and /archive, DELETE to cancel). Items run
// on the BatchRunner; these threads only wait.
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

void send_tar(httplib::Response& res, const Batch& batch, std::string tar) {
  res.status = 200;
  res.set_header("Content-Disposition", "attachment; filename=\"pixpool-" + batch.id() + ".tar\"");
  res.set_header("Content-Type", "application/x-tar");
  res.body = std::move(tar);
}

void start_batch(RouteContext& ctx, const httplib::Request& req, httplib::Response& res,
                 const httplib::ContentReader& reader, bool async) {
  // Refusals before the body is read drain it; every refusal closes.
  UploadBody upload(req, res, &reader, ctx.config.http.max_body_bytes);
  auto query = parse_query(req.target);
  if (!query) return upload.refuse(query.error());
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
  params.max_pixels = ctx.config.max_pixels;
  auto batch = ctx.batches.start(std::move(request->inputs), std::move(params), **backend);
  if (!batch) return upload.refuse(batch.error());  // queue_full, shutting_down
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
  // Items run on the runner; this thread only waits. A client that closes
  // its connection meanwhile gets its items that have not started cancelled.
  const ConnectionWatch watch(req);
  for (std::size_t seen = 0; !(*batch)->over();) {
    seen = (*batch)->wait_for_progress(seen, kCancelCheckInterval).size();
    if (!(*batch)->over() && watch.closed()) {
      (*batch)->cancel();
      break;
    }
  }
  (*batch)->wait_until_done();
  if (request->archive) {
    auto tar = batch_archive(**batch, ctx.results);
    if (!tar) return send_error(res, tar.error());
    return send_tar(res, **batch, std::move(tar.value()));
  }
  send_json(res, 200, batch_json(**batch));
}

// The batch of /v1/jobs/{id}..., or nullptr with a 404 sent.
std::shared_ptr<Batch> find_batch(RouteContext& ctx, const httplib::Request& req,
                                  httplib::Response& res) {
  auto batch = ctx.batches.find(req.matches[1]);
  if (!batch) {
    send_error(res, {ErrorCode::not_found,
                     "no job '" + std::string(req.matches[1]) + "' (unknown or expired)"});
  }
  return batch;
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
  if (auto batch = find_batch(ctx, req, res)) send_json(res, 200, batch_json(*batch));
}

void job_delete(RouteContext& ctx, const httplib::Request& req, httplib::Response& res) {
  auto batch = find_batch(ctx, req, res);
  if (!batch) return;
  const std::size_t cancelled = batch->cancel();
  nlohmann::json body = batch_json(*batch);
  body["cancelled_now"] = cancelled;
  send_json(res, 200, body);
}

void job_events(RouteContext& ctx, const httplib::Request& req, httplib::Response& res) {
  auto batch = find_batch(ctx, req, res);
  if (!batch) return;
  // A stream holds its HTTP thread until the job ends: count it like
  // processing, so the reserved threads stay free for health and metrics.
  auto admitted = ctx.processing.admit();
  if (!admitted) return send_error(res, admitted.error());
  auto slot = std::make_shared<ProcessingSlot>(std::move(admitted.value()));
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
      [slot](bool) { slot->release(); });
}

void job_archive(RouteContext& ctx, const httplib::Request& req, httplib::Response& res) {
  auto batch = find_batch(ctx, req, res);
  if (!batch) return;
  auto tar = batch_archive(*batch, ctx.results);
  if (!tar) return send_error(res, tar.error());
  send_tar(res, *batch, std::move(tar.value()));
}

}  // namespace pixpool
