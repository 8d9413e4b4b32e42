#include "filters/band_limited.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "filters/blur.hpp"
#include "filters/contour.hpp"
#include "filters/simd.hpp"

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
std::array<float, 4> cubic_weights(double t) {
  const double t2 = t * t;
  const double t3 = t2 * t;
  return {
      static_cast<float>(-0.5 * t3 + t2 - 0.5 * t), static_cast<float>(1.5 * t3 - 2.5 * t2 + 1.0),
      static_cast<float>(-1.5 * t3 + 2.0 * t2 + 0.5 * t), static_cast<float>(0.5 * t3 - 0.5 * t2)};
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

// `small` with `pad` pixels added on every side. With borders replicated, the
// full image continues past its edge with copies of its outermost row or
// column. The reduced image only knows the mean of the outermost s rows,
// which at large sigma (when half the kernel's weight falls outside) would
// shift the whole border region, so the padding continues the last two
// reduced pixels linearly to where the full image's edge row lies.
cv::Mat pad_extrapolated(const cv::Mat& small, int pad, int scale, cv::Size full) {
  cv::Mat out;
  cv::copyMakeBorder(small, out, pad, pad, pad, pad, cv::BORDER_REPLICATE);
  const int rows = small.rows;
  const int cols = small.cols;
  const int ch = small.channels();
  // Distance, in reduced pixels, from the outermost reduced centre to the
  // full image's edge pixel (0 when a partial last block puts it past it).
  auto reach = [scale](int full_size, int reduced_size) {
    const double centre = reduced_coordinate(full_size - 1, scale);
    return std::max(0.0, centre - (reduced_size - 1));
  };
  const double top = -reduced_coordinate(0, scale);
  const double bottom = reach(full.height, rows);
  const double left = top;
  const double right = reach(full.width, cols);
  auto extrapolate = [](int edge, int inner, double distance) {
    return clamp_to_8bit(edge + (edge - inner) * distance);
  };
  // Top and bottom padding rows, over the image's own columns.
  const int last = pad + rows - 1;
  const int inner_top = rows > 1 ? pad + 1 : pad;
  const int inner_bottom = rows > 1 ? last - 1 : last;
  for (int i = pad * ch; i < (pad + cols) * ch; ++i) {
    const std::uint8_t t = extrapolate(out.ptr(pad)[i], out.ptr(inner_top)[i], top);
    const std::uint8_t b = extrapolate(out.ptr(last)[i], out.ptr(inner_bottom)[i], bottom);
    for (int y = 0; y < pad; ++y) {
      out.ptr(y)[i] = t;
      out.ptr(last + 1 + y)[i] = b;
    }
  }
  // Left and right padding columns, over every row (corners included).
  const int right_col = pad + cols - 1;
  const int inner_left = cols > 1 ? pad + 1 : pad;
  const int inner_right = cols > 1 ? right_col - 1 : right_col;
  for (int y = 0; y < out.rows; ++y) {
    std::uint8_t* row = out.ptr(y);
    for (int c = 0; c < ch; ++c) {
      const std::uint8_t l = extrapolate(row[pad * ch + c], row[inner_left * ch + c], left);
      const std::uint8_t r = extrapolate(row[right_col * ch + c], row[inner_right * ch + c], right);
      for (int x = 0; x < pad; ++x) {
        row[x * ch + c] = l;
        row[(right_col + 1 + x) * ch + c] = r;
      }
    }
  }
  return out;
}

// out[i] = round(w0 a[i] + w1 b[i] + w2 c[i] + w3 d[i]), clamped to 0..255.
PIXPOOL_SIMD_CLONES
void combine(const std::array<float, 4>& w, const float* __restrict a, const float* __restrict b,
             const float* __restrict c, const float* __restrict d, std::uint8_t* __restrict out,
             int n) {
  const float w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3];
  for (int i = 0; i < n; ++i) {
    const float v = w0 * a[i] + w1 * b[i] + w2 * c[i] + w3 * d[i] + 0.5f;
    const float clamped = v < 0.0f ? 0.0f : (v > 255.0f ? 255.0f : v);
    out[i] = static_cast<std::uint8_t>(static_cast<std::int32_t>(clamped));
  }
}

