// LatencyHistogram: a log-linear histogram of latencies in microseconds, in
// the manner of HdrHistogram. Values below 128 µs are exact; above, each
// power of two is split into 64 buckets, so a reported percentile is within
// 1.6 % of the true value. Memory is fixed (about 18 KiB) whatever the run
// length; values above 2^40 µs are clamped.
//
// Thread safety: none. Each load-generating slot owns one; Merge() them after
// the slots have stopped.
#ifndef TASKTRAIL_BENCH_LATENCY_HISTOGRAM_H_
#define TASKTRAIL_BENCH_LATENCY_HISTOGRAM_H_

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>

namespace tasktrail::bench {

class LatencyHistogram {
 public:
  void Record(uint64_t micros) {
    micros = std::min<uint64_t>(micros, kMaxValue);
    ++counts_[Index(micros)];
    ++count_;
    sum_ += micros;
    max_ = std::max(max_, micros);
  }

  void Merge(const LatencyHistogram& other) {
    for (size_t i = 0; i < kBuckets; ++i) counts_[i] += other.counts_[i];
    count_ += other.count_;
    sum_ += other.sum_;
    max_ = std::max(max_, other.max_);
  }

  uint64_t count() const { return count_; }
  uint64_t max() const { return max_; }
  double mean() const {
    return count_ == 0 ? 0.0 : static_cast<double>(sum_) / count_;
  }

  // The value at quantile `q` (0 < q <= 1): the midpoint of the bucket that
  // holds the ceil(q * count)-th smallest sample, never above max(). 0 when
  // empty.
  uint64_t Percentile(double q) const {
    if (count_ == 0) return 0;
    const uint64_t rank = std::max<uint64_t>(
        1, static_cast<uint64_t>(std::ceil(q * static_cast<double>(count_))));
    uint64_t seen = 0;
    for (size_t i = 0; i < kBuckets; ++i) {
      seen += counts_[i];
      if (seen >= rank) return std::min(Midpoint(i), max_);
    }
    return max_;
  }

  // Calls f(midpoint, count) for each non-empty bucket, in increasing
  // order: what a report needs to merge runs' histograms and take their
  // percentiles by the rule Percentile() uses.
  template <typename F>
  void ForEachBucket(F&& f) const {
    for (size_t i = 0; i < kBuckets; ++i) {
      if (counts_[i] != 0) f(Midpoint(i), counts_[i]);
    }
  }

 private:
  static constexpr int kSubBits = 6;  // 64 buckets per power of two
  static constexpr uint64_t kExactBelow = uint64_t{2} << kSubBits;  // 128
  static constexpr int kMaxBit = 40;
  static constexpr uint64_t kMaxValue = (uint64_t{1} << kMaxBit) - 1;
  static constexpr size_t kBuckets =
      kExactBelow + (kMaxBit - kSubBits - 1) * (size_t{1} << kSubBits);

  static size_t Index(uint64_t v) {
    if (v < kExactBelow) return static_cast<size_t>(v);
    const int msb = 63 - __builtin_clzll(v);
    const int shift = msb - kSubBits;      // >= 1
    const uint64_t mantissa = v >> shift;  // in [64, 128)
    return kExactBelow + static_cast<size_t>(shift - 1) * (1u << kSubBits) +
           static_cast<size_t>(mantissa - (1u << kSubBits));
  }

  static uint64_t Midpoint(size_t index) {
    if (index < kExactBelow) return index;
    const size_t rest = index - kExactBelow;
    const int shift = static_cast<int>(rest >> kSubBits) + 1;
    const uint64_t mantissa =
        (rest & ((1u << kSubBits) - 1)) + (1u << kSubBits);
    const uint64_t low = mantissa << shift;
    const uint64_t high = ((mantissa + 1) << shift) - 1;
    return low + (high - low) / 2;
  }

  std::array<uint64_t, kBuckets> counts_{};
  uint64_t count_ = 0;
  uint64_t sum_ = 0;
  uint64_t max_ = 0;
};

}  // namespace tasktrail::bench

#endif  // TASKTRAIL_BENCH_LATENCY_HISTOGRAM_H_
