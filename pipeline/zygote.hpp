#pragma once
// The zygote: a small single-threaded process that forks worker processes on
// request. fork() in a threaded process copies locks other threads hold
// (malloc's, TBB's, OpenCV's), so the server never forks; the zygote never
// has more than one thread, so it can fork at any time.
//
// The zygote is the server's own binary started again in zygote mode
// (posix_spawn of /proc/self/exe, safe from a threaded process), with its
// control socket as fd 3 and every other descriptor above 2 closed, so no
// listening socket, client socket or memfd of the server reaches it or its
// workers. A supervisor thread owns it: when it dies (SIGKILL, OOM killer)
// the thread reaps it and starts a new one at once, and after a failed start
// again with a doubling back-off (100 ms .. 5 s), never in a busy loop.
//
// Process tree: server -> zygote -> workers. PR_SET_PDEATHSIG makes the
// zygote die with the server (its supervisor thread, which lives as long as
// the Zygote object) and each worker die with its zygote. The zygote ignores
// SIGCHLD, so exited workers are reaped by the kernel; the server reaps its
// zygotes. Workers die with their zygote, rather than surviving it under a
// subreaper, because then nothing outlives the server by more than the
// kernel's signal delivery (a worker stuck in a 30 s job would otherwise
// outlive it by 30 s), the server never has to reap grandchildren, and the
// cost is small: the jobs on those workers are retried on fresh workers of
// the new zygote, without counting against their one crash retry (see
// lost() and process_pool_backend.hpp).

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "core/result.hpp"
#include "pipeline/unique_fd.hpp"

namespace pixpool {

struct WorkerSettings {
  std::size_t memory_mb = 0;  // address-space cap (RLIMIT_AS); 0 = none
};

// What a zygote (and so every worker) must set up as the server did before
// serving: it is a fresh exec of the binary, it inherits nothing.
struct ZygoteEnvironment {
  bool test_ops = false;              // register the test-only ops (--enable-test-ops)
  std::size_t buffer_pool_bytes = 0;  // install_buffer_pool() share; 0 = no pool
  int mmap_threshold = 0;             // mallopt(M_MMAP_THRESHOLD); 0 = glibc's default
};

struct ZygoteOptions {
  ZygoteEnvironment environment;
  // Tests only: the first N replacements fail as if the exec had failed, to
  // observe the back-off and the availability estimate. The first start
  // never fails this way.
  int fail_replacements = 0;
};

// A live worker as the server sees it.
struct WorkerProcess {
  pid_t pid = -1;
  UniqueFd socket;               // SOCK_SEQPACKET to the worker: wire::Request out, wire::Reply in
  UniqueFd memfd;                // the worker's shared buffer
  std::uint64_t generation = 0;  // which zygote forked it (see Zygote::lost)
};

// The zygote as the pool sees it, for readiness and Retry-After.
struct ZygoteStatus {
  bool up = false;                            // a zygote is running and can fork
  std::chrono::milliseconds available_in{0};  // estimate until one is up again; 0 when up
  int failed_starts = 0;                      // consecutive failed starts (0 once one is up)
  std::uint64_t replacements = 0;             // zygotes started after the first one
  std::uint64_t generation = 0;               // the running zygote's (see Zygote::lost)
  std::chrono::milliseconds last_start{0};    // how long the latest successful start took
  std::string last_error;                     // why the latest start failed, if it did
};

// Zygote mode: call first thing in main(), before anything else runs. When
// argv asks for zygote mode (the supervisor starts the binary that way) it
// sets up `environment` (mallopt, buffer pool, then `prepare`, e.g. test op
// registration), serves spawn requests on fd 3 and never returns; otherwise
// it returns at once and does nothing.
using ZygotePrepare = Result<void> (*)(const ZygoteEnvironment& environment);
void run_zygote_if_requested(int argc, char** argv, ZygotePrepare prepare = nullptr);

class Zygote {
 public:
  // Starts the supervisor thread and waits (up to 30 s) for the first
  // zygote. Thread-safe to call from a threaded process. Errors: internal
  // (socketpair, posix_spawn or the zygote's setup failed).
  static Result<std::shared_ptr<Zygote>> start(ZygoteOptions options = {});

  ~Zygote();  // stops the supervisor, closes the control socket, reaps the zygote
  Zygote(const Zygote&) = delete;
  Zygote& operator=(const Zygote&) = delete;

  // Forks a new worker. Thread-safe. While the zygote is being replaced it
  // waits for the new one until `deadline`. Errors: unavailable (no zygote
  // came up before the deadline, or shutting down), internal (the zygote
  // could not fork).
  Result<WorkerProcess> spawn(const WorkerSettings& settings,
                              std::chrono::steady_clock::time_point deadline);

  // True when the zygote that forked workers of `generation` is gone: such
  // a worker's death is not its job's fault. Reliable as soon as the worker
  // is seen dead: the zygote's control socket closes before the kernel sends
  // the workers their PDEATHSIG. Thread-safe.
  bool lost(std::uint64_t generation) const;

  ZygoteStatus status() const;  // thread-safe, never blocks on the zygote
  pid_t pid() const;            // the current zygote, -1 while there is none
  bool alive() const { return status().up; }

 private:
  struct Started {
    pid_t pid;
    UniqueFd control;
  };
  explicit Zygote(ZygoteOptions options);
  Result<Started> launch();
  void supervise();
  void watch(int control);
  std::chrono::milliseconds estimate_locked(std::chrono::steady_clock::time_point now) const;

  const ZygoteOptions options_;
  UniqueFd wake_;  // eventfd: stop the supervisor

  std::mutex conversation_;  // one spawn conversation at a time; taken before mutex_
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  UniqueFd control_;  // guarded by both mutexes to change, by either to read
  pid_t pid_ = -1;
  bool up_ = false;
  bool stopping_ = false;
  bool starting_ = false;
  std::uint64_t generation_ = 0;
  int failed_starts_ = 0;
  int failures_to_inject_ = 0;
  std::uint64_t replacements_ = 0;
  std::chrono::steady_clock::time_point next_attempt_{};
  std::chrono::steady_clock::time_point attempt_began_{};
  std::chrono::milliseconds last_start_{100};
  std::string last_error_;
  bool first_done_ = false;  // the first start finished (ok or not)
  std::thread supervisor_;
};

// The worker loop: serves wire::Requests on `socket` until the server closes
// it, then exits. Never returns.
[[noreturn]] void worker_main(UniqueFd socket, UniqueFd memfd, const WorkerSettings& settings);

}  // namespace pixpool
