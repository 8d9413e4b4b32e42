#include "filters/buffer_pool.hpp"

#include <sys/mman.h>

#include <map>
#include <mutex>
#include <opencv2/core.hpp>
#include <vector>

namespace pixpool {
namespace {

constexpr std::size_t kAutoStep = 0x7fffffff;             // OpenCV's CV_AUTOSTEP (types_c.h)
constexpr std::size_t kMinPooled = std::size_t{1} << 20;  // smaller blocks: plain malloc
constexpr std::size_t kGranule = std::size_t{256} << 10;  // size classes: wastes < 25% at 1 MiB

std::size_t size_class(std::size_t bytes) {
  return (bytes + kGranule - 1) / kGranule * kGranule;
}

class PoolAllocator final : public cv::MatAllocator {
 public:
  cv::UMatData* allocate(int dims, const int* sizes, int type, void* data0, std::size_t* step,
                         cv::AccessFlag /*flags*/, cv::UMatUsageFlags /*usage*/) const override {
    // Same layout rules as OpenCV's own StdMatAllocator.
    std::size_t total = CV_ELEM_SIZE(type);
    for (int i = dims - 1; i >= 0; --i) {
      if (step != nullptr) {
        if (data0 != nullptr && step[i] != kAutoStep) {
          CV_Assert(total <= step[i]);
          total = step[i];
        } else {
          step[i] = total;
        }
      }
      total *= static_cast<std::size_t>(sizes[i]);
    }
    // The buffer first: if it cannot be had, nothing else is allocated.
    auto* data = static_cast<uchar*>(data0 != nullptr ? data0 : take(total));
    auto* u = new cv::UMatData(this);
    u->size = total;
    u->data = u->origdata = data;
    if (data0 != nullptr) u->flags |= cv::UMatData::USER_ALLOCATED;
    return u;
  }

  bool allocate(cv::UMatData* u, cv::AccessFlag, cv::UMatUsageFlags) const override {
    return u != nullptr;
  }

  void deallocate(cv::UMatData* u) const override {
    if (u == nullptr) return;
    CV_Assert(u->urefcount == 0 && u->refcount == 0);
    if (!(u->flags & cv::UMatData::USER_ALLOCATED)) give_back(u->origdata, u->size);
    delete u;
  }

  void set_cap(std::size_t bytes) {
    std::lock_guard lock(mutex_);
    cap_ = bytes;
    trim_locked();
  }

  BufferPoolStats stats() const {
    std::lock_guard lock(mutex_);
    return stats_;
  }

 private:
  void* take(std::size_t bytes) const {
    if (bytes < kMinPooled) return cv::fastMalloc(bytes);
    const std::size_t cls = size_class(bytes);
    {
      std::lock_guard lock(mutex_);
      auto it = free_.find(cls);
      if (it != free_.end() && !it->second.empty()) {
        void* block = it->second.back();
        it->second.pop_back();
        stats_.cached_bytes -= cls;
        ++stats_.hits;
        return block;
      }
      ++stats_.misses;
    }
    void* block = mmap(nullptr, cls, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (block == MAP_FAILED) throw std::bad_alloc();
    madvise(block, cls, MADV_HUGEPAGE);  // fewer faults and TLB misses; a hint only
    return block;
  }

  void give_back(void* block, std::size_t bytes) const {
    if (bytes < kMinPooled) {
      cv::fastFree(block);
      return;
    }
    const std::size_t cls = size_class(bytes);
    {
      std::lock_guard lock(mutex_);
      if (stats_.cached_bytes + cls <= cap_) {
        free_[cls].push_back(block);
        stats_.cached_bytes += cls;
        return;
      }
    }
    munmap(block, cls);
  }

  void trim_locked() {
    for (auto& [cls, blocks] : free_) {
      while (!blocks.empty() && stats_.cached_bytes > cap_) {
        munmap(blocks.back(), cls);
        blocks.pop_back();
        stats_.cached_bytes -= cls;
      }
    }
  }

  mutable std::mutex mutex_;
  mutable std::map<std::size_t, std::vector<void*>> free_;  // idle blocks by size class
  mutable BufferPoolStats stats_;
  std::size_t cap_ = 0;
};

PoolAllocator* pool = nullptr;

}  // namespace

void install_buffer_pool(std::size_t max_cached_bytes) {
  if (pool == nullptr) {
    pool = new PoolAllocator();  // never freed: Mats may outlive any owner
    cv::Mat::setDefaultAllocator(pool);
  }
  pool->set_cap(max_cached_bytes);
}

BufferPoolStats buffer_pool_stats() {
  return pool != nullptr ? pool->stats() : BufferPoolStats{};
}

}  // namespace pixpool
