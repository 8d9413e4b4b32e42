#include "filters/band_limited.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "filters/blur.hpp"
#include "filters/contour.hpp"
#include "filters/simd.hpp"
#include "filters/upsample_taps.hpp"

namespace pixpool {
namespace {

// The scale rule, from tests/filters/test_band_limited.cpp's measurements on
// the photo corpus (docs/performance.md, "Band-limited decode"): scale s is
// used from sigma >= kMinSigmaPerScale * s on. Below that, detail near the
// reduced image's Nyquist frequency survives the blur, and both its aliasing
// in the decimation and the interpolation error break 40 dB.
constexpr double kMinSigmaPerScale = 1.0;
// The reduced image must keep a few pixels per side, or its border
// extrapolation has nothing to go on.
constexpr int kMinReducedSide = 16;

// Catmull-Rom cubic (a = -0.5) weights of the samples at -1, 0, 1, 2 for a
// point at fraction t in [0, 1) past sample 0. They sum to 1, and the
// interpolation is exact for quadratics, which a blurred image is locally.
std::array<double, 4> cubic_weights(double t) {
  const double t2 = t * t;
  const double t3 = t2 * t;
  return {-0.5 * t3 + t2 - 0.5 * t, 1.5 * t3 - 2.5 * t2 + 1.0, -1.5 * t3 + 2.0 * t2 + 0.5 * t,
          0.5 * t3 - 0.5 * t2};
}

// The upsampler works in fixed point, so every instruction set (and the
// portable fallback) gives the same bytes, and 16-bit lanes carry twice the
// samples of float ones:
// - horizontal rows hold 32 x the value in int16 (the cubic's overshoot
//   keeps them within about -600..8800);
// - horizontal weights are Q13 in int32, vertical weights Q15 in int16, and
//   (row * weight) >> 16 is then 16 x the value's share.
constexpr int kHorizontalOne = 1 << 13;
constexpr int kVerticalOne = 1 << 15;
// Each of the 4 truncating >> 16 loses [0, 1) sixteenths, 2 on average: the
// final rounding adds them back with its half (8).
constexpr int kVerticalRounding = 8 + 2;

// `w` scaled to `one` and rounded, the largest adjusted so they sum to `one`
// exactly: a flat image then stays exactly flat.
template <typename T>
std::array<T, 4> fixed_weights(const std::array<double, 4>& w, int one) {
  std::array<T, 4> q{};
  int sum = 0;
  int largest = 0;
  for (int k = 0; k < 4; ++k) {
    q[k] = static_cast<T>(std::lround(w[k] * one));
    sum += q[k];
    if (w[k] > w[largest]) largest = k;
  }
  q[largest] = static_cast<T>(q[largest] + one - sum);
  return q;
}

// Where full-size pixel i (0-based) falls in the reduced image's pixel
// coordinates: reduced pixel k is the mean of full pixels s*k .. s*k+s-1, so
// its centre is at full coordinate s*k + (s-1)/2.
double reduced_coordinate(int i, int scale) {
  return (i + 0.5) / scale - 0.5;
}

std::uint8_t clamp_to_8bit(double v) {
  return static_cast<std::uint8_t>(std::clamp(std::lround(v), 0L, 255L));
}

// A reduced image's padding: `pad` pixels on every side. With borders
// replicated, the full image continues past its edge with copies of its
// outermost row or column. The reduced image only knows the mean of the
// outermost s rows, which at large sigma (when half the kernel's weight falls
// outside) would shift the whole border region, so the padding continues the
// last two reduced pixels linearly to where the full image's edge row lies.
//
// Made in parts, so that the padding can grow with the rows of an image
// still being decoded: sides() of a row needs only that row, top() reduced
// rows 0 and 1, bottom() the last two.
class Padding {
 public:
  Padding(int pad, int scale, cv::Size full, cv::Size small) : pad_(pad), small_(small) {
    // Distance, in reduced pixels, from the outermost reduced centre to the
    // full image's edge pixel (0 when a partial last block puts it past it).
    auto reach = [scale](int full_size, int reduced_size) {
      const double centre = reduced_coordinate(full_size - 1, scale);
      return std::max(0.0, centre - (reduced_size - 1));
    };
    top_ = -reduced_coordinate(0, scale);
    bottom_ = reach(full.height, small.height);
    left_ = top_;
    right_ = reach(full.width, small.width);
  }

