#include "pipeline/worker_protocol.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string_view>

namespace pixpool::wire {
namespace {

Error malformed(const std::string& what) {
  return Error{ErrorCode::internal, "malformed worker message: " + what};
}

bool valid_ms(double ms) {
  return std::isfinite(ms) && ms >= 0 && ms <= kMaxStageMs;
}

}  // namespace

Result<Request> make_request(const JobParams& params, std::uint64_t input_size,
                             std::uint64_t buffer_size, int strips) {
  Request r{};
  r.buffer_size = buffer_size;
  r.input_size = input_size;
  r.format = params.format ? static_cast<std::int32_t>(*params.format) : -1;
  r.quality = params.quality;
  r.max_pixels = params.max_pixels;
  r.strips = std::max(1, strips);
  r.exact = params.exact ? 1 : 0;
  const std::string ops = format_ops(params.ops);
  if (ops.size() >= sizeof r.ops) {
    return Error{ErrorCode::internal, "op chain too long for the worker message"};
  }
  std::memcpy(r.ops, ops.data(), ops.size());
  r.ops[ops.size()] = '\0';
  return r;
}

Result<JobParams> decode_request(const Request& r, std::uint64_t buffer_size) {
  if (r.input_size > buffer_size) return malformed("input larger than the shared buffer");
  if (r.quality < 1 || r.quality > 100) return malformed("quality out of range");
  if (r.strips < 1) return malformed("strips out of range");
  if (r.exact != 0 && r.exact != 1) return malformed("exact flag out of range");
  const void* end = std::memchr(r.ops, '\0', sizeof r.ops);
  if (end == nullptr) return malformed("op chain is not terminated");
  JobParams p;
  if (r.format != -1) {
    const auto format = image_format_from_int(r.format);
    if (!format) return malformed("unknown output format " + std::to_string(r.format));
    p.format = *format;
  }
  p.quality = r.quality;
  p.max_pixels = r.max_pixels;
  p.exact = r.exact == 1;
  const std::string_view ops(r.ops, static_cast<const char*>(end) - r.ops);
  if (!ops.empty()) {
    auto chain = parse_ops(ops);
    if (!chain) return malformed("op chain: " + chain.error().message);
    p.ops = std::move(chain.value());
  }
  return p;
}

Reply output_reply(const JobOutput& output, std::uint64_t offset, std::uint64_t buffer_size) {
  Reply r{};
  r.buffer_size = buffer_size;
  r.ok = 1;
  r.output_offset = offset;
  r.output_size = output.bytes.size();
  r.format = static_cast<std::int32_t>(output.format);
  r.width = output.width;
  r.height = output.height;
  r.decode_ms = output.times.decode_ms;
  r.filter_ms = output.times.filter_ms;
  r.encode_ms = output.times.encode_ms;
  r.decode_scale = output.times.decode_scale;
  return r;
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

Result<JobAnswer> decode_reply(const Reply& r, std::uint64_t buffer_size) {
  if (r.ok == 0) {
    const auto code = error_code_from_int(r.error_code);
    if (!code) return malformed("unknown error code " + std::to_string(r.error_code));
    const void* end = std::memchr(r.message, '\0', sizeof r.message);
    if (end == nullptr) return malformed("error message is not terminated");
    return JobAnswer(Error{*code, std::string(r.message, static_cast<const char*>(end))});
  }
  if (r.ok != 1) return malformed("ok flag is " + std::to_string(r.ok));
  if (r.output_offset > buffer_size || r.output_size > buffer_size - r.output_offset) {
    return malformed("output points outside the shared buffer");
  }
  const auto format = image_format_from_int(r.format);
  if (!format) return malformed("unknown output format " + std::to_string(r.format));
  if (r.width <= 0 || r.height <= 0) return malformed("output dimensions out of range");
  if (!valid_ms(r.decode_ms) || !valid_ms(r.filter_ms) || !valid_ms(r.encode_ms)) {
    return malformed("stage times out of range");
  }
  if (r.decode_scale != 1 && r.decode_scale != 2 && r.decode_scale != 4 && r.decode_scale != 8) {
    return malformed("decode scale out of range");
  }
  ReplyOutput out;
  out.offset = r.output_offset;
  out.size = r.output_size;
  out.format = *format;
  out.width = r.width;
  out.height = r.height;
  out.times.decode_ms = r.decode_ms;
  out.times.filter_ms = r.filter_ms;
  out.times.encode_ms = r.encode_ms;
  out.times.decode_scale = r.decode_scale;
  return JobAnswer(out);
}

}  // namespace pixpool::wire
