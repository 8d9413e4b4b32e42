#include "filters/status.hpp"

namespace pixpool {

std::string_view code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::invalid_parameter:
      return "invalid_parameter";
    case ErrorCode::invalid_ops:
      return "invalid_ops";
    case ErrorCode::unknown_backend:
      return "unknown_backend";
    case ErrorCode::empty_body:
      return "empty_body";
    case ErrorCode::missing_image:
      return "missing_image";
    case ErrorCode::not_found:
      return "not_found";
    case ErrorCode::method_not_allowed:
      return "method_not_allowed";
    case ErrorCode::body_too_large:
      return "body_too_large";
    case ErrorCode::unsupported_image:
      return "unsupported_image";
    case ErrorCode::too_many_pixels:
      return "too_many_pixels";
    case ErrorCode::too_large_for_format:
      return "too_large_for_format";
    case ErrorCode::source_forbidden:
      return "source_forbidden";
    case ErrorCode::source_too_large:
      return "source_too_large";
    case ErrorCode::origin_failed:
      return "origin_failed";
    case ErrorCode::queue_full:
      return "queue_full";
    case ErrorCode::timeout:
      return "timeout";
    case ErrorCode::worker_crashed:
      return "worker_crashed";
    case ErrorCode::out_of_memory:
      return "out_of_memory";
    case ErrorCode::shutting_down:
      return "shutting_down";
    case ErrorCode::unavailable:
      return "unavailable";
    case ErrorCode::internal:
      return "internal";
  }
  return "internal";
}

}  // namespace pixpool