  // Left and right padding columns of padded row y.
  void sides(cv::Mat& out, int y) const {
    const int ch = out.channels();
    const int right_col = pad_ + small_.width - 1;
    const int inner_left = small_.width > 1 ? pad_ + 1 : pad_;
    const int inner_right = small_.width > 1 ? right_col - 1 : right_col;
    std::uint8_t* row = out.ptr(y);
    for (int c = 0; c < ch; ++c) {
      const std::uint8_t l = extrapolate(row[pad_ * ch + c], row[inner_left * ch + c], left_);
      const std::uint8_t r =
          extrapolate(row[right_col * ch + c], row[inner_right * ch + c], right_);
      for (int x = 0; x < pad_; ++x) {
        row[x * ch + c] = l;
        row[(right_col + 1 + x) * ch + c] = r;
      }
    }
  }

  // The `pad` rows above the image, sides included.
  void top(cv::Mat& out) const {
    rows_beyond(out, pad_, small_.height > 1 ? pad_ + 1 : pad_, top_, 0);
  }

  // The `pad` rows below the image, sides included.
  void bottom(cv::Mat& out) const {
    const int last = pad_ + small_.height - 1;
    rows_beyond(out, last, small_.height > 1 ? last - 1 : last, bottom_, last + 1);
  }

 private:
  static std::uint8_t extrapolate(int edge, int inner, double distance) {
    return clamp_to_8bit(edge + (edge - inner) * distance);
  }

  // Rows [first, first + pad) continue rows `edge` and `inner` by `distance`.
  void rows_beyond(cv::Mat& out, int edge, int inner, double distance, int first) const {
    const int ch = out.channels();
    for (int i = pad_ * ch; i < (pad_ + small_.width) * ch; ++i) {
      const std::uint8_t v = extrapolate(out.ptr(edge)[i], out.ptr(inner)[i], distance);
      for (int y = first; y < first + pad_; ++y) out.ptr(y)[i] = v;
    }
    for (int y = first; y < first + pad_; ++y) sides(out, y);
  }

  int pad_;
  cv::Size small_;
  double top_ = 0, bottom_ = 0, left_ = 0, right_ = 0;
};

// `small` with its Padding.
cv::Mat pad_extrapolated(const cv::Mat& small, int pad, int scale, cv::Size full) {
  cv::Mat out(small.rows + 2 * pad, small.cols + 2 * pad, small.type());
  small.copyTo(out(cv::Rect(pad, pad, small.cols, small.rows)));
  const Padding padding(pad, scale, full, small.size());
  for (int y = pad; y < pad + small.rows; ++y) padding.sides(out, y);
  padding.top(out);
  padding.bottom(out);
  return out;
}

// One vertical tap: 16 x a's share of the value (see kVerticalOne).
inline std::int16_t vertical_tap(std::int16_t a, int w) {
  return static_cast<std::int16_t>((a * w) >> 16);
}

// The 16ths of a value back to 8 bits: rounded and clamped to 0..255.
inline std::uint8_t from_sixteenths(int taps_sum) {
  const auto v =
      static_cast<std::int16_t>(static_cast<std::int16_t>(taps_sum + kVerticalRounding) >> 4);
  return static_cast<std::uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
}

// out[i] = w0 a[i] + w1 b[i] + w2 c[i] + w3 d[i] in 8 bits (fixed point above).
PIXPOOL_SIMD_CLONES
void combine(const std::array<std::int16_t, 4>& w, const std::int16_t* __restrict a,
             const std::int16_t* __restrict b, const std::int16_t* __restrict c,
             const std::int16_t* __restrict d, std::uint8_t* __restrict out, int n) {
  const int w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3];
  for (int i = 0; i < n; ++i) {
    out[i] =
        from_sixteenths(static_cast<std::int16_t>(vertical_tap(a[i], w0) + vertical_tap(b[i], w1) +
                                                  vertical_tap(c[i], w2) + vertical_tap(d[i], w3)));
  }
}

// The same for two output rows that interpolate between the same four rows
// (with weights w and v): each input is loaded once for both.
PIXPOOL_SIMD_CLONES
void combine_pair(const std::array<std::int16_t, 4>& w, const std::array<std::int16_t, 4>& v,
                  const std::int16_t* __restrict a, const std::int16_t* __restrict b,
                  const std::int16_t* __restrict c, const std::int16_t* __restrict d,
                  std::uint8_t* __restrict out0, std::uint8_t* __restrict out1, int n) {
  const int w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3];
  const int v0 = v[0], v1 = v[1], v2 = v[2], v3 = v[3];
  for (int i = 0; i < n; ++i) {
    out0[i] =
        from_sixteenths(static_cast<std::int16_t>(vertical_tap(a[i], w0) + vertical_tap(b[i], w1) +
                                                  vertical_tap(c[i], w2) + vertical_tap(d[i], w3)));
    out1[i] =
        from_sixteenths(static_cast<std::int16_t>(vertical_tap(a[i], v0) + vertical_tap(b[i], v1) +
                                                  vertical_tap(c[i], v2) + vertical_tap(d[i], v3)));
  }
}

