#pragma once
// The zygote: a small process forked at startup, while the server still has
// a single thread, that forks worker processes on request. fork() in a
// threaded process copies locks other threads hold (malloc's, TBB's,
// OpenCV's), so the server never forks after it has threads; the zygote never
// has more than one thread, so it can fork at any time.
//
// Process tree: server -> zygote -> workers. PR_SET_PDEATHSIG makes the
// zygote die with the server and each worker die with the zygote. The zygote
// ignores SIGCHLD, so exited workers are reaped by the kernel: no zombies.

#include <sys/types.h>

#include <cstddef>
#include <memory>
#include <mutex>

#include "core/result.hpp"
#include "pipeline/unique_fd.hpp"

namespace pixpool {

struct WorkerSettings {
  std::size_t memory_mb = 0;  // address-space cap (RLIMIT_AS); 0 = none
};

// A live worker as the server sees it.
struct WorkerProcess {
  pid_t pid = -1;
  UniqueFd socket;  // SOCK_SEQPACKET to the worker: wire::Request out, wire::Reply in
  UniqueFd memfd;   // the worker's shared buffer
};

class Zygote {
 public:
  // Forks the zygote. Call while this process has exactly one thread.
  // Errors: internal (socketpair/fork failed).
  static Result<std::shared_ptr<Zygote>> start();

  ~Zygote();  // closes the control socket (the zygote then exits) and reaps it
  Zygote(const Zygote&) = delete;
  Zygote& operator=(const Zygote&) = delete;

  // Forks a new worker. Thread-safe. Errors: internal when the zygote is gone
  // or could not fork.
  Result<WorkerProcess> spawn(const WorkerSettings& settings);

  pid_t pid() const { return pid_; }

  // False once the zygote has exited (it is then reaped); without it no
  // worker can be replaced. Thread-safe.
  bool alive();

 private:
  Zygote(pid_t pid, UniqueFd control) : pid_(pid), control_(std::move(control)) {}
  pid_t pid_;
  UniqueFd control_;
  std::mutex mutex_;  // one spawn conversation at a time; guards exited_
  bool exited_ = false;
};

// The worker loop: serves wire::Requests on `socket` until the server closes
// it, then exits. Never returns.
[[noreturn]] void worker_main(UniqueFd socket, UniqueFd memfd, const WorkerSettings& settings);

}  // namespace pixpool
