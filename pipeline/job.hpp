#pragma once
// One unit of work for a backend: encoded bytes in, encoded bytes out.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/result.hpp"
#include "filters/codec.hpp"
#include "filters/image_format.hpp"
#include "filters/op_chain.hpp"
#include "filters/strips.hpp"
#include "pipeline/cancellation.hpp"

namespace pixpool {

// What to do with an image: everything of a job except its bytes.
struct JobParams {
  OpChain ops;                        // run left to right
  std::optional<ImageFormat> format;  // nullopt: default_output_format(input format)
  int quality = kDefaultQuality;      // 1..100, JPEG and WebP only
  std::uint64_t max_pixels = kDefaultMaxPixels;
  // false: a chain that starts with a blur may decode a JPEG at 1/2, 1/4 or
  // 1/8 scale and blur there (filters/band_limited.hpp); true: full size.
  bool exact = false;
};

struct JobSpec {
  std::string input;  // encoded image bytes, format judged from them
  JobParams params;
  // Set when the requester may go away while the job waits (a client's
  // connection): admission drops the job, unrun, once it is cancelled.
  // nullptr: the job is never cancelled.
  std::shared_ptr<CancelToken> cancel = nullptr;
};

// Milliseconds spent in each stage; queue is filled in by the backend.
struct StageTimes {
  double queue_ms = 0;
  double decode_ms = 0;
  double filter_ms = 0;
  double encode_ms = 0;
  int decode_scale = 1;  // the JPEG was decoded at 1/decode_scale (1, 2, 4 or 8)
};

struct JobOutput {
  std::string bytes;  // the encoded result
  ImageFormat format = ImageFormat::png;
  int width = 0;
  int height = 0;
  StageTimes times;
};

// decode -> filters -> encode on the calling thread; the filters may split
// the image's rows across threads through `strips` (pipeline/strip_runner.hpp;
// empty: this thread only). Both backends run exactly this function, and
// strips never change pixels, so outputs are byte-identical.
// Errors: those of read_header, decode_image, check_encodable, apply_ops and
// encode_image; allocation failures become out_of_memory and other C++
// exceptions from libraries `internal`.
Result<JobOutput> run_job(std::string_view input, const JobParams& params,
                          const StripRunner& strips = {});
inline Result<JobOutput> run_job(const JobSpec& job, const StripRunner& strips = {}) {
  return run_job(job.input, job.params, strips);
}

}  // namespace pixpool
