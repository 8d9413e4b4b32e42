#pragma once
// One image through the pipeline, exactly as /v1/process and every batch
// item run it: download (URL sources, on the Downloader's I/O pool) -> submit
// to the backend and wait -> record the outcome in Metrics.
//
// This is the one place that records per-image metrics
// (Metrics::record_image): every image that reaches the pipeline is counted
// once, whatever route brought it and however it ended (download failure,
// empty source, backend error or success). A decorator around Backend could
// not see downloads, so it would need a second recording site for them;
// one function that owns the whole image does not. Requests refused before
// they become an image (bad parameters, body too large, busy) are counted
// only as HTTP requests (service/http_metrics.hpp).

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "core/result.hpp"
#include "pipeline/backend.hpp"
#include "pipeline/downloader.hpp"
#include "pipeline/job.hpp"
#include "pipeline/metrics.hpp"

namespace pixpool {

// Where an image comes from: uploaded bytes, or a URL to download.
struct ImageSource {
  std::string bytes;  // the encoded image (uploads); ignored when `url` is set
  std::string url;    // "" for uploads
};

struct ImageRunOptions {
  // How long to keep resubmitting while the backend answers queue_full, or
  // the Downloader download_queue_full (they may be momentarily full: single
  // requests compete for them). 0: answer at once, as /v1/process does;
  // batch items wait.
  std::chrono::milliseconds queue_full_retry{0};
  // The requester's token: every wait (for a download, memory, the backend's
  // queue) checks it every kCancelCheckInterval, and once it is cancelled
  // the image is dropped where it waits (client_gone). nullptr: never.
  std::shared_ptr<CancelToken> cancel = nullptr;
  // Called once the image's bytes are in hand, just before submitting, e.g.
  // to take a processing slot only after a download (so downloads do not
  // hold one). An error ends the image with it. Empty: none.
  std::function<Result<void>()> before_submit = nullptr;
};

struct ImageRun {
  Result<JobOutput> output = Error{ErrorCode::internal, "not run"};
  std::size_t input_bytes = 0;  // encoded bytes given to the backend
  double download_ms = 0;       // 0 unless the source was a URL
  // Milliseconds from the image's bytes or URL in hand to its encoded output
  // (or error): download + queue + decode + filter + encode, plus any waits
  // between queue_full retries. An upload is read before and not included.
  double total_ms = 0;
};

// Runs `source` with `params` on `backend` and records the outcome, input
// bytes and stage times in `metrics`. Never throws for bad input: errors
// are in `output` (those of Downloader::fetch, empty_body for an empty
// source, those of options.before_submit, and those of Backend::submit;
// client_gone when options.cancel was cancelled while the image waited).
//
// Waits happen on the calling thread; with a cancel token they poll it, so
// the token's probe is asked only when something actually has to wait.
ImageRun run_image(ImageSource source, JobParams params, Backend& backend, Downloader& downloader,
                   Metrics& metrics, const ImageRunOptions& options = {});

}  // namespace pixpool
