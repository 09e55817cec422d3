// LatencyHistogram: HDR-style log-linear buckets over nanoseconds. Values below 128 ns are exact; above, each
// power of two is split into 64 buckets (at most 1.6% relative error). Fixed size (about 30 KiB), no
// allocation while recording, merged across reactors at the end.
#pragma once
#include <array>
#include <cstdint>

namespace corio::tools {

class LatencyHistogram {
 public:
  void record(std::uint64_t ns) noexcept {
    ++counts_[index(ns)];
    ++count_;
    if (ns > max_) max_ = ns;
  }
  void merge(const LatencyHistogram& o) noexcept;
  std::uint64_t count() const noexcept { return count_; }
  std::uint64_t max() const noexcept { return max_; }
  // The value at quantile q (0..1): the middle of its bucket, never above max().
  std::uint64_t quantile(double q) const noexcept;

  static constexpr std::size_t index(std::uint64_t ns) noexcept {
    if (ns < 128) return static_cast<std::size_t>(ns);
    const int e = 63 - __builtin_clzll(ns);  // >= 7
    return 128 + static_cast<std::size_t>(e - 7) * 64 + ((ns >> (e - 6)) & 63);
  }
  static constexpr std::uint64_t lower_bound(std::size_t i) noexcept {
    if (i < 128) return i;
    const int e = static_cast<int>((i - 128) / 64) + 7;
    return (64 + (i - 128) % 64) << (e - 6);
  }
  static constexpr std::size_t kBuckets = 128 + 57 * 64;

 private:
  std::array<std::uint64_t, kBuckets> counts_{};
  std::uint64_t count_ = 0;
  std::uint64_t max_ = 0;
};

}  // namespace corio::tools
