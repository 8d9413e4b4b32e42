#pragma once
// A raw loopback TCP connection for tests that need what an HTTP client
// library will not send: pipelined requests, bodies on GET, malformed
// framing, slow or idle connections.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>

namespace pixpool::test {

class RawConnection {
 public:
  // Connects to 127.0.0.1:`port`; throws std::runtime_error when it cannot.
  explicit RawConnection(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) throw std::runtime_error("socket() failed");
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
      ::close(fd_);
      throw std::runtime_error("connect() to loopback failed");
    }
    const int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  ~RawConnection() {
    if (fd_ >= 0) ::close(fd_);
  }
  RawConnection(RawConnection&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  RawConnection& operator=(RawConnection&&) = delete;
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  // Writes all of `bytes`; false when the peer has gone (reset or closed).
  bool send(std::string_view bytes) const {
    while (!bytes.empty()) {
      const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  struct Received {
    std::string bytes;
    bool closed = false;  // the server closed (or reset) the connection
    std::chrono::milliseconds elapsed{0};
  };

  // Reads until the server closes the connection or `timeout` passes.
  Received read_until_close(std::chrono::milliseconds timeout) {
    return read_until([](const std::string&) { return false; }, timeout);
  }

  // Reads until `done(bytes so far)`, the server closes, or `timeout` passes.
  template <class Done>
  Received read_until(Done&& done, std::chrono::milliseconds timeout) {
    using Clock = std::chrono::steady_clock;
    const auto start = Clock::now();
    const auto deadline = start + timeout;
    Received out;
    char buf[65536];
    while (!done(out.bytes)) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) break;
      pollfd p{fd_, POLLIN, 0};
      const int ready = ::poll(&p, 1, static_cast<int>(left));
      if (ready < 0 && errno == EINTR) continue;
      if (ready <= 0) break;
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        out.closed = true;
        break;
      }
      out.bytes.append(buf, static_cast<std::size_t>(n));
    }
    out.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
    return out;
  }

 private:
  int fd_ = -1;
};

// How many HTTP responses `bytes` holds (status lines at the start of a line).
inline int count_responses(const std::string& bytes) {
  int n = 0;
  for (std::size_t at = bytes.find("HTTP/1.1 "); at != std::string::npos;
       at = bytes.find("HTTP/1.1 ", at + 1)) {
    if (at == 0 || bytes[at - 1] == '\n') ++n;
  }
  return n;
}

// The status of the first response in `bytes`, or -1.
inline int first_status(const std::string& bytes) {
  if (bytes.size() < 12 || bytes.compare(0, 9, "HTTP/1.1 ") != 0) return -1;
  return std::stoi(bytes.substr(9, 3));
}

// The value of response header `name` (exact case as sent) in the first
// response of `bytes`, or "".
inline std::string header_of(const std::string& bytes, const std::string& name) {
  const std::size_t end = bytes.find("\r\n\r\n");
  const std::string head = bytes.substr(0, end);
  const std::string key = "\r\n" + name + ": ";
  const std::size_t at = head.find(key);
  if (at == std::string::npos) return "";
  const std::size_t from = at + key.size();
  return head.substr(from, head.find("\r\n", from) - from);
}

// The body of the first response in `bytes` (everything after its headers).
inline std::string body_of(const std::string& bytes) {
  const std::size_t end = bytes.find("\r\n\r\n");
  return end == std::string::npos ? "" : bytes.substr(end + 4);
}

}  // namespace pixpool::test
