#include "filters/jpeg_codec.hpp"

// jpeglib.h uses FILE and size_t without declaring them, so these come first.
// jpegint.h: jpeg_marker_reader's discarded_bytes, which jpegint.h documents
// as "nominally internal, but applications ... might like to know" (see
// decode_strip).
// clang-format off
#include <cstddef>
#include <cstdio>
#include <jpeglib.h>
#include <jerror.h>
#include <jpegint.h>
// clang-format on

#include <algorithm>
#include <atomic>
#include <csetjmp>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

namespace pixpool {
namespace {

constexpr int kMaxSide = 65500;  // JPEG_MAX_DIMENSION
constexpr int kMaxScans = 500;   // TurboJPEG's TJFLAG_LIMITSCANS
constexpr JDIMENSION kRowBatch = 32;
constexpr std::string_view kCmykMessage =
    "CMYK/YCCK JPEG: decode_jpeg decodes greyscale, YCbCr and RGB JPEGs only";
// Encoder strips are runs of this many MCU rows: restart markers cycle
// through RST0..RST7, so a strip starting at a multiple of 8 MCU rows numbers
// its markers exactly as the whole-image encode does, and the marker that
// joins two strips is always RST7. Stitching is then a plain concatenation.
constexpr int kEncodeUnitRows = 8;
// Decoder strips should hold at least this many MCU rows: each strip also
// decodes one segment above and one below that it throws away.
constexpr int kDecodeMinRows = 8;

// ---------------------------------------------------------------------------
// libjpeg error handling. libjpeg reports an error by calling error_exit,
// which must not return (the default prints to stderr and calls exit()).
// Ours formats the message and longjmps to the setjmp of the "guarded"
// function that called into libjpeg. Guarded functions (marked below) touch
// only C structs and plain data, never an object with a destructor, because
// longjmp skips destructors; the C++ code calls them and turns `false` into
// a Result. (decode_rows also calls its on_rows callback between libjpeg
// calls: a longjmp never crosses it, and the callback must not call libjpeg
// on that decompressor.) Warnings (emit_message level < 0) are errors too,
// as with TurboJPEG's TJFLAG_STOPONWARNING. Nothing is ever printed.

struct ErrorManager {
  jpeg_error_mgr pub;  // first, so libjpeg's pointer to it is a pointer to us
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
  int code;  // libjpeg's msg_code of the error, or -1
};

ErrorManager& error_manager(j_common_ptr cinfo) {
  return *reinterpret_cast<ErrorManager*>(cinfo->err);
}

[[noreturn]] void on_error_exit(j_common_ptr cinfo) {
  ErrorManager& err = error_manager(cinfo);
  (*cinfo->err->format_message)(cinfo, err.message);
  err.code = cinfo->err->msg_code;
  std::longjmp(err.jump, 1);
}

void on_emit_message(j_common_ptr cinfo, int msg_level) {
  if (msg_level < 0) on_error_exit(cinfo);  // a warning: corrupt or truncated data
}

void on_output_message(j_common_ptr /*cinfo*/) {}

// TJFLAG_LIMITSCANS, as libjpeg-turbo 2.1.5's turbojpeg.c does it: its
// progress monitor refuses input_scan_number > 500.
void on_progress(j_common_ptr cinfo) {
  if (cinfo->is_decompressor == 0) return;
  if (reinterpret_cast<j_decompress_ptr>(cinfo)->input_scan_number > kMaxScans) {
    ErrorManager& err = error_manager(cinfo);
    std::snprintf(err.message, sizeof err.message, "Progressive JPEG image has more than %d scans",
                  kMaxScans);
    err.code = -1;
    std::longjmp(err.jump, 1);
  }
}

void install_error_manager(ErrorManager& err) {
  jpeg_std_error(&err.pub);
  err.pub.error_exit = on_error_exit;
  err.pub.emit_message = on_emit_message;
  err.pub.output_message = on_output_message;
  err.message[0] = '\0';
  err.code = -1;
}

// ---------------------------------------------------------------------------
// Compression.

// A growable malloc'd output buffer (jpeg_mem_dest would leak its buffer
// when libjpeg fails part-way; this one stays ours to free).
struct Destination {
  jpeg_destination_mgr pub;  // first, as for ErrorManager
  unsigned char* buffer;
  std::size_t capacity;
};

Destination& destination(j_compress_ptr cinfo) {
  return *reinterpret_cast<Destination*>(cinfo->dest);
}

void on_init_destination(j_compress_ptr cinfo) {
  Destination& dest = destination(cinfo);
  dest.pub.next_output_byte = dest.buffer;
  dest.pub.free_in_buffer = dest.capacity;
}

boolean on_empty_output_buffer(j_compress_ptr cinfo) {
  Destination& dest = destination(cinfo);
  const std::size_t grown = dest.capacity * 2;
  auto* bigger = static_cast<unsigned char*>(std::realloc(dest.buffer, grown));
  if (bigger == nullptr) {
    cinfo->err->msg_code = JERR_OUT_OF_MEMORY;
    cinfo->err->msg_parm.i[0] = 0;
    on_error_exit(reinterpret_cast<j_common_ptr>(cinfo));
  }
  dest.pub.next_output_byte = bigger + dest.capacity;
  dest.pub.free_in_buffer = grown - dest.capacity;
  dest.buffer = bigger;
  dest.capacity = grown;
  return TRUE;
}

void on_term_destination(j_compress_ptr /*cinfo*/) {}

struct Compressor {
  jpeg_compress_struct cinfo;
  ErrorManager err;
  Destination dest;
  bool created;
};

struct EncodeInput {
  const unsigned char* pixels;  // first row, or null: rows come from `source`
  std::size_t step;
  const RowSource* source;  // when pixels is null
  int first_row;            // the image row of this input's row 0 (for `source`)
  int width;
  int height;
  int channels;  // 1, 3 (BGR) or 4 (BGRX)
  int quality;
};

// Guarded.
bool create_compressor(Compressor& c) {
  install_error_manager(c.err);
  c.cinfo.err = &c.err.pub;
  if (setjmp(c.err.jump) != 0) return false;
  jpeg_create_compress(&c.cinfo);
  c.created = true;
  return true;
}

// Guarded. Encodes `in` as a whole JPEG into c.dest. Rows from a stream
// are made a batch at a time into `batch` (kRowBatch rows of in.step
// bytes), so they are still in cache when libjpeg reads them.
bool compress(Compressor& c, const EncodeInput& in, RowStream* stream, unsigned char* batch) {
  if (setjmp(c.err.jump) != 0) return false;
  c.dest.pub.init_destination = on_init_destination;
  c.dest.pub.empty_output_buffer = on_empty_output_buffer;
  c.dest.pub.term_destination = on_term_destination;
  c.cinfo.dest = &c.dest.pub;
  c.cinfo.image_width = static_cast<JDIMENSION>(in.width);
  c.cinfo.image_height = static_cast<JDIMENSION>(in.height);
  c.cinfo.input_components = in.channels;
  c.cinfo.in_color_space = in.channels == 1   ? JCS_GRAYSCALE
                           : in.channels == 3 ? JCS_EXT_BGR
                                              : JCS_EXT_BGRX;
  jpeg_set_defaults(&c.cinfo);  // YCbCr 4:2:0 for colour, standard Huffman tables
  jpeg_set_quality(&c.cinfo, in.quality, TRUE);
  c.cinfo.dct_method = JDCT_ISLOW;
  c.cinfo.optimize_coding = FALSE;
  c.cinfo.write_JFIF_header = TRUE;
  c.cinfo.restart_in_rows = 1;
  jpeg_start_compress(&c.cinfo, TRUE);
  JSAMPROW rows[kRowBatch];
  while (c.cinfo.next_scanline < c.cinfo.image_height) {
    const JDIMENSION first = c.cinfo.next_scanline;
    const JDIMENSION n = std::min(kRowBatch, c.cinfo.image_height - first);
    if (stream != nullptr) {
      stream->next(static_cast<int>(n), batch, in.step);
      for (JDIMENSION i = 0; i < n; ++i) rows[i] = batch + i * in.step;
    } else {
      for (JDIMENSION i = 0; i < n; ++i) {
        // libjpeg never writes through its input rows.
        rows[i] = const_cast<JSAMPROW>(in.pixels + (first + i) * in.step);
      }
    }
    jpeg_write_scanlines(&c.cinfo, rows, n);
  }
  jpeg_finish_compress(&c.cinfo);
  return true;
}

struct FreeDeleter {
  void operator()(unsigned char* p) const { std::free(p); }
};
using MallocBuffer = std::unique_ptr<unsigned char, FreeDeleter>;

// Owns a Compressor: destroys it and frees its buffer.
class CompressorHandle {
 public:
  CompressorHandle() = default;
  CompressorHandle(const CompressorHandle&) = delete;
  CompressorHandle& operator=(const CompressorHandle&) = delete;
  ~CompressorHandle() {
    if (c_.created) jpeg_destroy_compress(&c_.cinfo);
    std::free(c_.dest.buffer);
  }
  Compressor& get() { return c_; }
  // The encoded bytes; the handle no longer owns them.
  MallocBuffer release(std::size_t& size) {
    size = c_.dest.capacity - c_.dest.pub.free_in_buffer;
    MallocBuffer out(c_.dest.buffer);
    c_.dest.buffer = nullptr;
    return out;
  }

