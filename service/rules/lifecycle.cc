#include "service/rules/lifecycle.h"

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace tasktrail {

using v1::EventType;
using v1::TaskState;

bool IsFinished(TaskState state) {
  return state == v1::TASK_STATE_SUCCEEDED || state == v1::TASK_STATE_FAILED ||
         state == v1::TASK_STATE_CANCELED;
}

bool IsUpstreamReported(EventType type) {
  switch (type) {
    case v1::EVENT_TYPE_QUEUED:
    case v1::EVENT_TYPE_STARTED:
    case v1::EVENT_TYPE_POLLED:
    case v1::EVENT_TYPE_COMPLETED:
    case v1::EVENT_TYPE_FAILED:
    case v1::EVENT_TYPE_CANCELED:
      return true;
    default:
      return false;
  }
}

bool IsFinishingEvent(EventType type) {
  return type == v1::EVENT_TYPE_COMPLETED || type == v1::EVENT_TYPE_FAILED ||
         type == v1::EVENT_TYPE_CANCELED;
}

absl::StatusOr<TaskState> StateAfter(TaskState current, EventType type) {
  auto refuse = [&](absl::string_view why) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot record ", absl::AsciiStrToLower(EventTypeName(type)),
        ": task is ", StateName(current), why));
  };
  switch (type) {
    case v1::EVENT_TYPE_QUEUED:
      if (current == v1::TASK_STATE_SUBMITTED) return v1::TASK_STATE_QUEUED;
      return refuse("; queued follows only SUBMITTED");
    case v1::EVENT_TYPE_STARTED:
      if (current == v1::TASK_STATE_SUBMITTED ||
          current == v1::TASK_STATE_QUEUED) {
        return v1::TASK_STATE_RUNNING;
      }
      return refuse("; started follows only SUBMITTED or QUEUED");
    case v1::EVENT_TYPE_COMPLETED:
    case v1::EVENT_TYPE_FAILED:
    case v1::EVENT_TYPE_CANCELED:
      if (type != v1::EVENT_TYPE_CANCELED &&
          (current == v1::TASK_STATE_FAILED ||
           current == v1::TASK_STATE_CANCELED)) {
        return refuse(
            ", which is final; send what the provider reported afterwards as "
            "late_result, which keeps the evidence without changing the "
            "state");
      }
      if (IsFinished(current)) return refuse(", which is final");
      if (type == v1::EVENT_TYPE_COMPLETED) return v1::TASK_STATE_SUCCEEDED;
      if (type == v1::EVENT_TYPE_FAILED) return v1::TASK_STATE_FAILED;
      return v1::TASK_STATE_CANCELED;
    case v1::EVENT_TYPE_POLLED:
      if (IsFinished(current)) {
        return refuse(", which is final; polls are allowed until it finishes");
      }
      return current;
    case v1::EVENT_TYPE_DOWNLOADED:
      if (current == v1::TASK_STATE_SUCCEEDED) return current;
      return refuse("; downloads are allowed only after SUCCEEDED");
    case v1::EVENT_TYPE_REFUNDED:
      if (current == v1::TASK_STATE_FAILED ||
          current == v1::TASK_STATE_CANCELED) {
        return current;
      }
      return refuse("; refunds are allowed only after FAILED or CANCELED");
    case v1::EVENT_TYPE_LATE_UPSTREAM_RESULT:
      if (current == v1::TASK_STATE_FAILED ||
          current == v1::TASK_STATE_CANCELED) {
        return current;
      }
      return refuse(
          "; late results are recorded only after FAILED or CANCELED (a "
          "result of a task still in flight is completed or failed)");
    case v1::EVENT_TYPE_NOTE_ADDED:
    case v1::EVENT_TYPE_DUPLICATE_BLOCKED:
    case v1::EVENT_TYPE_CHARGE_ADJUSTED:
      return current;
    case v1::EVENT_TYPE_SUBMITTED:
      return absl::InvalidArgumentError(
          "a submitted event is created only by SubmitTask");
    default:
      return absl::InvalidArgumentError("event type is not set");
  }
}

absl::string_view StateName(TaskState state) {
  switch (state) {
    case v1::TASK_STATE_SUBMITTED:
      return "SUBMITTED";
    case v1::TASK_STATE_QUEUED:
      return "QUEUED";
    case v1::TASK_STATE_RUNNING:
      return "RUNNING";
    case v1::TASK_STATE_SUCCEEDED:
      return "SUCCEEDED";
    case v1::TASK_STATE_FAILED:
      return "FAILED";
    case v1::TASK_STATE_CANCELED:
      return "CANCELED";
    default:
      return "UNSPECIFIED";
  }
}

absl::string_view EventTypeName(EventType type) {
  const std::string& full = v1::EventType_Name(type);
  constexpr absl::string_view kPrefix = "EVENT_TYPE_";
  absl::string_view name(full);
  if (absl::StartsWith(name, kPrefix)) name.remove_prefix(kPrefix.size());
  return name.empty() ? absl::string_view("UNSPECIFIED") : name;
}

}  // namespace tasktrail
