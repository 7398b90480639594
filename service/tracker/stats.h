// Stats over a recent window, from the durable per-minute counters the
// tracker writes in the same WriteBatch as each transition, rejection or
// blocked duplicate (store::RawMutation::CountOne; the counter names are
// store/records.h's), plus incident hints. The unclassified failure messages
// are counters too, one per minute, model and normalised message, so the
// window applies to them as to every count.
//
// A model is flagged as a likely provider incident when, in the window, it
// has at least kIncidentMinFinished finished tasks, at least half of them
// failed, and at least 80 % of those failures are provider-side.
//
// Thread safety: ComputeStats is safe to call concurrently.
#ifndef TASKTRAIL_SERVICE_TRACKER_STATS_H_
#define TASKTRAIL_SERVICE_TRACKER_STATS_H_

#include <cstdint>
#include <map>
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

// How many unclassified messages a model's stats list.
inline constexpr int kTopUnclassifiedMessages = 5;

// Appends to `stats->unclassified` the kTopUnclassifiedMessages messages of
// `counts` (normalised message -> count) with the highest counts, most
// frequent first, equal counts in byte order of the message.
void AddTopUnclassified(const std::map<std::string, int64_t>& counts,
                        v1::ModelStats* stats);

// Counts the minutes [now - window, now] (whole minutes: the first one may be
// partly older) for `model`, or every model when empty.
// REQUIRES: 0 < window <= kMaxStatsWindow.
absl::StatusOr<v1::Stats> ComputeStats(const store::TaskStore& store,
                                       QueueWaits* waits,
                                       absl::string_view model,
                                       absl::Duration window, absl::Time now);

}  // namespace tasktrail

#endif  // TASKTRAIL_SERVICE_TRACKER_STATS_H_
