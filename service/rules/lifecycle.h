// The task lifecycle: which event may follow which state, and the state it
// leads to. The table is documented on TaskState in task.proto.
//
// Thread safety: all functions are pure.
#ifndef TASKTRAIL_SERVICE_RULES_LIFECYCLE_H_
#define TASKTRAIL_SERVICE_RULES_LIFECYCLE_H_

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "tasktrail/v1/task.pb.h"

namespace tasktrail {

// True for SUCCEEDED, FAILED and CANCELED.
bool IsFinished(v1::TaskState state);

// True for the events the upstream reports (queued, started, polled,
// completed, failed, canceled): the ones `occur_time` is ordered against.
bool IsUpstreamReported(v1::EventType type);

// True for events that end the task (completed, failed, canceled).
bool IsFinishingEvent(v1::EventType type);

// Returns the state a task in `current` is in after an event of `type`.
// Errors: FAILED_PRECONDITION naming the current state when the event is not
// allowed in it; INVALID_ARGUMENT for EVENT_TYPE_UNSPECIFIED or SUBMITTED
// (which only SubmitTask creates).
absl::StatusOr<v1::TaskState> StateAfter(v1::TaskState current,
                                         v1::EventType type);

// "QUEUED", "FAILED", ...: the state's name without the prefix.
absl::string_view StateName(v1::TaskState state);
// "POLLED", "DUPLICATE_BLOCKED", ...: the event type's name without prefix.
absl::string_view EventTypeName(v1::EventType type);

}  // namespace tasktrail

#endif  // TASKTRAIL_SERVICE_RULES_LIFECYCLE_H_
