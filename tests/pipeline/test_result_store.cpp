// ResultStore: round trips, id format and uniqueness, the three bounds
// (count, bytes, TTL) and thread safety.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_set>
#include <vector>

#include "pipeline/result_store.hpp"

namespace {

using namespace std::chrono_literals;
using pixpool::ResultStore;
using pixpool::ResultStoreOptions;
using pixpool::StoredResult;

StoredResult make_result(std::string bytes, std::string name = "out.jpg") {
  return StoredResult{std::move(bytes), "image/jpeg", std::move(name), {}};
}

ResultStoreOptions options(std::size_t max_entries, std::size_t max_bytes,
                           std::chrono::seconds ttl = std::chrono::seconds{3600}) {
  ResultStoreOptions o;
  o.max_entries = max_entries;
  o.max_bytes = max_bytes;
  o.ttl = ttl;
  return o;
}

// A steady clock that only moves when told to; copies share the time.
class FakeClock {
 public:
  using Clock = ResultStoreOptions::Clock;

  void advance(Clock::duration by) { *ticks_ += by.count(); }
  std::function<Clock::time_point()> function() const {
    return [ticks = ticks_] { return Clock::time_point{} + Clock::duration{ticks->load()}; };
  }

 private:
  // An arbitrary start, well away from the epoch.
  std::shared_ptr<std::atomic<Clock::rep>> ticks_ = std::make_shared<std::atomic<Clock::rep>>(
      std::chrono::duration_cast<Clock::duration>(std::chrono::hours{1000}).count());
};

// Whether `id` is `prefix` followed by exactly 32 lowercase hex characters.
// (Hand-rolled: std::regex trips GCC 12 -Wmaybe-uninitialized under TSan.)
bool is_id(std::string_view id, std::string_view prefix = "") {
  if (id.size() != prefix.size() + 32 || id.substr(0, prefix.size()) != prefix) return false;
  for (const char c : id.substr(prefix.size())) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace

TEST_CASE("result store: put then get returns the same bytes, type and name") {
  ResultStore store(options(10, 1 << 20));
  std::string bytes("\xff\xd8\0binary\0", 10);
  const auto id = store.put(StoredResult{bytes, "image/png", "photo.png", {}});
  REQUIRE(id.has_value());
  const auto got = store.get(*id);
  REQUIRE(got != nullptr);
  CHECK(got->bytes == bytes);
  CHECK(got->content_type == "image/png");
  CHECK(got->name == "photo.png");
  CHECK(got->created != std::chrono::system_clock::time_point{});  // filled in by put
  CHECK(store.get("no-such-id") == nullptr);
  CHECK(store.get("") == nullptr);
  const auto stats = store.stats();
  CHECK(stats.entries == 1);
  CHECK(stats.bytes == bytes.size());
  CHECK(stats.evicted == 0);
}

TEST_CASE("result store: a caller's created time is kept") {
  ResultStore store(options(10, 1 << 20));
  const auto created = std::chrono::system_clock::now() - 5min;
  const auto id = store.put(StoredResult{"x", "image/png", "a.png", created});
  REQUIRE(id.has_value());
  CHECK(store.get(*id)->created == created);
}

TEST_CASE("result store: ids are unique and match prefix + 32 lowercase hex") {
  ResultStoreOptions o = options(20000, 1 << 20);
  o.id_prefix = "r1-";
  ResultStore store(o);
  std::unordered_set<std::string> seen;
  for (int i = 0; i < 10000; ++i) {
    const auto id = store.put(make_result("b"));
    REQUIRE(id.has_value());
    REQUIRE(is_id(*id, "r1-"));
    REQUIRE(seen.insert(*id).second);
  }
  CHECK(store.stats().entries == 10000);
}

TEST_CASE("random_id: 32 lowercase hex characters, different every call") {
  const std::string a = pixpool::random_id();
  const std::string b = pixpool::random_id();
  CHECK(is_id(a));
  CHECK(is_id(b));
  CHECK_FALSE(is_id("r1-" + a));  // the checker itself rejects near misses
  CHECK_FALSE(is_id(a.substr(1)));
  CHECK_FALSE(is_id(std::string(32, 'A')));
  CHECK(a != b);
}

TEST_CASE("result store: the entry count bound evicts the oldest first") {
  ResultStore store(options(3, 1 << 20));
  const auto a = store.put(make_result("a"));
  const auto b = store.put(make_result("b"));
  const auto c = store.put(make_result("c"));
  REQUIRE((a && b && c));
  CHECK(store.stats().evicted == 0);

  const auto d = store.put(make_result("d"));
  REQUIRE(d.has_value());
  CHECK(store.get(*a) == nullptr);
  CHECK(store.get(*b) != nullptr);
  CHECK(store.get(*c) != nullptr);
  CHECK(store.get(*d)->bytes == "d");
  auto stats = store.stats();
  CHECK(stats.entries == 3);
  CHECK(stats.bytes == 3);
  CHECK(stats.evicted == 1);

  // A get() does not refresh age: b is still the oldest.
  const auto e = store.put(make_result("e"));
  REQUIRE(e.has_value());
  CHECK(store.get(*b) == nullptr);
  CHECK(store.stats().evicted == 2);
}

TEST_CASE("result store: the byte bound evicts as many old entries as needed") {
  ResultStore store(options(100, 10));
  const auto a = store.put(make_result(std::string(4, 'a')));
  const auto b = store.put(make_result(std::string(4, 'b')));
  REQUIRE((a && b));
  CHECK(store.stats().bytes == 8);

  // 8 + 2 fits exactly: nothing evicted.
  const auto c = store.put(make_result(std::string(2, 'c')));
  REQUIRE(c.has_value());
  CHECK(store.stats().evicted == 0);
  CHECK(store.stats().bytes == 10);

  // 9 bytes need a, b and c gone (10 - 4 - 4 - 2 = 0, + 9 <= 10).
  const auto d = store.put(make_result(std::string(9, 'd')));
  REQUIRE(d.has_value());
  CHECK(store.get(*a) == nullptr);
  CHECK(store.get(*b) == nullptr);
  CHECK(store.get(*c) == nullptr);
  CHECK(store.get(*d) != nullptr);
  const auto stats = store.stats();
  CHECK(stats.entries == 1);
  CHECK(stats.bytes == 9);
  CHECK(stats.evicted == 3);
}

TEST_CASE("result store: an entry larger than max_bytes is refused and evicts nothing") {
  ResultStore store(options(10, 10));
  const auto a = store.put(make_result("aaaa"));
  REQUIRE(a.has_value());
  CHECK_FALSE(store.put(make_result(std::string(11, 'x'))).has_value());
  CHECK(store.get(*a) != nullptr);
  const auto stats = store.stats();
  CHECK(stats.entries == 1);
  CHECK(stats.bytes == 4);
  CHECK(stats.evicted == 0);

  // Exactly max_bytes fits (after evicting a).
  CHECK(store.put(make_result(std::string(10, 'y'))).has_value());
  CHECK(store.stats().bytes == 10);
}

TEST_CASE("result store: empty results are stored") {
  ResultStore store(options(10, 10));
  const auto id = store.put(make_result(""));
  REQUIRE(id.has_value());
  REQUIRE(store.get(*id) != nullptr);
  CHECK(store.get(*id)->bytes.empty());
}

TEST_CASE("result store: entries expire after the TTL") {
  FakeClock clock;
  ResultStoreOptions o = options(10, 1 << 20, std::chrono::seconds{1});
  o.clock = clock.function();
  ResultStore store(o);
  const auto id = store.put(make_result("old"));
  REQUIRE(id.has_value());
  CHECK(store.get(*id) != nullptr);

  // Alive until the TTL has passed, gone from then on.
  clock.advance(999ms);
  CHECK(store.get(*id) != nullptr);
  clock.advance(1ms);
  CHECK(store.get(*id) == nullptr);
  CHECK(store.stats().entries == 0);
  CHECK(store.stats().bytes == 0);

  // put() also drops expired entries nobody asked about.
  const auto a = store.put(make_result("a"));
  REQUIRE(a.has_value());
  clock.advance(1100ms);
  CHECK(store.stats().entries == 1);  // stats() does not drop anything
  const auto b = store.put(make_result("b"));
  REQUIRE(b.has_value());
  const auto stats = store.stats();
  CHECK(stats.entries == 1);
  CHECK(stats.bytes == 1);
  CHECK(stats.evicted == 2);
  CHECK(store.get(*b) != nullptr);
}

TEST_CASE("result store: without an injected clock, the steady clock") {
  ResultStoreOptions o = options(10, 1 << 20);
  CHECK(o.clock != nullptr);  // the default reads the steady clock
  const auto before = std::chrono::steady_clock::now();
  CHECK(o.clock() >= before);
  o.clock = nullptr;  // empty falls back to the steady clock too
  ResultStore store(o);
  const auto id = store.put(make_result("x"));
  REQUIRE(id.has_value());
  CHECK(store.get(*id) != nullptr);
}

TEST_CASE("result store: extreme TTLs neither overflow nor keep dead entries") {
  ResultStore zero(options(10, 1 << 20, std::chrono::seconds{0}));
  const auto a = zero.put(make_result("a"));
  REQUIRE(a.has_value());
  CHECK(zero.get(*a) == nullptr);  // a zero TTL expires at once

  ResultStore huge(options(10, 1 << 20, std::chrono::seconds::max()));
  const auto b = huge.put(make_result("b"));
  REQUIRE(b.has_value());
  CHECK(huge.get(*b) != nullptr);  // clamped, not wrapped into the past
}

TEST_CASE("result store: a result returned by get outlives its eviction") {
  ResultStore store(options(1, 1 << 20));
  const auto a = store.put(make_result(std::string(1000, 'a')));
  REQUIRE(a.has_value());
  const auto held = store.get(*a);
  REQUIRE(held != nullptr);
  const auto b = store.put(make_result("b"));
  REQUIRE(b.has_value());
  CHECK(store.get(*a) == nullptr);
  CHECK(held->bytes == std::string(1000, 'a'));
  CHECK(store.stats().evicted == 1);
}

TEST_CASE("result store: concurrent put/get stays within bounds") {
  constexpr std::size_t kMaxEntries = 16;
  constexpr std::size_t kMaxBytes = 4096;
  ResultStore store(options(kMaxEntries, kMaxBytes));
  std::atomic<int> lost{0};
  std::atomic<int> out_of_bounds{0};
  std::atomic<int> wrong_bytes{0};

  std::vector<std::thread> threads;
  threads.reserve(8);
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 500; ++i) {
        // 1..512 bytes, tagged so a get can check it read its own result.
        const std::size_t size = 1 + static_cast<std::size_t>((t * 131 + i * 17) % 512);
        const char tag = static_cast<char>('a' + t);
        const auto id = store.put(make_result(std::string(size, tag)));
        if (!id) {
          ++lost;
          continue;
        }
        const auto got = store.get(*id);
        if (got != nullptr && got->bytes != std::string(size, tag)) ++wrong_bytes;
        const auto stats = store.stats();
        if (stats.entries > kMaxEntries || stats.bytes > kMaxBytes) ++out_of_bounds;
      }
    });
  }
  for (auto& thread : threads) thread.join();

  CHECK(lost == 0);
  CHECK(wrong_bytes == 0);
  CHECK(out_of_bounds == 0);
  const auto stats = store.stats();
  CHECK(stats.entries <= kMaxEntries);
  CHECK(stats.bytes <= kMaxBytes);
  CHECK(stats.entries > 0);
  CHECK(stats.evicted == static_cast<std::size_t>(8) * 500 - stats.entries);
}
