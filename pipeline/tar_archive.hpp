#pragma once
// Builds tar archives in memory with libarchive (pax restricted format).

#include <chrono>
#include <string>
#include <vector>

#include "core/result.hpp"

namespace pixpool {

struct TarEntry {
  std::string name;   // path inside the archive, e.g. "0001-photo.jpg"
  std::string bytes;  // file content
};

// The whole archive as bytes; entries keep their order, mode 0644, mtime
// `mtime`. Errors: internal when libarchive fails, invalid_parameter for an
// empty or absolute name or one containing "..".
Result<std::string> make_tar(
    const std::vector<TarEntry>& entries,
    std::chrono::system_clock::time_point mtime = std::chrono::system_clock::now());

}  // namespace pixpool
