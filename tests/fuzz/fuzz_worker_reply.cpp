// Fuzz target: the server's decoder of worker replies (pipeline/
// worker_protocol.hpp decode_reply). A worker decodes hostile images, so
// once compromised it may send any bytes: the input is the mapped buffer's
// size (8 bytes) and the reply message. Whatever it accepts must point
// inside the buffer and carry a known format, an error code from the table
// and stage times within 0..kMaxStageMs.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "pipeline/worker_protocol.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < sizeof(std::uint64_t)) return -1;
  std::uint64_t buffer_size = 0;
  std::memcpy(&buffer_size, data, sizeof buffer_size);
  pixpool::wire::Reply reply{};
  std::memcpy(&reply, data + sizeof buffer_size, std::min(size - sizeof buffer_size, sizeof reply));

  auto answer = pixpool::wire::decode_reply(reply, buffer_size);
  if (!answer) {
    if (answer.error().code != pixpool::ErrorCode::internal) std::abort();
    return 0;
  }
  if (!*answer) {
    const pixpool::Error& error = answer->error();
    if (!pixpool::error_code_from_int(static_cast<std::int64_t>(error.code)) ||
        error.message.size() >= sizeof reply.message) {
      std::abort();
    }
    return 0;
  }
  const pixpool::wire::ReplyOutput& out = answer->value();
  if (out.offset > buffer_size || out.size > buffer_size - out.offset || out.width <= 0 ||
      out.height <= 0 || !pixpool::image_format_from_int(static_cast<int>(out.format))) {
    std::abort();
  }
  for (double ms : {out.times.decode_ms, out.times.filter_ms, out.times.encode_ms}) {
    if (!(ms >= 0 && ms <= pixpool::wire::kMaxStageMs)) std::abort();
  }
  return 0;
}
