#pragma once
// Control messages between the server and a worker process. Both sides are
// the same binary (the worker is a fork), so plain structs of fixed size
// travel as single SOCK_SEQPACKET messages. Image bytes never travel here:
// they sit in the worker's SharedBuffer.

#include <cstdint>

#include "filters/op_chain.hpp"
#include "core/result.hpp"
#include "pipeline/job.hpp"

namespace pixpool::wire {

struct Request {
  std::uint64_t buffer_size;  // the shared buffer's current size
  std::uint64_t input_size;   // input bytes at offset 0 of the buffer
  std::int32_t format;        // ImageFormat, or -1 for "the input's"
  std::int32_t quality;
  std::uint64_t max_pixels;
  std::int32_t strips;  // threads the worker may use for this image's filters (>= 1)
  std::uint32_t op_count;
  struct {
    std::int32_t kind;
    double param;
  } ops[kMaxOps];
};

struct Reply {
  std::uint64_t buffer_size;  // the buffer's size now (the worker may have grown it)
  std::int32_t ok;
  std::int32_t error_code;  // ErrorCode when !ok
  char message[1024];       // error message when !ok, NUL-terminated
  std::uint64_t output_offset;
  std::uint64_t output_size;
  std::int32_t format;
  std::int32_t width;
  std::int32_t height;
  double decode_ms;
  double filter_ms;
  double encode_ms;
};

Request make_request(const JobParams& params, std::uint64_t input_size, std::uint64_t buffer_size);
JobParams params_of(const Request& request);

// Fills the non-output fields of a reply from an error.
Reply error_reply(const Error& error, std::uint64_t buffer_size);

}  // namespace pixpool::wire