 private:
  Compressor c_{};
};

// One encoded strip (or the whole image): a complete JPEG from libjpeg.
struct EncodedStrip {
  MallocBuffer bytes;
  std::size_t size = 0;
  int end_unit = 0;  // the strip covers units [its index, end_unit)
  bool ok = false;
  int error_code = -1;
  char message[JMSG_LENGTH_MAX] = {};
};

void encode_strip(const EncodeInput& in, EncodedStrip& out) {
  CompressorHandle handle;
  Compressor& c = handle.get();
  // Untouched pages of a large malloc are never made resident, so an
  // estimate on the generous side costs address space only.
  c.dest.capacity = static_cast<std::size_t>(in.width) * static_cast<std::size_t>(in.height) *
                        static_cast<std::size_t>(in.channels) / 4 +
                    16384;
  c.dest.buffer = static_cast<unsigned char*>(std::malloc(c.dest.capacity));
  if (c.dest.buffer == nullptr) {
    out.error_code = JERR_OUT_OF_MEMORY;
    std::snprintf(out.message, sizeof out.message, "out of memory for the JPEG output");
    return;
  }
  // Made here, not in compress(): a longjmp out of libjpeg must not skip a
  // destructor.
  std::unique_ptr<RowStream> stream;
  std::vector<unsigned char> batch;
  if (in.pixels == nullptr) {
    stream = in.source->open(in.first_row);
    batch.resize(in.step * kRowBatch);
  }
  if (!create_compressor(c) || !compress(c, in, stream.get(), batch.data())) {
    out.error_code = c.err.code;
    std::memcpy(out.message, c.err.message, sizeof out.message);
    return;
  }
  out.bytes = handle.release(out.size);
  out.ok = true;
}

unsigned read_be16(const unsigned char* p) {
  return (static_cast<unsigned>(p[0]) << 8) | p[1];
}

// Where libjpeg's output has its SOF height field and its entropy-coded data.
struct OwnLayout {
  std::size_t sof_height_at = 0;
  std::size_t scan_begin = 0;  // first byte after the SOS segment
  std::size_t scan_end = 0;    // the EOI marker
};

std::optional<OwnLayout> own_layout(const unsigned char* p, std::size_t n) {
  if (n < 4 || p[0] != 0xFF || p[1] != 0xD8 || p[n - 2] != 0xFF || p[n - 1] != 0xD9) {
    return std::nullopt;
  }
  OwnLayout layout;
  std::size_t at = 2;
  bool sof = false;
  while (at + 4 <= n && p[at] == 0xFF) {
    const unsigned marker = p[at + 1];
    const std::size_t length = read_be16(p + at + 2);
    if (length < 2 || at + 2 + length > n) return std::nullopt;
    if (marker == 0xC0 || marker == 0xC1) {
      layout.sof_height_at = at + 5;
      sof = true;
    } else if (marker == 0xDA) {
      layout.scan_begin = at + 2 + length;
      layout.scan_end = n - 2;
      if (!sof || layout.scan_begin > layout.scan_end) return std::nullopt;
      return layout;
    }
    at += 2 + length;
  }
  return std::nullopt;
}

Error encode_error(const EncodedStrip& strip) {
  if (strip.error_code == JERR_OUT_OF_MEMORY) {
    return Error{ErrorCode::out_of_memory, "out of memory while encoding the JPEG"};
  }
  return Error{ErrorCode::internal, std::string("JPEG encode failed: ") + strip.message};
}

// ---------------------------------------------------------------------------
// Decompression.

struct Decompressor {
  jpeg_decompress_struct cinfo;
  ErrorManager err;
  jpeg_progress_mgr progress;
  bool created;
};

// Guarded.
bool create_decompressor(Decompressor& d) {
  install_error_manager(d.err);
  d.cinfo.err = &d.err.pub;
  if (setjmp(d.err.jump) != 0) return false;
  jpeg_create_decompress(&d.cinfo);  // zeroes cinfo but for err
  d.created = true;
  d.progress.progress_monitor = on_progress;
  d.cinfo.progress = &d.progress;
  return true;
}

// Guarded.
bool read_header(Decompressor& d, const unsigned char* data, std::size_t size) {
  if (setjmp(d.err.jump) != 0) return false;
  jpeg_mem_src(&d.cinfo, data, static_cast<unsigned long>(size));
  jpeg_read_header(&d.cinfo, TRUE);
  return true;
}

// Guarded. libjpeg's defaults otherwise, as TurboJPEG leaves them: ISLOW
// IDCT, fancy upsampling, block smoothing.
bool set_output(Decompressor& d, J_COLOR_SPACE color_space, int scale_denom) {
  if (setjmp(d.err.jump) != 0) return false;
  d.cinfo.out_color_space = color_space;
  d.cinfo.scale_num = 1;
  d.cinfo.scale_denom = static_cast<unsigned>(scale_denom);
  jpeg_calc_output_dimensions(&d.cinfo);
  return true;
}

// Where decode_rows puts the output rows: the first `skip` rows go to
// `scratch` (thrown away), the next `keep` rows to first, first + step, ...,
// any further rows to `scratch` again.
struct RowTarget {
  unsigned char* first;
  std::size_t step;
  JDIMENSION skip;
  JDIMENSION keep;
  unsigned char* scratch;  // one output row; may be null when nothing is thrown away
  JDIMENSION width;
  int components;
  unsigned discarded_bytes;  // out: bytes libjpeg skipped and did not yet warn about
  // Told of the rows kept so far after each batch (skip must be 0), or null.
  const RowsDecoded* on_rows = nullptr;
  const cv::Mat* image = nullptr;  // what on_rows is given
};

// Guarded.
bool decode_rows(Decompressor& d, RowTarget& t) {
  if (setjmp(d.err.jump) != 0) return false;
  jpeg_start_decompress(&d.cinfo);
  const JDIMENSION height = d.cinfo.output_height;
  if (d.cinfo.output_width != t.width || d.cinfo.output_components != t.components ||
      height < t.skip + t.keep || (t.scratch == nullptr && height != t.skip + t.keep)) {
    std::snprintf(d.err.message, sizeof d.err.message, "output geometry differs from the plan");
    return false;
  }
  JSAMPROW rows[kRowBatch];
  while (d.cinfo.output_scanline < height) {
    const JDIMENSION first = d.cinfo.output_scanline;
    const JDIMENSION n = std::min(kRowBatch, height - first);
    for (JDIMENSION i = 0; i < n; ++i) {
      const JDIMENSION row = first + i;
      rows[i] =
          row >= t.skip && row - t.skip < t.keep ? t.first + (row - t.skip) * t.step : t.scratch;
    }
    jpeg_read_scanlines(&d.cinfo, rows, n);
    if (t.on_rows != nullptr) {
      (*t.on_rows)(*t.image, static_cast<int>(std::min(d.cinfo.output_scanline, t.keep)));
    }
  }
  jpeg_finish_decompress(&d.cinfo);
  t.discarded_bytes = d.cinfo.marker->discarded_bytes;
  return true;
}

class DecompressorHandle {
 public:
  DecompressorHandle() = default;
  DecompressorHandle(const DecompressorHandle&) = delete;
  DecompressorHandle& operator=(const DecompressorHandle&) = delete;
  ~DecompressorHandle() {
    if (d_.created) jpeg_destroy_decompress(&d_.cinfo);
  }
  Decompressor& get() { return d_; }