// Upsamples a padded reduced image by an integer factor, row by row, with
// the separable cubic: each reduced row is first interpolated horizontally
// to full width (once, kept in a ring of the last 4), then every full row is
// the weighted sum of 4 such rows.
class Upsampler {
 public:
  Upsampler(const cv::Mat& padded, int pad, int scale, cv::Size full)
      : padded_(padded), pad_(pad), scale_(scale), full_(full), ch_(padded.channels()) {
    // One spare sample: interleaving copies whole 4-sample words.
    const auto row_samples = static_cast<std::size_t>(full.width) * ch_ + 1;
    for (auto& slot : ring_) slot.values.resize(row_samples);
    phases_.resize(scale);
    phase_rows_.assign(static_cast<std::size_t>(scale),
                       std::vector<std::int16_t>(static_cast<std::size_t>(padded.cols) * ch_ + 1));
    for (int p = 0; p < scale; ++p) {
      const double u = reduced_coordinate(p, scale);
      const double base = std::floor(u);
      phases_[p] = Phase{static_cast<int>(base) - 1,
                         fixed_weights<std::int32_t>(cubic_weights(u - base), kHorizontalOne)};
    }
  }

  // Full row y (0 <= y < full.height) rounded to 8 bits into `out`, and
  // when row y+1 interpolates between the same reduced rows (scales 4 and
  // 8) and `out_next` is given, row y+1 into it in the same pass. Returns
  // the number of rows made, 1 or 2. Rows are asked for in increasing order.
  int rows(int y, std::uint8_t* out, std::uint8_t* out_next) {
    const int n = full_.width * ch_;
    const double u = reduced_coordinate(y, scale_);
    const double base = std::floor(u);
    const auto w = fixed_weights<std::int16_t>(cubic_weights(u - base), kVerticalOne);
    const int first = static_cast<int>(base) - 1 + pad_;
    const std::int16_t* a = horizontal(first);
    const std::int16_t* b = horizontal(first + 1);
    const std::int16_t* c = horizontal(first + 2);
    const std::int16_t* d = horizontal(first + 3);
    const double u_next = reduced_coordinate(y + 1, scale_);
    if (out_next != nullptr && y + 1 < full_.height && std::floor(u_next) == base) {
      combine_pair(w, fixed_weights<std::int16_t>(cubic_weights(u_next - base), kVerticalOne), a, b,
                   c, d, out, out_next, n);
      return 2;
    }
    combine(w, a, b, c, d, out, n);
    return 1;
  }

 private:
  struct Phase {
    int offset;  // first tap, relative to the reduced pixel the output lies in
    std::array<std::int32_t, 4> weights;
  };
  struct Slot {
    int row = -1;  // padded reduced row held, -1: none
    std::vector<std::int16_t> values;
  };

