#include "filters/blur.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstring>
#include <opencv2/imgproc.hpp>
#include <string>
#include <utility>
#include <vector>

#include "filters/box_blur.hpp"
#include "filters/contour.hpp"

namespace pixpool {
namespace {

Result<void> check_arguments(const cv::Mat& src, double sigma) {
  if (!(sigma >= kBlurMinSigma && sigma <= kBlurMaxSigma)) {
    return {ErrorCode::invalid_parameter,
            "blur: sigma must be between 0.1 and 100, got " + std::to_string(sigma)};
  }
  if (src.depth() != CV_8U || (src.channels() != 1 && src.channels() != 3)) {
    return {ErrorCode::invalid_parameter, "blur: expects an 8-bit grey or BGR image"};
  }
  return {};
}

// Small sigmas: OpenCV's 8-bit fixed-point Gaussian, 3 sigma each side, which
// keeps >99.7% of the kernel mass (normalised) and is cheap at these radii.
// `border` may add cv::BORDER_ISOLATED, so that a view never reads past its
// own rows.
cv::Mat exact_blur(const cv::Mat& src, double sigma, int border = cv::BORDER_REPLICATE) {
  const int radius = static_cast<int>(std::ceil(3.0 * sigma));
  const int ksize = 2 * radius + 1;
  cv::Mat out;
  cv::GaussianBlur(src, out, cv::Size(ksize, ksize), sigma, sigma, border);
  return out;
}

// A blur stream holds about (sum of box widths + 60) rows of 16-bit samples
// (filters/box_blur.hpp). For a very wide image and a large sigma that is
// gigabytes (a 1,000,000 x 50 image at sigma 100: 3.9 GB) that no pixel
// budget accounts for, so such images are blurred in column stripes whose
// streams stay under this bound. Each stripe reads total_radius + 1 columns
// of its neighbours (the +1 for the contour), and keeps only its centre.
constexpr std::size_t kStreamLimitBytes = std::size_t{64} << 20;
std::atomic<std::size_t> stream_limit_bytes{kStreamLimitBytes};

struct Stripe {
  cv::Mat input;        // the stripe with its halo columns (a view of src)
  int centre_from = 0;  // first output column, in input's columns
  int centre_cols = 0;
  int out_col = 0;     // where the centre goes in the image
  bool whole = false;  // the stripe is the whole image: write straight to the output

