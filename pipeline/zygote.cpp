#include "pipeline/zygote.hpp"

#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <string>

#include "pipeline/shared_buffer.hpp"

namespace pixpool {
namespace {

constexpr std::size_t kInitialBufferBytes = std::size_t{4} << 20;

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
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  return getppid() == expected_parent;
}

[[noreturn]] void zygote_main(UniqueFd control, pid_t server) {
  if (!die_with_parent(server)) _exit(0);
  prctl(PR_SET_NAME, "pixpool-zygote");
  // Own process group: a terminal's Ctrl-C reaches the server, which drains
  // and then stops us, instead of killing workers mid-job.
  setpgid(0, 0);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  signal(SIGCHLD, SIG_IGN);  // the kernel reaps exited workers
  signal(SIGPIPE, SIG_IGN);
  signal(SIGTERM, SIG_DFL);
  signal(SIGINT, SIG_DFL);

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

}  // namespace

Result<std::shared_ptr<Zygote>> Zygote::start() {
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) {
    return sys_error("socketpair");
  }
  UniqueFd ours(pair[0]);
  UniqueFd theirs(pair[1]);
  const pid_t server = getpid();
  const pid_t pid = fork();
  if (pid < 0) return sys_error("fork");
  if (pid == 0) {
    ours.reset();
    zygote_main(std::move(theirs), server);
  }
  return std::shared_ptr<Zygote>(new Zygote(pid, std::move(ours)));
}

Zygote::~Zygote() {
  control_.reset();  // EOF: the zygote exits, its workers follow (PDEATHSIG)
  int status = 0;
  while (!exited_ && waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
}

bool Zygote::alive() {
  std::lock_guard lock(mutex_);
  if (exited_) return false;
  int status = 0;
  if (waitpid(pid_, &status, WNOHANG) == pid_) exited_ = true;  // reaps it: no zombie
  return !exited_;
}

Result<WorkerProcess> Zygote::spawn(const WorkerSettings& settings) {
  std::lock_guard lock(mutex_);
  const SpawnRequest request{settings};
  if (send(control_.get(), &request, sizeof request, MSG_NOSIGNAL) !=
      static_cast<ssize_t>(sizeof request)) {
    return sys_error("the zygote process is gone");
  }
  SpawnReply reply{};
  WorkerProcess worker;
  if (!recv_with_fds(control_.get(), reply, worker.socket, worker.memfd)) {
    return Error{ErrorCode::internal, "the zygote process is gone"};
  }
  if (reply.pid < 0 || !worker.socket.valid() || !worker.memfd.valid()) {
    errno = reply.error_number;
    return sys_error("could not fork a worker");
  }
  worker.pid = reply.pid;
  return worker;
}

}  // namespace pixpool
