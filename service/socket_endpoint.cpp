#include "service/socket_endpoint.hpp"

#include <dirent.h>
#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstdlib>

namespace pixpool {
namespace {

std::optional<SocketEndpoint> numeric(const sockaddr_storage& address, socklen_t length) {
  char host[NI_MAXHOST];
  char port[NI_MAXSERV];
  if (getnameinfo(reinterpret_cast<const sockaddr*>(&address), length, host, sizeof host, port,
                  sizeof port, NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
    return std::nullopt;
  }
  return SocketEndpoint{host, std::atoi(port)};
}

// `get` is getsockname or getpeername; IPv4 and IPv6 only.
std::optional<SocketEndpoint> endpoint(int fd, int (*get)(int, sockaddr*, socklen_t*)) {
  sockaddr_storage address{};
  socklen_t length = sizeof address;
  if (get(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) return std::nullopt;
  if (address.ss_family != AF_INET && address.ss_family != AF_INET6) return std::nullopt;
  return numeric(address, length);
}

}  // namespace

std::optional<SocketEndpoint> local_endpoint(int fd) {
  return endpoint(fd, getsockname);
}

std::optional<SocketEndpoint> peer_endpoint(int fd) {
  return endpoint(fd, getpeername);
}

std::vector<int> open_descriptors() {
  std::vector<int> fds;
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return fds;
  const int own = dirfd(dir);
  while (const dirent* entry = readdir(dir)) {
    char* end = nullptr;
    const long number = std::strtol(entry->d_name, &end, 10);
    if (end == entry->d_name || *end != '\0') continue;  // "." and ".."
    if (number != own) fds.push_back(static_cast<int>(number));
  }
  closedir(dir);
  std::sort(fds.begin(), fds.end());
  return fds;
}

}  // namespace pixpool