 private:
  Decompressor d_{};
};

Error decode_error(const Decompressor& d) {
  return Error{ErrorCode::unsupported_image,
               std::string("corrupt or truncated JPEG: ") + d.err.message};
}

const unsigned char* bytes_of(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

// How a sequential, single-scan JPEG with restart markers at MCU row starts
// splits into restart segments, each `rows_per_segment` MCU rows.
struct StripPlan {
  std::string header;  // SOI up to the end of SOS; APP1-13, APP15 and COM dropped
  std::size_t sof_height_at = 0;
  std::vector<std::pair<std::size_t, std::size_t>> segments;  // [begin, end) in the file
  int mcu_height = 0;                                         // pixels
  int rows_per_segment = 0;                                   // MCU rows
  int mcu_rows = 0;
};

bool is_sof(unsigned marker) {
  return marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
}

// Nullopt when the file is anything but the simple case (which then decodes
// serially): progressive, arithmetic, multi-scan, no or misaligned restarts,
// restart markers missing or out of order, anything odd between markers.
std::optional<StripPlan> plan_strips(std::string_view file, const jpeg_decompress_struct& cinfo) {
  if (cinfo.progressive_mode != 0 || cinfo.arith_code != 0 || cinfo.data_precision != 8 ||
      cinfo.restart_interval == 0 || cinfo.comps_in_scan != cinfo.num_components) {
    return std::nullopt;
  }
  int max_h = 1, max_v = 1;
  for (int c = 0; c < cinfo.num_components; ++c) {
    max_h = std::max(max_h, cinfo.comp_info[c].h_samp_factor);
    max_v = std::max(max_v, cinfo.comp_info[c].v_samp_factor);
  }
  if (cinfo.num_components == 1 && (max_h != 1 || max_v != 1)) return std::nullopt;
  const auto width = static_cast<long>(cinfo.image_width);
  const auto height = static_cast<long>(cinfo.image_height);
  const long mcus_per_row = (width + 8L * max_h - 1) / (8L * max_h);
  if (cinfo.restart_interval % mcus_per_row != 0) return std::nullopt;

  StripPlan plan;
  plan.mcu_height = 8 * max_v;
  plan.mcu_rows = static_cast<int>((height + plan.mcu_height - 1) / plan.mcu_height);
  plan.rows_per_segment = static_cast<int>(cinfo.restart_interval / mcus_per_row);
  const std::size_t segment_count =
      (static_cast<std::size_t>(plan.mcu_rows) + plan.rows_per_segment - 1) /
      static_cast<std::size_t>(plan.rows_per_segment);
  if (segment_count < 2) return std::nullopt;

  // The header, marker by marker.
  const unsigned char* p = bytes_of(file);
  const std::size_t n = file.size();
  if (n < 4 || p[0] != 0xFF || p[1] != 0xD8) return std::nullopt;
  plan.header.assign("\xFF\xD8", 2);
  std::size_t at = 2;
  bool sof = false;
  std::size_t scan_begin = 0;
  while (scan_begin == 0) {
    if (at + 4 > n || p[at] != 0xFF) return std::nullopt;
    const unsigned marker = p[at + 1];
    if (marker == 0xFF || marker == 0x01 || (marker >= 0xD0 && marker <= 0xD9)) {
      return std::nullopt;  // fill bytes or a stand-alone marker: leave it to libjpeg
    }
    const std::size_t length = read_be16(p + at + 2);
    if (length < 2 || at + 2 + length > n) return std::nullopt;
    const bool dropped = (marker >= 0xE1 && marker <= 0xED) || marker == 0xEF || marker == 0xFE;
    if (is_sof(marker)) {
      if (sof || (marker != 0xC0 && marker != 0xC1) || length < 8) return std::nullopt;
      sof = true;
      plan.sof_height_at = plan.header.size() + 5;
    }
    if (!dropped) plan.header.append(file.substr(at, 2 + length));
    if (marker == 0xDA) scan_begin = at + 2 + length;
    at += 2 + length;
  }
  if (!sof) return std::nullopt;

  // The entropy-coded data: FF 00 is a stuffed FF, FF D0..D7 a restart
  // marker, FF D9 the end; fill FFs may precede any marker.
  plan.segments.reserve(segment_count);
  std::size_t begin = scan_begin;
  std::size_t at_byte = scan_begin;
  for (;;) {
    const void* found = std::memchr(p + at_byte, 0xFF, n - at_byte);
    if (found == nullptr) return std::nullopt;  // no EOI: truncated
    const auto ff = static_cast<std::size_t>(static_cast<const unsigned char*>(found) - p);
    std::size_t code_at = ff + 1;
    while (code_at < n && p[code_at] == 0xFF) ++code_at;
    if (code_at >= n) return std::nullopt;
    const unsigned code = p[code_at];
    at_byte = code_at + 1;
    if (code == 0x00) continue;
    if (code == 0xD9) {
      plan.segments.emplace_back(begin, ff);
      break;
    }
    if (code < 0xD0 || code > 0xD7) return std::nullopt;  // another marker: more scans, DNL, ...
    if (code - 0xD0 != plan.segments.size() % 8 || plan.segments.size() + 1 >= segment_count) {
      return std::nullopt;
    }
    plan.segments.emplace_back(begin, ff);
    begin = at_byte;
  }
  if (plan.segments.size() != segment_count) return std::nullopt;
  return plan;
}

// Decodes segments [begin, end) of the plan into their rows of `image`,
// from a stream of their own: the header with the SOF height cut to the
// strip, one more segment above and below (fancy upsampling reads chroma
// rows across MCU rows; those rows are thrown away), RST markers renumbered
// from RST0, and EOI. True when libjpeg had nothing to complain about; any
// complaint sends the whole image to the serial decoder, which then gives
// its own error or pixels. One complaint libjpeg may defer: whole bytes left
// in its bit buffer at a restart (data beyond what the segment needed) are
// counted in discarded_bytes but reported only at its next search for a
// marker, which in the serial decode may come in a segment another strip
// has. So a strip that ends with such a count falls back too.
bool decode_strip(std::string_view file, const StripPlan& plan, int begin, int end,
                  J_COLOR_SPACE color_space, int scale_denom, int image_height, cv::Mat& image) {
  const int segment_count = static_cast<int>(plan.segments.size());
  const int first = std::max(begin - 1, 0);
  const int last = std::min(end + 1, segment_count);  // exclusive

  std::size_t size = plan.header.size() + 2;
  for (int s = first; s < last; ++s) size += plan.segments[s].second - plan.segments[s].first + 2;
  std::string stream;
  stream.reserve(size);
  stream.append(plan.header);
  for (int s = first; s < last; ++s) {
    if (s > first) {
      stream += '\xFF';
      stream += static_cast<char>(0xD0 + (s - first - 1) % 8);
    }
    const auto [from, to] = plan.segments[s];
    stream.append(file.substr(from, to - from));
  }
  stream += "\xFF\xD9";

  const int first_row_px = first * plan.rows_per_segment * plan.mcu_height;
  const int strip_height = last == segment_count
                               ? image_height - first_row_px
                               : (last - first) * plan.rows_per_segment * plan.mcu_height;
  stream[plan.sof_height_at] = static_cast<char>((strip_height >> 8) & 0xFF);
  stream[plan.sof_height_at + 1] = static_cast<char>(strip_height & 0xFF);

  const int keep_from = begin * plan.rows_per_segment * plan.mcu_height / scale_denom;
  const int keep_to = end == segment_count
                          ? image.rows
                          : end * plan.rows_per_segment * plan.mcu_height / scale_denom;
  std::vector<unsigned char> scratch(image.step);
  RowTarget target{image.ptr(keep_from),
                   image.step,
                   static_cast<JDIMENSION>(keep_from - first_row_px / scale_denom),
                   static_cast<JDIMENSION>(keep_to - keep_from),
                   scratch.data(),
                   static_cast<JDIMENSION>(image.cols),
                   image.channels(),
                   0};
  DecompressorHandle handle;
  Decompressor& d = handle.get();
  return create_decompressor(d) && read_header(d, bytes_of(stream), stream.size()) &&
         set_output(d, color_space, scale_denom) && decode_rows(d, target) &&
         target.discarded_bytes == 0;
}

}  // namespace

// ---------------------------------------------------------------------------

namespace {

// The checks encode_jpeg makes of its image, by size and type.
Result<void> check_encodable_jpeg(cv::Size size, int type, int quality) {
  if (quality < 1 || quality > 100) {
    return Error{ErrorCode::invalid_parameter, "quality must be between 1 and 100"};
  }
  const int channels = CV_MAT_CN(type);
  if (CV_MAT_DEPTH(type) != CV_8U || (channels != 1 && channels != 3 && channels != 4) ||
      size.width < 1 || size.height < 1) {
    return Error{ErrorCode::internal, "encode_jpeg expects an 8-bit grey, BGR or BGRA image"};
  }
  if (size.width > kMaxSide || size.height > kMaxSide) {
    return Error{ErrorCode::too_large_for_format,
                 "jpeg output is limited to 65500 pixels per side; ask for format=png"};
  }
  return {};
}

// An image to encode cut into units of kEncodeUnitRows MCU rows, each unit
// (or run of units) encoded as its own JPEG, then stitched.
class EncodePlan {
 public:
  explicit EncodePlan(const EncodeInput& whole)
      : whole_(whole),
        unit_rows_(kEncodeUnitRows * (whole.channels == 1 ? 8 : 16)),  // grey 8x8; colour 4:2:0
        pieces_(static_cast<std::size_t>((whole.height + unit_rows_ - 1) / unit_rows_)) {}

