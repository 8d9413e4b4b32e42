#include "pipeline/result_store.hpp"

#include <sys/random.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <list>
#include <mutex>
#include <random>
#include <unordered_map>
#include <utility>

namespace pixpool {
namespace {

using SteadyClock = ResultStoreOptions::Clock;

// Fills `out` from the kernel CSPRNG. getrandom(2) returns short reads only
// when interrupted or for requests over 256 bytes, so the loop is for EINTR.
// Should it fail anyway (no syscall under a sandbox), std::random_device is
// still a non-deterministic source in libstdc++.
void fill_random(unsigned char* out, std::size_t size) {
  std::size_t done = 0;
  while (done < size) {
    const ssize_t n = getrandom(out + done, size - done, 0);
    if (n > 0) {
      done += static_cast<std::size_t>(n);
    } else if (n < 0 && errno != EINTR) {
      break;
    }
  }
  if (done == size) return;
  std::random_device device;
  for (; done < size; ++done) out[done] = static_cast<unsigned char>(device());
}

}  // namespace

std::string random_id() {
  std::array<unsigned char, 16> raw{};
  fill_random(raw.data(), raw.size());
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id;
  id.reserve(raw.size() * 2);
  for (const unsigned char byte : raw) {
    id.push_back(kHex[byte >> 4]);
    id.push_back(kHex[byte & 0x0f]);
  }
  return id;
}

// Entries live in `order`, oldest first. Since the TTL is the same for every
// entry, insertion order is also expiry order, so both eviction rules only
// ever pop the front. `by_id` points into `order` for O(1) lookup and erase.
struct ResultStore::State {
  struct Entry {
    std::string id;
    std::shared_ptr<const StoredResult> result;
    SteadyClock::time_point expires;  // steady: immune to wall-clock jumps
  };

  explicit State(ResultStoreOptions opts)
      : options(std::move(opts)),
        ttl(clamp_ttl(options.ttl)),
        clock(options.clock ? options.clock : [] { return SteadyClock::now(); }) {}

  // [0, 100 years], compared in seconds before converting: the steady clock
  // counts 64-bit nanoseconds, so a huge TTL (or now + TTL) would overflow.
  static SteadyClock::duration clamp_ttl(std::chrono::seconds ttl) {
    constexpr std::chrono::seconds kMaxTtl = std::chrono::hours{24 * 365 * 100};
    return std::clamp(ttl, std::chrono::seconds::zero(), kMaxTtl);
  }

  bool expired(const Entry& entry, SteadyClock::time_point now) const {
    return now >= entry.expires;
  }

  // Removes one entry; the caller holds `mutex`. Callers still holding its
  // shared_ptr keep the result alive.
  void erase(std::list<Entry>::iterator it) {
    bytes -= it->result->bytes.size();
    by_id.erase(it->id);
    order.erase(it);
    ++evicted;
  }

  const ResultStoreOptions options;
  const SteadyClock::duration ttl;                       // clamped options.ttl; 0 = expires at once
  const std::function<SteadyClock::time_point()> clock;  // options.clock or the steady clock
  std::mutex mutex;
  std::list<Entry> order;
  std::unordered_map<std::string, std::list<Entry>::iterator> by_id;
  std::size_t bytes = 0;      // sum of result->bytes.size() over `order`
  std::uint64_t evicted = 0;  // entries dropped for age or capacity
};

ResultStore::ResultStore(ResultStoreOptions options)
    : state_(std::make_unique<State>(std::move(options))) {}

ResultStore::~ResultStore() = default;

std::optional<std::string> ResultStore::put(StoredResult result) {
  State& s = *state_;
  const std::size_t size = result.bytes.size();
  // Refused before anything is evicted: making room could never help.
  if (s.options.max_entries == 0 || size > s.options.max_bytes) return std::nullopt;
  if (result.created == std::chrono::system_clock::time_point{}) {
    result.created = std::chrono::system_clock::now();
  }
  auto shared = std::make_shared<const StoredResult>(std::move(result));
  std::string id = s.options.id_prefix + random_id();  // outside the lock: a syscall

  const std::lock_guard lock(s.mutex);
  const auto now = s.clock();
  while (!s.order.empty() && s.expired(s.order.front(), now)) s.erase(s.order.begin());
  while (!s.order.empty() &&
         (s.order.size() >= s.options.max_entries || s.bytes + size > s.options.max_bytes)) {
    s.erase(s.order.begin());
  }
  // 128 random bits make a collision practically impossible; retry anyway so
  // one id can never name two results.
  while (s.by_id.contains(id)) id = s.options.id_prefix + random_id();

  s.order.push_back(State::Entry{id, std::move(shared), now + s.ttl});
  s.by_id.emplace(id, std::prev(s.order.end()));
  s.bytes += size;
  return id;
}

std::shared_ptr<const StoredResult> ResultStore::get(const std::string& id) const {
  State& s = *state_;
  const std::lock_guard lock(s.mutex);
  const auto found = s.by_id.find(id);
  if (found == s.by_id.end()) return nullptr;
  const auto it = found->second;
  if (s.expired(*it, s.clock())) {
    s.erase(it);  // lazily: put() would drop it later anyway
    return nullptr;
  }
  return it->result;
}

ResultStore::Stats ResultStore::stats() const {
  State& s = *state_;
  const std::lock_guard lock(s.mutex);
  return Stats{s.order.size(), s.bytes, s.evicted};
}

}  // namespace pixpool
