#pragma once
// An image made row by row while a consumer takes it, so that a large image
// never exists whole: the JPEG encoder asks for its strips a batch of rows
// at a time, and the rows are made into a small buffer that stays in cache
// (the fused band-limited blur + contour + encode of pipeline/job.cpp).

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <opencv2/core.hpp>

namespace pixpool {

// The rows of one strip, made in order from the row the stream was opened at.
class RowStream {
 public:
  virtual ~RowStream() = default;
  // Writes the next `rows` rows (together at most to the image's last row):
  // row i at out + i * step, step >= width * channels bytes.
  virtual void next(int rows, std::uint8_t* out, std::size_t step) = 0;
};

// A whole image's rows. open(first_row), 0 <= first_row < size.height,
// starts a stream there; streams may run concurrently, and any split into
// strips gives the same rows.
struct RowSource {
  cv::Size size;
  int type = 0;  // CV_8UC1 or CV_8UC3 (BGR)
  std::function<std::unique_ptr<RowStream>(int first_row)> open;
};

}  // namespace pixpool
