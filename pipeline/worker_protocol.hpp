#pragma once
// Control messages between the server and a worker process. Both sides are
// the same binary (the worker is a fork), so plain structs of fixed size
// travel as single SOCK_SEQPACKET messages. Image bytes never travel here:
// they sit in the worker's SharedBuffer.
//
// The op chain crosses as its canonical text (format_ops) and is parsed again
// on the worker's side with the registry it inherited through fork, so an op
// with any number of arguments crosses without a wire change. Each side
// decodes what it receives with one range-checking function: a worker
// decodes hostile images and its replies are untrusted input.

#include <cstdint>

#include "core/result.hpp"
#include "filters/op_chain.hpp"
#include "pipeline/job.hpp"

namespace pixpool::wire {

// Room for kMaxOps ops with kMaxOpArgs arguments each in canonical form
// (a name, and numbers of at most 24 characters), NUL-terminated.
inline constexpr std::size_t kOpsTextCapacity = 4096;

struct Request {
  std::uint64_t buffer_size;  // the shared buffer's current size
  std::uint64_t input_size;   // input bytes at offset 0 of the buffer
  std::int32_t format;        // ImageFormat, or -1 for "the input's"
  std::int32_t quality;
  std::uint64_t max_pixels;
  std::int32_t strips;         // threads the worker may use for this image's filters (>= 1)
  std::int32_t exact;          // JobParams::exact: 0 or 1
  char ops[kOpsTextCapacity];  // format_ops(params.ops), NUL-terminated
};

struct Reply {
  std::uint64_t buffer_size;  // the buffer's size now (the worker may have grown it)
  std::int32_t ok;            // 1: output below; 0: error below
  std::int32_t error_code;    // ErrorCode when !ok
  char message[1024];         // error message when !ok, NUL-terminated
  std::uint64_t output_offset;
  std::uint64_t output_size;
  std::int32_t format;
  std::int32_t width;
  std::int32_t height;
  double decode_ms;
  double filter_ms;
  double encode_ms;
  std::int32_t decode_scale;  // 1, 2, 4 or 8
};

// Server side. Errors: internal when the op chain's text does not fit.
Result<Request> make_request(const JobParams& params, std::uint64_t input_size,
                             std::uint64_t buffer_size, int strips);

// Worker side: the job's parameters, every field range-checked against the
// mapped buffer of `buffer_size` bytes. Errors: internal naming the field.
Result<JobParams> decode_request(const Request& request, std::uint64_t buffer_size);

// Worker side: the reply for a finished job whose output sits at `offset`.
Reply output_reply(const JobOutput& output, std::uint64_t offset, std::uint64_t buffer_size);

// Worker side: the reply for a failed job.
Reply error_reply(const Error& error, std::uint64_t buffer_size);

// Where a worker's output sits in its buffer, and what it is.
struct ReplyOutput {
  std::uint64_t offset = 0;
  std::uint64_t size = 0;
  ImageFormat format = ImageFormat::png;
  int width = 0;
  int height = 0;
  StageTimes times;
};
using JobAnswer = Result<ReplyOutput>;  // the job's outcome as the worker reports it

// The longest stage time a reply may report, in ms: a day. Finite is not
// enough: one worker's 1.6e308 ms would turn the server's latency sums to
// infinity (fuzz_worker_reply, crash-9e51d6ad).
inline constexpr double kMaxStageMs = 86'400'000.0;

// Server side, after the buffer follows reply.buffer_size: the job's outcome
// (an output inside the `buffer_size` bytes mapped, stage times within
// 0..kMaxStageMs, or the worker's error, its code range-checked). Errors
// (outer): internal for a malformed reply,
// after which the worker must not be trusted again.
Result<JobAnswer> decode_reply(const Reply& reply, std::uint64_t buffer_size);

}  // namespace pixpool::wire
