#include "tools/latency_histogram.hpp"

#include <algorithm>
#include <cmath>

namespace corio::tools {

void LatencyHistogram::merge(const LatencyHistogram& o) noexcept {
  for (std::size_t i = 0; i < kBuckets; ++i) counts_[i] += o.counts_[i];
  count_ += o.count_;
  max_ = std::max(max_, o.max_);
}

std::uint64_t LatencyHistogram::quantile(double q) const noexcept {
  if (count_ == 0) return 0;
  const auto rank = static_cast<std::uint64_t>(std::ceil(std::clamp(q, 0.0, 1.0) * static_cast<double>(count_)));
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < kBuckets; ++i) {
    seen += counts_[i];
    if (seen >= std::max<std::uint64_t>(rank, 1)) {
      const std::uint64_t lo = lower_bound(i);
      const std::uint64_t width = i + 1 < kBuckets ? lower_bound(i + 1) - lo : 1;
      return std::min(max_, lo + width / 2);
    }
  }
  return max_;
}

}  // namespace corio::tools
