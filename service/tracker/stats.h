// Stats over a recent window, from the durable per-minute counters the
// tracker writes in the same WriteBatch as each transition, rejection or
// blocked duplicate (store::RawMutation::CountOne; the counter names are
// store/records.h's), plus incident hints.
//
// A model is flagged as a likely provider incident when, in the window, it
// has at least kIncidentMinFinished finished tasks, at least half of them
// failed, and at least 80 % of those failures are provider-side.
//
// Thread safety: ComputeStats is safe to call concurrently.
#ifndef TASKTRAIL_SERVICE_TRACKER_STATS_H_
#define TASKTRAIL_SERVICE_TRACKER_STATS_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "service/tracker/queue_waits.h"
#include "store/task_store.h"
#include "tasktrail/v1/tracker.pb.h"

namespace tasktrail {

inline constexpr int64_t kIncidentMinFinished = 5;
inline constexpr absl::Duration kMaxStatsWindow = absl::Hours(24);

// Counts the minutes [now - window, now] (whole minutes: the first one may be
// partly older) for `model`, or every model when empty.
// REQUIRES: 0 < window <= kMaxStatsWindow.
absl::StatusOr<v1::Stats> ComputeStats(const store::TaskStore& store,
                                       QueueWaits* waits,
                                       absl::string_view model,
                                       absl::Duration window, absl::Time now);

}  // namespace tasktrail

#endif  // TASKTRAIL_SERVICE_TRACKER_STATS_H_
