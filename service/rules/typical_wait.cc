#include "service/rules/typical_wait.h"

#include <algorithm>
#include <cmath>
#include <utility>

namespace tasktrail {

TypicalWait Percentiles(std::vector<int64_t> wait_micros) {
  TypicalWait typical;
  typical.samples = static_cast<int64_t>(wait_micros.size());
  if (wait_micros.empty()) return typical;
  auto rank = [&](double percentile) {
    // Nearest rank: the smallest value with at least `percentile` of the
    // samples at or below it.
    size_t index = static_cast<size_t>(
        std::ceil(percentile * static_cast<double>(wait_micros.size())));
    index = std::max<size_t>(index, 1) - 1;
    std::nth_element(wait_micros.begin(), wait_micros.begin() + index,
                     wait_micros.end());
    return absl::Microseconds(wait_micros[index]);
  };
  typical.p50 = rank(0.5);
  typical.p90 = rank(0.9);
  return typical;
}

}  // namespace tasktrail
