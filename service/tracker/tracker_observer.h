// TrackerObserver: what the Tracker did, told as it becomes durable, for
// whoever counts it (tasktraild's Prometheus metrics). The Tracker calls it
// only after the write that recorded the fact has committed; a write that
// fails is never observed.
//
// `model` is the task's model as recorded (a catalog name when the task was
// submitted), or for a rejection the name asked for (kUnknownModel when the
// catalog in force does not know it). Implementations must keep their label
// sets bounded themselves: a model name that is not in the catalog in force
// (a name removed by a reload, or "(unknown)") is theirs to fold.
//
// Thread safety: methods are called concurrently from the store's commit
// thread and from the threads that prepare writes; they must be thread-safe
// and must not block or call back into the Tracker.
#ifndef TASKTRAIL_SERVICE_TRACKER_TRACKER_OBSERVER_H_
#define TASKTRAIL_SERVICE_TRACKER_TRACKER_OBSERVER_H_

#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "tasktrail/v1/task.pb.h"
#include "tasktrail/v1/tracker.pb.h"

namespace tasktrail {

// The model of a rejected submission whose model the catalog does not know:
// client-chosen names are counted under this one.
inline constexpr absl::string_view kUnknownModel = "(unknown)";

class TrackerObserver {
 public:
  virtual ~TrackerObserver() = default;

  // A new task was recorded (not a blocked duplicate).
  virtual void OnSubmitted(absl::string_view model) = 0;

  // A task entered `state` (a new task enters TASK_STATE_SUBMITTED).
  virtual void OnStateEntered(absl::string_view model, v1::TaskState state) = 0;

  // A task entered TASK_STATE_FAILED, classified as `category` and `origin`
  // (called besides OnStateEntered).
  virtual void OnFailed(absl::string_view model, v1::FailureCategory category,
                        v1::FailureOrigin origin) = 0;

  // A submission was answered with the existing task it duplicates.
  virtual void OnDuplicateBlocked(absl::string_view model,
                                  v1::DedupReason reason) = 0;

  // A submission failed catalog validation; `reasons` are the distinct
  // violation reasons (MODEL_UNKNOWN, RATIO_UNSUPPORTED, ...).
  virtual void OnRejected(absl::string_view model,
                          absl::Span<const std::string> reasons) = 0;

  // A task's charge was refunded (by a REFUNDED event, or failed.refunded).
  virtual void OnRefunded(absl::string_view model) = 0;

  // Any write of a task (every timeline entry): the task is now in `state`,
  // with its last upstream-reported event at `last_upstream_event` (the
  // epoch when none). A purged task (retention, PurgeTask) is reported once
  // more, in TASK_STATE_UNSPECIFIED: it is gone.
  virtual void OnTaskWritten(absl::string_view task_id, absl::string_view model,
                             v1::TaskState state,
                             absl::Time last_upstream_event) = 0;

  // A task left TASK_STATE_QUEUED after `wait` in the queue.
  virtual void OnLeftQueue(absl::string_view model, absl::Duration wait) = 0;
};

}  // namespace tasktrail

#endif  // TASKTRAIL_SERVICE_TRACKER_TRACKER_OBSERVER_H_
