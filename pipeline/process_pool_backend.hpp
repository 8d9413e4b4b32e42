#pragma once
// ProcessPoolBackend: runs jobs in pre-forked worker processes (forked by the
// Zygote), so a crashing or runaway decode kills one worker, not the server.
// Image bytes cross through each worker's shared memory; only fixed-size
// control messages go over its socket. Workers run the same run_job as the
// TBB backend, so both return byte-identical output.
//
// Faults: a worker that dies mid-job fails that job with worker_crashed; one
// that exceeds the job timeout is SIGKILLed and the job fails with timeout.
// Either way the worker is replaced at once and other jobs carry on. A worker
// found dead while idle is replaced and the job goes to the new one.

#include <chrono>
#include <cstddef>
#include <memory>
#include <vector>

#include "pipeline/backend.hpp"
#include "pipeline/zygote.hpp"

namespace pixpool {

// Defaults here are the server's defaults (service/config.hpp embeds this).
// Field order is kept stable: tests still brace-initialise it.
struct ProcessPoolOptions {
  int workers = 0;                // 0 = number of cores
  std::size_t max_pending = 256;  // queued + running jobs before queue_full
  std::chrono::milliseconds job_timeout = std::chrono::seconds{30};  // then SIGKILL, 504
  std::size_t worker_memory_mb = 0;  // per-worker address-space cap in MiB; 0 = none
};

class ProcessPoolBackend final : public Backend {
 public:
  // Spawns every worker before returning. Errors: internal when the zygote
  // cannot fork them.
  static Result<std::unique_ptr<ProcessPoolBackend>> create(ProcessPoolOptions options,
                                                            std::shared_ptr<Zygote> zygote);
  ~ProcessPoolBackend() override;  // shutdown(), then the workers exit

  std::string_view name() const override { return "process"; }
  std::future<Result<JobOutput>> submit(JobSpec job) override;
  BackendStats stats() const override;
  bool ready() const override;    // all workers alive and not shutting down
  bool healthy() const override;  // false once the zygote is gone: no worker can be replaced
  void shutdown() override;

 private:
  struct State;
  explicit ProcessPoolBackend(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace pixpool
