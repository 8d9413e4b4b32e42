#include "pipeline/job.hpp"

#include <chrono>
#include <exception>
#include <new>
#include <opencv2/core.hpp>
#include <optional>

#include "filters/band_limited.hpp"
#include "filters/jpeg_codec.hpp"
#include "pipeline/overlapped_job.hpp"

namespace pixpool {
namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// A chain that starts with a blur of a JPEG, run band-limited: decoded at
// 1/scale, blurred there and upsampled (filters/band_limited.hpp).
struct BandLimitedPlan {
  int scale = 1;  // 1: no, decode at full size
  double sigma = 0;
  AfterBlur after = AfterBlur::nothing;
  OpChain rest;   // the ops after the blur (and the contour fused with it)
  cv::Size full;  // the decoded image's size (EXIF orientation applied)

  // Only the blur (and contour) into a JPEG: the encoder can take the
  // band-limited rows as they are made, never storing the full image.
  bool fuses_with_encoder(ImageFormat format) const {
    return scale > 1 && rest.empty() && format == ImageFormat::jpeg;
  }
};

BandLimitedPlan plan_band_limited(std::string_view input, const ImageHeader& header,
                                  const JobParams& job) {
  BandLimitedPlan plan;
  if (job.exact || header.format != ImageFormat::jpeg || job.ops.empty() ||
      job.ops.front().def->name != "blur") {
    return plan;
  }
  plan.sigma = job.ops.front().args.at(0);
  const int scale = band_limited_scale(plan.sigma, header.width, header.height);
  if (scale == 1) return plan;
  // EXIF orientation flips or turns the reduced image too; the reduced
  // pixel grid stays aligned with the full one only when no partial block
  // moves to the other side.
  const int orientation = jpeg_exif_orientation(input);
  const bool swaps = orientation >= 5;
  if (orientation != 1 && (header.width % scale != 0 || header.height % scale != 0)) return plan;
  plan.scale = scale;
  plan.full = swaps ? cv::Size(header.height, header.width) : cv::Size(header.width, header.height);
  auto next = job.ops.begin() + 1;
  if (next != job.ops.end() && next->def->name == "contour") {
    plan.after = AfterBlur::contour;
    ++next;
  }
  plan.rest.assign(next, job.ops.end());
  return plan;
}

// What filter() made: the filtered image, or, for a chain that is only a
// band-limited blur (and contour) into a JPEG, the prepared band-limited
// image, whose rows the encoder makes strip by strip as it goes: the
// full-size result then never exists whole (a 12 MP image is 36 MB less,
// and stays in cache between filter and encoder).
struct Filtered {
  cv::Mat pixels;
  std::optional<BandLimitedImage> rows;
};

// The filters, band-limited where the plan says so and `decoded` is the
// reduced image. Fills the filter time.
Result<Filtered> filter(cv::Mat decoded, const BandLimitedPlan& plan, const JobParams& job,
                        ImageFormat format, const StripRunner& strips, StageTimes& times) {
  const auto start = Clock::now();
  Filtered filtered;
  const bool band_limited = plan.scale > 1 && decoded.size() != plan.full;
  const bool fused = band_limited && plan.fuses_with_encoder(format);
  if (band_limited) times.decode_scale = plan.scale;
  if (fused) {
    auto image =
        BandLimitedImage::prepare(decoded, plan.sigma, plan.scale, plan.full, plan.after, strips);
    if (!image) return image.error();
    filtered.rows.emplace(std::move(image.value()));
  } else if (band_limited) {
    if (auto ok = band_limited_blur(decoded, filtered.pixels, plan.sigma, plan.scale, plan.full,
                                    plan.after, strips);
        !ok) {
      return ok.error();
    }
    decoded.release();
    if (!plan.rest.empty()) {
      if (auto ok = apply_ops(filtered.pixels, filtered.pixels, plan.rest, strips); !ok) {
        return ok.error();
      }
    }
  } else {
    if (auto ok = apply_ops(decoded, filtered.pixels, job.ops, strips); !ok) return ok.error();
  }
  times.filter_ms = ms_since(start);
  return filtered;
}

// filter() and the encoder, from a decoded image.
Result<JobOutput> filter_and_encode(cv::Mat decoded, const BandLimitedPlan& plan,
                                    const JobParams& job, ImageFormat format,
                                    const StripRunner& strips, JobOutput out) {
  auto filtered_or = filter(std::move(decoded), plan, job, format, strips, out.times);
  if (!filtered_or) return filtered_or.error();
  // The input pixels are freed by now, before encoding allocates.
  Filtered filtered = std::move(filtered_or.value());

  const auto start = Clock::now();
  // Fused, the encode time includes making the rows (upsample and contour).
  const RowSource source = filtered.rows ? filtered.rows->rows() : RowSource{};
  auto encoded = filtered.rows ? encode_jpeg(source, job.quality, strips)
                               : encode_image(filtered.pixels, format, job.quality, strips);
  if (!encoded) return encoded.error();
  out.times.encode_ms = ms_since(start);

  out.bytes = std::move(encoded.value());
  out.format = format;
  out.width = filtered.rows ? source.size.width : filtered.pixels.cols;
  out.height = filtered.rows ? source.size.height : filtered.pixels.rows;
  return out;
}

Result<JobOutput> run_job_unguarded(std::string_view input, const JobParams& job,
                                    const StripRunner& strips) {
  const auto start = Clock::now();
  auto header = read_header(input);
  if (!header) return header.error();
  const ImageFormat format = job.format.value_or(default_output_format(header->format));
  // Refuse before decoding what could never be encoded.
  if (auto ok = check_encodable(header->width, header->height, format); !ok) return ok.error();

  JobOutput out;
  out.times.decode_ms = ms_since(start);  // the header checks; decoding adds to it
  const BandLimitedPlan plan = plan_band_limited(input, *header, job);
  // A fused chain with cores to spare: decode, filter and encode overlapped
  // (pipeline/overlapped_job.hpp), the same bytes as the sequential path.
  if (plan.fuses_with_encoder(format) && strips) {
    const OverlappedChain chain{plan.scale, plan.sigma,     plan.after,
                                plan.full,  job.max_pixels, job.quality};
    auto overlapped = run_overlapped_chain(input, chain, strips, out.times);
    if (!overlapped) return overlapped.error();
    if (overlapped->jpeg.empty()) {  // nothing to overlap with: the sequential path
      return filter_and_encode(std::move(overlapped->decoded), plan, job, format, strips,
                               std::move(out));
    }
    out.bytes = std::move(overlapped->jpeg);
    out.format = format;
    out.width = plan.full.width;
    out.height = plan.full.height;
    return out;
  }
  const auto decode_start = Clock::now();
  auto decoded = decode_image(input, job.max_pixels, DecodeOptions{plan.scale, strips, {}});
  if (!decoded) return decoded.error();
  out.times.decode_ms += ms_since(decode_start);
  return filter_and_encode(std::move(decoded->pixels), plan, job, format, strips, std::move(out));
}

}  // namespace

Result<JobOutput> run_job(std::string_view input, const JobParams& params,
                          const StripRunner& strips) {
  try {
    return run_job_unguarded(input, params, strips);
  } catch (const std::bad_alloc&) {
    return Error{ErrorCode::out_of_memory, "out of memory while processing the image"};
  } catch (const cv::Exception& e) {
    if (e.code == cv::Error::StsNoMem) {
      return Error{ErrorCode::out_of_memory, "out of memory while processing the image"};
    }
    return Error{ErrorCode::internal, std::string("OpenCV error: ") + e.what()};
  } catch (const std::exception& e) {
    return Error{ErrorCode::internal, e.what()};
  }
}

}  // namespace pixpool
