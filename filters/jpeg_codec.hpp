#pragma once
// JPEG through libjpeg's own API (libjpeg-turbo 2.1.5, jpeg62 ABI), so that
// one image can use every core:
//
//  - encode_jpeg writes a restart marker after every MCU row and encodes
//    horizontal strips of the image concurrently, each as its own small JPEG;
//    it keeps each strip's entropy-coded data and stitches them under one
//    header. The result is byte-identical to one libjpeg encode of the whole
//    image with restart_in_rows = 1, whatever the strips.
//  - decode_jpeg decodes at 1/1, 1/2, 1/4 or 1/8 scale (libjpeg's scaled
//    IDCT, much cheaper than decoding and resizing), and decodes strips of
//    MCU rows concurrently when the file has restart markers at MCU row
//    starts (files from encode_jpeg, many cameras). Pixels are the same as a
//    serial decode and as TurboJPEG's tjDecompress2 at the same scale.
//
// Both are strict the way the TurboJPEG code they replace was: a libjpeg
// warning (truncated or corrupt data) is an error, and nothing is printed.

#include <functional>
#include <memory>
#include <opencv2/core.hpp>
#include <string>
#include <string_view>

#include "core/result.hpp"
#include "filters/row_source.hpp"
#include "filters/strips.hpp"

namespace pixpool {

// Encodes an 8-bit image as a baseline JPEG: CV_8UC1 as greyscale, CV_8UC3
// (BGR) and CV_8UC4 (BGRA, alpha dropped) as YCbCr 4:2:0. Standard Huffman
// tables, ISLOW DCT, JFIF APP0, jpeg_set_quality(quality, force_baseline),
// and a restart marker after every MCU row (DRI = MCUs per row), which costs
// 2-3 bytes per MCU row over an encode without restarts. `strips` runs
// strips of 8 MCU rows (128 pixel rows in colour, 64 in grey) concurrently.
// Errors: invalid_parameter (quality outside 1..100), too_large_for_format
// (a side over 65500), internal (another image type, or libjpeg failed).
Result<std::string> encode_jpeg(const cv::Mat& image, int quality, const StripRunner& strips = {});

// The same for an image made while it is encoded (grey or BGR): each strip
// opens a stream at its first row and takes 32 rows at a time, so the full
// image is never stored. The bytes are those of encoding the same rows from
// a cv::Mat. Errors: as above; internal for a source of another type.
Result<std::string> encode_jpeg(const RowSource& source, int quality,
                                const StripRunner& strips = {});

// encode_jpeg(RowSource) one strip at a time, for a caller that starts each
// strip as soon as its rows can be made (pipeline/overlapped_job.cpp): the
// bytes are encode_jpeg(source, quality)'s whatever order or threads the
// strips run in. The encoder keeps a copy of `source`; what its streams
// read must outlive the encoder.
class JpegStripEncoder {
 public:
  // Errors: those of encode_jpeg(RowSource).
  static Result<JpegStripEncoder> create(const RowSource& source, int quality);
  JpegStripEncoder(JpegStripEncoder&&) noexcept;
  JpegStripEncoder& operator=(JpegStripEncoder&&) noexcept;
  ~JpegStripEncoder();

  // Strip i covers rows [strip_end(i - 1), strip_end(i)) (strip_end(-1) is
  // 0): 8 MCU rows, 128 pixel rows in colour and 64 in grey, the last one
  // shorter.
  int strips() const;
  int strip_end(int i) const;
  // Encodes strip i, 0 <= i < strips(), once; different strips may be
  // encoded concurrently. A failure shows in finish().
  void encode(int i);
  // After every strip: the JPEG. Errors: out_of_memory or internal when a
  // strip failed (the first failed strip's error).
  Result<std::string> finish();

 private:
  struct Plan;
  JpegStripEncoder();
  std::unique_ptr<Plan> plan_;
};

// Decodes a JPEG at 1/scale_denom (1, 2, 4 or 8) of its size: the result is
// ceil(width / scale_denom) x ceil(height / scale_denom), as libjpeg computes
// output_width/height. CV_8UC1 for greyscale JPEGs, CV_8UC3 (BGR) for the
// rest. No EXIF orientation is applied (decode_image does that).
//
// Decoding is strict: any libjpeg warning (truncated data, corrupt entropy
// data, extraneous bytes) and progressive files of more than 500 scans are
// refused with unsupported_image "corrupt or truncated JPEG: <libjpeg's
// message>". CMYK and YCCK JPEGs are refused with unsupported_image too; test
// for them with is_cmyk_jpeg_error (decode_image decodes them another way).
//
// `strips` is used when the file is sequential (baseline), single-scan, with
// restart markers at MCU row starts; anything else decodes serially. A strip
// that fails for any reason (a restart marker missing or out of order,
// corrupt data) sends the whole image to the serial decoder, so a corrupt
// file gives exactly the serial decoder's error or pixels.
// Errors: unsupported_image, internal (scale_denom not 1, 2, 4 or 8).
//
// `on_rows`, when the file is decoded serially, is called on the decoding
// thread each time more rows of the result are final: rows [0, rows) of
// `image`, the Mat decode_jpeg then returns; the last call has them all.
// Nothing is called when strips decode the file or it is refused before its
// first row. An exception from it ends the decode and propagates.
using RowsDecoded = std::function<void(const cv::Mat& image, int rows)>;
Result<cv::Mat> decode_jpeg(std::string_view bytes, int scale_denom, const StripRunner& strips = {},
                            const RowsDecoded& on_rows = {});

// True for decode_jpeg's refusal of a CMYK or YCCK JPEG.
bool is_cmyk_jpeg_error(const Error& error);

namespace detail {

// How decode_jpeg went, for the tests: serial (the file or the runner did not
// allow strips), strips (decoded in parallel strips), or strips_fell_back
// (strips were tried and one failed, so the serial decoder gave the result).
enum class JpegDecodePath { serial, strips, strips_fell_back };

Result<cv::Mat> decode_jpeg(std::string_view bytes, int scale_denom, const StripRunner& strips,
                            JpegDecodePath* path, const RowsDecoded& on_rows = {});

}  // namespace detail
}  // namespace pixpool
