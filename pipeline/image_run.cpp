#include "pipeline/image_run.hpp"

#include <thread>
#include <utility>

namespace pixpool {
namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

Result<JobOutput> submit(std::string bytes, JobParams params, Backend& backend,
                         const ImageRunOptions& options) {
  CancelToken* cancel = options.cancel.get();
  if (options.queue_full_retry.count() <= 0) {
    return get_unless_gone(
        backend.submit(JobSpec{std::move(bytes), std::move(params), options.cancel}), cancel);
  }
  // A refusal by the memory budget has itself waited --admission-wait.
  const auto give_up = Clock::now() + options.queue_full_retry;
  for (;;) {
    Result<JobOutput> output =
        get_unless_gone(backend.submit(JobSpec{bytes, params, options.cancel}), cancel);
    if (output || output.error().code != ErrorCode::queue_full || Clock::now() >= give_up) {
      return output;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

// The download of `url`; the I/O pool works, this thread only waits. With
// queue_full_retry, a full download queue is retried like a full backend.
Result<Download> fetch(const std::string& url, Downloader& downloader,
                       const ImageRunOptions& options) {
  const auto give_up = Clock::now() + options.queue_full_retry;
  for (;;) {
    auto download = get_unless_gone(downloader.fetch(url, options.cancel), options.cancel.get());
    if (download || download.error().code != ErrorCode::download_queue_full ||
        Clock::now() >= give_up) {
      return download;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

}  // namespace

ImageRun run_image(ImageSource source, JobParams params, Backend& backend, Downloader& downloader,
                   Metrics& metrics, const ImageRunOptions& options) {
  // The image's clock: total_ms starts here, with the bytes or URL in hand.
  const auto start = Clock::now();
  ImageRun run;
  std::string bytes = std::move(source.bytes);
  bool have_bytes = true;
  if (!source.url.empty()) {
    auto download = fetch(source.url, downloader, options);
    run.download_ms = ms_since(start);
    if (download) {
      bytes = std::move(download->bytes);
    } else {
      run.output = download.error();
      have_bytes = false;
    }
  }
  if (have_bytes) {
    run.input_bytes = bytes.size();
    if (bytes.empty()) {
      run.output = Error{ErrorCode::empty_body, "no image data"};
    } else if (auto admitted = options.before_submit ? options.before_submit() : Result<void>{};
               !admitted) {
      run.output = admitted.error();
    } else {
      run.output = submit(std::move(bytes), std::move(params), backend, options);
    }
  }
  run.total_ms = ms_since(start);
  metrics.record_image(backend.name(), run.output, run.input_bytes, run.download_ms, run.total_ms);
  return run;
}

}  // namespace pixpool
