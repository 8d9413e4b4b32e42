#pragma once
// Network failures in words: "connection refused (is pixpool running?)"
// rather than httplib's "Connection".

#include <string>

namespace httplib {
enum class Error;
}

namespace pixpool::bench {

// What a raw connection attempt to a server found.
struct ConnectionDiagnosis {
  bool connected = false;  // the TCP connection opened; `problem` is about the answer
  std::string problem;     // in words; empty when an HTTP answer started to arrive
};

// Opens a TCP connection to `base_url` (scheme://host[:port]) and, for http,
// sends GET /healthz and waits for the first byte of an answer, each within
// `timeout_s`, to say why a request failed: "connection refused (is pixpool
// running?)", "timed out after 2 s", "the server reset the connection", ...
ConnectionDiagnosis diagnose_connection(const std::string& base_url, double timeout_s);

// "0.5 s", "10 s": a duration for messages.
std::string seconds_text(double seconds);

// The startup message for a failed GET /healthz: "cannot connect to URL:
// connection refused (is pixpool running?)" or "no answer from URL/healthz:
// ...". `fallback` describes the failure when the diagnosis found none.
std::string unreachable_message(const std::string& base_url, const ConnectionDiagnosis& diagnosis,
                                const std::string& fallback);

// A request that got no answer, in words, from httplib's error and how long
// the request took against its timeout (httplib 0.11 reports a read timeout
// and a reset alike as Error::Read).
struct TransportFailure {
  std::string kind;    // short and stable, e.g. "connection: timed out"
  std::string detail;  // e.g. "no answer within the 60 s timeout"
};
TransportFailure describe_transport_error(httplib::Error error, double elapsed_s, double timeout_s);

}  // namespace pixpool::bench
