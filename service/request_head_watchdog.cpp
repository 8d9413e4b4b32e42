#include "service/request_head_watchdog.hpp"

#include <fcntl.h>
#include <linux/sockios.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <optional>
#include <vector>

#include "service/socket_endpoint.hpp"

namespace pixpool {
namespace {

using Clock = std::chrono::steady_clock;

std::string key_of(const std::string& host, int port) {
  return host + " " + std::to_string(port);
}

// Bytes of the connection the server has read so far: received by TCP minus
// still queued unread. nullopt if the kernel does not say.
std::optional<std::int64_t> bytes_read(int fd) {
  tcp_info info{};
  socklen_t length = sizeof info;
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &length) != 0 ||
      length < offsetof(tcp_info, tcpi_bytes_received) + sizeof info.tcpi_bytes_received) {
    return std::nullopt;
  }
  int queued = 0;
  if (ioctl(fd, SIOCINQ, &queued) != 0) return std::nullopt;
  return static_cast<std::int64_t>(info.tcpi_bytes_received) - queued;
}

// Ends the connection under httplib's feet without closing its descriptor
// (httplib owns it). shutdown() wakes a thread waiting to read, but on Linux
// it still lets it read what arrives; connect(AF_UNSPEC) then dissolves the
// TCP connection (connect(2)): a reset to the client, the receive queue
// dropped, and every further read fails.
void abort_connection(int fd) {
  (void)shutdown(fd, SHUT_RDWR);
  sockaddr unspecified{};
  unspecified.sa_family = AF_UNSPEC;
  (void)connect(fd, &unspecified, sizeof unspecified);  // fails only if already gone
}

}  // namespace

RequestHeadWatchdog::RequestHeadWatchdog(int listen_fd, RequestHeadLimits limits)
    : listen_fd_(listen_fd), limits_(limits) {
  if (const auto local = local_endpoint(listen_fd_)) listen_port_ = local->port;
  thread_ = std::thread([this] { run(); });
}

RequestHeadWatchdog::~RequestHeadWatchdog() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

RequestHeadWatchdog::Connection& RequestHeadWatchdog::connection(const std::string& key) {
  auto [it, inserted] = connections_.try_emplace(key);
  if (inserted) {
    it->second.head_since = Clock::now();
    it->second.seen_in_sweep = sweeps_;
  }
  return it->second;
}

void RequestHeadWatchdog::head_done(const std::string& remote_addr, int remote_port) {
  std::lock_guard lock(mutex_);
  connection(key_of(remote_addr, remote_port)).in_head = false;
}

void RequestHeadWatchdog::response_done(const std::string& remote_addr, int remote_port) {
  std::lock_guard lock(mutex_);
  Connection& c = connection(key_of(remote_addr, remote_port));
  c.in_head = true;
  c.head_since = Clock::now();
  c.read_at_head_start = -1;
}

RequestHeadWatchdog::Stats RequestHeadWatchdog::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

void RequestHeadWatchdog::run() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    wake_.wait_for(lock, limits_.interval);
    if (stopping_) break;
    lock.unlock();
    sweep();
    lock.lock();
  }
}

// One pass over the accepted connections. System calls run without the
// mutex; only the bookkeeping takes it.
void RequestHeadWatchdog::sweep() {
  if (listen_port_ < 0) return;
  struct Seen {
    int fd;
    std::string key;
    std::optional<std::int64_t> read;
    Clock::time_point sampled;
  };
  std::vector<Seen> seen;
  for (const int fd : open_descriptors()) {
    if (fd == listen_fd_) continue;
    const auto local = local_endpoint(fd);
    if (!local || local->port != listen_port_) continue;
    const auto peer = peer_endpoint(fd);
    if (!peer) continue;
    seen.push_back({fd, key_of(peer->host, peer->port), bytes_read(fd), Clock::now()});
  }

  std::vector<const Seen*> to_cut;
  {
    std::lock_guard lock(mutex_);
    const std::uint64_t sweep = ++sweeps_;
    const auto now = Clock::now();
    for (const Seen& s : seen) {
      Connection& c = connection(s.key);
      c.seen_in_sweep = sweep;
      if (!c.in_head || !s.read) continue;
      // A sample taken before the head began (response_done ran in between)
      // belongs to the previous request: wait for the next sweep.
      if (c.read_at_head_start < 0) {
        if (s.sampled >= c.head_since) c.read_at_head_start = *s.read;
        continue;
      }
      const bool too_large =
          *s.read - c.read_at_head_start > static_cast<std::int64_t>(limits_.max_bytes);
      const bool too_slow = now - c.head_since > limits_.timeout;
      if (!too_large && !too_slow) continue;
      ++(too_large ? stats_.cut_too_large : stats_.cut_timeout);
      to_cut.push_back(&s);
      // Forget it: the aborted socket is never listed again (it has no peer
      // now), and a new connection from the same address and port, which a
      // reset allows at once, must start with a fresh entry, not inherit
      // this one.
      connections_.erase(s.key);
    }
    // Connections not seen in this sweep (nor registered since) are closed.
    std::erase_if(connections_,
                  [sweep](const auto& entry) { return entry.second.seen_in_sweep + 1 < sweep; });
  }
  for (const Seen* s : to_cut) {
    // A duplicate pins the socket: httplib may close `fd` meanwhile and the
    // number be reused, but the check and the abort act on one socket.
    const int pinned = fcntl(s->fd, F_DUPFD_CLOEXEC, 0);
    if (pinned < 0) continue;
    const auto local = local_endpoint(pinned);
    const auto peer = peer_endpoint(pinned);
    if (local && local->port == listen_port_ && peer && key_of(peer->host, peer->port) == s->key) {
      abort_connection(pinned);
    }
    close(pinned);
  }
}

}  // namespace pixpool
