// Fuzz target: the worker's decoder of job requests (pipeline/
// worker_protocol.hpp decode_request): the mapped buffer's size (8 bytes)
// and the request message. What it accepts must be in range and read back
// the same after make_request, the server's encoder.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "pipeline/worker_protocol.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < sizeof(std::uint64_t)) return -1;
  std::uint64_t buffer_size = 0;
  std::memcpy(&buffer_size, data, sizeof buffer_size);
  pixpool::wire::Request request{};
  std::memcpy(&request, data + sizeof buffer_size,
              std::min(size - sizeof buffer_size, sizeof request));

  auto params = pixpool::wire::decode_request(request, buffer_size);
  if (!params) {
    if (params.error().code != pixpool::ErrorCode::internal) std::abort();
    return 0;
  }
  if (params->quality < 1 || params->quality > 100 || params->ops.size() > pixpool::kMaxOps ||
      request.input_size > buffer_size) {
    std::abort();
  }
  auto again =
      pixpool::wire::make_request(*params, request.input_size, buffer_size, request.strips);
  if (!again) std::abort();
  auto round_trip = pixpool::wire::decode_request(*again, buffer_size);
  if (!round_trip || round_trip->ops != params->ops || round_trip->format != params->format ||
      round_trip->quality != params->quality || round_trip->max_pixels != params->max_pixels) {
    std::abort();
  }
  return 0;
}
