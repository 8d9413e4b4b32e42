#pragma once
// API keys: parsing and validating them at startup, and checking the key a
// request presents (`Authorization: Bearer <key>`) in constant time.
//
// A key is 16 to 256 printable ASCII characters without spaces or commas
// (anything a shell, a header and a comma-separated list carry unchanged).
// Error messages never quote a key: they name the position instead.

#include <array>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"

namespace pixpool {

inline constexpr std::size_t kMinApiKeyLength = 16;
inline constexpr std::size_t kMaxApiKeyLength = 256;

// Why `key` is not a valid API key ("" when it is). Never quotes the key.
std::string api_key_problem(std::string_view key);

// "KEY1,KEY2" (from --api-keys or PIXPOOL_API_KEYS) -> the keys. Empty items
// (",," or a trailing comma) are skipped; an invalid key is an
// invalid_parameter error naming its position ("key 2 ...").
Result<std::vector<std::string>> parse_api_key_list(std::string_view text);

// The contents of an --api-keys-file: one key per line; blank lines and lines
// starting with # are ignored, surrounding spaces/tabs and a trailing \r are
// trimmed. Errors name the line number, never the key.
Result<std::vector<std::string>> parse_api_key_file(std::string_view text);

// Reads and parses the file at `path` (a regular file of at most 1 MiB).
Result<std::vector<std::string>> read_api_key_file(const std::string& path);

// True when `a` and `b` are equal. Runs in time that depends only on their
// lengths, not on where they first differ.
bool constant_time_equal(std::string_view a, std::string_view b);

// The token of an `Authorization: Bearer <token>` header value (scheme
// case-insensitive, one or more spaces), or nullopt when the value is not of
// that form.
std::optional<std::string_view> bearer_token(std::string_view authorization);

// The valid keys (several at once, for rotation). matches() compares the
// presented token with every key, always all of them and always over
// kMaxApiKeyLength bytes, so its time tells neither which key matched, nor
// how long the keys are, nor how much of a key a guess got right.
class ApiKeySet {
 public:
  ApiKeySet() = default;
  // Duplicates are dropped. Keys must be valid (api_key_problem() == "").
  explicit ApiKeySet(const std::vector<std::string>& keys);

  bool empty() const { return keys_.empty(); }
  std::size_t size() const { return keys_.size(); }
  bool matches(std::string_view presented) const;

 private:
  struct Key {
    std::array<unsigned char, kMaxApiKeyLength> bytes{};  // zero-padded
    std::size_t length = 0;
  };
  std::vector<Key> keys_;
};

}  // namespace pixpool
