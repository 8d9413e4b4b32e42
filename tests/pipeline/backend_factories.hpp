#pragma once
// Factories that let one contract suite run against every backend.

#include <chrono>
#include <memory>

#include "pipeline/process_pool_backend.hpp"
#include "pipeline/tbb_backend.hpp"
#include "tests/support/test_zygote.hpp"

namespace pixpool::test {

struct TbbFactory {
  static constexpr const char* name = "tbb";
  static std::unique_ptr<Backend> make(std::size_t max_pending = 256) {
    return std::make_unique<TbbBackend>(TbbBackendOptions{2, max_pending});
  }
};

struct ProcessFactory {
  static constexpr const char* name = "process";
  static std::unique_ptr<Backend> make(std::size_t max_pending = 256) {
    auto pool = ProcessPoolBackend::create(
        ProcessPoolOptions{2, max_pending, std::chrono::seconds(60), 0}, zygote());
    if (!pool) throw std::runtime_error(pool.error().message);
    return std::move(pool.value());
  }
};

}  // namespace pixpool::test
