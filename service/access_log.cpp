#include "service/access_log.hpp"

#include <algorithm>

namespace pixpool {

std::string escape_for_log(std::string_view text, std::size_t max_bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(std::min(text.size(), max_bytes) + 8);
  for (std::size_t i = 0; i < text.size() && i < max_bytes; ++i) {
    const auto byte = static_cast<unsigned char>(text[i]);
    if (byte > 0x20 && byte < 0x7f && byte != '\\') {
      out += static_cast<char>(byte);
    } else {
      out += "\\x";
      out += kHex[byte >> 4];
      out += kHex[byte & 0xf];
    }
  }
  if (text.size() > max_bytes) out += "...";
  return out;
}

std::string access_log_line(const AccessLogEntry& e) {
  std::string line(e.timestamp);
  line += ' ';
  line += escape_for_log(e.method, 32);
  line += ' ';
  line += escape_for_log(e.path);
  line += ' ';
  line += std::to_string(e.status);
  line += " in=";
  line += e.bytes_in.empty() ? std::string("0") : escape_for_log(e.bytes_in, 32);
  line += " out=";
  line += std::to_string(e.bytes_out);
  line += " backend=";
  line += e.backend.empty() ? std::string("-") : escape_for_log(e.backend, 32);
  line += " ms=";
  line += e.duration.empty() ? std::string("-") : std::string(e.duration);
  line += '\n';
  return line;
}

}  // namespace pixpool
