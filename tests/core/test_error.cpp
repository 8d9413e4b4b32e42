// The error table: every code once, with a unique name that reads back, and
// only codes about the server's state marked retryable.
#include <doctest/doctest.h>

#include <set>
#include <string>

#include "core/error.hpp"

using namespace pixpool;

TEST_CASE("every error code has a unique name that maps back to it") {
  std::set<std::string_view> names;
  for (std::size_t i = 0; i < kErrorCodeCount; ++i) {
    const ErrorCode code = kAllErrorCodes[i];
    CHECK(static_cast<std::size_t>(code) == i);  // the table's order is the enum's
    const std::string_view name = code_name(code);
    CHECK_FALSE(name.empty());
    CHECK(names.insert(name).second);
    CHECK(error_code_from_name(name) == code);
    CHECK(error_code_from_int(static_cast<std::int64_t>(i)) == code);
  }
  CHECK(code_name(ErrorCode::queue_full) == "queue_full");
  CHECK_FALSE(error_code_from_name("no_such_code").has_value());
}

TEST_CASE("numbers from another process are range-checked") {
  CHECK_FALSE(error_code_from_int(-1).has_value());
  CHECK_FALSE(error_code_from_int(static_cast<std::int64_t>(kErrorCodeCount)).has_value());
  CHECK_FALSE(error_code_from_int(1LL << 40).has_value());
}

TEST_CASE("retryable codes are the server's load or state, never the request's fault") {
  std::set<ErrorCode> retryable;
  for (ErrorCode code : kAllErrorCodes) {
    if (is_retryable(code)) retryable.insert(code);
  }
  CHECK(retryable == std::set<ErrorCode>{ErrorCode::queue_full, ErrorCode::shutting_down,
                                         ErrorCode::unavailable, ErrorCode::download_queue_full,
                                         ErrorCode::store_unavailable});
}
