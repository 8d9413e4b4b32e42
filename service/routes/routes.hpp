#pragma once
// The route table: every route of the HTTP API once, with its method, path
// pattern, metrics label and handler. service/server.cpp installs it (405
// with Allow for the other methods of each pattern) and labels the
// pixpool_http_requests_total metric from it. Handlers live in one file per
// resource; they are short and do no pixel work (they submit and wait).

#include <httplib.h>

#include <span>
#include <string_view>
#include <variant>

#include "service/routes/context.hpp"

namespace pixpool {

using PlainHandler = void (*)(RouteContext&, const httplib::Request&, httplib::Response&);
// Routes that take uploads read the body themselves through httplib's
// content reader: that path also skips httplib's form-urlencoded parsing,
// which caps bodies at 8 KiB and is what `curl --data-binary` announces.
using UploadHandler = void (*)(RouteContext&, const httplib::Request&, httplib::Response&,
                               const httplib::ContentReader&);

struct Route {
  std::string_view method;   // GET, POST or DELETE; an UploadHandler is always POST
  std::string_view pattern;  // httplib regex matched against the whole path
  std::string_view label;    // metrics label, e.g. "/v1/jobs/{id}/events"
  std::variant<PlainHandler, UploadHandler> handler;
};

// All routes, flat: one entry per method and pattern.
std::span<const Route> route_table();

// service/routes/process.cpp: GET and POST /v1/process.
void process_get(RouteContext&, const httplib::Request&, httplib::Response&);
void process_post(RouteContext&, const httplib::Request&, httplib::Response&,
                  const httplib::ContentReader&);

// service/routes/jobs.cpp: /v1/batch and /v1/jobs...
void batch_post(RouteContext&, const httplib::Request&, httplib::Response&,
                const httplib::ContentReader&);
void jobs_post(RouteContext&, const httplib::Request&, httplib::Response&,
               const httplib::ContentReader&);
void job_get(RouteContext&, const httplib::Request&, httplib::Response&);
void job_delete(RouteContext&, const httplib::Request&, httplib::Response&);
void job_events(RouteContext&, const httplib::Request&, httplib::Response&);
void job_archive(RouteContext&, const httplib::Request&, httplib::Response&);

// service/routes/results.cpp: /v1/results/{id}.
void result_get(RouteContext&, const httplib::Request&, httplib::Response&);

// service/routes/health.cpp: /healthz, /readyz, /metrics, /v1/backends.
void healthz(RouteContext&, const httplib::Request&, httplib::Response&);
void readyz(RouteContext&, const httplib::Request&, httplib::Response&);
void metrics_text(RouteContext&, const httplib::Request&, httplib::Response&);
void backends_json(RouteContext&, const httplib::Request&, httplib::Response&);

// service/routes/web.cpp: the web page, its assets and the OpenAPI document.
void web_index(RouteContext&, const httplib::Request&, httplib::Response&);
void web_asset(RouteContext&, const httplib::Request&, httplib::Response&);
void openapi_json(RouteContext&, const httplib::Request&, httplib::Response&);

}  // namespace pixpool
