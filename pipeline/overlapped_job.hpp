#pragma once
// A lone image's fused band-limited chain (blur, or blur + contour, of a
// JPEG into a JPEG) with its stages overlapped, so one request uses every
// core even when its JPEG has no restart markers to decode in parallel:
//
//   decoding thread: decode reduced rows -> pad, blur them in bands ---+
//                                                                     | as each 128-row
//   other threads:   upsample + contour + encode one JPEG strip  <----+ strip's rows are ready
//
// The decoder (serial: libjpeg's entropy decoding cannot be split without
// restart markers) tells BandLimitedImage of its rows as they come; each
// JPEG strip is started on the calling thread's TBB arena as soon as the
// rows it makes are ready, and the strips are stitched at the end. The bytes
// are those of the sequential fused path (decode, prepare, encode_jpeg).

#include <cstdint>
#include <opencv2/core.hpp>
#include <string>
#include <string_view>

#include "core/result.hpp"
#include "filters/band_limited.hpp"
#include "pipeline/job.hpp"

namespace pixpool {

struct OverlappedChain {
  int scale = 4;  // decode at 1/scale: 2, 4 or 8
  double sigma = 0;
  AfterBlur after = AfterBlur::nothing;
  cv::Size full;  // the decoded image's size, EXIF orientation applied
  std::uint64_t max_pixels = 0;
  int quality = 0;
};

struct OverlappedOutput {
  std::string jpeg;  // the result, or empty when
  // the decoder did not hand over its rows as it went (it decoded in parallel
  // strips, a JPEG with restart markers; it turned the image for its EXIF
  // orientation; or it could not scale, a CMYK JPEG decoded at full size):
  // the decoded image, for the caller's sequential path, which is then as
  // fast or faster.
  cv::Mat decoded;
};

// Decodes `input` at 1/chain.scale (in strips through `strips` when it has
// restart markers) and runs the chain into a JPEG, stages overlapped through
// a tbb::task_group in the calling thread's arena. Fills times: decode (the
// decoder's own time), filter (padding and blurring the reduced rows, on the
// decoding thread) and encode (from the end of decoding to the stitched
// JPEG: strips still running, then stitching).
// Errors: decode_image's, then those of BandLimitedImage and encode_jpeg.
Result<OverlappedOutput> run_overlapped_chain(std::string_view input, const OverlappedChain& chain,
                                              const StripRunner& strips, StageTimes& times);

}  // namespace pixpool
