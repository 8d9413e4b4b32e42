#pragma once
// The numeric address and port at either end of a socket, spelt as
// cpp-httplib spells Request::remote_addr / local_addr (getnameinfo with
// NI_NUMERICHOST), so the two compare equal. Used to find a connection's
// socket from a request's addresses (httplib 0.11.4 gives handlers no fd).

#include <optional>
#include <string>
#include <vector>

namespace pixpool {

struct SocketEndpoint {
  std::string host;  // "127.0.0.1", "::1"
  int port = 0;
  bool operator==(const SocketEndpoint&) const = default;
};

// nullopt when `fd` is not a bound (local) or connected (peer) socket.
std::optional<SocketEndpoint> local_endpoint(int fd);
std::optional<SocketEndpoint> peer_endpoint(int fd);

// This process's open descriptors (from /proc/self/fd), ascending; empty if
// /proc is not mounted. A snapshot: any of them may be closed by now.
std::vector<int> open_descriptors();

}  // namespace pixpool
