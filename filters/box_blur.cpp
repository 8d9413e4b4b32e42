#include "filters/box_blur.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>

#include "filters/box_blur_band.hpp"
#include "filters/simd.hpp"

namespace pixpool::box_blur {
namespace {

// (a * b) >> 16: with b = ceil(65536 / w) this divides a sum of w values by w.
// Compilers turn it into one vector multiply-high.
inline std::uint16_t mulhi(std::uint16_t a, std::uint16_t b) {
  return static_cast<std::uint16_t>((static_cast<std::uint32_t>(a) * b) >> 16);
}

// out[i] = (sum of in[i + j*stride], j = 0..Width-1) / Width, for i < count.
// Width is a compile-time constant so the sum stays in vector registers: one
// load per tap and a single store per output vector.
// 8-bit input is scaled to fixed point on the way: (sum << shift) / Width.
template <int Width, typename In>
[[gnu::always_inline]] inline void box_fixed(const In* __restrict in, std::uint16_t* __restrict out,
                                             int count, int stride, std::uint16_t reciprocal,
                                             int shift) {
  for (int i = 0; i < count; ++i) {
    std::uint16_t sum = 0;
    for (int j = 0; j < Width; ++j) sum = static_cast<std::uint16_t>(sum + in[i + j * stride]);
    out[i] = mulhi(static_cast<std::uint16_t>(sum << shift), reciprocal);
  }
}

// The same for any width (wide boxes, sigma above ~14): partial sums double
// in length each step, so a box of width w costs about log2(w) + popcount(w)
// passes over the row. `run_a` and `run_b` are scratch rows as long as `in`.
[[gnu::always_inline]] inline void box_any(const std::uint16_t* in, std::uint16_t* out, int count,
                                           int width, int stride, std::uint16_t reciprocal,
                                           std::uint16_t* run_a, std::uint16_t* run_b) {
  const std::uint16_t* run = in;  // run[i]: sum of `span` samples from i
  int span = 1;
  int run_len = count + (width - 1) * stride;
  int taken = 0;  // samples of the box already in out
  std::uint16_t* scratch[2] = {run_a, run_b};
  int flip = 0;
  while (true) {
    if (width & span) {
      const std::uint16_t* part = run + static_cast<std::ptrdiff_t>(taken) * stride;
      if (taken == 0) {
        for (int i = 0; i < count; ++i) out[i] = part[i];
      } else {
        for (int i = 0; i < count; ++i) out[i] = static_cast<std::uint16_t>(out[i] + part[i]);
      }
      taken += span;
    }
    if (taken == width) break;
    std::uint16_t* next = scratch[flip];
    flip ^= 1;
    const int shift = span * stride;
    run_len -= shift;
    for (int i = 0; i < run_len; ++i) next[i] = static_cast<std::uint16_t>(run[i] + run[i + shift]);
    run = next;
    span *= 2;
  }
  for (int i = 0; i < count; ++i) out[i] = mulhi(out[i], reciprocal);
}

// Radii 0..15 are unrolled (sigma up to about 14); returns false for wider.
template <typename In, int... Radii>
[[gnu::always_inline]] inline bool box_unrolled(std::integer_sequence<int, Radii...>, const In* in,
                                                std::uint16_t* out, int count, int width,
                                                int stride, std::uint16_t reciprocal, int shift) {
  return ((width == 2 * Radii + 1 &&
           (box_fixed<2 * Radii + 1>(in, out, count, stride, reciprocal, shift), true)) ||
          ...);
}
constexpr auto kUnrolledRadii = std::make_integer_sequence<int, 16>{};

// The first horizontal box over a padded 8-bit row, which it also scales to
// fixed point (<< fraction_bits). `in` holds count + (width-1) * stride
// samples; `out` gets count. `run_a` and `run_b` are scratch rows as long as
// `in`.
PIXPOOL_SIMD_CLONES
void box_pass_8bit(const std::uint8_t* in, std::uint16_t* out, int count, int width, int stride,
                   std::uint16_t reciprocal, int fraction_bits, std::uint16_t* run_a,
                   std::uint16_t* run_b) {
  if (box_unrolled(kUnrolledRadii, in, out, count, width, stride, reciprocal, fraction_bits)) {
    return;
  }
  // Wide box: widen in place into `out` (as long as `in`), then the generic sum.
  const int len = count + (width - 1) * stride;
  for (int i = 0; i < len; ++i) out[i] = static_cast<std::uint16_t>(in[i] << fraction_bits);
  box_any(out, out, count, width, stride, reciprocal, run_a, run_b);
}

// The later horizontal boxes, on fixed-point rows; as above otherwise.
PIXPOOL_SIMD_CLONES
void box_pass(const std::uint16_t* in, std::uint16_t* out, int count, int width, int stride,
              std::uint16_t reciprocal, std::uint16_t* run_a, std::uint16_t* run_b) {
  if (!box_unrolled(kUnrolledRadii, in, out, count, width, stride, reciprocal, 0)) {
    box_any(in, out, count, width, stride, reciprocal, run_a, run_b);
  }
}

// sum[i] += row[i].
PIXPOOL_SIMD_CLONES
void add_row(std::uint16_t* sum, const std::uint16_t* row, int count) {
  for (int i = 0; i < count; ++i) sum[i] = static_cast<std::uint16_t>(sum[i] + row[i]);
}

PIXPOOL_SIMD_CLONES
void slide_rows(std::uint16_t* sum, const std::uint16_t* add, const std::uint16_t* sub,
                std::uint16_t* out, int count, std::uint16_t reciprocal) {
  for (int i = 0; i < count; ++i) {
    const auto s = static_cast<std::uint16_t>(sum[i] + add[i] - sub[i]);
    sum[i] = s;
    out[i] = mulhi(s, reciprocal);
  }
}

// Same, for the last stage: the result is rounded back to 8 bits.
PIXPOOL_SIMD_CLONES
void slide_rows_to_8bit(std::uint16_t* sum, const std::uint16_t* add, const std::uint16_t* sub,
                        std::uint8_t* out, int count, std::uint16_t reciprocal, int fraction_bits) {
  const int half = fraction_bits > 0 ? 1 << (fraction_bits - 1) : 0;
  for (int i = 0; i < count; ++i) {
    const auto s = static_cast<std::uint16_t>(sum[i] + add[i] - sub[i]);
    sum[i] = s;
    out[i] = static_cast<std::uint8_t>((mulhi(s, reciprocal) + half) >> fraction_bits);
  }
}

// The three vertical boxes in one pass over a row, for the steady state in
// which each box takes exactly the row the one before just made: its sum
// and output never leave registers between the boxes (separate passes
// measured 1.5 ms of a 1080p blur, mostly L2 traffic).
PIXPOOL_SIMD_CLONES
void slide_three_rows(std::uint16_t* __restrict sum0, std::uint16_t* __restrict sum1,
                      std::uint16_t* __restrict sum2, const std::uint16_t* __restrict entering,
                      const std::uint16_t* __restrict leaving0, std::uint16_t* __restrict out0,
                      const std::uint16_t* __restrict leaving1, std::uint16_t* __restrict out1,
                      const std::uint16_t* __restrict leaving2, std::uint8_t* __restrict out,
                      int count, std::uint16_t m0, std::uint16_t m1, std::uint16_t m2,
                      int fraction_bits) {
  const int half = fraction_bits > 0 ? 1 << (fraction_bits - 1) : 0;
  for (int i = 0; i < count; ++i) {
    const auto s0 = static_cast<std::uint16_t>(sum0[i] + entering[i] - leaving0[i]);
    sum0[i] = s0;
    const std::uint16_t o0 = mulhi(s0, m0);
    out0[i] = o0;
    const auto s1 = static_cast<std::uint16_t>(sum1[i] + o0 - leaving1[i]);
    sum1[i] = s1;
    const std::uint16_t o1 = mulhi(s1, m1);
    out1[i] = o1;
    const auto s2 = static_cast<std::uint16_t>(sum2[i] + o1 - leaving2[i]);
    sum2[i] = s2;
    out[i] = static_cast<std::uint8_t>((mulhi(s2, m2) + half) >> fraction_bits);
  }
}

}  // namespace

Plan make_plan(double sigma) {
  // Kovesi, "Fast almost-Gaussian filtering" (2010): n boxes of widths wl or
  // wl + 2 whose variances sum to the nearest achievable value to sigma^2.
  constexpr int n = 3;
  const double ideal = std::sqrt(12.0 * sigma * sigma / n + 1.0);
  int lower = static_cast<int>(std::floor(ideal));
  if (lower % 2 == 0) --lower;
  lower = std::max(lower, 1);
  const double m_ideal =
      (12.0 * sigma * sigma - n * lower * lower - 4.0 * n * lower - 3.0 * n) / (-4.0 * lower - 4.0);
  const int m = std::clamp(static_cast<int>(std::lround(m_ideal)), 0, n);
  Plan plan;
  int widest = 1;
  for (int k = 0; k < n; ++k) {
    const int width = k < m ? lower : lower + 2;
    plan.radius[k] = (width - 1) / 2;
    plan.reciprocal[k] =
        static_cast<std::uint16_t>(std::min<std::uint32_t>((65536u + width - 1) / width, 65535u));
    widest = std::max(widest, width);
  }
  // The widest box sums `widest` values of up to 255 << bits in 16 bits.
  while (plan.fraction_bits < 7 && 255 * widest * (2 << plan.fraction_bits) <= 65535) {
    ++plan.fraction_bits;
  }
  return plan;
}

// Each thread keeps one workspace and reuses its buffers image after image:
// about 1 MB per 1080p stream, which would otherwise be mapped (and page
// faulted) afresh for every strip. A second stream alive on the same thread
// gets its own.
RowStream::Workspace& RowStream::lease_workspace() {
  thread_local Workspace shared;
  if (!shared.in_use) {
    shared.in_use = true;
    return shared;
  }
  own_workspace_ = std::make_unique<Workspace>();
  return *own_workspace_;
}

RowStream::~RowStream() {
  if (own_workspace_) return;
  // Keep what a typical image needs; a huge sigma on a huge image (rings of
  // hundreds of rows) gives its memory back rather than pin it to the thread.
  std::size_t bytes = ws_.source_ring.capacity() + ws_.band.a.capacity() + ws_.band.b.capacity();
  for (const auto& ring : ws_.rings) bytes += ring.capacity();
  if (bytes * sizeof(std::uint16_t) > (std::size_t{16} << 20)) ws_ = Workspace{};
  ws_.in_use = false;
}

RowStream::RowStream(const cv::Mat& src, const Plan& plan, int first, bool use_bands)
    : ws_(lease_workspace()),
      src_(src),
      plan_(plan),
      row_len_(src.cols * src.channels()),
      channels_(src.channels()),
      use_bands_(use_bands && band_blur_available()) {
  // The destructor does not run if a resize throws (bad_alloc): hand the
  // thread's workspace back here, emptied, so it is neither leaked nor left
  // marked as in use.
  try {
    const auto row = static_cast<std::size_t>(row_len_);
    const int total = plan_.total_radius();
    const std::size_t padded = static_cast<std::size_t>(src.cols + 2 * total) * channels_;
    if (!use_bands_) {  // the per-row horizontal path's scratch rows
      ws_.padded.resize(padded);
      ws_.scratch_a.resize(padded);
      ws_.scratch_b.resize(padded);
      ws_.scratch_c.resize(padded);
      ws_.scratch_d.resize(padded);
    }
    ws_.zeros.assign(row, 0);  // (assign: reused buffers hold old rows)
    // Stage 0 needs width(0) + 1 rows at once; a band made ahead of it may
    // reach kBandRows - 1 rows further.
    source_ring_rows_ = plan_.width(0) + 1 + (use_bands_ ? kBandRows - 1 : 0);
    ws_.source_ring.resize(row * source_ring_rows_);
    // Stage k makes rows from first - reach, where `reach` is how far the
    // stages after it look up.
    int reach = total;
    source_next_ = first - reach;
    for (int k = 0; k < 3; ++k) {
      Stage& s = stages_[k];
      reach -= plan_.radius[k];
      s.radius = plan_.radius[k];
      s.reciprocal = plan_.reciprocal[k];
      s.next_row = first - reach;
      ws_.sums[k].resize(row);
      s.sum = ws_.sums[k].data();
      if (k < 2) {
        s.ring_rows = plan_.width(k + 1) + 1;
        ws_.rings[k].resize(row * s.ring_rows);
        s.ring = ws_.rings[k].data();
      }
    }
  } catch (...) {
    if (!own_workspace_) ws_ = Workspace{};
    throw;
  }
}

std::uint16_t* RowStream::ring_slot(std::uint16_t* ring, int ring_rows, int y) const {
  const int slot = ((y % ring_rows) + ring_rows) % ring_rows;
  return ring + static_cast<std::size_t>(slot) * row_len_;
}

const std::uint16_t* RowStream::source_row(int y) {
  while (source_next_ <= y) {
    if (use_bands_) {
      // kBandRows rows at once (filters/box_blur_band.hpp); rows past the
      // image edges repeat the edge row, as the padding demands.
      const std::uint8_t* rows[kBandRows];
      std::uint16_t* out[kBandRows];
      for (int k = 0; k < kBandRows; ++k) {
        const int row = source_next_ + k;
        rows[k] = src_.ptr<std::uint8_t>(std::clamp(row, 0, src_.rows - 1));
        out[k] = ring_slot(ws_.source_ring.data(), source_ring_rows_, row);
      }
      blur_band(rows, out, src_.cols, channels_, plan_, ws_.band);
      source_next_ += kBandRows;
      continue;
    }
    const int row = source_next_++;
    std::uint16_t* dst = ring_slot(ws_.source_ring.data(), source_ring_rows_, row);
    const int clamped = std::clamp(row, 0, src_.rows - 1);
    if (clamped == last_clamped_) {
      // Above or below the image: the row just made, again.
      std::memcpy(dst, ring_slot(ws_.source_ring.data(), source_ring_rows_, row - 1),
                  static_cast<std::size_t>(row_len_) * sizeof *dst);
      continue;
    }
    last_clamped_ = clamped;
    blur_row(src_.ptr<std::uint8_t>(clamped), dst);
  }
  return ring_slot(ws_.source_ring.data(), source_ring_rows_, y);
}

void RowStream::blur_row(const std::uint8_t* pixels, std::uint16_t* dst) {
  // Pad by total_radius pixels of replicated edge on each side.
  const int total = plan_.total_radius();
  const int c = channels_;
  std::uint8_t* padded = ws_.padded.data();
  const std::uint8_t* last_pixel = pixels + row_len_ - c;
  for (int x = 0; x < total; ++x) {
    for (int ch = 0; ch < c; ++ch) {
      padded[x * c + ch] = pixels[ch];
      padded[(total + src_.cols + x) * c + ch] = last_pixel[ch];
    }
  }
  std::memcpy(padded + static_cast<std::ptrdiff_t>(total) * c, pixels,
              static_cast<std::size_t>(row_len_));
  // Three horizontal boxes, each shrinking the row by its own two radii:
  // padded -> a -> b -> dst; wide boxes use two more scratch rows.
  int count = (src_.cols + 2 * (total - plan_.radius[0])) * c;
  box_pass_8bit(padded, ws_.scratch_a.data(), count, plan_.width(0), c, plan_.reciprocal[0],
                plan_.fraction_bits, ws_.scratch_b.data(), ws_.scratch_c.data());
  count -= 2 * plan_.radius[1] * c;
  box_pass(ws_.scratch_a.data(), ws_.scratch_b.data(), count, plan_.width(1), c,
           plan_.reciprocal[1], ws_.scratch_c.data(), ws_.scratch_d.data());
  count -= 2 * plan_.radius[2] * c;
  box_pass(ws_.scratch_b.data(), dst, count, plan_.width(2), c, plan_.reciprocal[2],
           ws_.scratch_a.data(), ws_.scratch_c.data());
}

const std::uint16_t* RowStream::input_row(int k, int y) {
  return k == 0 ? source_row(y) : stage_row(k - 1, y);
}

const std::uint16_t* RowStream::stage_row(int k, int y) {
  Stage& s = stages_[k];
  while (s.next_row <= y) produce(k, nullptr);
  return ring_slot(s.ring, s.ring_rows, y);
}

// Makes stage k's next row (the last stage writes 8-bit pixels to `out`). The
// first row sums the whole window; later rows slide it down by one: add the
// row entering, subtract the row leaving.
void RowStream::produce(int k, std::uint8_t* out) {
  Stage& s = stages_[k];
  const int y = s.next_row++;
  bool first = false;
  if (!s.started) {
    // Sliding onto the last row of the window while "leaving" a zero row
    // completes the first window.
    std::fill(s.sum, s.sum + row_len_, std::uint16_t{0});
    for (int j = -s.radius; j < s.radius; ++j) add_row(s.sum, input_row(k, y + j), row_len_);
    s.started = true;
    first = true;
  }
  // The previous stage keeps width + 1 rows: entering and leaving both fit.
  const std::uint16_t* entering = input_row(k, y + s.radius);
  const std::uint16_t* leaving = first ? ws_.zeros.data() : input_row(k, y - s.radius - 1);
  if (k == 2) {
    slide_rows_to_8bit(s.sum, entering, leaving, out, row_len_, s.reciprocal, plan_.fraction_bits);
  } else {
    slide_rows(s.sum, entering, leaving, ring_slot(s.ring, s.ring_rows, y), row_len_, s.reciprocal);
  }
}

void RowStream::next(std::uint8_t* out) {
  Stage& s0 = stages_[0];
  Stage& s1 = stages_[1];
  Stage& s2 = stages_[2];
  const int y = s2.next_row;
  // Steady state: box 2's row y takes box 1's next row, which takes box 0's
  // next row; all three slide in one pass.
  if (s0.started && s1.started && s2.started && s1.next_row == y + s2.radius &&
      s0.next_row == s1.next_row + s1.radius) {
    const int y1 = s1.next_row;
    const int y0 = s0.next_row;
    const std::uint16_t* entering = source_row(y0 + s0.radius);
    const std::uint16_t* leaving0 = source_row(y0 - s0.radius - 1);
    slide_three_rows(
        s0.sum, s1.sum, s2.sum, entering, leaving0, ring_slot(s0.ring, s0.ring_rows, y0),
        ring_slot(s0.ring, s0.ring_rows, y1 - s1.radius - 1), ring_slot(s1.ring, s1.ring_rows, y1),
        ring_slot(s1.ring, s1.ring_rows, y - s2.radius - 1), out, row_len_, s0.reciprocal,
        s1.reciprocal, s2.reciprocal, plan_.fraction_bits);
    ++s0.next_row;
    ++s1.next_row;
    ++s2.next_row;
    return;
  }
  produce(2, out);
}

}  // namespace pixpool::box_blur
