#pragma once
// A cpp-httplib client for a test server, with timeouts generous enough for
// a loaded 2-core machine.

#include <httplib.h>

#include "tests/support/server_process.hpp"

namespace pixpool::test {

inline httplib::Client client_for(const ServerProcess& server) {
  httplib::Client client("127.0.0.1", server.port());
  client.set_read_timeout(120, 0);
  client.set_write_timeout(60, 0);
  client.set_connection_timeout(5, 0);
  return client;
}

}  // namespace pixpool::test
