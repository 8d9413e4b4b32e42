#include "service/request_params.hpp"

#include <array>
#include <charconv>

namespace pixpool {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

Result<std::string> percent_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%') {
      const int hi = i + 2 < s.size() ? hex_value(s[i + 1]) : -1;
      const int lo = i + 2 < s.size() ? hex_value(s[i + 2]) : -1;
      if (hi < 0 || lo < 0) {
        return Error{ErrorCode::invalid_parameter, "bad %-escape in query string"};
      }
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

constexpr std::array<std::string_view, 5> kProcessParams = {"ops", "backend", "format", "quality",
                                                            "exact"};

}  // namespace

Result<QueryParams> parse_query(std::string_view target) {
  QueryParams params;
  const auto question = target.find('?');
  if (question == std::string_view::npos) return params;
  std::string_view query = target.substr(question + 1);
  if (auto hash = query.find('#'); hash != std::string_view::npos) query = query.substr(0, hash);
  while (!query.empty()) {
    const auto amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    if (!pair.empty()) {
      const auto eq = pair.find('=');
      auto key = percent_decode(pair.substr(0, eq));
      if (!key) return key.error();
      auto value = percent_decode(eq == std::string_view::npos ? "" : pair.substr(eq + 1));
      if (!value) return value.error();
      params.emplace(std::move(key.value()), std::move(value.value()));
    }
    if (amp == std::string_view::npos) break;
    query = query.substr(amp + 1);
  }
  return params;
}

Result<ProcessParams> parse_process_params(const QueryParams& query,
                                           std::string_view default_backend,
                                           std::initializer_list<std::string_view> extra_keys) {
  for (const auto& [key, value] : query) {
    bool known = false;
    for (auto name : kProcessParams) known = known || key == name;
    for (auto name : extra_keys) known = known || key == name;
    if (!known) {
      std::string valid = "ops, backend, format, quality, exact";
      for (auto name : extra_keys) valid += ", " + std::string(name);
      return Error{ErrorCode::invalid_parameter,
                   "unknown parameter '" + key + "' (valid: " + valid + ")"};
    }
    if (query.count(key) > 1) {
      return Error{ErrorCode::invalid_parameter, "parameter '" + key + "' given more than once"};
    }
  }
  auto get = [&](std::string_view key) -> std::optional<std::string> {
    auto it = query.find(key);
    if (it == query.end()) return std::nullopt;
    return it->second;
  };

  ProcessParams out;
  auto ops = parse_ops(get("ops").value_or(std::string(kDefaultOps)));
  if (!ops) return ops.error();
  out.ops = std::move(ops.value());

  if (auto format = get("format")) {
    out.format = parse_output_format(*format);
    if (!out.format) {
      return Error{ErrorCode::invalid_parameter,
                   "format must be jpeg, png or webp, got '" + *format + "'"};
    }
  }
  if (auto quality = get("quality")) {
    int q = 0;
    auto [ptr, ec] = std::from_chars(quality->data(), quality->data() + quality->size(), q);
    if (quality->empty() || ec != std::errc{} || ptr != quality->data() + quality->size() ||
        q < 1 || q > 100) {
      return Error{ErrorCode::invalid_parameter,
                   "quality must be an integer between 1 and 100, got '" + *quality + "'"};
    }
    out.quality = q;
  }
  if (auto exact = get("exact")) {
    if (*exact == "true" || *exact == "1") {
      out.exact = true;
    } else if (*exact == "false" || *exact == "0") {
      out.exact = false;
    } else {
      return Error{ErrorCode::invalid_parameter,
                   "exact must be true or false, got '" + *exact + "'"};
    }
  }
  out.backend = get("backend").value_or(std::string(default_backend));
  return out;
}

}  // namespace pixpool
