#pragma once
// TbbBackend: runs jobs inside a oneTBB task_arena of a fixed size, admitted
// through the shared AdmissionQueue (pipeline/admission_queue.hpp). OpenCV in
// Debian uses TBB as its parallel framework, so OpenCV's own parallel loops
// run on the same arena threads instead of a second pool.
//
// TBB's thread limit is the application's to set, once (oneTBB's advice):
// main() holds a tbb::global_control of tbb_parallelism_for(options) threads
// for as long as the backend lives; without it the arena may get fewer
// worker threads than it has slots.

#include <cstddef>
#include <memory>

#include "pipeline/backend.hpp"

namespace pixpool {

// Defaults here are the server's defaults (service/config.hpp embeds this).
// Field order is kept stable: tests still brace-initialise it.
struct TbbBackendOptions {
  int threads = 0;                // arena size; 0 = number of cores
  std::size_t max_pending = 256;  // queued + running jobs before queue_full
};

// The tbb::global_control::max_allowed_parallelism this backend needs.
std::size_t tbb_parallelism_for(const TbbBackendOptions& options);

class TbbBackend final : public Backend {
 public:
  explicit TbbBackend(TbbBackendOptions options);
  ~TbbBackend() override;  // shutdown(): waits for pending jobs

  std::string_view name() const override { return "tbb"; }
  std::future<Result<JobOutput>> submit(JobSpec job) override;
  BackendStats stats() const override;
  bool ready() const override;
  void shutdown() override;

 private:
  struct State;  // keeps TBB types out of this header
  std::unique_ptr<State> state_;
};

}  // namespace pixpool
