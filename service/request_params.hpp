#pragma once
// Query parameters of the processing routes, parsed from the raw request
// target (never from a form-encoded body, which for curl --data-binary is
// really the image).

#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"
#include "filters/image_format.hpp"
#include "filters/op_chain.hpp"

namespace pixpool {

using QueryParams = std::multimap<std::string, std::string, std::less<>>;

// Splits "path?a=1&b=x%20y" into decoded key/value pairs ('+' is a space).
// Errors: invalid_parameter for a bad %-escape.
Result<QueryParams> parse_query(std::string_view target);

struct ProcessParams {
  OpChain ops;
  std::optional<ImageFormat> format;  // nullopt: the input's format (or png)
  int quality = 90;
  std::string backend;  // validated later against the BackendSet
  std::optional<bool> exact;  // nullopt: the server's --exact
};

// ops (default blur:5,contour; parsed against default_registry(), which
// holds the test-only ops only under --enable-test-ops), format, quality
// (1..100), backend, exact (true/false/1/0).
// Errors: invalid_ops naming the op and argument; invalid_parameter for an
// unknown parameter, a repeated one, a bad format or quality.
// `extra_keys` are further parameters the route accepts (e.g. "url").
Result<ProcessParams> parse_process_params(const QueryParams& query,
                                           std::string_view default_backend,
                                           std::initializer_list<std::string_view> extra_keys = {});

}  // namespace pixpool
