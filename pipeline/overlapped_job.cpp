#include "pipeline/overlapped_job.hpp"

#include <oneapi/tbb/task_group.h>

#include <chrono>
#include <optional>
#include <utility>

#include "filters/codec.hpp"
#include "filters/jpeg_codec.hpp"

namespace pixpool {
namespace {

using Clock = std::chrono::steady_clock;

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// The reduced image, blurred as its rows come, and the encoder strips
// started as their rows become ready. Lives on the decoding thread; the
// strips it starts read the blurred rows and write their own pieces only.
class Overlap {
 public:
  explicit Overlap(const OverlappedChain& chain) : chain_(chain) {}

  bool started() const { return image_.has_value(); }

  // Rows [0, rows) of the reduced image `small` are final: blur what they
  // allow and start the strips that are ready. The first error is kept, and
  // later calls then do nothing.
  void take_rows(const cv::Mat& small, int rows) {
    if (!error_.ok()) return;
    const auto start = Clock::now();
    if (auto ok = advance(small, rows); !ok) error_ = ok;
    filter_ms_ += ms_between(start, Clock::now());
  }

  // Waits for the strips started so far; skipped ones, after a failure,
  // never run.
  void abandon() {
    group_.cancel();
    group_.wait();
  }

  // After all rows: every strip has been started; waits and stitches.
  Result<std::string> finish() {
    group_.wait();
    if (!error_.ok()) return error_.error();
    return encoder_->finish();
  }

  const Result<void>& error() const { return error_; }
  double filter_ms() const { return filter_ms_; }

 private:
  Result<void> advance(const cv::Mat& small, int rows) {
    if (!image_) {
      auto image = BandLimitedImage::start(small.size(), small.type(), chain_.sigma, chain_.scale,
                                           chain_.full, chain_.after);
      if (!image) return image.error();
      image_.emplace(std::move(image.value()));
      auto encoder = JpegStripEncoder::create(image_->rows(), chain_.quality);
      if (!encoder) return encoder.error();
      encoder_.emplace(std::move(encoder.value()));
    }
    if (auto ok = image_->take_rows(small, rows); !ok) return ok;
    while (started_ < encoder_->strips() && encoder_->strip_end(started_) <= image_->ready_rows()) {
      group_.run([encoder = &*encoder_, strip = started_] { encoder->encode(strip); });
      ++started_;
    }
    return {};
  }

  const OverlappedChain& chain_;
  // Declared in this order so that the encoder (whose streams read image_)
  // goes first.
  std::optional<BandLimitedImage> image_;
  std::optional<JpegStripEncoder> encoder_;
  tbb::task_group group_;
  int started_ = 0;
  Result<void> error_;
  double filter_ms_ = 0;
};

}  // namespace

Result<OverlappedOutput> run_overlapped_chain(std::string_view input, const OverlappedChain& chain,
                                              const StripRunner& strips, StageTimes& times) {
  Overlap overlap(chain);
  DecodeOptions options;
  options.scale_denom = chain.scale;
  options.strips = strips;
  options.on_rows = [&overlap](const cv::Mat& small, int rows) { overlap.take_rows(small, rows); };
  const auto start = Clock::now();
  Result<DecodedImage> decoded = Error{ErrorCode::internal, "not decoded"};
  try {
    decoded = decode_image(input, chain.max_pixels, options);
  } catch (...) {
    overlap.abandon();
    throw;
  }
  const auto decoded_at = Clock::now();
  if (!decoded) {
    overlap.abandon();
    return decoded.error();
  }
  if (!overlap.started()) {
    times.decode_ms += ms_between(start, decoded_at);
    return OverlappedOutput{{}, std::move(decoded->pixels)};
  }
  const cv::Mat& small = decoded->pixels;
  const double filter_while_decoding = overlap.filter_ms();
  // The last call had every row; this one only makes sure of it.
  overlap.take_rows(small, small.rows);
  const double filter_after_decoding = overlap.filter_ms() - filter_while_decoding;
  auto jpeg = overlap.finish();
  times.decode_ms += ms_between(start, decoded_at) - filter_while_decoding;
  times.filter_ms += overlap.filter_ms();
  times.encode_ms += ms_between(decoded_at, Clock::now()) - filter_after_decoding;
  times.decode_scale = chain.scale;
  if (!jpeg) return jpeg.error();
  return OverlappedOutput{std::move(jpeg.value()), {}};
}

}  // namespace pixpool
