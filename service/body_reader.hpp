#pragma once
// One way to read an upload's body and one way to refuse an upload, for
// every route that takes one (POST /v1/process, /v1/batch, /v1/jobs).
//
// Refusing: every answer with status >= 400 closes its connection (the
// server's error handler, service/server.cpp), so a body left unread is
// never parsed as further requests. A refusal still reads and drops the
// body first, up to --max-body-bytes: closing a socket with unread bytes
// makes the kernel send a reset, which can cost a client the answer while
// it is still uploading.

#include <httplib.h>

#include <cstddef>
#include <string>
#include <vector>

#include "core/result.hpp"

namespace pixpool {

// Most multipart parts one body may hold: above --max-batch-items' ceiling
// (100'000), so every batch that can be accepted fits. Each part costs at
// least a BodyPart (96 bytes) however small it is: unbounded, a 64 MiB body
// of ~50-byte empty parts held some 1.3 million of them (an estimated
// 120-380 MB) before its batch was refused (seen fuzzing batch_multipart).
inline constexpr std::size_t kMaxBodyParts = 100'001;

struct BodyPart {
  std::string name;      // the multipart field name
  std::string filename;  // "" unless the part is a file
  std::string content;
};

struct RequestBody {
  bool multipart = false;
  std::vector<BodyPart> parts;  // multipart/form-data: every part, in order
  std::string raw;              // any other content type: the bytes
};

// The body of one request, read at most once, through httplib's content
// reader (which also skips httplib's form-urlencoded parsing and its 8 KiB
// cap). Not thread-safe; lives on the handler's stack.
class UploadBody {
 public:
  // `reader` is null for requests without a body (GET); `max_bytes` is
  // --max-body-bytes. All references must outlive this object.
  UploadBody(const httplib::Request& req, httplib::Response& res,
             const httplib::ContentReader* reader, std::size_t max_bytes);

  // Reads the whole body (multipart parts or raw bytes), counting content
  // bytes against max_bytes, chunked uploads included (httplib enforces its
  // limit only when Content-Length is given). Call once. Errors:
  // body_too_large over max_bytes; invalid_parameter for more than
  // kMaxBodyParts parts ("too many items") or when the body cannot be read
  // (malformed multipart, connection lost); an empty body is not an error
  // here.
  Result<RequestBody> read();

  // Refuses the request with `error` (JSON body, status and Retry-After via
  // send_error); the server closes the connection after the answer. A body
  // not read yet is read and dropped first, up to max_bytes, so the client
  // gets the answer rather than a reset; beyond that the read is abandoned.
  void refuse(const Error& error);

 private:
  const httplib::Request& req_;
  httplib::Response& res_;
  const httplib::ContentReader* reader_;
  const std::size_t max_bytes_;
  bool consumed_ = false;  // read() or a drain has run: the reader is spent
};

}  // namespace pixpool
