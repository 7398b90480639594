// Stats over a recent window, from the durable per-minute counters the
// tracker writes in the same WriteBatch as each transition, rejection or
// blocked duplicate (store::RawMutation::CountOne; the counter names are
// store/records.h's), plus incident hints. The unclassified failure messages
// are counters too, one per minute, model and normalised message, so the
// window applies to them as to every count.
//
// Rows are per model, or per route or group of a model (GetStatsRequest.
// group_by): the counters of a route's or group's row are written beside the
// model's in the same write (store::ScopedCounterName), and so are the
// duration samples of each row (store::SampleSeries). The incident sentences
// follow service/rules/incidents.h: per row, and by route, one bad route of
// a model among healthy ones reads as a route or key problem.
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

inline constexpr absl::Duration kMaxStatsWindow = absl::Hours(24);

// How many unclassified messages a model's stats list.
inline constexpr int kTopUnclassifiedMessages = 5;

// Appends to `stats->unclassified` the kTopUnclassifiedMessages messages of
// `counts` (normalised message -> count) with the highest counts, most
// frequent first, equal counts in byte order of the message.
void AddTopUnclassified(const std::map<std::string, int64_t>& counts,
                        v1::ModelStats* stats);

// Counts the minutes [now - window, now] (whole minutes: the first one may be
// partly older) for `model`, or every model when empty, in rows of
// `group_by` (UNSPECIFIED: by model), with each row's queue wait, run time
// and end-to-end percentiles over its samples since now - window.
// REQUIRES: 0 < window <= kMaxStatsWindow; group_by a known value.
absl::StatusOr<v1::Stats> ComputeStats(const store::TaskStore& store,
                                       QueueWaits* waits,
                                       absl::string_view model,
                                       v1::StatsGroupBy group_by,
                                       absl::Duration window, absl::Time now);

}  // namespace tasktrail

#endif  // TASKTRAIL_SERVICE_TRACKER_STATS_H_
