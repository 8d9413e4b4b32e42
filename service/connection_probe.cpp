#include "service/connection_probe.hpp"

#include <poll.h>

#include <mutex>
#include <string>

#include "service/socket_endpoint.hpp"

namespace pixpool {

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
    const auto local = local_endpoint(candidate);
    if (!local || local->port != local_port || local->host != local_addr) return false;
    const auto peer = peer_endpoint(candidate);
    return peer && peer->port == remote_port && peer->host == remote_addr;
  }

  // Scans this process's descriptors for the connection. -1 when not found.
  int find() const {
    for (const int candidate : open_descriptors()) {
      if (matches(candidate)) return candidate;
    }
    return -1;
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
  // The probe runs inside waits that must not throw (memory budget,
  // queues): any failure (bad_alloc while short of memory) is "not gone".
  token_ = std::make_shared<CancelToken>([state = state_]() noexcept {
    try {
      return state->closed();
    } catch (...) {
      return false;
    }
  });
}

ConnectionWatch::~ConnectionWatch() {
  std::lock_guard lock(state_->mutex);
  state_->ended = true;
}

bool ConnectionWatch::closed() const {
  return state_->closed();
}

}  // namespace pixpool
