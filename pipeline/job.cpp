#include "pipeline/job.hpp"

#include <chrono>
#include <exception>
#include <new>
#include <opencv2/core.hpp>

namespace pixpool {
namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

Result<JobOutput> run_job_unguarded(std::string_view input, const JobParams& job,
                                    const StripRunner& strips) {
  auto start = Clock::now();
  auto header = read_header(input);
  if (!header) return header.error();
  const ImageFormat format = job.format.value_or(default_output_format(header->format));
  // Refuse before decoding what could never be encoded.
  if (auto ok = check_encodable(header->width, header->height, format); !ok) return ok.error();

  JobOutput out;
  auto decoded = decode_image(input, job.max_pixels);
  if (!decoded) return decoded.error();
  out.times.decode_ms = ms_since(start);

  start = Clock::now();
  cv::Mat filtered;
  if (auto ok = apply_ops(decoded->pixels, filtered, job.ops, strips); !ok) return ok.error();
  decoded->pixels.release();  // free the input pixels before encoding allocates
  out.times.filter_ms = ms_since(start);

  start = Clock::now();
  auto encoded = encode_image(filtered, format, job.quality, strips);
  if (!encoded) return encoded.error();
  out.times.encode_ms = ms_since(start);

  out.bytes = std::move(encoded.value());
  out.format = format;
  out.width = filtered.cols;
  out.height = filtered.rows;
  return out;
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