  void copy_centre(const std::uint8_t* row, std::uint8_t* out_row, int channels) const {
    std::memcpy(out_row + static_cast<std::size_t>(out_col) * channels,
                row + static_cast<std::size_t>(centre_from) * channels,
                static_cast<std::size_t>(centre_cols) * channels);
  }
};

std::vector<Stripe> column_stripes(const cv::Mat& src, const box_blur::Plan& plan) {
  const int halo = plan.total_radius() + 1;
  const std::size_t rows_held =
      static_cast<std::size_t>(plan.width(0) + plan.width(1) + plan.width(2)) + 60;
  const std::size_t bytes_per_col = rows_held * src.channels() * sizeof(std::uint16_t);
  const std::size_t max_cols = std::max<std::size_t>(1, stream_limit_bytes.load() / bytes_per_col);
  if (static_cast<std::size_t>(src.cols) <= max_cols) return {Stripe{src, 0, src.cols, 0, true}};
  // Centres as wide as the bound allows after the halos, but never so thin
  // that the halos dominate.
  const int centre = std::max(static_cast<int>(max_cols) - 2 * halo, std::max(64, 2 * halo));
  std::vector<Stripe> stripes;
  for (int x = 0; x < src.cols; x += centre) {
    const int x1 = std::min(src.cols, x + centre);
    const int from = std::max(0, x - halo);
    const int to = std::min(src.cols, x1 + halo);
    stripes.push_back(Stripe{src.colRange(from, to), x - from, x1 - x, x, false});
  }
  return stripes;
}

// A strip pays for warming up its vertical boxes (about 2 * total_radius
// rows of extra work), so strips are kept several times longer than that.
int min_strip_rows(const box_blur::Plan& plan) {
  return std::max(32, 8 * plan.total_radius());
}

// Rows [begin, end) of the box-cascade blur of `stripes`' image into `out`.
void blur_strip(const std::vector<Stripe>& stripes, const box_blur::Plan& plan, int channels,
                int begin, int end, cv::Mat& out, int out_first_row) {
  for (const Stripe& stripe : stripes) {
    box_blur::RowStream stream(stripe.input, plan, begin);
    if (stripe.whole) {
      for (int y = begin; y < end; ++y) stream.next(out.ptr<std::uint8_t>(out_first_row + y));
      continue;
    }
    std::vector<std::uint8_t> row(static_cast<std::size_t>(stripe.input.cols) * channels);
    for (int y = begin; y < end; ++y) {
      stream.next(row.data());
      stripe.copy_centre(row.data(), out.ptr<std::uint8_t>(out_first_row + y), channels);
    }
  }
}

}  // namespace

int blur_reach(double sigma) {
  if (sigma < box_blur::kMinSigma) return static_cast<int>(std::ceil(3.0 * sigma));
  return box_blur::make_plan(sigma).total_radius();
}

Result<void> blur(const cv::Mat& src, cv::Mat& dst, double sigma, const StripRunner& strips) {
  if (auto ok = check_arguments(src, sigma); !ok) return ok;
  if (src.empty()) {
    dst = src.clone();
    return {};
  }
  if (sigma < box_blur::kMinSigma) {
    dst = exact_blur(src, sigma);
    return {};
  }
  const box_blur::Plan plan = box_blur::make_plan(sigma);
  const auto stripes = column_stripes(src, plan);
  cv::Mat out(src.size(), src.type());  // fresh buffer, so dst may alias src
  run_strips(strips, src.rows, min_strip_rows(plan), [&](int begin, int end) {
    blur_strip(stripes, plan, src.channels(), begin, end, out, 0);
  });
  dst = std::move(out);
  return {};
}

Result<void> blur_rows(const cv::Mat& src, cv::Mat& dst, double sigma, int first, int last) {
  if (auto ok = check_arguments(src, sigma); !ok) return ok;
  if (dst.size() != src.size() || dst.type() != src.type() || first < 0 || first > last ||
      last > src.rows) {
    return {ErrorCode::internal, "blur_rows: rows or output outside the image"};
  }
  if (first == last) return {};
  // Output row y depends on input rows y - reach .. y + reach only, so the
  // band's rows come out right even though the band's own edges (where they
  // are not the image's) are replicated.
  const int reach = blur_reach(sigma);
  const int top = std::max(0, first - reach);
  const cv::Mat band = src.rowRange(top, std::min(src.rows, last + reach));
  if (sigma < box_blur::kMinSigma) {
    const cv::Mat blurred = exact_blur(band, sigma, cv::BORDER_REPLICATE | cv::BORDER_ISOLATED);
    blurred.rowRange(first - top, last - top).copyTo(dst.rowRange(first, last));
    return {};
  }
  const box_blur::Plan plan = box_blur::make_plan(sigma);
  blur_strip(column_stripes(band, plan), plan, src.channels(), first - top, last - top, dst, top);
  return {};
}

Result<void> blur_contour(const cv::Mat& src, cv::Mat& dst, double sigma,
                          const StripRunner& strips) {
  if (auto ok = check_arguments(src, sigma); !ok) return ok;
  if (src.empty() || sigma < box_blur::kMinSigma) {
    cv::Mat blurred;
    if (auto ok = blur(src, blurred, sigma, strips); !ok) return ok;
    return contour(blurred, dst, strips);
  }
  const box_blur::Plan plan = box_blur::make_plan(sigma);
  const auto stripes = column_stripes(src, plan);
  const int rows = src.rows;
  const int channels = src.channels();
  cv::Mat out(src.size(), src.type());
  run_strips(strips, rows, min_strip_rows(plan), [&](int begin, int end) {
    for (const Stripe& stripe : stripes) {
      const int cols = stripe.input.cols;
      const auto row_bytes = static_cast<std::size_t>(cols) * channels;
      // The contour of row y needs blurred rows y-1..y+1 (clamped to the
      // image): keep the last three in a ring indexed by row % 3.
      std::array<std::vector<std::uint8_t>, 3> ring;
      for (auto& row : ring) row.resize(row_bytes);
      std::vector<std::uint16_t> scratch(row_bytes);
      std::vector<std::uint8_t> contoured(stripe.whole ? 0 : row_bytes);
      const int top = std::max(begin - 1, 0);
      box_blur::RowStream stream(stripe.input, plan, top);
      int next = top;  // next blurred row the stream will make
      auto blurred = [&](int y) {
        y = std::clamp(y, 0, rows - 1);
        for (; next <= y; ++next) stream.next(ring[next % 3].data());
        return ring[y % 3].data();
      };
      for (int y = begin; y < end; ++y) {
        const std::uint8_t* down = blurred(y + 1);  // first: it may advance the ring
        std::uint8_t* target = stripe.whole ? out.ptr<std::uint8_t>(y) : contoured.data();
        contour_row(blurred(y - 1), blurred(y), down, target, cols, channels, scratch.data());
        if (!stripe.whole) stripe.copy_centre(contoured.data(), out.ptr<std::uint8_t>(y), channels);
      }
    }
  });
  dst = std::move(out);
  return {};
}

void set_blur_stream_limit_for_tests(std::size_t bytes) {
  stream_limit_bytes.store(bytes == 0 ? kStreamLimitBytes : bytes);
}

}  // namespace pixpool
