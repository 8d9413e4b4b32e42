#pragma once
// Tells whether the client of the request a handler is serving has closed its
// connection, so work it no longer waits for can be dropped (CancelToken).
//
// cpp-httplib 0.11.4 gives handlers no socket and no "closed?" API, only the
// connection's addresses (remote_addr/port, local_addr/port). The socket is
// found from those, once and only when asked (a scan of /proc/self/fd for the
// socket whose getsockname/getpeername match; a TCP 4-tuple names one
// connection), then probed with poll(POLLRDHUP): the peer's FIN or a reset.
// The descriptor stays this connection's while the handler runs, because
// httplib closes it only after the handler returns; a ConnectionWatch is
// therefore scoped to the handler, and its token's probe answers "not gone"
// once the watch is destroyed.
//
// A client that half-closes (shutdown(SHUT_WR)) after sending its request and
// still reads the answer counts as gone; HTTP clients and proxies do not do
// that.

#include <httplib.h>

#include <memory>

#include "pipeline/cancellation.hpp"

namespace pixpool {

class ConnectionWatch {
 public:
  // Copies the request's addresses; no system call yet.
  explicit ConnectionWatch(const httplib::Request& req);
  ~ConnectionWatch();  // the token's probe answers false from now on
  ConnectionWatch(const ConnectionWatch&) = delete;
  ConnectionWatch& operator=(const ConnectionWatch&) = delete;

  // A token whose probe is this connection: hand it to the work the handler
  // waits for (ImageRunOptions::cancel).
  const std::shared_ptr<CancelToken>& token() const { return token_; }

  // True when the client has closed or reset the connection. The first call
  // looks the socket up; if it cannot be found (not a TCP connection, or
  // addresses that do not match), it answers false, and never looks again.
  bool closed() const;

  struct State;

 private:
  std::shared_ptr<State> state_;
  std::shared_ptr<CancelToken> token_;
};

}  // namespace pixpool