  const std::int16_t* horizontal(int padded_row) {
    Slot& slot = ring_[static_cast<std::size_t>(padded_row) % ring_.size()];
    if (slot.row != padded_row) {
      interpolate_row(padded_.ptr(padded_row), slot.values.data());
      slot.row = padded_row;
    }
    return slot.values.data();
  }

  // out[(s*j + p)*ch + c] = sum_k w_p[k] * in[(j + pad + offset_p + k)*ch + c].
  // For one phase p that is a 4-tap filter running along the row, which
  // vectorises; the phases are then interleaved into the output row, a pixel
  // at a time (one 8-byte copy for 3 channels: the spare 4th sample is
  // overwritten by the next pixel, or lands in the row's spare sample).
  void interpolate_row(const std::uint8_t* in, std::int16_t* out) {
    const int s = scale_;
    const int ch = ch_;
    const int reduced_cols = (full_.width + s - 1) / s;
    const int n = reduced_cols * ch;
    for (int p = 0; p < s; ++p) {
      const Phase& phase = phases_[p];
      upsample::filter4(in + static_cast<std::ptrdiff_t>(pad_ + phase.offset) * ch, ch,
                        phase.weights.data(), phase_rows_[p].data(), n);
    }
    if (ch == 3 && s >= 4) {
      interleave_bgr_fours(out);
    } else if (ch == 3) {
      interleave<8>(out);
    } else {
      interleave<2>(out);
    }
  }

  // interleave<8> for 3 channels at scales 4 and 8, four phases at a time:
  // the pixel-by-pixel copies' overlapping stores were most of its cost.
  void interleave_bgr_fours(std::int16_t* out) const {
    const int s = scale_;
    const int whole = full_.width / s;  // reduced columns with all s phases
    for (int p = 0; p < s; p += 4) {
      const std::int16_t* rows[4] = {phase_rows_[p].data(), phase_rows_[p + 1].data(),
                                     phase_rows_[p + 2].data(), phase_rows_[p + 3].data()};
      interleave_four_bgr(rows, whole, s, out + static_cast<std::ptrdiff_t>(p) * 3);
    }
    // The last, partial reduced column (full width not a multiple of s).
    const int x0 = whole * s;
    for (int p = 0; p < full_.width - x0; ++p) {
      std::memcpy(out + static_cast<std::ptrdiff_t>(x0 + p) * 3,
                  phase_rows_[p].data() + static_cast<std::ptrdiff_t>(whole) * 3, 8);
    }
  }

  // For j < pixels: the 3 samples of pixel j of rows[0..3], one after the
  // other (24 bytes) at out + 3 * s * j. Each row has a spare sample after
  // its last pixel (two 8-byte loads of 6 bytes, shuffled into 16 + 8).
  PIXPOOL_SIMD_CLONES
  static void interleave_four_bgr(const std::int16_t* const rows[4], int pixels, int s,
                                  std::int16_t* out) {
    using Bytes = std::uint8_t __attribute__((vector_size(16)));
    using Words = std::uint64_t __attribute__((vector_size(16)));
    for (std::ptrdiff_t j = 0; j < pixels; ++j) {
      std::uint64_t a = 0, b = 0, c = 0, d = 0;
      std::memcpy(&a, rows[0] + 3 * j, 8);
      std::memcpy(&b, rows[1] + 3 * j, 8);
      std::memcpy(&c, rows[2] + 3 * j, 8);
      std::memcpy(&d, rows[3] + 3 * j, 8);
      const auto ab = reinterpret_cast<Bytes>(Words{a, b});
      const auto cd = reinterpret_cast<Bytes>(Words{c, d});
      // a0-5 b0-5 c0-3 | c4-5 d0-5
      const Bytes first =
          __builtin_shufflevector(ab, cd, 0, 1, 2, 3, 4, 5, 8, 9, 10, 11, 12, 13, 16, 17, 18, 19);
      const Bytes second =
          __builtin_shufflevector(cd, cd, 4, 5, 8, 9, 10, 11, 12, 13, 0, 0, 0, 0, 0, 0, 0, 0);
      std::int16_t* to = out + j * 3 * s;
      std::memcpy(to, &first, 16);
      std::memcpy(to + 8, &second, 8);
    }
  }

