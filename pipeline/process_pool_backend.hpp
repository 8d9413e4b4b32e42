#pragma once
// ProcessPoolBackend: runs jobs in pre-forked worker processes (forked by the
// Zygote), so a crashing or runaway decode kills one worker, not the server.
// Image bytes cross through each worker's shared memory; only fixed-size
// control messages go over its socket. Workers run the same run_job as the
// TBB backend, so both return byte-identical output.
//
// Faults: a job whose worker dies mid-job (delivered, then no reply) runs
// once more on a fresh worker; if that one dies too the job fails with
// worker_crashed, so a poison image costs two workers, never the pool.
// Deaths caused by the zygote's own death (its workers die with it) do not
// count against the job: it waits for the replacement zygote's workers (at
// most 5 s) and runs again, at most 8 times. A job that exceeds the job
// timeout is SIGKILLed with its worker and fails with timeout, never
// retried. Either way the worker is replaced at once and other jobs carry
// on. A worker found dead while idle is replaced and the job goes to the new
// one. stats().retried counts the reruns.
//
// State (stats().state): ready = every worker alive and the zygote up;
// degraded = some workers alive, the rest refilling; recovering = no worker
// alive but the zygote is up or its replacement has not failed yet (jobs are
// accepted and wait); unavailable = shutting down, or no worker and the
// zygote's replacement has failed at least once: submit() then refuses with
// unavailable and the zygote's back-off estimate (Retry-After).

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
  bool ready() const override;  // stats().state is ready
  void shutdown() override;

 private:
  struct State;
  explicit ProcessPoolBackend(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace pixpool