// The same for two output rows that interpolate between the same four rows
// (with weights w and v): each input is loaded once for both.
PIXPOOL_SIMD_CLONES
void combine_pair(const std::array<float, 4>& w, const std::array<float, 4>& v,
                  const float* __restrict a, const float* __restrict b, const float* __restrict c,
                  const float* __restrict d, std::uint8_t* __restrict out0,
                  std::uint8_t* __restrict out1, int n) {
  const float w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3];
  const float v0 = v[0], v1 = v[1], v2 = v[2], v3 = v[3];
  for (int i = 0; i < n; ++i) {
    const float x = w0 * a[i] + w1 * b[i] + w2 * c[i] + w3 * d[i] + 0.5f;
    const float y = v0 * a[i] + v1 * b[i] + v2 * c[i] + v3 * d[i] + 0.5f;
    out0[i] = static_cast<std::uint8_t>(
        static_cast<std::int32_t>(x < 0.0f ? 0.0f : (x > 255.0f ? 255.0f : x)));
    out1[i] = static_cast<std::uint8_t>(
        static_cast<std::int32_t>(y < 0.0f ? 0.0f : (y > 255.0f ? 255.0f : y)));
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
    const auto row_floats = static_cast<std::size_t>(full.width) * ch_;
    for (auto& slot : ring_) slot.values.resize(row_floats);
    phases_.resize(scale);
    input_.resize(static_cast<std::size_t>(padded.cols) * ch_);
    phase_rows_.assign(static_cast<std::size_t>(scale),
                       std::vector<float>(static_cast<std::size_t>(padded.cols) * ch_));
    for (int p = 0; p < scale; ++p) {
      const double u = reduced_coordinate(p, scale);
      const double base = std::floor(u);
      phases_[p] = Phase{static_cast<int>(base) - 1, cubic_weights(u - base)};
    }
  }

  // Full row y (0 <= y < full.height) rounded to 8 bits into `out`.
  // Rows are asked for in increasing order; when row y+1 interpolates
  // between the same reduced rows as y (scales 4 and 8), both are made in one
  // pass and y+1 is kept for the next call.
  void row(int y, std::uint8_t* out) {
    const int n = full_.width * ch_;
    if (y == kept_row_) {
      std::copy_n(kept_.data(), n, out);
      return;
    }
    const double u = reduced_coordinate(y, scale_);
    const double base = std::floor(u);
    const auto w = cubic_weights(u - base);
    const int first = static_cast<int>(base) - 1 + pad_;
    const float* a = horizontal(first);
    const float* b = horizontal(first + 1);
    const float* c = horizontal(first + 2);
    const float* d = horizontal(first + 3);
    const double u_next = reduced_coordinate(y + 1, scale_);
    if (y + 1 < full_.height && std::floor(u_next) == base) {
      kept_.resize(static_cast<std::size_t>(n));
      combine_pair(w, cubic_weights(u_next - base), a, b, c, d, out, kept_.data(), n);
      kept_row_ = y + 1;
      return;
    }
    combine(w, a, b, c, d, out, n);
  }

 private:
  struct Phase {
    int offset;  // first tap, relative to the reduced pixel the output lies in
    std::array<float, 4> weights;
  };
  struct Slot {
    int row = -1;  // padded reduced row held, -1: none
    std::vector<float> values;
  };

  const float* horizontal(int padded_row) {
    Slot& slot = ring_[static_cast<std::size_t>(padded_row) % ring_.size()];
    if (slot.row != padded_row) {
      if (ch_ == 3) {
        interpolate_row<3>(padded_.ptr(padded_row), slot.values.data());
      } else {
        interpolate_row<1>(padded_.ptr(padded_row), slot.values.data());
      }
      slot.row = padded_row;
    }
    return slot.values.data();
  }

  // out[(s*j + p)*CH + c] = sum_k w_p[k] * in[(j + pad + offset_p + k)*CH + c].
  // For one phase p that is a 4-tap filter running along the row, which
  // vectorises; the phases are then interleaved into the output row.
  template <int CH>
  void interpolate_row(const std::uint8_t* in, float* out) {
    const int s = scale_;
    const int reduced_cols = (full_.width + s - 1) / s;
    const int n = reduced_cols * CH;
    widen(in, input_.data(), static_cast<int>(input_.size()));
    for (int p = 0; p < s; ++p) {
      const Phase& phase = phases_[p];
      filter4(input_.data() + static_cast<std::ptrdiff_t>(pad_ + phase.offset) * CH, CH,
              phase.weights, phase_rows_[p].data(), n);
    }
    for (int j = 0; j < reduced_cols; ++j) {
      const int x0 = j * s;
      const int phases = std::min(s, full_.width - x0);
      for (int p = 0; p < phases; ++p) {
        const float* from = phase_rows_[p].data() + static_cast<std::ptrdiff_t>(j) * CH;
        float* to = out + static_cast<std::ptrdiff_t>(x0 + p) * CH;
        for (int c = 0; c < CH; ++c) to[c] = from[c];
      }
    }
  }

  PIXPOOL_SIMD_CLONES
  static void widen(const std::uint8_t* in, float* out, int n) {
    for (int i = 0; i < n; ++i) out[i] = in[i];
  }

  PIXPOOL_SIMD_CLONES
  static void filter4(const float* in, int stride, const std::array<float, 4>& w, float* out,
                      int n) {
    const float w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3];
    const float* a = in;
    const float* b = in + stride;
    const float* c = b + stride;
    const float* d = c + stride;
    for (int i = 0; i < n; ++i) out[i] = w0 * a[i] + w1 * b[i] + w2 * c[i] + w3 * d[i];
  }

  const cv::Mat& padded_;
  int pad_;
  int scale_;
  cv::Size full_;
  int ch_;
  std::vector<Phase> phases_;
  std::array<Slot, 4> ring_;
  std::vector<float> input_;        // a padded reduced row as floats
  std::vector<std::uint8_t> kept_;  // row kept_row_, made with the one before
  int kept_row_ = -1;
  std::vector<std::vector<float>> phase_rows_;  // one filtered row per phase
};

