// TypicalWait: how long a model's tasks usually wait in the upstream queue,
// as nearest-rank percentiles of recent waits. Pure computation; the samples
// themselves are kept by service/tracker/queue_waits.h.
//
// Thread safety: free functions on values; safe to call concurrently.
#ifndef TASKTRAIL_SERVICE_RULES_TYPICAL_WAIT_H_
#define TASKTRAIL_SERVICE_RULES_TYPICAL_WAIT_H_

#include <cstdint>
#include <vector>

#include "absl/time/time.h"

namespace tasktrail {

// Percentiles of a set of waits.
struct TypicalWait {
  absl::Duration p50;
  absl::Duration p90;
  int64_t samples = 0;
};

// Nearest-rank percentiles of `waits` (in any order); all zero when empty.
TypicalWait Percentiles(std::vector<int64_t> wait_micros);

}  // namespace tasktrail

#endif  // TASKTRAIL_SERVICE_RULES_TYPICAL_WAIT_H_
