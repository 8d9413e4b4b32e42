#pragma once
// A log-linear latency histogram in the style of HdrHistogram: exact counts
// in buckets whose width is at most 1/128 of their lower bound, so every
// percentile is within 0.4% (relative) of the true sample at that rank.
// Values are nanoseconds; the range is 0 .. kMaxValueNs (10 minutes), which
// covers 10 µs .. 10 min with better than 1% precision. Larger values are
// counted in the top bucket, but max() stays exact.
//
// One histogram per client thread, merged at the end; not thread-safe.

#include <cstdint>
#include <vector>

namespace pixpool::bench {

class LatencyHistogram {
 public:
  static constexpr std::int64_t kMaxValueNs = 600'000'000'000;  // 10 minutes

  LatencyHistogram();

  // Records one value; negative values count as 0.
  void record(std::int64_t value_ns);
  // Adds every count of `other` (same layout by construction).
  void merge(const LatencyHistogram& other);

  std::uint64_t count() const { return count_; }
  bool empty() const { return count_ == 0; }
  // Exact extremes and mean of what was recorded; 0 when empty.
  std::int64_t min() const { return count_ == 0 ? 0 : min_; }
  std::int64_t max() const { return count_ == 0 ? 0 : max_; }
  double mean() const;

  // The value at percentile `p` (0..100, clamped) by the nearest-rank rule:
  // the smallest recorded value v such that at least p% of the values are
  // <= v, approximated by its bucket's midpoint and clamped to [min, max].
  // 0 when empty; p=100 gives max() exactly.
  std::int64_t percentile(double p) const;

  // Bucket layout, public for tests: index of a value, and the bucket's
  // [lower, upper) bounds.
  static std::size_t bucket_index(std::int64_t value_ns);
  static std::int64_t bucket_lower(std::size_t index);
  static std::int64_t bucket_upper(std::size_t index);
  static std::size_t bucket_count();

 private:
  std::vector<std::uint64_t> counts_;
  std::uint64_t count_ = 0;
  std::int64_t min_ = 0;
  std::int64_t max_ = 0;
  long double sum_ = 0;
};

}  // namespace pixpool::bench
