#include "bench/connection.hpp"

#include <fcntl.h>
#include <httplib.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>

namespace pixpool::bench {
namespace {

using Clock = std::chrono::steady_clock;

// Closes a socket when it goes out of scope.
struct Socket {
  int fd = -1;
  ~Socket() {
    if (fd >= 0) ::close(fd);
  }
};

// Milliseconds left until `deadline` (0 when past), for poll().
int ms_left(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return static_cast<int>(std::max<long long>(0, left.count()));
}

// Waits for `events` on `fd` until `deadline`, retrying on EINTR; the poll() result.
int wait_for(int fd, short events, Clock::time_point deadline) {
  pollfd p{fd, events, 0};
  for (;;) {
    const int ready = ::poll(&p, 1, ms_left(deadline));
    if (ready >= 0 || errno != EINTR) return ready;
  }
}

std::string connect_problem(int error) {
  switch (error) {
    case ECONNREFUSED:
      return "connection refused (is pixpool running?)";
    case ETIMEDOUT:
      return "the connection attempt timed out";
    case EHOSTUNREACH:
      return "no route to the host";
    case ENETUNREACH:
      return "the network is unreachable";
    case ECONNRESET:
      return "the server reset the connection";
    default:
      return std::strerror(error);
  }
}

}  // namespace

std::string seconds_text(double seconds) {
  char buf[32];
  std::snprintf(buf, sizeof buf, seconds < 10 ? "%.1f s" : "%.0f s", seconds);
  return buf;
}

ConnectionDiagnosis diagnose_connection(const std::string& base_url, double timeout_s) {
  ConnectionDiagnosis out;
  const auto scheme_end = base_url.find("://");
  const bool https = base_url.starts_with("https://");
  std::string authority =
      scheme_end == std::string::npos ? base_url : base_url.substr(scheme_end + 3);
  if (const auto slash = authority.find('/'); slash != std::string::npos) authority.resize(slash);
  std::string host = authority;
  std::string port = https ? "443" : "80";
  if (authority.starts_with("[")) {  // [::1]:8080
    const auto close = authority.find(']');
    host = authority.substr(1, close == std::string::npos ? std::string::npos : close - 1);
    if (close != std::string::npos && close + 1 < authority.size() && authority[close + 1] == ':') {
      port = authority.substr(close + 2);
    }
  } else if (const auto colon = authority.rfind(':'); colon != std::string::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (const int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    out.problem = "cannot resolve the host '" + host + "': " + ::gai_strerror(rc);
    return out;
  }
  Socket sock;
  sock.fd = ::socket(found->ai_family, found->ai_socktype | SOCK_CLOEXEC, found->ai_protocol);
  if (sock.fd < 0) {
    out.problem = std::string("cannot create a socket: ") + std::strerror(errno);
    ::freeaddrinfo(found);
    return out;
  }
  const auto timeout = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(std::max(0.001, timeout_s)));
  ::fcntl(sock.fd, F_SETFL, ::fcntl(sock.fd, F_GETFL) | O_NONBLOCK);
  int error = 0;
  if (::connect(sock.fd, found->ai_addr, found->ai_addrlen) != 0) error = errno;
  ::freeaddrinfo(found);
  if (error == EINPROGRESS) {
    const int ready = wait_for(sock.fd, POLLOUT, Clock::now() + timeout);
    if (ready == 0) {
      out.problem = "the connection attempt timed out after " + seconds_text(timeout_s);
      return out;
    }
    socklen_t len = sizeof error;
    if (ready < 0 || ::getsockopt(sock.fd, SOL_SOCKET, SO_ERROR, &error, &len) != 0) error = errno;
  }
  if (error != 0) {
    out.problem = connect_problem(error);
    return out;
  }
  out.connected = true;
  if (https) return out;  // the answer would need TLS: nothing more to learn here

  const std::string request = "GET /healthz HTTP/1.1\r\nHost: " + authority +
                              "\r\nUser-Agent: pixpool-bench\r\nConnection: close\r\n\r\n";
  if (::send(sock.fd, request.data(), request.size(), MSG_NOSIGNAL) < 0 && errno != EAGAIN) {
    out.problem = connect_problem(errno == EPIPE ? ECONNRESET : errno);
    return out;
  }
  const auto deadline = Clock::now() + timeout;
  const int ready = wait_for(sock.fd, POLLIN, deadline);
  if (ready == 0) {
    out.problem = "no answer within " + seconds_text(timeout_s) + " (timed out)";
    return out;
  }
  char byte = 0;
  const ssize_t got = ::recv(sock.fd, &byte, 1, 0);
  if (got == 0) {
    out.problem = "the server closed the connection without answering";
  } else if (got < 0) {
    out.problem = connect_problem(errno);
  }
  return out;
}

std::string unreachable_message(const std::string& base_url, const ConnectionDiagnosis& diagnosis,
                                const std::string& fallback) {
  const std::string& problem = diagnosis.problem.empty() ? fallback : diagnosis.problem;
  if (!diagnosis.connected) return "cannot connect to " + base_url + ": " + problem;
  return "no answer from " + base_url + "/healthz: " + problem;
}

TransportFailure describe_transport_error(httplib::Error error, double elapsed_s,
                                          double timeout_s) {
  // httplib gives up on a silent socket at the timeout; a reset or a close
  // comes sooner. 90% leaves room for timer granularity.
  const bool timed_out = timeout_s > 0 && elapsed_s >= 0.9 * timeout_s;
  const std::string after = " (after " + seconds_text(elapsed_s) + ")";
  switch (error) {
    case httplib::Error::Connection:
      return {"connection: cannot connect",
              "cannot connect: refused or unreachable (is pixpool running?)" + after};
    case httplib::Error::ConnectionTimeout:
      return {"connection: connect timed out", "the connection attempt timed out" + after};
    case httplib::Error::Read:
      if (timed_out) {
        return {"connection: timed out",
                "no answer within the " + seconds_text(timeout_s) + " timeout (--timeout)"};
      }
      return {"connection: closed or reset",
              "the server closed or reset the connection before answering" + after};
    case httplib::Error::Write:
      if (timed_out) {
        return {"connection: timed out",
                "sending the request timed out after " + seconds_text(elapsed_s)};
      }
      return {"connection: closed or reset",
              "the server closed or reset the connection while the request was sent" + after};
    case httplib::Error::Canceled:
      return {"connection: canceled", "the request was canceled" + after};
    default:
      return {"connection: " + httplib::to_string(error),
              "the request failed: httplib error " + httplib::to_string(error) + after};
  }
}

}  // namespace pixpool::bench
