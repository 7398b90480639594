// RecordEvent: the request's checks, event_id replays, occur_time, the
// lifecycle and refund-once rules; the append itself is PrepareAppend's.
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "service/rules/errors.h"
#include "service/rules/lifecycle.h"
#include "service/rules/status_macros.h"
#include "service/rules/time_util.h"
#include "service/rules/timeline.h"
#include "service/tracker/tracker.h"
#include "service/tracker/tracker_internal.h"

namespace tasktrail {
namespace {

using v1::Task;
using v1::TaskEvent;

using tracker_internal::CheckTaskId;

// " (charge C, adjusted +A)" when the task has adjustments; "" otherwise.
std::string ChargeBreakdown(const Task& task) {
  if (task.adjusted_units() == 0) return "";
  return absl::StrCat(" (charge ", task.charge_units(), ", adjusted ",
                      task.adjusted_units() > 0 ? "+" : "",
                      task.adjusted_units(), ")");
}

std::string FormatTime(const google::protobuf::Timestamp& time) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", FromProtoTime(time),
                          absl::UTCTimeZone());
}

}  // namespace

Tracker::Pending<v1::RecordEventResponse> Tracker::PrepareEvent(
    const v1::RecordEventRequest& request, absl::string_view actor,
    LockWait wait) {
  RETURN_IF_ERROR(CheckTaskId(request.task_id()));
  std::vector<v1::FieldViolation> violations;
  CheckIdentifier("event_id", request.event_id(), /*required=*/false,
                  kMaxIdBytes, &violations);
  if (!violations.empty()) {
    return InvalidArgument(kInvalidRequest, "", violations);
  }
  if (request.event_case() == v1::RecordEventRequest::EVENT_NOT_SET) {
    return EventFromRequest(request).status();
  }
  if (request.has_occur_time()) {
    RETURN_IF_ERROR(CheckTimestampField("occur_time", request.occur_time()));
  }
  const std::string digest =
      request.event_id().empty() ? "" : RequestDigest(request);

  absl::optional<StripeLocks::Lease> task_lease =
      Lock(task_locks_, request.task_id(), wait);
  if (!task_lease.has_value()) {
    return Pending<v1::RecordEventResponse>::LockBusy();
  }
  ASSIGN_OR_RETURN(Task task, GetStoredSnapshot(request.task_id()));

  // Replays are recognised before any other check, so that a late retry of
  // something already recorded always gets its original answer.
  if (!request.event_id().empty()) {
    ASSIGN_OR_RETURN(
        absl::optional<store::EventIdRecord> seen,
        store_->GetEventIdRecord(request.task_id(), request.event_id()));
    if (seen.has_value()) {
      if (seen->body_digest != digest) {
        return absl::AlreadyExistsError(absl::StrCat(
            "event_id ", request.event_id(), " was already recorded for task ",
            request.task_id(), " (seq ", seen->seq,
            ") with a different body; use a new event_id for a new event"));
      }
      v1::RecordEventResponse response;
      *response.mutable_task() = std::move(task);
      response.set_applied(false);
      response.set_seq(seen->seq);
      return response;
    }
  }

  ASSIGN_OR_RETURN(TaskEvent event, EventFromRequest(request));
  const absl::Time now = clock_->Now();
  if (request.has_occur_time()) {
    const absl::Time occur = FromProtoTime(request.occur_time());
    if (occur > now + options_.max_future_skew) {
      return InvalidField(
          "occur_time", "OCCUR_TIME_IN_FUTURE",
          absl::StrCat("occur_time ", FormatTime(request.occur_time()),
                       " is more than ",
                       absl::FormatDuration(options_.max_future_skew),
                       " in the future"));
    }
    // Nothing happens to a task before it exists; the clock-skew allowance
    // covers an upstream clock a little behind ours.
    const absl::Time created = FromProtoTime(task.create_time());
    if (occur < created - options_.max_future_skew) {
      return InvalidField(
          "occur_time", "OCCUR_TIME_BEFORE_TASK",
          absl::StrCat("occur_time ", FormatTime(request.occur_time()),
                       " is before the task was created at ",
                       FormatTime(task.create_time()), " (more than ",
                       absl::FormatDuration(options_.max_future_skew),
                       " of clock skew)"));
    }
    if (IsUpstreamReported(event.type()) &&
        IsSet(task.last_upstream_event_time()) &&
        occur < FromProtoTime(task.last_upstream_event_time())) {
      return InvalidField(
          "occur_time", "OCCUR_TIME_BEFORE_PREVIOUS",
          absl::StrCat("occur_time ", FormatTime(request.occur_time()),
                       " is before the task's previous upstream event at ",
                       FormatTime(task.last_upstream_event_time())));
    }
    *event.mutable_time() = request.occur_time();
  }
  RETURN_IF_ERROR(CheckEventTimes(
      event,
      request.has_occur_time() ? FromProtoTime(request.occur_time()) : now));

  ASSIGN_OR_RETURN(v1::TaskState next, StateAfter(task.state(), event.type()));
  if (event.type() == v1::EVENT_TYPE_REFUNDED) {
    if (task.refunded()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "task ", task.task_id(), " was already refunded at ",
          FormatTime(task.refund_time()), " (", task.refunded_units(),
          " units); a charge is refunded once"));
    }
    if (event.refunded().units() > ChargedUnits(task)) {
      return InvalidField(
          "refunded.units", "REFUND_EXCEEDS_CHARGE",
          absl::StrCat("refunded.units is ", event.refunded().units(),
                       " but the task was charged ", ChargedUnits(task),
                       " units", ChargeBreakdown(task)));
    }
  }
  if (event.type() == v1::EVENT_TYPE_CHARGE_ADJUSTED) {
    const int64_t delta = event.charge_adjusted().delta_units();
    const int64_t charged_after = ChargedUnits(task) + delta;
    const int64_t net_after = NetUnits(task) + delta;
    if (charged_after < 0 || net_after < 0) {
      return InvalidField(
          "charge_adjusted.delta_units", "ADJUSTMENT_BELOW_ZERO",
          absl::StrCat(
              "charge_adjusted.delta_units ", delta, " would take the ",
              charged_after < 0 ? "charge" : "net (after the refund)",
              " below 0: the task is charged ", ChargedUnits(task), " units",
              ChargeBreakdown(task), ", net ", NetUnits(task)));
    }
  }

  event.set_event_id(request.event_id());
  event.set_actor(std::string(actor));
  const Task previous = task;
  task.set_state(next);
  PendingWrite write;
  RETURN_IF_ERROR(PrepareAppend(previous, &task, &event, digest, {}, &write));
  write.leases.push_back(*std::move(task_lease));

  v1::RecordEventResponse response;
  response.set_applied(true);
  response.set_seq(event.seq());
  *response.mutable_task() = std::move(task);
  return Pending<v1::RecordEventResponse>(std::move(response),
                                          std::move(write));
}

}  // namespace tasktrail