  template <std::size_t kPixelBytes>
  void interleave(std::int16_t* out) const {
    const int s = scale_;
    const int reduced_cols = (full_.width + s - 1) / s;
    for (int j = 0; j < reduced_cols; ++j) {
      const int x0 = j * s;
      const int phases = std::min(s, full_.width - x0);
      for (int p = 0; p < phases; ++p) {
        std::memcpy(out + static_cast<std::ptrdiff_t>(x0 + p) * ch_,
                    phase_rows_[p].data() + static_cast<std::ptrdiff_t>(j) * ch_, kPixelBytes);
      }
    }
  }

  const cv::Mat& padded_;
  int pad_;
  int scale_;
  cv::Size full_;
  int ch_;
  std::vector<Phase> phases_;
  std::array<Slot, 4> ring_;
  std::vector<std::vector<std::int16_t>> phase_rows_;  // one filtered row per phase
};

Result<void> check_arguments(cv::Size small, int type, double sigma, int scale, cv::Size full) {
  if (scale != 2 && scale != 4 && scale != 8) {
    return {ErrorCode::invalid_parameter,
            "band-limited blur: scale must be 2, 4 or 8, got " + std::to_string(scale)};
  }
  if (CV_MAT_DEPTH(type) != CV_8U || (CV_MAT_CN(type) != 1 && CV_MAT_CN(type) != 3)) {
    return {ErrorCode::invalid_parameter, "band-limited blur: expects an 8-bit grey or BGR image"};
  }
  if (full.width < 1 || full.height < 1 || small.width != (full.width + scale - 1) / scale ||
      small.height != (full.height + scale - 1) / scale) {
    return {ErrorCode::invalid_parameter, "band-limited blur: the reduced image is " +
                                              std::to_string(small.width) + "x" +
                                              std::to_string(small.height) + ", not 1/" +
                                              std::to_string(scale) + " of the full size"};
  }
  const double reduced_sigma = sigma / scale;
  if (!(reduced_sigma >= kBlurMinSigma && sigma <= kBlurMaxSigma)) {
    return {ErrorCode::invalid_parameter, "band-limited blur: sigma " + std::to_string(sigma) +
                                              " is out of range at 1/" + std::to_string(scale)};
  }
  return {};
}

// Enough padding that the blur never reaches the padding's own border (the
// blur's kernels reach at most 3 sigma) and the cubic's 2 taps beyond.
int padding_for(double reduced_sigma) {
  return static_cast<int>(std::ceil(4.0 * reduced_sigma)) + 3;
}

// Reduced rows are blurred in bands that stand for at least this many full
// rows (one JPEG encoder strip), and each band also reads blur_reach rows
// on either side: short enough that the first strips can start early, long
// enough that the bands' overlap and calls cost little.
constexpr int kBlurBandFullRows = 128;

}  // namespace

int band_limited_scale(double sigma, int width, int height) {
  int best = 1;
  for (int scale : kBandLimitedScales) {
    const bool sharp_enough = sigma >= kMinSigmaPerScale * scale;
    const bool big_enough = std::min(width, height) >= kMinReducedSide * scale;
    if (sharp_enough && big_enough) best = scale;
  }
  return best;
}

Result<BandLimitedImage> BandLimitedImage::prepare(const cv::Mat& small, double sigma, int scale,
                                                   cv::Size full, AfterBlur after,
                                                   const StripRunner& strips) {
  if (auto ok = check_arguments(small.size(), small.type(), sigma, scale, full); !ok) {
    return ok.error();
  }
  BandLimitedImage image;
  image.reduced_sigma_ = sigma / scale;
  image.pad_ = padding_for(image.reduced_sigma_);
  if (auto ok = blur(pad_extrapolated(small, image.pad_, scale, full), image.blurred_,
                     image.reduced_sigma_, strips);
      !ok) {
    return ok.error();
  }
  image.scale_ = scale;
  image.full_ = full;
  image.small_ = small.size();
  image.after_ = after;
  image.taken_ = small.rows;
  image.blurred_rows_ = image.blurred_.rows;
  image.ready_rows_ = full.height;
  return image;
}

