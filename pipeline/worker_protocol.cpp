#include "pipeline/worker_protocol.hpp"

#include <algorithm>
#include <cstring>

namespace pixpool::wire {

Request make_request(const JobParams& params, std::uint64_t input_size, std::uint64_t buffer_size) {
  Request r{};
  r.buffer_size = buffer_size;
  r.input_size = input_size;
  r.format = params.format ? static_cast<std::int32_t>(*params.format) : -1;
  r.quality = params.quality;
  r.max_pixels = params.max_pixels;
  r.op_count = static_cast<std::uint32_t>(std::min(params.ops.size(), kMaxOps));
  for (std::uint32_t i = 0; i < r.op_count; ++i) {
    r.ops[i].kind = static_cast<std::int32_t>(params.ops[i].kind);
    r.ops[i].param = params.ops[i].param;
  }
  return r;
}

JobParams params_of(const Request& r) {
  JobParams p;
  if (r.format >= 0) p.format = static_cast<ImageFormat>(r.format);
  p.quality = r.quality;
  p.max_pixels = r.max_pixels;
  for (std::uint32_t i = 0; i < std::min<std::uint32_t>(r.op_count, kMaxOps); ++i) {
    p.ops.push_back(Op{static_cast<OpKind>(r.ops[i].kind), r.ops[i].param});
  }
  return p;
}

Reply error_reply(const Error& error, std::uint64_t buffer_size) {
  Reply r{};
  r.buffer_size = buffer_size;
  r.ok = 0;
  r.error_code = static_cast<std::int32_t>(error.code);
  const std::size_t n = std::min(error.message.size(), sizeof r.message - 1);
  std::memcpy(r.message, error.message.data(), n);
  r.message[n] = '\0';
  return r;
}

}  // namespace pixpool::wire
