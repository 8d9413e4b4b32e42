#pragma once
// Request parsing and JSON/tar rendering for /v1/batch and /v1/jobs.

#include <httplib.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "pipeline/backend.hpp"
#include "pipeline/batch.hpp"
#include "pipeline/job_store.hpp"
#include "pipeline/result_store.hpp"
#include "service/body_reader.hpp"
#include "service/config.hpp"
#include "service/request_params.hpp"

namespace pixpool {

struct BatchRequest {
  std::vector<BatchInput> inputs;
  ProcessParams params;
  bool archive = false;  // answer with a tar instead of JSON
};

// The batch of a request whose body has been read (service/body_reader.hpp)
// and whose query string has been parsed. Inputs from multipart (repeated
// `image` files and/or `url` fields; images are numbered first, then URLs)
// or JSON {"urls":[...],"ops":..,"backend":..,"format":..,"quality":..};
// query parameters ops/backend/format/quality and archive=tar apply to every
// item (Accept: application/x-tar also asks for the tar). Errors:
// invalid_parameter / invalid_ops naming the problem.
Result<BatchRequest> parse_batch_request(const httplib::Request& req, QueryParams query,
                                         RequestBody body, const Config& config);

// One item as JSON: name/url, state, HTTP-like status, error, output size,
// dimensions, timings and the /v1/results link.
nlohmann::json item_json(const ItemResult& item, std::size_t index);

// The totals of a batch.
nlohmann::json summary_json(const BatchSummary& summary);

// The whole batch: id, state, backend, totals, items, links.
nlohmann::json batch_json(const JobSnapshot& job);

// A tar of the finished outputs (in item order, names "0001-photo.jpg")
// plus manifest.json (batch_json). Outputs evicted from the store are
// listed in the manifest but missing from the tar. Errors: those of
// JobStore::result (store_unavailable), make_tar's.
Result<std::string> batch_archive(const JobSnapshot& job, JobStore& store);

}  // namespace pixpool
