#pragma once
// One unit of work for a backend: encoded bytes in, encoded bytes out.

#include <cstdint>
#include <optional>
#include <string>

#include "filters/codec.hpp"
#include "filters/image_format.hpp"
#include "filters/op_chain.hpp"
#include "filters/status.hpp"

namespace pixpool {

struct JobSpec {
  std::string input;                  // encoded image bytes, format judged from them
  OpChain ops;                        // run left to right
  std::optional<ImageFormat> format;  // nullopt: default_output_format(input format)
  int quality = kDefaultQuality;      // 1..100, JPEG and WebP only
  std::uint64_t max_pixels = kDefaultMaxPixels;
};

// Milliseconds spent in each stage; queue is filled in by the backend.
struct StageTimes {
  double queue_ms = 0;
  double decode_ms = 0;
  double filter_ms = 0;
  double encode_ms = 0;
};

struct JobOutput {
  std::string bytes;  // the encoded result
  ImageFormat format = ImageFormat::png;
  int width = 0;
  int height = 0;
  StageTimes times;
};

// decode -> filters -> encode on the calling thread. Both backends run exactly
// this function, so they produce byte-identical output for the same job.
// Errors: those of read_header, decode_image, check_encodable, apply_ops and
// encode_image; C++ exceptions from libraries become `internal`.
Result<JobOutput> run_job(const JobSpec& job);

}  // namespace pixpool
