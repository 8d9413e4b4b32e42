#pragma once
// A memfd mapped MAP_SHARED: the process-pool backend's data plane. The
// parent and one worker map the same memfd; input bytes and output bytes
// cross through it, only small control messages go over the socket.

#include <cstddef>

#include "core/result.hpp"
#include "pipeline/unique_fd.hpp"

namespace pixpool {

class SharedBuffer {
 public:
  SharedBuffer() = default;
  ~SharedBuffer();
  SharedBuffer(SharedBuffer&& other) noexcept;
  SharedBuffer& operator=(SharedBuffer&& other) noexcept;
  SharedBuffer(const SharedBuffer&) = delete;
  SharedBuffer& operator=(const SharedBuffer&) = delete;

  // A new memfd of `size` bytes (not mapped). Errors: internal.
  static Result<UniqueFd> create_memfd(std::size_t size);

  // Maps an existing memfd (takes ownership) at its current size.
  static Result<SharedBuffer> map(UniqueFd fd);

  char* data() const { return data_; }
  std::size_t size() const { return size_; }
  int fd() const { return fd_.get(); }

  // Grows the file (if smaller) to at least `size` bytes, rounded up, and
  // maps it. Errors: internal (ftruncate/mremap failed, e.g. memory limit).
  Result<void> grow_to(std::size_t size);

  // Remaps to the file's current size if another process grew it.
  Result<void> follow(std::size_t size);

  // Returns the physical pages above `keep` bytes to the kernel without
  // changing the size (both sides' mappings stay valid).
  void release_above(std::size_t keep);

 private:
  Result<void> remap(std::size_t size);
  UniqueFd fd_;
  char* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace pixpool