  int units() const { return static_cast<int>(pieces_.size()); }
  int unit_rows() const { return unit_rows_; }
  int height() const { return whole_.height; }

  // Encodes units [begin, end) as one piece. Pieces that do not overlap may
  // be encoded concurrently.
  void encode(int begin, int end) {
    const int row_begin = begin * unit_rows_;
    const int row_end = std::min(end * unit_rows_, whole_.height);
    EncodeInput part = whole_;
    part.height = row_end - row_begin;
    part.first_row = whole_.first_row + row_begin;
    if (whole_.pixels != nullptr) part.pixels = whole_.pixels + row_begin * whole_.step;
    EncodedStrip& piece = pieces_[static_cast<std::size_t>(begin)];
    piece.end_unit = end;
    encode_strip(part, piece);
  }

  // Once pieces cover every unit: the JPEG. Stitched: the first piece's
  // header, with the whole image's height, then every piece's entropy-coded
  // data, joined by RST7 (see kEncodeUnitRows).
  Result<std::string> stitch() const {
    const EncodedStrip& head = pieces_.front();
    if (!head.ok) return encode_error(head);
    if (head.end_unit == units()) {  // one piece: libjpeg's own output
      return std::string(reinterpret_cast<const char*>(head.bytes.get()), head.size);
    }
    const auto head_layout = own_layout(head.bytes.get(), head.size);
    if (!head_layout) return Error{ErrorCode::internal, "unexpected JPEG layout from libjpeg"};
    std::vector<std::pair<const EncodedStrip*, OwnLayout>> parts;
    std::size_t total = head_layout->scan_begin + 2;
    for (int u = 0; u < units();) {
      const EncodedStrip& piece = pieces_[static_cast<std::size_t>(u)];
      if (!piece.ok) return encode_error(piece);
      if (piece.end_unit <= u) return Error{ErrorCode::internal, "strip runner skipped rows"};
      auto layout = own_layout(piece.bytes.get(), piece.size);
      if (!layout) return Error{ErrorCode::internal, "unexpected JPEG layout from libjpeg"};
      total += layout->scan_end - layout->scan_begin + 2;
      parts.emplace_back(&piece, *layout);
      u = piece.end_unit;
    }
    std::string out;
    out.reserve(total);
    out.append(reinterpret_cast<const char*>(head.bytes.get()), head_layout->scan_begin);
    out[head_layout->sof_height_at] = static_cast<char>((whole_.height >> 8) & 0xFF);
    out[head_layout->sof_height_at + 1] = static_cast<char>(whole_.height & 0xFF);
    for (std::size_t i = 0; i < parts.size(); ++i) {
      if (i > 0) out += "\xFF\xD7";
      const auto& [piece, layout] = parts[i];
      out.append(reinterpret_cast<const char*>(piece->bytes.get()) + layout.scan_begin,
                 layout.scan_end - layout.scan_begin);
    }
    out += "\xFF\xD9";
    return out;
  }

