// GET /v1/process?url=... and POST /v1/process (raw image body or multipart
// field `image`, or no body and url=): one image, answered with its bytes.
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "pipeline/image_run.hpp"
#include "service/http_errors.hpp"
#include "service/request_params.hpp"
#include "service/routes/routes.hpp"

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

std::string server_timing(const StageTimes& t, double download_ms, double total_ms) {
  char buf[320];
  std::snprintf(buf, sizeof buf,
                "queue;dur=%.3f, download;dur=%.3f, decode;dur=%.3f, filter;dur=%.3f, "
                "encode;dur=%.3f, total;dur=%.3f",
                t.queue_ms, download_ms, t.decode_ms, t.filter_ms, t.encode_ms, total_ms);
  return buf;
}

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

void process(RouteContext& ctx, const httplib::Request& req, httplib::Response& res,
             const httplib::ContentReader* reader) {
  const Config& config = ctx.config;
  // Parameters first: a bad request is refused before its body is stored.
  // The body is still read and dropped: cpp-httplib 0.11 ignores a
  // handler's "Connection: close" and would parse the unread bytes as
  // further requests (each a bogus 400 in the log and the metrics).
  auto refuse_unread = [&](const Error& error) {
    discard_body(reader, config.max_body_bytes);
    res.set_header("Connection", "close");
    send_error(res, error);
  };
  auto query = parse_query(req.target);
  if (!query) return refuse_unread(query.error());
  auto params =
      parse_process_params(*query, config.default_backend, config.enable_test_ops, {"url"});
  if (!params) return refuse_unread(params.error());
  auto backend = ctx.backends.find(params->backend);
  if (!backend) return refuse_unread(backend.error());
  res.set_header("X-Pixpool-Backend", params->backend);
  const auto url = query->find("url");
  auto slot = ctx.processing.admit();  // held until the answer is ready
  if (!slot) return refuse_unread(slot.error());

  ImageSource source;
  if (url != query->end()) {
    if (reader != nullptr && req.get_header_value<std::uint64_t>("Content-Length") > 0) {
      return send_error(
          res, {ErrorCode::invalid_parameter, "send either an image body or url=, not both"});
    }
    source.url = url->second;
  } else if (reader == nullptr) {
    return send_error(res, {ErrorCode::invalid_parameter,
                            "GET needs url=: GET /v1/process?url=https://... (or POST the image)"});
  } else {
    auto body = read_image_body(req, res, *reader, config.max_body_bytes);
    if (!body) return send_error(res, body.error());
    source.bytes = std::move(body.value());
  }

  JobParams job;
  job.ops = std::move(params->ops);
  job.format = params->format;
  job.quality = params->quality;
  job.max_pixels = config.max_pixels;
  ImageRun run =
      run_image(std::move(source), std::move(job), **backend, ctx.downloader, ctx.metrics);
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
