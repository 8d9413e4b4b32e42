#pragma once
// The fast Gaussian behind the `blur` op: three box filters in a row, each
// applied horizontally then vertically, in 16-bit fixed point. A cascade of
// three boxes is a piecewise-quadratic kernel close to a true Gaussian of the
// same sigma (45-62 dB PSNR for sigma 1.5..100, 40 dB required by
// tests/filters/test_blur.cpp; see README.md, "Filters"), at a cost per pixel
// that does not grow with sigma.
//
// Rows are produced one at a time from small ring buffers, so a strip of the
// image is blurred in cache and a following contour pass can consume the
// blurred rows while they are still hot (blur_contour() in filters/blur.cpp).
// Strips are independent: a caller may blur several strips of one image in
// parallel.
//
// Internal to the filters layer; callers use blur() and apply_ops().

#include <array>
#include <cstdint>
#include <memory>
#include <opencv2/core.hpp>
#include <vector>

namespace pixpool::box_blur {

struct BandScratch {
  std::vector<std::uint16_t> a, b;
};

// Below this sigma three boxes cannot match a Gaussian's shape (the boxes
// would be 1 or 3 pixels wide); blur() uses an exact kernel there, which is
// cheap at such small radii.
inline constexpr double kMinSigma = 1.5;

struct Plan {
  std::array<int, 3> radius{};                // box k is 2*radius[k]+1 pixels wide
  std::array<std::uint16_t, 3> reciprocal{};  // ceil(65536 / width): divides by mulhi
  int fraction_bits = 0;                      // 16-bit values carry pixel << fraction_bits

  int width(int k) const { return 2 * radius[k] + 1; }
  int total_radius() const { return radius[0] + radius[1] + radius[2]; }
};

// Box widths whose cascade has the variance closest to sigma^2 (Wells 1986,
// widths as in Kovesi 2010). Requires kMinSigma <= sigma <= 100.
Plan make_plan(double sigma);

// Streams the blurred 8-bit rows of `src` (CV_8UC1 or CV_8UC3, not empty)
// from row `first` (0 <= first < rows) down. Borders replicate, exactly as if
// the image had been padded once by total_radius() and the boxes run inside
// the padding. `src` must outlive the stream. Memory: about
// (3 * widest box + 8) rows of 16-bit samples.
class RowStream {
 public:
  // use_bands: blur rows horizontally 16 at a time where the CPU allows
  // (filters/box_blur_band.hpp); false forces the portable per-row path.
  // Both give identical output.
  RowStream(const cv::Mat& src, const Plan& plan, int first, bool use_bands = true);
  ~RowStream();
  RowStream(const RowStream&) = delete;
  RowStream& operator=(const RowStream&) = delete;

  // Writes the next blurred row (cols * channels bytes) to `out`. The caller
  // stops at the last image row.
  void next(std::uint8_t* out);

 private:
  // A vertical box pass: a running sum over the previous stage's rows.
  struct Stage {
    int radius = 0;
    std::uint16_t reciprocal = 0;
    int next_row = 0;               // next output row to produce
    bool started = false;           // sum holds a full window
    std::uint16_t* sum = nullptr;   // running column sums
    std::uint16_t* ring = nullptr;  // the last ring_rows output rows, for the next stage
    int ring_rows = 0;
  };

  const std::uint16_t* source_row(int y);  // horizontal blur of row y, clamped
  void blur_row(const std::uint8_t* pixels, std::uint16_t* dst);
  const std::uint16_t* input_row(int k, int y);  // stage k's input row y
  const std::uint16_t* stage_row(int k, int y);  // stage k's output row y
  void produce(int k, std::uint8_t* out);
  std::uint16_t* ring_slot(std::uint16_t* ring, int ring_rows, int y) const;

  // Every buffer of a stream, kept per thread between streams.
  struct Workspace {
    bool in_use = false;
    std::vector<std::uint16_t> source_ring;  // horizontally blurred rows
    std::array<std::vector<std::uint16_t>, 3> sums, rings;
    BandScratch band;
    std::vector<std::uint8_t> padded;  // one source row with replicated margins
    std::vector<std::uint16_t> scratch_a, scratch_b, scratch_c, scratch_d, zeros;
  };
  Workspace& lease_workspace();
  std::unique_ptr<Workspace> own_workspace_;  // set when the thread's one was taken
  Workspace& ws_;

  const cv::Mat& src_;
  Plan plan_;
  int row_len_;  // samples per row: cols * channels
  int channels_;
  bool use_bands_;

  // Source stage: horizontally blurred rows, a ring of width(0)+1 rows (plus
  // a band's worth).
  int source_ring_rows_ = 0;
  int source_next_ = 0;
  int last_clamped_ = -1;  // image row behind the newest source row

  std::array<Stage, 3> stages_;
};

}  // namespace pixpool::box_blur
