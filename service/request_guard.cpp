#include "service/request_guard.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdint>
#include <string>

namespace pixpool {
namespace {

// Methods whose requests carry a body pixpool reads.
bool takes_body(std::string_view method) {
  return method == "POST" || method == "PUT" || method == "PATCH";
}

bool all_digits(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
    return std::isdigit(static_cast<unsigned char>(c)) != 0;
  });
}

bool equals_ignoring_case(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::optional<std::uint64_t> parse_digits(std::string_view text) {
  std::uint64_t value = 0;
  if (!all_digits(text)) return std::nullopt;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
  return value;
}

Error refuse(std::string message) {
  return Error{ErrorCode::invalid_parameter, std::move(message)};
}

}  // namespace

std::optional<Error> check_framing(const httplib::Request& req) {
  const std::size_t lengths = req.get_header_value_count("Content-Length");
  const std::size_t codings = req.get_header_value_count("Transfer-Encoding");
  if (lengths > 1) return refuse("more than one Content-Length header");
  std::uint64_t length = 0;
  if (lengths == 1) {
    const auto value = parse_digits(req.get_header_value("Content-Length"));
    if (!value) return refuse("Content-Length must be a decimal number of bytes");
    length = *value;
  }
  if (codings > 1) return refuse("more than one Transfer-Encoding header");
  if (codings == 1) {
    if (req.version != "HTTP/1.1") return refuse("Transfer-Encoding needs HTTP/1.1");
    if (lengths == 1) return refuse("Transfer-Encoding and Content-Length together");
    if (!equals_ignoring_case(req.get_header_value("Transfer-Encoding"), "chunked")) {
      return refuse("the only Transfer-Encoding accepted is chunked");
    }
  }
  if (!takes_body(req.method) && (length > 0 || codings > 0)) {
    return refuse(req.method + " requests take no body");
  }
  return std::nullopt;
}

ByteRange range_for(std::string_view header, std::size_t size) {
  constexpr std::string_view kUnit = "bytes=";
  if (header.size() <= kUnit.size() ||
      !equals_ignoring_case(header.substr(0, kUnit.size()), kUnit)) {
    return {};
  }
  std::string_view spec = header.substr(kUnit.size());
  if (spec.find(',') != std::string_view::npos) return {};  // several ranges: whole object
  const auto dash = spec.find('-');
  if (dash == std::string_view::npos) return {};
  const std::string_view first_text = spec.substr(0, dash);
  const std::string_view last_text = spec.substr(dash + 1);
  const ByteRange unsatisfiable{.kind = ByteRange::Kind::unsatisfiable, .offset = 0, .length = 0};
  if (first_text.empty()) {  // bytes=-N: the last N bytes
    const auto suffix = parse_digits(last_text);
    if (!suffix) return {};
    if (*suffix == 0 || size == 0) return unsatisfiable;
    const auto length = static_cast<std::size_t>(std::min<std::uint64_t>(*suffix, size));
    return {.kind = ByteRange::Kind::part, .offset = size - length, .length = length};
  }
  const auto first = parse_digits(first_text);
  if (!first) return {};
  std::uint64_t last = size == 0 ? 0 : size - 1;
  if (!last_text.empty()) {
    const auto parsed = parse_digits(last_text);
    if (!parsed || *parsed < *first) return {};  // invalid: ignored (RFC 9110 14.2)
    last = std::min<std::uint64_t>(*parsed, last);
  }
  if (*first >= size) return unsatisfiable;
  return {.kind = ByteRange::Kind::part,
          .offset = static_cast<std::size_t>(*first),
          .length = static_cast<std::size_t>(last - *first + 1)};
}

}  // namespace pixpool
