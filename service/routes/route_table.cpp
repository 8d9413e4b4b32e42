#include "service/routes/routes.hpp"

namespace pixpool {

std::span<const Route> route_table() {
  static constexpr char kJob[] = R"(/v1/jobs/([A-Za-z0-9-]+))";
  static const Route kRoutes[] = {
      {"GET", "/", "/", web_index},
      {"GET", R"(/assets/([A-Za-z0-9_.-]+))", "/assets/{name}", web_asset},
      {"GET", "/openapi.json", "/openapi.json", openapi_json},
      {"GET", "/healthz", "/healthz", healthz},
      {"GET", "/readyz", "/readyz", readyz},
      {"GET", "/metrics", "/metrics", metrics_text},
      {"GET", "/v1/backends", "/v1/backends", backends_json},
      {"GET", "/v1/process", "/v1/process", process_get},
      {"POST", "/v1/process", "/v1/process", process_post},
      {"POST", "/v1/batch", "/v1/batch", batch_post},
      {"POST", "/v1/jobs", "/v1/jobs", jobs_post},
      {"GET", kJob, "/v1/jobs/{id}", job_get},
      {"DELETE", kJob, "/v1/jobs/{id}", job_delete},
      {"GET", R"(/v1/jobs/([A-Za-z0-9-]+)/events)", "/v1/jobs/{id}/events", job_events},
      {"GET", R"(/v1/jobs/([A-Za-z0-9-]+)/archive)", "/v1/jobs/{id}/archive", job_archive},
      {"GET", R"(/v1/results/([A-Za-z0-9-]+))", "/v1/results/{id}", result_get},
  };
  return kRoutes;
}

}  // namespace pixpool
