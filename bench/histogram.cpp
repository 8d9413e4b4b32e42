#include "bench/histogram.hpp"

#include <algorithm>
#include <bit>
#include <cmath>

namespace pixpool::bench {
namespace {

// Values below 2^(kSubBits+1) get one bucket each (exact). Above, each power
// of two [2^m, 2^(m+1)) is split into 2^kSubBits equal buckets.
constexpr int kSubBits = 7;
constexpr std::int64_t kSubCount = std::int64_t{1} << kSubBits;  // 128
constexpr std::int64_t kLinearLimit = 2 * kSubCount;             // 256

}  // namespace

std::size_t LatencyHistogram::bucket_index(std::int64_t value_ns) {
  const auto v = static_cast<std::uint64_t>(std::clamp<std::int64_t>(value_ns, 0, kMaxValueNs));
  if (v < static_cast<std::uint64_t>(kLinearLimit)) return static_cast<std::size_t>(v);
  // v in [2^(shift+kSubBits), 2^(shift+kSubBits+1)), shift >= 1.
  const int shift = static_cast<int>(std::bit_width(v)) - (kSubBits + 1);
  const std::uint64_t sub = (v >> shift) - static_cast<std::uint64_t>(kSubCount);  // 0..127
  return static_cast<std::size_t>(kLinearLimit) +
         static_cast<std::size_t>(shift - 1) * static_cast<std::size_t>(kSubCount) +
         static_cast<std::size_t>(sub);
}

std::int64_t LatencyHistogram::bucket_lower(std::size_t index) {
  const auto i = static_cast<std::int64_t>(index);
  if (i < kLinearLimit) return i;
  const std::int64_t shift = (i - kLinearLimit) / kSubCount + 1;
  const std::int64_t sub = (i - kLinearLimit) % kSubCount + kSubCount;
  return sub << shift;
}

std::int64_t LatencyHistogram::bucket_upper(std::size_t index) {
  const auto i = static_cast<std::int64_t>(index);
  if (i < kLinearLimit) return i + 1;
  const std::int64_t shift = (i - kLinearLimit) / kSubCount + 1;
  const std::int64_t sub = (i - kLinearLimit) % kSubCount + kSubCount;
  return (sub + 1) << shift;
}

std::size_t LatencyHistogram::bucket_count() {
  return bucket_index(kMaxValueNs) + 1;
}

LatencyHistogram::LatencyHistogram() : counts_(bucket_count(), 0) {}

void LatencyHistogram::record(std::int64_t value_ns) {
  value_ns = std::max<std::int64_t>(value_ns, 0);
  ++counts_[bucket_index(value_ns)];
  if (count_ == 0 || value_ns < min_) min_ = value_ns;
  if (count_ == 0 || value_ns > max_) max_ = value_ns;
  ++count_;
  sum_ += static_cast<long double>(value_ns);
}

void LatencyHistogram::merge(const LatencyHistogram& other) {
  if (other.count_ == 0) return;
  for (std::size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
  min_ = count_ == 0 ? other.min_ : std::min(min_, other.min_);
  max_ = count_ == 0 ? other.max_ : std::max(max_, other.max_);
  count_ += other.count_;
  sum_ += other.sum_;
}

double LatencyHistogram::mean() const {
  return count_ == 0 ? 0.0 : static_cast<double>(sum_ / static_cast<long double>(count_));
}

std::int64_t LatencyHistogram::percentile(double p) const {
  if (count_ == 0) return 0;
  p = std::clamp(p, 0.0, 100.0);
  if (p >= 100.0) return max_;
  // Nearest rank: the ceil(p/100 * n)-th smallest value (at least the 1st).
  const auto rank = std::max<std::uint64_t>(
      1, static_cast<std::uint64_t>(std::ceil(p / 100.0 * static_cast<double>(count_))));
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < counts_.size(); ++i) {
    seen += counts_[i];
    if (seen >= rank) {
      const std::int64_t mid = bucket_lower(i) + (bucket_upper(i) - 1 - bucket_lower(i)) / 2;
      return std::clamp(mid, min_, max_);
    }
  }
  return max_;
}

}  // namespace pixpool::bench
