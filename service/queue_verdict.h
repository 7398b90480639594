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
#ifndef TASKTRAIL_SERVICE_QUEUE_VERDICT_H_
#define TASKTRAIL_SERVICE_QUEUE_VERDICT_H_

#include "absl/time/time.h"
#include "service/queue_waits.h"
#include "tasktrail/v1/tracker.pb.h"

namespace tasktrail {

// The fewest samples for which a wait is judged against the model's p90.
inline constexpr int64_t kMinSamplesForVerdict = 5;

v1::QueueStatus JudgeQueue(const v1::Task& task, const TypicalWait& typical,
                           absl::Time now, absl::Duration stale_after);

// "45s", "12m", "1h05m": a span in the words support uses.
std::string HumanSpan(absl::Duration span);

}  // namespace tasktrail

#endif  // TASKTRAIL_SERVICE_QUEUE_VERDICT_H_