 private:
  EncodeInput whole_;
  int unit_rows_;
  std::vector<EncodedStrip> pieces_;  // pieces_[u]: the piece starting at unit u, if any
};

// Encodes the image `whole` describes (its pixels or its source) in strips
// of whole units through `strips`, and stitches them.
Result<std::string> encode_in_strips(const EncodeInput& whole, const StripRunner& strips) {
  EncodePlan plan(whole);
  run_strips(strips, plan.units(), 1, [&](int begin, int end) {
    if (begin < end) plan.encode(begin, end);
  });
  return plan.stitch();
}

// The checks encode_jpeg(RowSource) makes, and its EncodeInput.
Result<EncodeInput> source_input(const RowSource& source, int quality) {
  if (auto ok = check_encodable_jpeg(source.size, source.type, quality); !ok) return ok.error();
  if (CV_MAT_CN(source.type) == 4 || !source.open) {
    return Error{ErrorCode::internal, "encode_jpeg expects a grey or BGR row source"};
  }
  const int channels = CV_MAT_CN(source.type);
  const auto row_bytes = static_cast<std::size_t>(source.size.width) * channels;
  return EncodeInput{nullptr,           row_bytes,          &source,  0,
                     source.size.width, source.size.height, channels, quality};
}

}  // namespace

// Holds its own copy of the source, which its EncodeInput points to.
struct JpegStripEncoder::Plan {
  Plan(RowSource source_copy, const EncodeInput& input)
      : source(std::move(source_copy)), encode(with_source(input, &source)) {}
  static EncodeInput with_source(EncodeInput input, const RowSource* source) {
    input.source = source;
    return input;
  }
  RowSource source;
  EncodePlan encode;
};

Result<JpegStripEncoder> JpegStripEncoder::create(const RowSource& source, int quality) {
  auto input = source_input(source, quality);
  if (!input) return input.error();
  JpegStripEncoder encoder;
  encoder.plan_ = std::make_unique<Plan>(source, *input);
  return encoder;
}

JpegStripEncoder::JpegStripEncoder() = default;
JpegStripEncoder::JpegStripEncoder(JpegStripEncoder&&) noexcept = default;
JpegStripEncoder& JpegStripEncoder::operator=(JpegStripEncoder&&) noexcept = default;
JpegStripEncoder::~JpegStripEncoder() = default;

int JpegStripEncoder::strips() const {
  return plan_->encode.units();
}

int JpegStripEncoder::strip_end(int i) const {
  return std::min((i + 1) * plan_->encode.unit_rows(), plan_->encode.height());
}

void JpegStripEncoder::encode(int i) {
  plan_->encode.encode(i, i + 1);
}

Result<std::string> JpegStripEncoder::finish() {
  return plan_->encode.stitch();
}

Result<std::string> encode_jpeg(const cv::Mat& image, int quality, const StripRunner& strips) {
  if (image.dims != 2) {
    return Error{ErrorCode::internal, "encode_jpeg expects an 8-bit grey, BGR or BGRA image"};
  }
  if (auto ok = check_encodable_jpeg(image.size(), image.type(), quality); !ok) return ok.error();
  return encode_in_strips(EncodeInput{image.ptr(), image.step, nullptr, 0, image.cols, image.rows,
                                      image.channels(), quality},
                          strips);
}

Result<std::string> encode_jpeg(const RowSource& source, int quality, const StripRunner& strips) {
  auto input = source_input(source, quality);
  if (!input) return input.error();
  return encode_in_strips(*input, strips);
}

bool is_cmyk_jpeg_error(const Error& error) {
  return error.code == ErrorCode::unsupported_image && error.message == kCmykMessage;
}

Result<cv::Mat> decode_jpeg(std::string_view bytes, int scale_denom, const StripRunner& strips,
                            const RowsDecoded& on_rows) {
  return detail::decode_jpeg(bytes, scale_denom, strips, nullptr, on_rows);
}

namespace detail {

Result<cv::Mat> decode_jpeg(std::string_view bytes, int scale_denom, const StripRunner& strips,
                            JpegDecodePath* path, const RowsDecoded& on_rows) {
  if (path != nullptr) *path = JpegDecodePath::serial;
  if (scale_denom != 1 && scale_denom != 2 && scale_denom != 4 && scale_denom != 8) {
    return Error{ErrorCode::internal, "scale_denom must be 1, 2, 4 or 8"};
  }
  DecompressorHandle handle;
  Decompressor& d = handle.get();
  if (!create_decompressor(d)) return Error{ErrorCode::out_of_memory, d.err.message};
  if (!read_header(d, bytes_of(bytes), bytes.size())) return decode_error(d);
  if (d.cinfo.jpeg_color_space == JCS_CMYK || d.cinfo.jpeg_color_space == JCS_YCCK) {
    return Error{ErrorCode::unsupported_image, std::string(kCmykMessage)};
  }
  const J_COLOR_SPACE color_space =
      d.cinfo.jpeg_color_space == JCS_GRAYSCALE ? JCS_GRAYSCALE : JCS_EXT_BGR;
  if (!set_output(d, color_space, scale_denom)) return decode_error(d);
  cv::Mat image(static_cast<int>(d.cinfo.output_height), static_cast<int>(d.cinfo.output_width),
                color_space == JCS_GRAYSCALE ? CV_8UC1 : CV_8UC3);

  if (strips) {
    if (auto plan = plan_strips(bytes, d.cinfo)) {
      const int segments = static_cast<int>(plan->segments.size());
      const int min_segments =
          std::max(1, (kDecodeMinRows + plan->rows_per_segment - 1) / plan->rows_per_segment);
      std::atomic<bool> failed{false};
      std::atomic<bool> whole{false};
      const int image_height = static_cast<int>(d.cinfo.image_height);
      run_strips(strips, segments, min_segments, [&](int begin, int end) {
        if (begin >= end) return;
        if (begin == 0 && end == segments) {  // one strip: the serial decode below
          whole = true;
          return;
        }
        if (!decode_strip(bytes, *plan, begin, end, color_space, scale_denom, image_height,
                          image)) {
          failed = true;
        }
      });
      if (!whole) {
        if (!failed) {
          if (path != nullptr) *path = JpegDecodePath::strips;
          return image;
        }
        if (path != nullptr) *path = JpegDecodePath::strips_fell_back;
      }
    }
  }

  RowTarget target{image.data,
                   image.step,
                   0,
                   static_cast<JDIMENSION>(image.rows),
                   nullptr,
                   static_cast<JDIMENSION>(image.cols),
                   image.channels(),
                   0};
  if (on_rows) {
    target.on_rows = &on_rows;
    target.image = &image;
  }
  if (!decode_rows(d, target)) return decode_error(d);
  return image;
}

}  // namespace detail
}  // namespace pixpool
