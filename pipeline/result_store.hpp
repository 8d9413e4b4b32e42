#pragma once
// A bounded in-memory store of processed outputs, addressed by id, for
// /v1/results/{id}. Bounded by entry count, total bytes and age (TTL);
// oldest entries are evicted first. Thread-safe.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace pixpool {

// Defaults here are the server's defaults (service/config.hpp embeds this).
struct ResultStoreOptions {
  using Clock = std::chrono::steady_clock;

  std::size_t max_entries = 100000;
  std::size_t max_bytes = std::size_t{1} << 30;  // 1 GiB
  std::chrono::seconds ttl = std::chrono::hours{1};
  std::string id_prefix;  // prepended to every id, e.g. "r1-" (replica routing)
  // Where expiry reads the time; tests inject a fake one to step past the
  // TTL. Must be monotonic. Empty = Clock::now.
  std::function<Clock::time_point()> clock = [] { return Clock::now(); };
};

struct StoredResult {
  std::string bytes;
  std::string content_type;  // e.g. "image/jpeg"
  std::string name;          // suggested file name, e.g. "photo.jpg"
  std::chrono::system_clock::time_point created;
};

class ResultStore {
 public:
  explicit ResultStore(ResultStoreOptions options);
  ~ResultStore();

  // Stores `result` and returns its new id: id_prefix + 32 lowercase hex
  // characters from a CSPRNG-quality source. Evicts expired entries, then
  // the oldest ones, until the new entry fits. A single result larger than
  // max_bytes is not stored: returns nullopt.
  std::optional<std::string> put(StoredResult result);

  // The result, or nullopt when unknown, evicted or expired. Shared so a
  // caller can stream it while it is evicted.
  std::shared_ptr<const StoredResult> get(const std::string& id) const;

  struct Stats {
    std::size_t entries = 0;
    std::size_t bytes = 0;
    std::uint64_t evicted = 0;
  };
  Stats stats() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// A fresh random id: 32 lowercase hex characters (128 bits).
std::string random_id();

}  // namespace pixpool
