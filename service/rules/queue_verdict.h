// The answer to "is it still queued, and is that normal?", from a task's
// snapshot, its model's typical wait and the time now. Never an ETA of its
// own: `upstream_eta` is copied only when the upstream gave one.
//
// Verdicts, in order of precedence:
//   FINISHED              SUCCEEDED, FAILED or CANCELED
//   POLLING_STALLED       QUEUED or RUNNING with no upstream event (queued,
//                         started, poll) for longer than `stale_after`
//   WAITING_FOR_UPSTREAM  SUBMITTED
//   RUNNING               RUNNING
//   QUEUED_LONGER_THAN_USUAL  QUEUED, time in queue > p90, >= 5 samples
//   QUEUED_NORMAL         QUEUED otherwise
// `resubmit_advised` is false unless the task failed with a retryable
// failure.
//
// Thread safety: pure.
#ifndef TASKTRAIL_SERVICE_RULES_QUEUE_VERDICT_H_
#define TASKTRAIL_SERVICE_RULES_QUEUE_VERDICT_H_

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "service/rules/time_util.h"
#include "service/rules/typical_wait.h"
#include "tasktrail/v1/task.pb.h"
#include "tasktrail/v1/tracker.pb.h"

namespace tasktrail {

// The fewest samples for which a wait is judged against the model's p90.
inline constexpr int64_t kMinSamplesForVerdict = 5;

// A google.protobuf.Timestamp or Duration as stored: kept as its two fields
// so that what is echoed is exactly what was recorded.
struct ProtoSpan {
  int64_t seconds = 0;
  int32_t nanos = 0;

  // Since the Unix epoch, for a Timestamp.
  absl::Time AsTime() const { return TimeFromParts(seconds, nanos); }
  absl::Duration AsDuration() const {
    return DurationFromParts(seconds, nanos);
  }
  // A Timestamp left at its default (the epoch) counts as not set, as
  // IsSet(Timestamp) counts it.
  bool IsSet() const { return seconds != 0 || nanos != 0; }
  friend bool operator==(const ProtoSpan& a, const ProtoSpan& b) {
    return a.seconds == b.seconds && a.nanos == b.nanos;
  }
};

// What JudgeQueue reads of a task: its fields of those names. The strings
// view the v1::Task or the snapshot bytes they were read from and are valid
// as long as those are.
struct QueueFacts {
  absl::string_view task_id;
  absl::string_view model;
  v1::TaskState state = v1::TASK_STATE_UNSPECIFIED;
  ProtoSpan create_time;
  ProtoSpan queue_enter_time;
  ProtoSpan queue_exit_time;
  ProtoSpan last_upstream_event_time;
  absl::optional<ProtoSpan> last_poll_time;
  absl::string_view upstream_status;
  int64_t queue_position = 0;
  int32_t progress_percent = 0;
  absl::optional<ProtoSpan> upstream_eta;
  // failure.category, failure.message, failure.cause, failure.retryable.
  v1::FailureCategory failure_category = v1::FAILURE_CATEGORY_UNSPECIFIED;
  absl::string_view failure_message;
  absl::string_view failure_cause;
  bool failure_retryable = false;

  friend bool operator==(const QueueFacts& a, const QueueFacts& b);
};

// The facts of a parsed task.
QueueFacts QueueFactsOf(const v1::Task& task);

// The facts of a serialized v1::Task (a stored snapshot), read from its
// fields without parsing the rest: what QueueFactsOf would return for the
// parsed task. nullopt when the snapshot's fields are not well-formed wire
// format (see ForEachWireField), or the fields it reads are not (a
// submessage's own fields, a string that is not UTF-8): what a full parse
// would refuse in them. Fields it does not read are not looked into, so a
// snapshot whose other fields a full parse would refuse still has facts.
absl::optional<QueueFacts> ReadQueueFacts(absl::string_view snapshot);

// True when `task` is QUEUED or RUNNING and its last upstream event is more
// than `stale_after` before `now`: JudgeQueue's POLLING_STALLED.
bool IsPollingStalled(const QueueFacts& task, absl::Time now,
                      absl::Duration stale_after);

// Fills `status`, which is expected empty (it may live on an arena).
void JudgeQueue(const QueueFacts& task, const TypicalWait& typical,
                absl::Time now, absl::Duration stale_after,
                v1::QueueStatus* status);

// "45s", "12m", "1h05m": a span in the words support uses.
std::string HumanSpan(absl::Duration span);

}  // namespace tasktrail

#endif  // TASKTRAIL_SERVICE_RULES_QUEUE_VERDICT_H_
