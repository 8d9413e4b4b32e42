// Fuzz target: the processing routes' query parsing, as the routes run it
// (service/routes/process.cpp): parse_query on the raw request target, then
// parse_process_params with the route's extra key "url". Accepted parameters
// must be in range and cross the worker wire unchanged: make_request then
// decode_request gives the same job back (what the process backend does).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "pipeline/worker_protocol.hpp"
#include "service/request_params.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string target =
      "/v1/process?" + std::string(reinterpret_cast<const char*>(data), size);
  auto query = pixpool::parse_query(target);
  if (!query) return 0;
  auto params = pixpool::parse_process_params(*query, "tbb", {"url"});
  if (!params) return 0;
  if (params->quality < 1 || params->quality > 100 || params->ops.empty()) std::abort();

  pixpool::JobParams job;
  job.ops = params->ops;
  job.format = params->format;
  job.quality = params->quality;
  auto request = pixpool::wire::make_request(job, 0, 4096, 1);
  if (!request) std::abort();  // every accepted chain must fit the wire
  auto decoded = pixpool::wire::decode_request(*request, 4096);
  if (!decoded || decoded->ops != job.ops || decoded->format != job.format ||
      decoded->quality != job.quality) {
    std::abort();
  }
  return 0;
}
