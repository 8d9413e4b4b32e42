// GET /v1/process?url=... and POST /v1/process (raw image body or multipart
// field `image`, or no body and url=): one image, answered with its bytes.
#include <algorithm>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "pipeline/image_run.hpp"
#include "service/body_reader.hpp"
#include "service/connection_probe.hpp"
#include "service/http_errors.hpp"
#include "service/request_params.hpp"
#include "service/routes/routes.hpp"

namespace pixpool {
namespace {

std::string server_timing(const StageTimes& t, double download_ms, double total_ms) {
  char buf[320];
  std::snprintf(buf, sizeof buf,
                "queue;dur=%.3f, download;dur=%.3f, decode;dur=%.3f;desc=\"1/%d\", "
                "filter;dur=%.3f, encode;dur=%.3f, total;dur=%.3f",
                t.queue_ms, download_ms, t.decode_ms, t.decode_scale, t.filter_ms, t.encode_ms,
                total_ms);
  return buf;
}

// The image of a body: the raw bytes, or the first multipart field `image`.
// Errors: missing_image (multipart without `image`), empty_body.
Result<std::string> image_of(RequestBody body) {
  std::string image;
  if (body.multipart) {
    auto part = std::find_if(body.parts.begin(), body.parts.end(),
                             [](const BodyPart& p) { return p.name == "image"; });
    if (part == body.parts.end()) {
      std::string got;
      for (const auto& p : body.parts) got += (got.empty() ? "'" : ", '") + p.name + "'";
      return Error{ErrorCode::missing_image, "multipart request has no 'image' field (got " +
                                                 (got.empty() ? std::string("no fields") : got) +
                                                 "); send it with curl -F image=@photo.jpg"};
    }
    image = std::move(part->content);
  } else {
    image = std::move(body.raw);
  }
  if (image.empty()) {
    return Error{ErrorCode::empty_body,
                 "request body is empty: send image bytes "
                 "(curl --data-binary @photo.jpg) or a multipart 'image' field"};
  }
  return image;
}

void process(RouteContext& ctx, const httplib::Request& req, httplib::Response& res,
             const httplib::ContentReader* reader) {
  const Config& config = ctx.config;
  // Everything that can be refused is checked before the body is read, and
  // every refusal goes through upload.refuse (drain, close, JSON error).
  UploadBody upload(req, res, reader, config.http.max_body_bytes);
  auto query = parse_query(req.target);
  if (!query) return upload.refuse(query.error());
  auto params = parse_process_params(*query, config.default_backend, {"url"});
  if (!params) return upload.refuse(params.error());
  auto backend = ctx.backends.find(params->backend);
  if (!backend) return upload.refuse(backend.error());
  res.set_header("X-Pixpool-Backend", params->backend);

  // The processing slot: an upload takes it before its body is read (that
  // read holds the thread); a url= request only once its bytes have arrived,
  // so requests waiting on slow origins hold a download place, not compute.
  std::optional<ProcessingSlot> slot;
  ImageRunOptions options;
  ImageSource source;
  if (const auto url = query->find("url"); url != query->end()) {
    if (reader != nullptr && (req.get_header_value<std::uint64_t>("Content-Length") > 0 ||
                              req.has_header("Transfer-Encoding"))) {
      return upload.refuse(
          {ErrorCode::invalid_parameter, "send either an image body or url=, not both"});
    }
    source.url = url->second;
    options.before_submit = [&ctx, &slot]() -> Result<void> {
      auto admitted = ctx.processing.admit();
      if (!admitted) return admitted.error();
      slot.emplace(std::move(admitted.value()));
      return {};
    };
  } else if (reader == nullptr) {
    return upload.refuse({ErrorCode::invalid_parameter,
                          "GET needs url=: GET /v1/process?url=https://... (or POST the image)"});
  } else {
    auto admitted = ctx.processing.admit();  // held until the answer is ready
    if (!admitted) return upload.refuse(admitted.error());
    slot.emplace(std::move(admitted.value()));
    auto body = upload.read();
    if (!body) return upload.refuse(body.error());
    auto image = image_of(std::move(body.value()));
    if (!image) return upload.refuse(image.error());
    source.bytes = std::move(image.value());
  }

  JobParams job;
  job.ops = std::move(params->ops);
  job.format = params->format;
  job.quality = params->quality;
  job.exact = params->exact.value_or(config.exact);
  job.max_pixels = config.max_pixels;
  // While this thread waits (download, memory, the backend's queue), a
  // client that closes its connection has its image dropped unrun.
  const ConnectionWatch watch(req);
  options.cancel = watch.token();
  ImageRun run =
      run_image(std::move(source), std::move(job), **backend, ctx.downloader, ctx.metrics, options);
  Result<JobOutput>& result = run.output;
  if (!result) return send_error(res, result.error());

  JobOutput& out = result.value();
  res.status = 200;
  res.set_header("Content-Type", std::string(mime_type(out.format)));
  res.set_header("X-Pixpool-Image-Size",
                 std::to_string(out.width) + "x" + std::to_string(out.height));
  // total: run_image's total_ms, from the image's bytes or URL in hand to
  // the encoded output, download included and upload excluded; the same
  // number as a batch item's timings_ms.total.
  res.set_header("Server-Timing", server_timing(out.times, run.download_ms, run.total_ms));
  // 1, 2, 4 or 8: the JPEG was decoded at 1/N and blurred there (?exact=false).
  res.set_header("X-Pixpool-Decode-Scale", std::to_string(out.times.decode_scale));
  res.body = std::move(out.bytes);
}

}  // namespace

void process_get(RouteContext& ctx, const httplib::Request& req, httplib::Response& res) {
  process(ctx, req, res, nullptr);
}

void process_post(RouteContext& ctx, const httplib::Request& req, httplib::Response& res,
                  const httplib::ContentReader& reader) {
  process(ctx, req, res, &reader);
}

}  // namespace pixpool
