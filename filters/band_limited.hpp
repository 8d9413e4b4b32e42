#pragma once
// Band-limited blur: a Gaussian blur computed from an image decoded at 1/2,
// 1/4 or 1/8 of its size (JPEG DCT scaling), then brought back to full size.
//
// A Gaussian of standard deviation sigma keeps almost nothing above a
// frequency of about 1/(2 pi sigma) cycles per pixel, so when sigma is large
// enough the full-resolution detail the decoder would reconstruct is thrown
// away by the blur anyway. Decoding at 1/s, blurring at sigma/s and
// interpolating back (separable cubic) gives the same image to within the
// quality bar of docs/performance.md ("Band-limited decode"), for a fraction
// of the decode and blur cost.

#include <opencv2/core.hpp>
#include <optional>

#include "core/result.hpp"
#include "filters/row_source.hpp"
#include "filters/strips.hpp"

namespace pixpool {

// Decode scales a JPEG decoder offers (libjpeg's 1/s DCT scaling).
inline constexpr int kBandLimitedScales[] = {2, 4, 8};

// The largest scale s (1, 2, 4 or 8) at which band_limited_blur() of `sigma`
// on a `width` x `height` image holds the quality bar, or 1 when none does
// (then decode and blur at full size). Derived from measurements on the photo
// corpus; the rule and its table are in band_limited.cpp and
// docs/performance.md.
int band_limited_scale(double sigma, int width, int height);

// What to do with the upsampled blur before storing it.
enum class AfterBlur {
  nothing,  // dst is the blurred image
  contour,  // dst is contour(blurred image), fused: the blur is never stored
};

// `small` is an image (CV_8UC1 or CV_8UC3) decoded at 1/`scale` of `full`:
// its size is ceil(full / scale) per side, each pixel standing for a
// scale x scale block of the full image. Computes the Gaussian blur of
// standard deviation `sigma` (full-size pixels, borders replicated) of the
// full image at full size, rounded to 8 bits, and then `after`. `dst` gets
// `full` size and the type of `small`. Rows run in strips through `strips`.
// Errors: invalid_parameter for a scale other than 2, 4 or 8, a `small`
// whose size does not match `full` / `scale`, an unsupported image type, or
// sigma / scale outside the blur's range.
Result<void> band_limited_blur(const cv::Mat& small, cv::Mat& dst, double sigma, int scale,
                               cv::Size full, AfterBlur after, const StripRunner& strips = {});

// The same without ever storing the full-size result: prepare() pads and
// blurs the reduced image once (through `strips`), then rows() makes the
// full-size rows on demand, strip by strip, for a consumer such as
// encode_jpeg(RowSource). The rows are the bytes band_limited_blur() gives.
//
// Or built while the reduced image is still being decoded: start() with its
// size and type, then take_rows() each time more of its rows are final. The
// rows are padded and blurred as far as they allow, and a stream of rows()
// may make full-size rows [a, b) as soon as b <= ready_rows(). Taking the
// last row finishes the image (ready_rows() == full height).
//
// take_rows() is pad_rows() followed by blurring every band due; a caller
// that wants the blurring off the decoding thread calls the parts itself:
// pad_rows() on the decoding thread, and next_band(), blur_band() and
// band_done() for one band at a time, anywhere (see pipeline/overlapped_job).
// Errors of prepare() and start(): those of band_limited_blur().
class BandLimitedImage {
 public:
  static Result<BandLimitedImage> prepare(const cv::Mat& small, double sigma, int scale,
                                          cv::Size full, AfterBlur after,
                                          const StripRunner& strips = {});
  static Result<BandLimitedImage> start(cv::Size small_size, int type, double sigma, int scale,
                                        cv::Size full, AfterBlur after);
  // Rows [0, rows) of `small` (the size and type given to start()) are
  // final; rows taken before are not read again. Not concurrent with itself.
  // Errors: internal for another size or type, or fewer rows than before.
  Result<void> take_rows(const cv::Mat& small, int rows);

  // Padded reduced rows [first, last), blurred in one go.
  struct Band {
    int first = 0;
    int last = 0;
  };
  // take_rows() without the blurring. Same errors.
  Result<void> pad_rows(const cv::Mat& small, int rows);
  // The band that the rows padded so far allow blurring (at least one
  // encoder strip's worth of full rows, or all that is left once the last
  // row is padded), or nullopt. A band given and not yet done is given
  // again: keep one band in flight.
  std::optional<Band> next_band() const;
  // Blurs `band` from next_band(). It reads only padded rows that are final
  // and writes only blurred rows that no stream reads yet, so it may run on
  // another thread while pad_rows() goes on.
  void blur_band(Band band);
  // `band` is blurred: ready_rows() moves on. Not concurrent with
  // pad_rows() or next_band().
  void band_done(Band band);

  // Full-size rows that streams may make so far (see above).
  int ready_rows() const { return ready_rows_; }
  // Valid while this object lives (its streams read the blurred image), and
  // not moved.
  RowSource rows() const;

 private:
  BandLimitedImage() = default;
  cv::Mat padded_;   // the reduced image, padded (released once blurred)
  cv::Mat blurred_;  // padded_, blurred: what the streams read
  double reduced_sigma_ = 0;
  int pad_ = 0;
  int scale_ = 1;
  cv::Size full_;
  cv::Size small_;
  AfterBlur after_ = AfterBlur::nothing;
  int taken_ = 0;         // reduced rows padded so far
  int blurred_rows_ = 0;  // padded rows blurred so far
  int ready_rows_ = 0;
};

}  // namespace pixpool
