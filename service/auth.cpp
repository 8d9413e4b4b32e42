#include "service/auth.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>

namespace pixpool {
namespace {

constexpr std::size_t kMaxKeyFileBytes = std::size_t{1} << 20;

std::string_view trim(std::string_view text) {
  const auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\r'; };
  while (!text.empty() && blank(text.front())) text.remove_prefix(1);
  while (!text.empty() && blank(text.back())) text.remove_suffix(1);
  return text;
}

bool equal_ignoring_case(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c; };
           return lower(x) == lower(y);
         });
}

Error invalid(std::string message) {
  return Error{ErrorCode::invalid_parameter, std::move(message)};
}

}  // namespace

std::string api_key_problem(std::string_view key) {
  if (key.size() < kMinApiKeyLength) {
    return "is shorter than " + std::to_string(kMinApiKeyLength) + " characters";
  }
  if (key.size() > kMaxApiKeyLength) {
    return "is longer than " + std::to_string(kMaxApiKeyLength) + " characters";
  }
  for (const char c : key) {
    // Printable ASCII is 0x21..0x7e once the space is excluded.
    if (c < '!' || c > '~') return "holds a space, a control or a non-ASCII character";
    if (c == ',') return "holds a comma";
  }
  return "";
}

Result<std::vector<std::string>> parse_api_key_list(std::string_view text) {
  std::vector<std::string> keys;
  std::size_t position = 0;
  for (;;) {
    const auto comma = text.find(',');
    const std::string_view item = text.substr(0, comma);
    if (!item.empty()) {
      ++position;
      if (const std::string problem = api_key_problem(item); !problem.empty()) {
        return invalid("key " + std::to_string(position) + " " + problem +
                       " (keys: " + std::to_string(kMinApiKeyLength) + " to " +
                       std::to_string(kMaxApiKeyLength) +
                       " printable ASCII characters, no spaces or commas)");
      }
      keys.emplace_back(item);
    }
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  return keys;
}

Result<std::vector<std::string>> parse_api_key_file(std::string_view text) {
  std::vector<std::string> keys;
  std::size_t line_number = 0;
  while (!text.empty()) {
    ++line_number;
    const auto newline = text.find('\n');
    const std::string_view line = trim(text.substr(0, newline));
    text.remove_prefix(newline == std::string_view::npos ? text.size() : newline + 1);
    if (line.empty() || line.front() == '#') continue;
    if (const std::string problem = api_key_problem(line); !problem.empty()) {
      return invalid("the key on line " + std::to_string(line_number) + " " + problem +
                     " (one key per line: " + std::to_string(kMinApiKeyLength) + " to " +
                     std::to_string(kMaxApiKeyLength) +
                     " printable ASCII characters, no spaces or commas; # starts a comment)");
    }
    keys.emplace_back(line);
  }
  return keys;
}

Result<std::vector<std::string>> read_api_key_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return invalid("cannot open '" + path + "': " + std::strerror(errno));
  struct stat info {};
  std::string text;
  std::string err;
  if (::fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
    err = "'" + path + "' is not a regular file";
  } else if (static_cast<std::uint64_t>(info.st_size) > kMaxKeyFileBytes) {
    err = "'" + path + "' is larger than 1 MiB";
  } else {
    char buffer[1 << 14];
    for (;;) {
      const ssize_t n = ::read(fd, buffer, sizeof buffer);
      if (n > 0) {
        text.append(buffer, static_cast<std::size_t>(n));
        if (text.size() > kMaxKeyFileBytes) {
          err = "'" + path + "' is larger than 1 MiB";
          break;
        }
      } else if (n == 0 || errno != EINTR) {
        if (n < 0) err = "cannot read '" + path + "': " + std::strerror(errno);
        break;
      }
    }
  }
  ::close(fd);
  if (!err.empty()) return invalid(err);
  auto keys = parse_api_key_file(text);
  if (!keys) return invalid("'" + path + "': " + keys.error().message);
  if (keys->empty()) return invalid("'" + path + "' holds no key");
  return keys;
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    diff |= static_cast<unsigned char>(a[i]) ^ static_cast<unsigned char>(b[i]);
  }
  return diff == 0;
}

std::optional<std::string_view> bearer_token(std::string_view authorization) {
  constexpr std::string_view kScheme = "Bearer";
  if (authorization.size() <= kScheme.size() ||
      !equal_ignoring_case(authorization.substr(0, kScheme.size()), kScheme) ||
      authorization[kScheme.size()] != ' ') {
    return std::nullopt;
  }
  authorization.remove_prefix(kScheme.size());
  while (!authorization.empty() && authorization.front() == ' ') authorization.remove_prefix(1);
  while (!authorization.empty() && authorization.back() == ' ') authorization.remove_suffix(1);
  if (authorization.empty()) return std::nullopt;
  return authorization;
}

ApiKeySet::ApiKeySet(const std::vector<std::string>& keys) {
  for (const std::string& key : keys) {
    if (key.size() > kMaxApiKeyLength) continue;  // excluded by api_key_problem()
    Key k;
    std::copy(key.begin(), key.end(), k.bytes.begin());
    k.length = key.size();
    const bool seen = std::any_of(keys_.begin(), keys_.end(), [&k](const Key& other) {
      return other.length == k.length && other.bytes == k.bytes;
    });
    if (!seen) keys_.push_back(k);
  }
}

bool ApiKeySet::matches(std::string_view presented) const {
  // Longer than any key can be: public knowledge (kMaxApiKeyLength), so an
  // early answer here leaks nothing about the keys.
  if (presented.size() > kMaxApiKeyLength) return false;
  std::array<unsigned char, kMaxApiKeyLength> candidate{};
  std::copy(presented.begin(), presented.end(), candidate.begin());
  // Every key, every byte, no branch on the data: `found` is or-ed with 1
  // exactly when a key's length and all its (padded) bytes are equal.
  std::uint32_t found = 0;
  for (const Key& key : keys_) {
    auto diff = static_cast<std::uint32_t>(key.length ^ presented.size());
    for (std::size_t i = 0; i < kMaxApiKeyLength; ++i) {
      diff |= static_cast<std::uint32_t>(key.bytes[i] ^ candidate[i]);
    }
    // diff < 2^31 here, so (diff - 1) has its top bit set exactly when diff == 0.
    found |= ((diff - 1U) >> 31U) & 1U;
  }
  return found != 0;
}

}  // namespace pixpool
