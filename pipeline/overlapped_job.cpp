#include "pipeline/overlapped_job.hpp"

#include <oneapi/tbb/task_group.h>

#include <chrono>
#include <mutex>
#include <optional>
#include <utility>

#include "filters/codec.hpp"
#include "filters/jpeg_codec.hpp"

#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#endif

namespace pixpool {
namespace {

// Debian's oneTBB is not built with ThreadSanitizer, so TSan cannot see that
// task_group::run orders the spawning thread's writes (the padded rows, the
// encoder) before the task, nor that wait() orders the tasks' writes (their
// encoded pieces) before what follows. These mark both edges on `token`.
void happens_before(void* token) {
#if defined(__SANITIZE_THREAD__)
  __tsan_release(token);
#else
  (void)token;
#endif
}

void happens_after(void* token) {
#if defined(__SANITIZE_THREAD__)
  __tsan_acquire(token);
#else
  (void)token;
#endif
}

using Clock = std::chrono::steady_clock;

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// The reduced image, padded as its rows come on the decoding thread, blurred
// band by band in a task of its own (so that the decoder, the one part that
// cannot be split, never waits for it), and the encoder strips started as
// the bands make their rows ready. The strips read the blurred rows and
// write their own pieces only. mutex_ guards the image's bookkeeping, the
// strips started and the times; the padded and blurred pixels themselves
// are shared by row ranges (see BandLimitedImage::blur_band).
class Overlap {
 public:
  explicit Overlap(const OverlappedChain& chain) : chain_(chain) {}

  bool started() const { return image_.has_value(); }

  // Rows [0, rows) of the reduced image `small` are final: pad them, and
  // start blurring the band they complete unless a band is in flight (its
  // task takes the next one itself). With the last row, the rest is blurred
  // here: the decoder has nothing else left to do. The first error is kept,
  // and later calls then do nothing. Decoding thread only.
  void take_rows(const cv::Mat& small, int rows) {
    const auto start = Clock::now();
    std::unique_lock lock(mutex_);
    if (!error_.ok()) return;
    if (auto ok = pad(small, rows); !ok) error_ = ok;
    filter_ms_ += ms_between(start, Clock::now());
    const auto band = error_.ok() && !blurring_ ? image_->next_band() : std::nullopt;
    if (band) {
      blurring_ = true;
      if (rows == small.rows) {
        lock.unlock();
        blur_bands(*band);
      } else {
        happens_before(&spawned_);
        group_.run([this, band = *band] {
          happens_after(&spawned_);
          blur_bands(band);
          happens_before(&joined_);
        });
      }
    }
    decoder_filter_ms_ += ms_between(start, Clock::now());
  }

  // After a failure: waits for the tasks started so far (those not yet
  // running never will). What they threw is dropped: the failure that got
  // here is the one to report.
  void abandon() noexcept {
    group_.cancel();
    try {
      group_.wait();
    } catch (...) {  // NOLINT(bugprone-empty-catch): see above
    }
    happens_after(&joined_);
  }

  // After all rows: waits for the blurring and the strips, and stitches. A
  // task's exception (bad_alloc) is rethrown here, after all have ended.
  Result<std::string> finish() {
    const auto status = group_.wait();
    happens_after(&joined_);
    if (!error_.ok()) return error_.error();
    if (status == tbb::canceled) {
      return Error{ErrorCode::internal, "the JPEG strips were cancelled"};
    }
    if (started_ != encoder_->strips()) {
      return Error{ErrorCode::internal, "the JPEG strips did not all start"};
    }
    return encoder_->finish();
  }

  // Milliseconds spent padding and blurring, on whichever thread; once the
  // tasks have ended (after finish() or abandon()).
  double filter_ms() const { return filter_ms_; }
  // Of those, and of starting the tasks, what the decoding thread spent.
  double decoder_filter_ms() const { return decoder_filter_ms_; }

 private:
  Result<void> pad(const cv::Mat& small, int rows) {
    if (!image_) {
      auto image = BandLimitedImage::start(small.size(), small.type(), chain_.sigma, chain_.scale,
                                           chain_.full, chain_.after);
      if (!image) return image.error();
      image_.emplace(std::move(image.value()));
      auto encoder = JpegStripEncoder::create(image_->rows(), chain_.quality);
      if (!encoder) return encoder.error();
      encoder_.emplace(std::move(encoder.value()));
    }
    return image_->pad_rows(small, rows);
  }

  // Blurs `band` and the bands after it that are due by then, starting the
  // strips each one makes ready. One caller at a time (blurring_).
  void blur_bands(BandLimitedImage::Band band) {
    for (;;) {
      const auto start = Clock::now();
      image_->blur_band(band);
      const double took = ms_between(start, Clock::now());
      const std::lock_guard lock(mutex_);
      filter_ms_ += took;
      image_->band_done(band);
      start_ready_strips();
      const auto next = image_->next_band();
      if (!next) {
        blurring_ = false;
        return;
      }
      band = *next;
    }
  }

  // With mutex_ held.
  void start_ready_strips() {
    while (started_ < encoder_->strips() && encoder_->strip_end(started_) <= image_->ready_rows()) {
      happens_before(&spawned_);
      group_.run([this, strip = started_] {
        happens_after(&spawned_);
        encoder_->encode(strip);
        happens_before(&joined_);
      });
      ++started_;
    }
  }

  const OverlappedChain& chain_;
  std::mutex mutex_;
  // Declared in this order so that the encoder (whose streams read image_)
  // goes first.
  std::optional<BandLimitedImage> image_;
  std::optional<JpegStripEncoder> encoder_;
  tbb::task_group group_;
  char spawned_ = 0, joined_ = 0;  // tokens for happens_before / happens_after
  bool blurring_ = false;          // a band is in flight
  int started_ = 0;
  Result<void> error_;
  double filter_ms_ = 0;
  double decoder_filter_ms_ = 0;  // the decoding thread's own: no lock needed
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
  const double filter_while_decoding = overlap.decoder_filter_ms();
  // The last call had every row; this one only makes sure of it.
  overlap.take_rows(small, small.rows);
  const double filter_after_decoding = overlap.decoder_filter_ms() - filter_while_decoding;
  auto jpeg = overlap.finish();
  times.decode_ms += ms_between(start, decoded_at) - filter_while_decoding;
  times.filter_ms += overlap.filter_ms();
  times.encode_ms += ms_between(decoded_at, Clock::now()) - filter_after_decoding;
  times.decode_scale = chain.scale;
  if (!jpeg) return jpeg.error();
  return OverlappedOutput{std::move(jpeg.value()), {}};
}

}  // namespace pixpool
