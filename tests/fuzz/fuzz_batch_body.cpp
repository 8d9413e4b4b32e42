// Fuzz target: POST /v1/batch bodies, down the same path as the route
// (service/routes/jobs.cpp start_batch): cpp-httplib reads the request and
// hands its ContentReader to the handler, UploadBody::read collects the
// multipart parts or the raw bytes under --max-body-bytes, and
// parse_batch_request turns them into items (nlohmann::json for a JSON
// body). Built twice: PIXPOOL_FUZZ_MULTIPART=1 sends the body as
// multipart/form-data (boundary "XyZ"), 0 as application/json.
//
// Input: the query string (without '?'), a newline, then the body. A query
// line starting with '!' sends the body chunked (7-byte chunks), which
// reaches UploadBody's own byte count instead of httplib's Content-Length
// check. cpp-httplib itself is Debian's uninstrumented shared library: its
// multipart parser runs for real but steers the fuzzer only through what it
// hands our code.
#include <httplib.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "service/batch_api.hpp"
#include "service/body_reader.hpp"
#include "service/request_params.hpp"

#ifndef PIXPOOL_FUZZ_MULTIPART
#error "define PIXPOOL_FUZZ_MULTIPART to 1 (multipart/form-data) or 0 (JSON)"
#endif

namespace {

constexpr std::size_t kMaxBodyBytes = std::size_t{16}
                                      << 10;  // small, so the fuzzer reaches the limit

// The request bytes as a connection, the answer thrown away.
class BufferStream final : public httplib::Stream {
 public:
  explicit BufferStream(std::string_view in) : in_(in) {}
  bool is_readable() const override { return true; }
  bool is_writable() const override { return true; }
  ssize_t read(char* ptr, std::size_t size) override {
    const std::size_t n = std::min(size, in_.size() - at_);
    std::memcpy(ptr, in_.data() + at_, n);
    at_ += n;
    return static_cast<ssize_t>(n);
  }
  ssize_t write(const char* /*ptr*/, std::size_t size) override {
    return static_cast<ssize_t>(size);
  }
  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    ip = "127.0.0.1";
    port = 40000;
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    ip = "127.0.0.1";
    port = 8080;
  }
  socket_t socket() const override { return INVALID_SOCKET; }

 private:
  std::string_view in_;
  std::size_t at_ = 0;
};

class FuzzServer final : public httplib::Server {
 public:
  FuzzServer() {
    config_.http.max_body_bytes = kMaxBodyBytes;
    set_payload_max_length(kMaxBodyBytes);  // as service/server.cpp does
    Post("/v1/batch", [this](const httplib::Request& req, httplib::Response& res,
                             const httplib::ContentReader& reader) { handle(req, res, reader); });
  }

  // PIXPOOL_FUZZ_VERBOSE=1 prints each answer: which seeds reach which branch.
  void run(BufferStream& stream) {
    bool closed = false;
    (void)process_request(stream, true, closed, nullptr);
    if (verbose_) std::fprintf(stderr, "answer %d %s\n", status_, answer_.c_str());
  }

 private:
  void handle(const httplib::Request& req, httplib::Response& res,
              const httplib::ContentReader& reader) {
    handle_batch(req, res, reader);
    status_ = res.status;
    answer_ = res.body;
  }

  void handle_batch(const httplib::Request& req, httplib::Response& res,
                    const httplib::ContentReader& reader) const {
    pixpool::UploadBody upload(req, res, &reader, config_.http.max_body_bytes);
    auto query = pixpool::parse_query(req.target);
    if (!query) return upload.refuse(query.error());
    auto body = upload.read();
    if (!body) return upload.refuse(body.error());
    std::size_t received = body->raw.size();
    for (const auto& part : body->parts) received += part.content.size();
    if (received > kMaxBodyBytes) std::abort();  // the limit held
    auto request = pixpool::parse_batch_request(req, std::move(query.value()),
                                                std::move(body.value()), config_);
    if (!request) return upload.refuse(request.error());
    if (request->inputs.empty() || request->inputs.size() > config_.batches.max_items) std::abort();
    for (const auto& input : request->inputs) {
      // An item is an upload or a URL, never both.
      if (!input.url.empty() && (!input.bytes.empty() || !input.name.empty())) std::abort();
    }
    res.status = 200;
    res.body = std::to_string(request->inputs.size()) + " item(s)";
  }

  pixpool::Config config_;
  bool verbose_ = std::getenv("PIXPOOL_FUZZ_VERBOSE") != nullptr;
  int status_ = 0;
  std::string answer_;
};

std::string chunked(std::string_view body) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (std::size_t at = 0; at < body.size(); at += 7) {
    const std::size_t n = std::min<std::size_t>(7, body.size() - at);
    out += kHex[n];
    out += "\r\n";
    out.append(body.substr(at, n));
    out += "\r\n";
  }
  return out + "0\r\n\r\n";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static FuzzServer server;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::size_t newline = input.find('\n');
  std::string_view query = input.substr(0, newline);
  const std::string_view body =
      newline == std::string_view::npos ? std::string_view() : input.substr(newline + 1);
  const bool chunk = !query.empty() && query.front() == '!';
  if (chunk) query.remove_prefix(1);
  // The request line and headers are the client's too, but their bytes only
  // reach httplib: keep them well-formed so every input reaches our code.
  if (query.find_first_of(" \r\n") != std::string_view::npos) return -1;

  std::string request = "POST /v1/batch";
  if (!query.empty()) request.append("?").append(query);
  request += " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
#if PIXPOOL_FUZZ_MULTIPART
  request += "Content-Type: multipart/form-data; boundary=XyZ\r\n";
#else
  request += "Content-Type: application/json\r\n";
#endif
  if (chunk) {
    request += "Transfer-Encoding: chunked\r\n\r\n" + chunked(body);
  } else {
    request += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n";
    request.append(body);
  }
  BufferStream stream(request);
  server.run(stream);
  return 0;
}
