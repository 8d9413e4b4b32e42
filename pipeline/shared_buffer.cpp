#include "pipeline/shared_buffer.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

namespace pixpool {
namespace {

Error sys_error(const char* what) {
  return Error{ErrorCode::internal, std::string(what) + ": " + std::strerror(errno)};
}

std::size_t round_up(std::size_t size) {
  constexpr std::size_t kGranule = std::size_t{1} << 20;  // 1 MiB steps keep remaps rare
  return (size + kGranule - 1) / kGranule * kGranule;
}

}  // namespace

SharedBuffer::~SharedBuffer() {
  if (data_ != nullptr) munmap(data_, size_);
}

SharedBuffer::SharedBuffer(SharedBuffer&& other) noexcept
    : fd_(std::move(other.fd_)),
      data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)) {}

SharedBuffer& SharedBuffer::operator=(SharedBuffer&& other) noexcept {
  if (this != &other) {
    if (data_ != nullptr) munmap(data_, size_);
    fd_ = std::move(other.fd_);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

Result<UniqueFd> SharedBuffer::create_memfd(std::size_t size) {
  UniqueFd fd(memfd_create("pixpool-shm", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd.valid()) return sys_error("memfd_create");
  if (ftruncate(fd.get(), static_cast<off_t>(size)) != 0) return sys_error("ftruncate");
  // The file may grow but never shrink: a misbehaving worker cannot make the
  // server's mapping fault (SIGBUS) while it copies bytes in or out.
  if (fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK) != 0) return sys_error("F_ADD_SEALS");
  return fd;
}

Result<SharedBuffer> SharedBuffer::map(UniqueFd fd) {
  struct stat st {};
  if (fstat(fd.get(), &st) != 0) return sys_error("fstat");
  SharedBuffer buffer;
  buffer.fd_ = std::move(fd);
  if (auto ok = buffer.remap(static_cast<std::size_t>(st.st_size)); !ok) return ok.error();
  return buffer;
}

Result<void> SharedBuffer::remap(std::size_t size) {
  if (size == size_) return {};
  void* p = nullptr;
  if (data_ == nullptr) {
    p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd_.get(), 0);
  } else {
    p = mremap(data_, size_, size, MREMAP_MAYMOVE);
  }
  if (p == MAP_FAILED) return sys_error("mmap");
  data_ = static_cast<char*>(p);
  size_ = size;
  return {};
}

Result<void> SharedBuffer::grow_to(std::size_t size) {
  if (size <= size_) return {};
  const std::size_t target = round_up(size);
  if (ftruncate(fd_.get(), static_cast<off_t>(target)) != 0) return sys_error("ftruncate");
  return remap(target);
}

Result<void> SharedBuffer::follow(std::size_t size) {
  if (size <= size_) return {};
  // Trust the file, not the peer: never map past its real end.
  struct stat st {};
  if (fstat(fd_.get(), &st) != 0) return sys_error("fstat");
  if (size > static_cast<std::size_t>(st.st_size)) {
    return Error{ErrorCode::internal, "peer reported a buffer larger than the file"};
  }
  return remap(size);
}

void SharedBuffer::release_above(std::size_t keep) {
  if (size_ <= keep) return;
  // Best effort: on failure the pages simply stay resident.
  (void)fallocate(fd_.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(keep),
                  static_cast<off_t>(size_ - keep));
}

}  // namespace pixpool
