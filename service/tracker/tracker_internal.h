// Helpers shared by the files that implement the Tracker (tracker.cc,
// tracker_submit.cc, tracker_events.cc, tracker_queries.cc,
// tracker_batch.cc, tracker_notes.cc, tracker_retention.cc), and by nothing
// else: include it only
// from those files.
//
// Contract: every helper here is a pure function of its arguments (no store,
// no clock, no locks), checks or describes one request or one stored value,
// and returns the same absl::Status codes the Tracker documents in
// tracker.h. A helper used by one file only stays in that file's anonymous
// namespace.
#ifndef TASKTRAIL_SERVICE_TRACKER_TRACKER_INTERNAL_H_
#define TASKTRAIL_SERVICE_TRACKER_TRACKER_INTERNAL_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "store/task_store.h"
#include "tasktrail/v1/task.pb.h"

namespace tasktrail::tracker_internal {

// INVALID_ARGUMENT (BadRequest on `task_id`) unless `task_id` is present,
// within kMaxIdBytes and free of control characters (CheckIdentifier).
absl::Status CheckTaskId(absl::string_view task_id);

// The DATA_LOSS of a stored snapshot of `task_id` that does not parse.
absl::Status SnapshotDoesNotParse(absl::string_view task_id);

// Appends the counts of one `kind` (and `detail`) of `task` in
// `unix_minute`: in its model's row, and in the rows of its route and of its
// group when it has them (GetStatsRequest.group_by).
void CountForTask(int64_t unix_minute, const v1::Task& task,
                  store::CounterKind kind, absl::string_view detail,
                  std::vector<store::RawMutation>* out);

}  // namespace tasktrail::tracker_internal

#endif  // TASKTRAIL_SERVICE_TRACKER_TRACKER_INTERNAL_H_