Result<BandLimitedImage> BandLimitedImage::start(cv::Size small_size, int type, double sigma,
                                                 int scale, cv::Size full, AfterBlur after) {
  if (auto ok = check_arguments(small_size, type, sigma, scale, full); !ok) return ok.error();
  BandLimitedImage image;
  image.reduced_sigma_ = sigma / scale;
  image.pad_ = padding_for(image.reduced_sigma_);
  const cv::Size padded(small_size.width + 2 * image.pad_, small_size.height + 2 * image.pad_);
  image.padded_.create(padded, type);
  // Zeroed, so that a stream reading a row before it is ready would read a
  // fixed wrong value (and the tests see it), never stale memory.
  image.blurred_ = cv::Mat::zeros(padded, type);
  image.scale_ = scale;
  image.full_ = full;
  image.small_ = small_size;
  image.after_ = after;
  return image;
}

Result<void> BandLimitedImage::take_rows(const cv::Mat& small, int rows) {
  if (auto ok = pad_rows(small, rows); !ok) return ok;
  while (const auto band = next_band()) {
    blur_band(*band);
    band_done(*band);
  }
  return {};
}

Result<void> BandLimitedImage::pad_rows(const cv::Mat& small, int rows) {
  if (small.size() != small_ || small.type() != blurred_.type() || rows < taken_ ||
      rows > small_.height) {
    return {ErrorCode::internal, "band-limited blur: take_rows outside the reduced image"};
  }
  if (rows == taken_) return {};
  const Padding padding(pad_, scale_, full_, small_);
  for (int y = taken_; y < rows; ++y) {
    small.row(y).copyTo(padded_.row(pad_ + y).colRange(pad_, pad_ + small_.width));
    padding.sides(padded_, pad_ + y);
  }
  const int top_needs = std::min(2, small_.height);  // Padding::top reads rows 0 and 1
  if (taken_ < top_needs && rows >= top_needs) padding.top(padded_);
  taken_ = rows;
  if (taken_ == small_.height) padding.bottom(padded_);
  return {};
}

std::optional<BandLimitedImage::Band> BandLimitedImage::next_band() const {
  const int all = blurred_.rows;
  const bool complete = taken_ == small_.height;
  // Padded rows final so far: the top padding and the rows taken, or all.
  const int top_needs = std::min(2, small_.height);
  const int final_rows = complete ? all : (taken_ >= top_needs ? pad_ + taken_ : 0);
  const int target = complete ? all : final_rows - blur_reach(reduced_sigma_);
  if (target <= blurred_rows_ ||
      (!complete && (target - blurred_rows_) * scale_ < kBlurBandFullRows)) {
    return std::nullopt;
  }
  return Band{blurred_rows_, target};
}

void BandLimitedImage::blur_band(Band band) {
  // The arguments were checked in start(): blur_rows cannot fail.
  (void)blur_rows(padded_, blurred_, reduced_sigma_, band.first, band.last);
}

void BandLimitedImage::band_done(Band band) {
  blurred_rows_ = band.last;
  if (blurred_rows_ == blurred_.rows) {
    padded_.release();
    ready_rows_ = full_.height;
    return;
  }
  // A stream making rows [a, b) reads the upsampled rows up to b + 1 (the
  // contour's row below, and a pair made at once), and full row y reads
  // padded rows up to pad + floor(reduced_coordinate(y)) + 2. This bound
  // keeps two padded rows to spare.
  ready_rows_ = std::clamp((blurred_rows_ - pad_ - 4) * scale_ - 2, 0, full_.height);
}

