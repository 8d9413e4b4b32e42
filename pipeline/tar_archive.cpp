#include "pipeline/tar_archive.hpp"

// STUB: to be implemented (issue 4, tar output).
namespace pixpool {
Result<std::string> make_tar(const std::vector<TarEntry>&, std::chrono::system_clock::time_point) {
  return Error{ErrorCode::internal, "tar output is not implemented yet"};
}
}  // namespace pixpool
