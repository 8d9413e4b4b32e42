#include "service/body_reader.hpp"

#include <algorithm>
#include <cstdint>

#include "service/http_errors.hpp"

namespace pixpool {

UploadBody::UploadBody(const httplib::Request& req, httplib::Response& res,
                       const httplib::ContentReader* reader, std::size_t max_bytes)
    : req_(req), res_(res), reader_(reader), max_bytes_(max_bytes) {}

Result<RequestBody> UploadBody::read() {
  RequestBody body;
  if (reader_ == nullptr || consumed_) return body;
  consumed_ = true;
  std::size_t received = 0;
  bool too_large = false;
  auto count = [&](std::size_t n) {
    received += n;
    too_large = too_large || received > max_bytes_;
    return !too_large;
  };
  bool ok = true;
  bool too_many_parts = false;
  if (req_.is_multipart_form_data()) {
    body.multipart = true;
    ok = (*reader_)(
        [&](const httplib::MultipartFormData& part) {
          if (body.parts.size() == kMaxBodyParts) {
            too_many_parts = true;
            return false;
          }
          body.parts.push_back(BodyPart{part.name, part.filename, {}});
          return true;
        },
        [&](const char* data, std::size_t n) {
          if (!count(n)) return false;
          body.parts.back().content.append(data, n);
          return true;
        });
  } else {
    const auto length = req_.get_header_value<std::uint64_t>("Content-Length");
    body.raw.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(length, max_bytes_)));
    ok = (*reader_)([&](const char* data, std::size_t n) {
      if (!count(n)) return false;
      body.raw.append(data, n);
      return true;
    });
  }
  // httplib answers a Content-Length over its limit with 413 itself.
  if (too_large || res_.status == 413) {
    return Error{ErrorCode::body_too_large, "request body is larger than the limit of " +
                                                std::to_string(max_bytes_) + " bytes"};
  }
  if (too_many_parts) {
    return Error{ErrorCode::invalid_parameter, "too many items: the multipart body has more than " +
                                                   std::to_string(kMaxBodyParts) + " parts"};
  }
  if (!ok) return Error{ErrorCode::invalid_parameter, "could not read the request body"};
  return body;
}

void UploadBody::refuse(const Error& error) {
  if (reader_ != nullptr && !consumed_) {
    consumed_ = true;
    std::size_t seen = 0;
    auto drop = [&](const char*, std::size_t n) {
      seen += n;
      return seen <= max_bytes_;
    };
    // A multipart body must be read as parts: httplib's plain reader calls
    // the (absent) part receiver for multipart requests.
    if (req_.is_multipart_form_data()) {
      (*reader_)([](const httplib::MultipartFormData&) { return true; }, drop);
    } else {
      (*reader_)(drop);
    }
  }
  send_error(res_, error);
}

}  // namespace pixpool