Result<void> check_arguments(const cv::Mat& small, double sigma, int scale, cv::Size full) {
  if (scale != 2 && scale != 4 && scale != 8) {
    return {ErrorCode::invalid_parameter,
            "band-limited blur: scale must be 2, 4 or 8, got " + std::to_string(scale)};
  }
  if (small.depth() != CV_8U || (small.channels() != 1 && small.channels() != 3)) {
    return {ErrorCode::invalid_parameter, "band-limited blur: expects an 8-bit grey or BGR image"};
  }
  if (full.width < 1 || full.height < 1 || small.cols != (full.width + scale - 1) / scale ||
      small.rows != (full.height + scale - 1) / scale) {
    return {ErrorCode::invalid_parameter, "band-limited blur: the reduced image is " +
                                              std::to_string(small.cols) + "x" +
                                              std::to_string(small.rows) + ", not 1/" +
                                              std::to_string(scale) + " of the full size"};
  }
  const double reduced_sigma = sigma / scale;
  if (!(reduced_sigma >= kBlurMinSigma && sigma <= kBlurMaxSigma)) {
    return {ErrorCode::invalid_parameter, "band-limited blur: sigma " + std::to_string(sigma) +
                                              " is out of range at 1/" + std::to_string(scale)};
  }
  return {};
}

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

Result<void> band_limited_blur(const cv::Mat& small, cv::Mat& dst, double sigma, int scale,
                               cv::Size full, AfterBlur after, const StripRunner& strips) {
  if (auto ok = check_arguments(small, sigma, scale, full); !ok) return ok;
  const double reduced_sigma = sigma / scale;
  // Enough padding that the blur never reaches the padding's own border
  // (the blur's kernels reach at most 3 sigma) and the cubic's 2 taps beyond.
  const int pad = static_cast<int>(std::ceil(4.0 * reduced_sigma)) + 3;
  cv::Mat padded = pad_extrapolated(small, pad, scale, full);
  if (auto ok = blur(padded, padded, reduced_sigma, strips); !ok) return ok;

  const int channels = small.channels();
  const int rows = full.height;
  cv::Mat out(full, small.type());
  const auto row_bytes = static_cast<std::size_t>(full.width) * channels;
  run_strips(strips, rows, 32, [&](int begin, int end) {
    Upsampler upsample(padded, pad, scale, full);
    if (after == AfterBlur::nothing) {
      for (int y = begin; y < end; ++y) upsample.row(y, out.ptr<std::uint8_t>(y));
      return;
    }
    // The contour of row y needs blurred rows y-1..y+1 (clamped to the
    // image): the last three are kept in a ring indexed by row % 3.
    std::array<std::vector<std::uint8_t>, 3> ring;
    for (auto& row : ring) row.resize(row_bytes);
    std::vector<std::uint16_t> scratch(row_bytes);
    int next = std::max(begin - 1, 0);  // next blurred row to make
    auto blurred = [&](int y) {
      y = std::clamp(y, 0, rows - 1);
      for (; next <= y; ++next) upsample.row(next, ring[next % 3].data());
      return ring[y % 3].data();
    };
    for (int y = begin; y < end; ++y) {
      const std::uint8_t* down = blurred(y + 1);  // first: it may advance the ring
      contour_row(blurred(y - 1), blurred(y), down, out.ptr<std::uint8_t>(y), full.width, channels,
                  scratch.data());
    }
  });
  dst = std::move(out);
  return {};
}

}  // namespace pixpool
