#pragma once
// Downloads source images on a dedicated I/O thread pool (libcurl), separate
// from compute, so slow origins never hold a compute worker or an HTTP
// thread's CPU (HTTP threads only wait on the future).
//
// Safety: only http and https; at most `max_redirects` redirects, each one
// re-checked; the SSRF guard checks every resolved address at connect time
// (so DNS tricks and redirects cannot reach internal addresses); the byte cap
// is enforced while streaming, not only from Content-Length; proxies from the
// environment are ignored.
//
// Admission: at most io_threads downloads run and max_queued wait for a
// thread; beyond that fetch() refuses at once (download_queue_full). The
// timeout runs from fetch(): time spent waiting for a thread counts, and a
// download whose deadline passes while queued fails without connecting.

#include <chrono>
#include <cstddef>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "core/result.hpp"
#include "pipeline/cancellation.hpp"

namespace pixpool {

// Defaults here are the server's defaults (service/config.hpp embeds this).
struct DownloadOptions {
  int io_threads = 16;                                           // concurrent downloads
  std::chrono::milliseconds timeout = std::chrono::seconds{10};  // per download, redirects included
  std::size_t max_bytes = std::size_t{64} << 20;  // body cap, enforced while streaming
  int max_redirects = 5;
  bool allow_private = false;                 // --allow-private-sources
  std::vector<std::string> allowed_prefixes;  // --allowed-sources: URL prefixes that
                                              // may resolve to forbidden addresses
  // --download-ca-file: PEM bundle of CAs trusted for https sources (e.g. a
  // private CA), given to libcurl as CURLOPT_CAINFO in place of its default
  // bundle file. Empty = libcurl's defaults.
  std::string ca_file;
  // --download-queue: downloads waiting for an I/O thread; beyond them a new
  // one is refused with download_queue_full (429).
  std::size_t max_queued = 64;
};

struct Download {
  std::string bytes;      // the response body
  std::string final_url;  // after redirects
  long status = 0;        // the origin's final HTTP status (2xx)
  double ms = 0;          // wall time of the whole download
};

class Downloader {
 public:
  explicit Downloader(DownloadOptions options);
  ~Downloader();  // finishes queued downloads' futures with shutting_down, joins the pool
  Downloader(const Downloader&) = delete;
  Downloader& operator=(const Downloader&) = delete;

  // Queues a download; `cancel` (may be null) drops it when cancelled while
  // queued, and aborts it while running. The future always becomes ready.
  // Errors:
  //  download_queue_full  io_threads downloads run and max_queued wait
  //                     (returned at once, nothing is queued)
  //  client_gone        `cancel` was cancelled before the download finished
  //  invalid_parameter  malformed URL
  //  source_forbidden   scheme not http(s); address forbidden (message names
  //                     the address); redirect limit exceeded is origin_failed
  //  source_too_large   body over max_bytes (Content-Length or streamed)
  //  origin_failed      origin answered >= 400 (message has its status),
  //                     refused/reset connection, DNS failure, > max_redirects
  //  timeout            connect or total timeout, counted from fetch()
  //                     (waiting for a thread included)
  //  shutting_down      the downloader is being destroyed
  std::future<Result<Download>> fetch(std::string url,
                                      std::shared_ptr<CancelToken> cancel = nullptr);

  struct Stats {
    std::size_t active = 0;  // downloads in progress
    std::size_t queued = 0;  // waiting for an I/O thread
    std::uint64_t completed = 0;
    std::uint64_t failed = 0;     // refused and abandoned ones included
    std::uint64_t refused = 0;    // download_queue_full
    std::uint64_t abandoned = 0;  // client_gone: cancelled while queued or running
  };
  Stats stats() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace pixpool