namespace {

// Rows of a BandLimitedImage from `first` on: upsampled, and with
// AfterBlur::contour the contour of those.
class BandLimitedStream final : public RowStream {
 public:
  BandLimitedStream(const cv::Mat& padded, int pad, int scale, cv::Size full, AfterBlur after,
                    int first)
      : upsample_(padded, pad, scale, full),
        full_(full),
        channels_(padded.channels()),
        after_(after),
        row_(first),
        next_blurred_(std::max(first - 1, 0)) {
    if (after_ == AfterBlur::contour) {
      const auto row_bytes = static_cast<std::size_t>(full.width) * channels_;
      for (auto& row : ring_) row.resize(row_bytes);
      scratch_.resize(row_bytes);
    }
  }

  void next(int rows, std::uint8_t* out, std::size_t step) override {
    const int end = std::min(row_ + rows, full_.height);
    if (after_ == AfterBlur::nothing) {
      while (row_ < end) {
        const int made = upsample_.rows(row_, out, row_ + 1 < end ? out + step : nullptr);
        row_ += made;
        out += step * made;
      }
      return;
    }
    for (; row_ < end; ++row_, out += step) {
      const std::uint8_t* down = blurred(row_ + 1);  // first: it may advance the ring
      contour_row(blurred(row_ - 1), blurred(row_), down, out, full_.width, channels_,
                  scratch_.data());
    }
  }

 private:
  // Blurred row y (clamped to the image: the contour's border is
  // replicated). Rows are kept in a ring indexed by row % 4: the three the
  // contour reads, and room to make two at once.
  const std::uint8_t* blurred(int y) {
    y = std::clamp(y, 0, full_.height - 1);
    while (next_blurred_ <= y) {
      next_blurred_ += upsample_.rows(next_blurred_, slot(next_blurred_), slot(next_blurred_ + 1));
    }
    return slot(y);
  }

  std::uint8_t* slot(int y) { return ring_[static_cast<std::size_t>(y) % ring_.size()].data(); }

  Upsampler upsample_;
  cv::Size full_;
  int channels_;
  AfterBlur after_;
  int row_;           // next row to give
  int next_blurred_;  // next blurred row to make
  std::array<std::vector<std::uint8_t>, 4> ring_;
  std::vector<std::uint16_t> scratch_;
};

}  // namespace

RowSource BandLimitedImage::rows() const {
  return RowSource{full_, blurred_.type(), [this](int first) -> std::unique_ptr<RowStream> {
                     return std::make_unique<BandLimitedStream>(blurred_, pad_, scale_, full_,
                                                                after_, first);
                   }};
}

Result<void> band_limited_blur(const cv::Mat& small, cv::Mat& dst, double sigma, int scale,
                               cv::Size full, AfterBlur after, const StripRunner& strips) {
  auto image = BandLimitedImage::prepare(small, sigma, scale, full, after, strips);
  if (!image) return image.error();
  const RowSource source = image->rows();
  cv::Mat out(full, small.type());
  run_strips(strips, full.height, 32, [&](int begin, int end) {
    source.open(begin)->next(end - begin, out.ptr<std::uint8_t>(begin), out.step);
  });
  dst = std::move(out);
  return {};
}

namespace upsample {

PIXPOOL_SIMD_CLONES
void filter4_portable(const std::uint8_t* in, int stride, const std::int32_t* w, std::int16_t* out,
                      int n) {
  const std::int32_t w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3];
  const std::uint8_t* a = in;
  const std::uint8_t* b = in + stride;
  const std::uint8_t* c = b + stride;
  const std::uint8_t* d = c + stride;
  for (int i = 0; i < n; ++i) {
    out[i] = static_cast<std::int16_t>((w0 * a[i] + w1 * b[i] + w2 * c[i] + w3 * d[i] + 128) >> 8);
  }
}

#if defined(__x86_64__)
bool filter4_avx2_available() {
  static const bool avx2 = __builtin_cpu_supports("avx2");
  return avx2;
}
#else
bool filter4_avx2_available() {
  return false;
}
void filter4_avx2(const std::uint8_t*, int, const std::int32_t*, std::int16_t*, int) {}
#endif

void filter4(const std::uint8_t* in, int stride, const std::int32_t* w, std::int16_t* out, int n) {
  (filter4_avx2_available() ? filter4_avx2 : filter4_portable)(in, stride, w, out, n);
}

}  // namespace upsample

}  // namespace pixpool
