#include "service/connection_probe.hpp"

#include <arpa/inet.h>
#include <dirent.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

namespace pixpool {

namespace {

// The numeric host and port of `address`, as httplib prints them
// (getnameinfo with NI_NUMERICHOST), so the strings compare equal.
bool numeric_endpoint(const sockaddr_storage& address, socklen_t length, std::string& host,
                      int& port) {
  char host_buf[NI_MAXHOST];
  char port_buf[NI_MAXSERV];
  if (getnameinfo(reinterpret_cast<const sockaddr*>(&address), length, host_buf, sizeof host_buf,
                  port_buf, sizeof port_buf, NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
    return false;
  }
  host = host_buf;
  port = std::atoi(port_buf);
  return true;
}

int port_of(const sockaddr_storage& address) {
  if (address.ss_family == AF_INET) {
    return ntohs(reinterpret_cast<const sockaddr_in&>(address).sin_port);
  }
  if (address.ss_family == AF_INET6) {
    return ntohs(reinterpret_cast<const sockaddr_in6&>(address).sin6_port);
  }
  return -1;
}

}  // namespace

struct ConnectionWatch::State {
  std::string remote_addr;
  int remote_port = 0;
  std::string local_addr;
  int local_port = 0;

  std::mutex mutex;
  bool searched = false;  // guarded by mutex
  int fd = -1;            // guarded by mutex; -1: not found
  bool ended = false;     // guarded by mutex: the handler returned, fd is no longer ours

  // True when `fd` is a socket with our local and remote endpoints.
  bool matches(int candidate) const {
    sockaddr_storage address{};
    socklen_t length = sizeof address;
    if (getsockname(candidate, reinterpret_cast<sockaddr*>(&address), &length) != 0) return false;
    if (port_of(address) != local_port) return false;  // cheap filter first
    std::string host;
    int port = 0;
    if (!numeric_endpoint(address, length, host, port) || host != local_addr) return false;
    length = sizeof address;
    if (getpeername(candidate, reinterpret_cast<sockaddr*>(&address), &length) != 0) return false;
    if (port_of(address) != remote_port) return false;
    return numeric_endpoint(address, length, host, port) && host == remote_addr &&
           port == remote_port;
  }

  // Scans this process's descriptors for the connection. -1 when not found.
  int find() const {
    DIR* dir = opendir("/proc/self/fd");
    if (dir == nullptr) return -1;
    int found = -1;
    const int own = dirfd(dir);
    while (const dirent* entry = readdir(dir)) {
      char* end = nullptr;
      const long number = std::strtol(entry->d_name, &end, 10);
      if (end == entry->d_name || *end != '\0') continue;  // "." and ".."
      const int candidate = static_cast<int>(number);
      if (candidate == own) continue;
      if (matches(candidate)) {
        found = candidate;
        break;
      }
    }
    closedir(dir);
    return found;
  }

  bool closed() {
    std::lock_guard lock(mutex);
    if (ended) return false;
    if (!searched) {
      searched = true;
      fd = find();
    }
    if (fd < 0) return false;
    pollfd p{fd, POLLRDHUP, 0};
    if (poll(&p, 1, 0) <= 0) return false;
    return (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
  }
};

ConnectionWatch::ConnectionWatch(const httplib::Request& req) : state_(std::make_shared<State>()) {
  state_->remote_addr = req.remote_addr;
  state_->remote_port = req.remote_port;
  state_->local_addr = req.local_addr;
  state_->local_port = req.local_port;
  token_ = std::make_shared<CancelToken>([state = state_] { return state->closed(); });
}

ConnectionWatch::~ConnectionWatch() {
  std::lock_guard lock(state_->mutex);
  state_->ended = true;
}

bool ConnectionWatch::closed() const {
  return state_->closed();
}

}  // namespace pixpool
