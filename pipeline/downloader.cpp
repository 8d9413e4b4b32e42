#include "pipeline/downloader.hpp"

// STUB: to be implemented (issue 4, downloads).
namespace pixpool {
struct Downloader::State {};
Downloader::Downloader(DownloadOptions) : state_(std::make_unique<State>()) {}
Downloader::~Downloader() = default;
std::future<Result<Download>> Downloader::fetch(std::string) {
  std::promise<Result<Download>> p;
  p.set_value(Error{ErrorCode::internal, "downloads are not implemented yet"});
  return p.get_future();
}
Downloader::Stats Downloader::stats() const { return {}; }
}  // namespace pixpool
