#pragma once
// The HTTP front end's wiring: httplib's hooks (pre-routing, error and
// exception handlers, access log and request metrics), bind/run/stop, and
// the routes of service/routes/routes.hpp installed from their one table.
// Handlers parse the request, submit a job to a backend and wait; they do no
// pixel work.

#include <memory>
#include <string>

#include "core/result.hpp"
#include "pipeline/backend.hpp"
#include "pipeline/downloader.hpp"
#include "pipeline/job_store.hpp"
#include "pipeline/metrics.hpp"
#include "service/config.hpp"

namespace pixpool {

// What the routes use; everything must outlive the server.
struct ServerParts {
  BackendSet& backends;
  Downloader& downloader;
  JobStore& store;
  Metrics& metrics;
  std::string replica;  // this replica's name: X-Pixpool-Replica on every response ("" = none)
};

class Server {
 public:
  Server(const Config& config, const ServerParts& parts);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds config.http.host:config.http.port (port 0 = any free port) and returns the
  // port. Errors: internal with the address that could not be bound.
  Result<int> bind();

  // Serves until stop(); returns false if the listener failed.
  bool run();

  // Stops accepting, lets in-flight requests finish, makes run() return.
  // Thread-safe and idempotent.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pixpool
