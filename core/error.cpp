#include "core/error.hpp"

#include <array>

namespace pixpool {
namespace {

struct ErrorInfo {
  std::string_view name;
  bool retryable;
};

constexpr std::array<ErrorInfo, kErrorCodeCount> kErrors = {{
#define PIXPOOL_ERROR_INFO(name, retryable) {#name, retryable},
    PIXPOOL_ERROR_CODES(PIXPOOL_ERROR_INFO)
#undef PIXPOOL_ERROR_INFO
}};

const ErrorInfo& info(ErrorCode code) {
  const auto index = static_cast<std::size_t>(code);
  return index < kErrors.size() ? kErrors[index]
                                : kErrors[static_cast<std::size_t>(ErrorCode::internal)];
}

}  // namespace

std::string_view code_name(ErrorCode code) {
  return info(code).name;
}

bool is_retryable(ErrorCode code) {
  return info(code).retryable;
}

std::optional<ErrorCode> error_code_from_int(std::int64_t number) {
  if (number < 0 || number >= static_cast<std::int64_t>(kErrorCodeCount)) return std::nullopt;
  return static_cast<ErrorCode>(number);
}

std::optional<ErrorCode> error_code_from_name(std::string_view name) {
  for (std::size_t i = 0; i < kErrors.size(); ++i) {
    if (kErrors[i].name == name) return static_cast<ErrorCode>(i);
  }
  return std::nullopt;
}

}  // namespace pixpool
