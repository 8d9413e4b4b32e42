#include "pipeline/zygote.hpp"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <spawn.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>

#include "core/malloc_tuning.hpp"
#include "filters/buffer_pool.hpp"
#include "pipeline/shared_buffer.hpp"

extern char** environ;  // NOLINT(readability-redundant-declaration): posix_spawn's envp

namespace pixpool {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::size_t kInitialBufferBytes = std::size_t{4} << 20;

// The zygote's control socket in zygote mode; everything above it is closed.
constexpr int kControlFd = 3;
constexpr char kZygoteFlag[] = "--pixpool-zygote";

// How long a starting zygote may take to report ready (ASan builds are slow).
constexpr std::chrono::seconds kStartTimeout{30};
// Back-off between failed starts: 100 ms, doubling, at most 5 s.
constexpr std::chrono::milliseconds kFirstBackoff{100};
constexpr std::chrono::milliseconds kMaxBackoff{5000};

// First message on the control socket: server -> new zygote.
struct Hello {
  pid_t server;
  int test_ops;
  int mmap_threshold;
  std::uint64_t buffer_pool_bytes;
};

// The zygote's answer once it is set up.
struct Ready {
  int ok;
  char message[244];
};

struct SpawnRequest {
  WorkerSettings settings;
};

struct SpawnReply {
  pid_t pid;  // -1 on failure
  int error_number;
};

Error sys_error(const char* what) {
  return Error{ErrorCode::internal, std::string(what) + ": " + std::strerror(errno)};
}

// Sends `reply` with two file descriptors attached (SCM_RIGHTS).
bool send_with_fds(int socket, const SpawnReply& reply, int fd_a, int fd_b) {
  iovec iov{const_cast<SpawnReply*>(&reply), sizeof reply};
  alignas(cmsghdr) char control[CMSG_SPACE(2 * sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (fd_a >= 0) {
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(2 * sizeof(int));
    const int fds[2] = {fd_a, fd_b};
    std::memcpy(CMSG_DATA(cmsg), fds, sizeof fds);
  }
  return sendmsg(socket, &msg, MSG_NOSIGNAL) == static_cast<ssize_t>(sizeof reply);
}

// Receives a reply and its descriptors; fds stay -1 when none came.
bool recv_with_fds(int socket, SpawnReply& reply, UniqueFd& fd_a, UniqueFd& fd_b) {
  iovec iov{&reply, sizeof reply};
  alignas(cmsghdr) char control[CMSG_SPACE(2 * sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n = 0;
  do {
    n = recvmsg(socket, &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n != static_cast<ssize_t>(sizeof reply)) return false;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
        c->cmsg_len == CMSG_LEN(2 * sizeof(int))) {
      int fds[2];
      std::memcpy(fds, CMSG_DATA(c), sizeof fds);
      fd_a.reset(fds[0]);
      fd_b.reset(fds[1]);
    }
  }
  return true;
}

// Dies with the parent; returns false if the parent is already gone.
bool die_with_parent(pid_t expected_parent) {
  (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
  return getppid() == expected_parent;
}

[[noreturn]] void zygote_main(UniqueFd control) {
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  (void)signal(SIGCHLD, SIG_IGN);  // the kernel reaps exited workers
  (void)signal(SIGPIPE, SIG_IGN);
  (void)signal(SIGTERM, SIG_DFL);
  (void)signal(SIGINT, SIG_DFL);

  const pid_t self = getpid();
  for (;;) {
    SpawnRequest request{};
    const ssize_t n = recv(control.get(), &request, sizeof request, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n != static_cast<ssize_t>(sizeof request)) _exit(0);  // server closed us

    auto memfd = SharedBuffer::create_memfd(kInitialBufferBytes);
    int pair[2] = {-1, -1};
    if (!memfd || socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) {
      send_with_fds(control.get(), SpawnReply{-1, errno}, -1, -1);
      continue;
    }
    UniqueFd server_end(pair[0]);
    UniqueFd worker_end(pair[1]);
    const pid_t pid = fork();
    if (pid == 0) {
      control.reset();
      server_end.reset();
      if (!die_with_parent(self)) _exit(0);
      worker_main(std::move(worker_end), std::move(memfd.value()), request.settings);
    }
    const int error_number = errno;
    worker_end.reset();
    if (pid < 0) {
      send_with_fds(control.get(), SpawnReply{-1, error_number}, -1, -1);
      continue;
    }
    send_with_fds(control.get(), SpawnReply{pid, 0}, server_end.get(), memfd->get());
  }
}

void send_ready(int control, bool ok, const std::string& message) {
  Ready ready{};
  ready.ok = ok ? 1 : 0;
  std::snprintf(ready.message, sizeof ready.message, "%s", message.c_str());
  (void)send(control, &ready, sizeof ready, MSG_NOSIGNAL);
}

// Reads exactly one message of type T within `timeout`; false on EOF,
// timeout or a short message.
template <typename T>
bool recv_within(int socket, T& out, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return false;
    pollfd p{socket, POLLIN, 0};
    const int ready = poll(&p, 1, static_cast<int>(left));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) return false;
    const ssize_t n = recv(socket, &out, sizeof out, 0);
    if (n < 0 && errno == EINTR) continue;
    return n == static_cast<ssize_t>(sizeof out);
  }
}

std::chrono::milliseconds backoff(int failures) {
  auto delay = kFirstBackoff;
  for (int i = 1; i < failures && delay < kMaxBackoff; ++i) delay *= 2;
  return std::min(delay, kMaxBackoff);
}

std::chrono::milliseconds millis(Clock::duration d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d);
}

}  // namespace

void run_zygote_if_requested(int argc, char** argv, ZygotePrepare prepare) {
  if (argc < 2 || std::strcmp(argv[1], kZygoteFlag) != 0) return;
  // Dies with the supervisor thread that started us (checked below, once we
  // know the server's pid: it may have died before this line).
  (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
  (void)prctl(PR_SET_NAME, "pixpool-zygote");
  // posix_spawn closed these already; a zygote started by hand gets the same.
  (void)close_range(kControlFd + 1, ~0U, 0);
  UniqueFd control(kControlFd);
  (void)fcntl(kControlFd, F_SETFD, FD_CLOEXEC);
  Hello hello{};
  if (recv(control.get(), &hello, sizeof hello, 0) != static_cast<ssize_t>(sizeof hello)) _exit(0);
  if (getppid() != hello.server) _exit(0);

  // What the forked zygote used to inherit from main(), set up again.
  if (hello.mmap_threshold > 0) tune_malloc(hello.mmap_threshold);
  if (hello.buffer_pool_bytes > 0) install_buffer_pool(hello.buffer_pool_bytes);
  if (prepare != nullptr) {
    const ZygoteEnvironment environment{hello.test_ops != 0, hello.buffer_pool_bytes,
                                        hello.mmap_threshold};
    if (auto ok = prepare(environment); !ok) {
      send_ready(control.get(), false, ok.error().message);
      _exit(1);
    }
  }
  send_ready(control.get(), true, "");
  zygote_main(std::move(control));
}

Zygote::Zygote(ZygoteOptions options)
    : options_(options),
      wake_(eventfd(0, EFD_CLOEXEC)),
      failures_to_inject_(options.fail_replacements) {}

Result<std::shared_ptr<Zygote>> Zygote::start(ZygoteOptions options) {
  std::shared_ptr<Zygote> zygote(new Zygote(options));
  if (!zygote->wake_.valid()) return sys_error("eventfd");
  zygote->supervisor_ = std::thread([z = zygote.get()] { z->supervise(); });
  std::unique_lock lock(zygote->mutex_);
  zygote->changed_.wait(lock, [&] { return zygote->first_done_; });
  if (!zygote->up_) {
    Error error{ErrorCode::internal, "cannot start the worker zygote: " + zygote->last_error_};
    lock.unlock();
    zygote.reset();  // stops the supervisor
    return error;
  }
  return zygote;
}

Zygote::~Zygote() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  const std::uint64_t one = 1;
  (void)write(wake_.get(), &one, sizeof one);
  if (supervisor_.joinable()) supervisor_.join();
}

Result<Zygote::Started> Zygote::launch() {
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) {
    return sys_error("socketpair");
  }
  UniqueFd ours(pair[0]);
  UniqueFd theirs(pair[1]);
  if (theirs.get() == kControlFd) {  // dup2(3, 3) would keep FD_CLOEXEC
    theirs.reset(fcntl(pair[1], F_DUPFD_CLOEXEC, kControlFd + 1));
    if (!theirs.valid()) return sys_error("fcntl");
  }
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attributes;
  posix_spawn_file_actions_init(&actions);
  posix_spawnattr_init(&attributes);
  posix_spawn_file_actions_adddup2(&actions, theirs.get(), kControlFd);
  // Whatever the server holds without FD_CLOEXEC (sockets httplib made,
  // a library's files) stays out of the zygote and so of every worker.
  posix_spawn_file_actions_addclosefrom_np(&actions, kControlFd + 1);
  // Own process group: a terminal's Ctrl-C reaches the server, which drains
  // and then stops us, instead of killing workers mid-job. No blocked
  // signals (the server blocks SIGTERM/SIGINT for its signal thread) and
  // SIGPIPE back to default before the zygote sets its own.
  posix_spawnattr_setflags(&attributes,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  posix_spawnattr_setpgroup(&attributes, 0);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attributes, &none);
  sigset_t defaults;
  sigemptyset(&defaults);
  for (int s : {SIGPIPE, SIGCHLD, SIGINT, SIGTERM, SIGHUP, SIGUSR1}) sigaddset(&defaults, s);
  posix_spawnattr_setsigdefault(&attributes, &defaults);
  char arg0[] = "pixpool-zygote";
  char arg1[sizeof kZygoteFlag];
  std::memcpy(arg1, kZygoteFlag, sizeof kZygoteFlag);
  char* const args[] = {arg0, arg1, nullptr};
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, "/proc/self/exe", &actions, &attributes, args, environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  theirs.reset();
  if (rc != 0) {
    errno = rc;
    return sys_error("posix_spawn /proc/self/exe");
  }
  const ZygoteEnvironment& env = options_.environment;
  const Hello hello{getpid(), env.test_ops ? 1 : 0, env.mmap_threshold,
                    static_cast<std::uint64_t>(env.buffer_pool_bytes)};
  Ready ready{};
  const bool sent =
      send(ours.get(), &hello, sizeof hello, MSG_NOSIGNAL) == static_cast<ssize_t>(sizeof hello);
  if (!sent || !recv_within(ours.get(), ready, kStartTimeout) || ready.ok != 1) {
    (void)kill(pid, SIGKILL);
    while (waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    ready.message[sizeof ready.message - 1] = '\0';
    return Error{ErrorCode::internal,
                 std::string("the zygote did not start") +
                     (ready.message[0] != '\0' ? std::string(": ") + ready.message : "")};
  }
  return Started{pid, std::move(ours)};
}

void Zygote::watch(int control) {
  pollfd fds[2] = {{control, 0, 0}, {wake_.get(), POLLIN, 0}};
  for (;;) {
    const int n = poll(fds, 2, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 || fds[0].revents != 0 || fds[1].revents != 0) return;
  }
}

void Zygote::supervise() {
  // Signals go to the server's signal thread, never here.
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);
  for (;;) {
    bool inject = false;
    {
      std::unique_lock lock(mutex_);
      changed_.wait_until(lock, next_attempt_, [&] { return stopping_; });
      if (stopping_) return;
      starting_ = true;
      attempt_began_ = Clock::now();
      if (first_done_ && failures_to_inject_ > 0) {
        --failures_to_inject_;
        inject = true;
      }
    }
    const auto began = Clock::now();
    Result<Started> started =
        inject ? Result<Started>(Error{ErrorCode::internal, "injected failure (test hook)"})
               : launch();
    const auto took = millis(Clock::now() - began);
    int watched = -1;
    {
      std::scoped_lock both(conversation_, mutex_);
      starting_ = false;
      first_done_ = true;
      if (!started) {
        ++failed_starts_;
        last_error_ = started.error().message;
        next_attempt_ = Clock::now() + backoff(failed_starts_);
        std::fprintf(stderr, "pixpool: cannot start a worker zygote (attempt %d): %s\n",
                     failed_starts_, last_error_.c_str());
      } else {
        control_ = std::move(started->control);
        watched = control_.get();
        pid_ = started->pid;
        up_ = true;
        if (generation_++ > 0) {
          ++replacements_;
          std::fprintf(stderr, "pixpool: worker zygote replaced by pid %d (started in %lld ms)\n",
                       static_cast<int>(pid_), static_cast<long long>(took.count()));
        }
        failed_starts_ = 0;
        last_start_ = std::max(took, std::chrono::milliseconds{1});
        last_error_.clear();
      }
    }
    changed_.notify_all();
    if (!started) continue;

    watch(watched);  // the fd stays open until this thread closes it below
    pid_t dead = -1;
    {
      std::scoped_lock both(conversation_, mutex_);
      up_ = false;
      dead = pid_;
      pid_ = -1;
      control_.reset();  // EOF: a zygote still running exits, its workers follow
      next_attempt_ = Clock::now();
    }
    changed_.notify_all();
    // Bounded: SIGKILL, then reap, so no zygote is ever left a zombie.
    (void)kill(dead, SIGKILL);
    while (waitpid(dead, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
}

std::chrono::milliseconds Zygote::estimate_locked(Clock::time_point now) const {
  if (up_ || stopping_) return std::chrono::milliseconds{0};
  if (starting_)
    return std::max(millis(attempt_began_ + last_start_ - now), millis({})) +
           std::chrono::milliseconds{1};
  return std::max(millis(next_attempt_ - now), millis({})) + last_start_;
}

ZygoteStatus Zygote::status() const {
  std::lock_guard lock(mutex_);
  ZygoteStatus s;
  s.up = up_;
  s.available_in = estimate_locked(Clock::now());
  s.failed_starts = failed_starts_;
  s.replacements = replacements_;
  s.generation = generation_;
  s.last_start = last_start_;
  s.last_error = last_error_;
  return s;
}

pid_t Zygote::pid() const {
  std::lock_guard lock(mutex_);
  return pid_;
}

bool Zygote::lost(std::uint64_t generation) const {
  std::lock_guard lock(mutex_);
  if (!up_ || generation != generation_) return true;
  pollfd p{control_.get(), 0, 0};
  return poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLERR)) != 0;
}

Result<WorkerProcess> Zygote::spawn(const WorkerSettings& settings, Clock::time_point deadline) {
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      if (!changed_.wait_until(lock, deadline, [&] { return up_ || stopping_; })) {
        const auto eta = estimate_locked(Clock::now());
        return Error{ErrorCode::unavailable,
                     "no worker zygote (being replaced" +
                         (last_error_.empty() ? std::string() : "; last start: " + last_error_) +
                         "), expected back in " + std::to_string(eta.count()) + " ms"};
      }
      if (stopping_) return Error{ErrorCode::unavailable, "the worker zygote is shutting down"};
    }
    std::lock_guard talk(conversation_);
    int control = -1;
    std::uint64_t generation = 0;
    {
      std::lock_guard lock(mutex_);
      if (!up_) continue;
      control = control_.get();
      generation = generation_;
    }
    const SpawnRequest request{settings};
    SpawnReply reply{};
    WorkerProcess worker;
    if (send(control, &request, sizeof request, MSG_NOSIGNAL) !=
            static_cast<ssize_t>(sizeof request) ||
        !recv_with_fds(control, reply, worker.socket, worker.memfd)) {
      // It died under us (or botched the conversation): shutting our end
      // down makes the supervisor replace it; wait for that one.
      (void)shutdown(control, SHUT_RDWR);
      std::lock_guard lock(mutex_);
      up_ = false;
      continue;
    }
    if (reply.pid < 0 || !worker.socket.valid() || !worker.memfd.valid()) {
      errno = reply.error_number;
      return sys_error("could not fork a worker");
    }
    worker.pid = reply.pid;
    worker.generation = generation;
    return worker;
  }
}

}  // namespace pixpool
