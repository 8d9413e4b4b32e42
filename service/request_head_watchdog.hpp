#pragma once
// A deadline and a size limit for each request's head (request line and
// headers), which cpp-httplib 0.11.4 has neither of. Without them a client
// that trickles its headers (slowloris) holds a connection thread as long as
// it likes, and one that streams header lines without end grows the server's
// memory without bound (httplib keeps every line in a map: about 20 times its
// bytes on the wire).
//
// A thread wakes every `interval` and lists this process's accepted
// connections (sockets on the listening port, from /proc/self/fd). A
// connection is "in its head" from accept, or on a kept-alive connection from
// its previous response (response_done), until pre-routing has its headers
// (head_done). One that has spent more than `timeout` in its head, or whose
// server has read more than `max_bytes` of it there (TCP_INFO's bytes
// received minus the bytes still queued unread, so an upload's body waiting
// in the kernel does not count), is aborted (a reset; see abort_connection in
// the .cpp): httplib's read fails, it frees what it gathered and closes the
// descriptor. Memory per
// connection is thus bounded by the limit plus what one client can send in
// one interval.
//
// The socket is pinned (dup) and its endpoints checked again right before the
// abort, so a descriptor number reused by a new connection in between is not
// cut. A connection waiting for a thread beyond --http-threads, or idle
// between kept-alive requests, counts as in its head: keep
// --keep-alive-timeout below --header-timeout. Linux only.

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <thread>

namespace pixpool {

struct RequestHeadLimits {
  std::chrono::milliseconds timeout = std::chrono::seconds{10};  // --header-timeout
  std::size_t max_bytes = std::size_t{64} << 10;                 // --max-header-bytes
  std::chrono::milliseconds interval{100};  // how often connections are checked
};

class RequestHeadWatchdog {
 public:
  // Watches connections accepted on `listen_fd` (a listening TCP socket) and
  // starts its thread.
  RequestHeadWatchdog(int listen_fd, RequestHeadLimits limits);
  ~RequestHeadWatchdog();  // stops and joins the thread
  RequestHeadWatchdog(const RequestHeadWatchdog&) = delete;
  RequestHeadWatchdog& operator=(const RequestHeadWatchdog&) = delete;

  // The connection from remote_addr:remote_port (as httplib spells them) has
  // sent its whole head: its body and response take as long as they take.
  void head_done(const std::string& remote_addr, int remote_port);
  // Its response is written: a kept-alive connection starts its next head.
  void response_done(const std::string& remote_addr, int remote_port);

  struct Stats {
    std::uint64_t cut_timeout = 0;    // head not complete within the timeout
    std::uint64_t cut_too_large = 0;  // more than max_bytes read without a complete head
  };
  Stats stats() const;

 private:
  struct Connection {
    bool in_head = true;
    std::chrono::steady_clock::time_point head_since;
    std::int64_t read_at_head_start = -1;  // -1: take it at the next check
    std::uint64_t seen_in_sweep = 0;
  };

  void run();
  void sweep();
  Connection& connection(const std::string& key);  // mutex_ held

  const int listen_fd_;
  const RequestHeadLimits limits_;
  int listen_port_ = -1;

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;                          // guarded by mutex_
  std::map<std::string, Connection> connections_;  // by "addr port"; guarded by mutex_
  std::uint64_t sweeps_ = 0;                       // guarded by mutex_
  Stats stats_;                                    // guarded by mutex_
  std::thread thread_;
};

}  // namespace pixpool
