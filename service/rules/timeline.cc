#include "service/rules/timeline.h"

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/message_differencer.h"
#include "service/rules/digests.h"
#include "service/rules/errors.h"
#include "service/rules/lifecycle.h"
#include "service/rules/limits.h"
#include "service/rules/scrubber.h"
#include "service/rules/status_macros.h"
#include "service/rules/time_util.h"

namespace tasktrail {
namespace {

using v1::RecordEventRequest;
using v1::Task;
using v1::TaskEvent;

constexpr char kRfc3339[] = "%Y-%m-%dT%H:%M:%SZ";

absl::Status CheckProgress(absl::string_view field, int32_t progress) {
  if (progress < 0 || progress > 100) {
    return InvalidField(field, "FIELD_OUT_OF_RANGE",
                        absl::StrCat(field, " is ", progress,
                                     "; it must be between 0 and 100"));
  }
  return absl::OkStatus();
}

absl::Status CheckNonNegative(absl::string_view field, int64_t value) {
  if (value < 0) {
    return InvalidField(
        field, "FIELD_OUT_OF_RANGE",
        absl::StrCat(field, " is ", value, "; it must not be negative"));
  }
  return absl::OkStatus();
}

absl::Status CheckHttpStatus(absl::string_view field, int32_t status) {
  if (status != 0 && (status < 100 || status > 599)) {
    return InvalidField(field, "FIELD_OUT_OF_RANGE",
                        absl::StrCat(field, " is ", status,
                                     "; it must be 0 (none) or 100-599"));
  }
  return absl::OkStatus();
}

// Free text: its length only.
absl::Status CheckLength(absl::string_view field, absl::string_view value,
                         size_t max_bytes) {
  std::vector<v1::FieldViolation> violations;
  CheckString(field, value, /*required=*/false, max_bytes, &violations);
  if (violations.empty()) return absl::OkStatus();
  return InvalidArgument(kInvalidRequest, "", violations);
}

// An identifier (an id, a name, a URI): its length and no control character.
absl::Status CheckId(absl::string_view field, absl::string_view value,
                     size_t max_bytes) {
  std::vector<v1::FieldViolation> violations;
  CheckIdentifier(field, value, /*required=*/false, max_bytes, &violations);
  if (violations.empty()) return absl::OkStatus();
  return InvalidArgument(kInvalidRequest, "", violations);
}

}  // namespace

absl::Status CheckFailureEvidence(absl::string_view prefix,
                                  const v1::FailedDetail& failure) {
  RETURN_IF_ERROR(CheckHttpStatus(absl::StrCat(prefix, "http_status"),
                                  failure.http_status()));
  RETURN_IF_ERROR(CheckLength(absl::StrCat(prefix, "error_code"),
                              failure.error_code(), kMaxIdBytes));
  return CheckLength(absl::StrCat(prefix, "message"), failure.message(),
                     kMaxTextBytes);
}

absl::StatusOr<v1::TaskState> LateOutcome(const v1::LateResultDetail& late) {
  const bool completed = late.result_uris_size() > 0;
  const bool failed = late.http_status() >= 400 || !late.error_code().empty() ||
                      !late.message().empty();
  if (completed && failed) {
    return InvalidField(
        "late_result", "LATE_RESULT_AMBIGUOUS",
        "late_result carries both result_uris (the provider completed) and "
        "failure evidence (http_status 400 or more, error_code or message); "
        "send what the provider said: one or the other");
  }
  if (!completed && !failed) {
    return InvalidField(
        "late_result", "FIELD_REQUIRED",
        "late_result needs result_uris (the provider completed) or failure "
        "evidence (http_status 400 or more, error_code or message)");
  }
  return completed ? v1::TASK_STATE_SUCCEEDED : v1::TASK_STATE_FAILED;
}

absl::StatusOr<TaskEvent> EventFromRequest(const RecordEventRequest& request) {
  TaskEvent event;
  switch (request.event_case()) {
    case RecordEventRequest::kQueued: {
      const auto& d = request.queued();
      RETURN_IF_ERROR(CheckId("queued.upstream_task_id", d.upstream_task_id(),
                              kMaxIdBytes));
      RETURN_IF_ERROR(
          CheckNonNegative("queued.queue_position", d.queue_position()));
      RETURN_IF_ERROR(CheckId("queued.route", d.route(), kMaxIdBytes));
      event.set_type(v1::EVENT_TYPE_QUEUED);
      *event.mutable_queued() = d;
      break;
    }
    case RecordEventRequest::kStarted:
      RETURN_IF_ERROR(CheckProgress("started.progress_percent",
                                    request.started().progress_percent()));
      event.set_type(v1::EVENT_TYPE_STARTED);
      *event.mutable_started() = request.started();
      break;
    case RecordEventRequest::kPolled: {
      const auto& d = request.polled();
      RETURN_IF_ERROR(CheckLength("polled.upstream_status", d.upstream_status(),
                                  kMaxIdBytes));
      RETURN_IF_ERROR(
          CheckProgress("polled.progress_percent", d.progress_percent()));
      RETURN_IF_ERROR(
          CheckNonNegative("polled.queue_position", d.queue_position()));
      RETURN_IF_ERROR(CheckHttpStatus("polled.http_status", d.http_status()));
      if (d.has_eta()) {
        RETURN_IF_ERROR(CheckDurationField("polled.eta", d.eta()));
        const absl::Duration eta = FromProtoDuration(d.eta());
        if (eta < absl::ZeroDuration() || eta > kMaxUpstreamEta) {
          return InvalidField(
              "polled.eta", "FIELD_OUT_OF_RANGE",
              absl::StrCat("polled.eta is ", absl::FormatDuration(eta),
                           "; it must be between 0s and ",
                           absl::FormatDuration(kMaxUpstreamEta),
                           " (30 days)"));
        }
      }
      event.set_type(v1::EVENT_TYPE_POLLED);
      *event.mutable_polled() = d;
      break;
    }
    case RecordEventRequest::kCompleted: {
      const auto& d = request.completed();
      if (d.result_uris_size() > kMaxResultUris) {
        return InvalidField("completed.result_uris", "FIELD_TOO_LONG",
                            absl::StrCat("at most ", kMaxResultUris,
                                         " result URIs are allowed"));
      }
      for (int i = 0; i < d.result_uris_size(); ++i) {
        RETURN_IF_ERROR(CheckId(absl::StrCat("completed.result_uris[", i, "]"),
                                d.result_uris(i), kMaxUriBytes));
      }
      if (d.has_expire_time()) {
        RETURN_IF_ERROR(
            CheckTimestampField("completed.expire_time", d.expire_time()));
      }
      event.set_type(v1::EVENT_TYPE_COMPLETED);
      *event.mutable_completed() = d;
      break;
    }
    case RecordEventRequest::kFailed: {
      const auto& d = request.failed();
      RETURN_IF_ERROR(CheckFailureEvidence("failed.", d));
      event.set_type(v1::EVENT_TYPE_FAILED);
      *event.mutable_failed() = d;
      break;
    }
    case RecordEventRequest::kDownloaded: {
      const auto& d = request.downloaded();
      RETURN_IF_ERROR(CheckId("downloaded.uri", d.uri(), kMaxUriBytes));
      RETURN_IF_ERROR(CheckId("downloaded.client", d.client(), kMaxIdBytes));
      event.set_type(v1::EVENT_TYPE_DOWNLOADED);
      *event.mutable_downloaded() = d;
      break;
    }
    case RecordEventRequest::kCanceled:
      RETURN_IF_ERROR(CheckLength("canceled.reason",
                                  request.canceled().reason(), kMaxTextBytes));
      event.set_type(v1::EVENT_TYPE_CANCELED);
      *event.mutable_canceled() = request.canceled();
      break;
    case RecordEventRequest::kRefunded:
      RETURN_IF_ERROR(
          CheckNonNegative("refunded.units", request.refunded().units()));
      RETURN_IF_ERROR(CheckLength("refunded.reason",
                                  request.refunded().reason(), kMaxTextBytes));
      event.set_type(v1::EVENT_TYPE_REFUNDED);
      *event.mutable_refunded() = request.refunded();
      break;
    case RecordEventRequest::kChargeAdjusted: {
      const auto& d = request.charge_adjusted();
      if (d.delta_units() == 0) {
        return InvalidField("charge_adjusted.delta_units", "FIELD_REQUIRED",
                            "charge_adjusted.delta_units must not be 0: it is "
                            "the units added (positive) or taken (negative)");
      }
      RETURN_IF_ERROR(
          CheckLength("charge_adjusted.reason", d.reason(), kMaxTextBytes));
      RETURN_IF_ERROR(
          CheckId("charge_adjusted.ledger_ref", d.ledger_ref(), kMaxIdBytes));
      event.set_type(v1::EVENT_TYPE_CHARGE_ADJUSTED);
      *event.mutable_charge_adjusted() = d;
      break;
    }
    case RecordEventRequest::kLateResult: {
      const auto& d = request.late_result();
      RETURN_IF_ERROR(CheckLength("late_result.upstream_status",
                                  d.upstream_status(), kMaxIdBytes));
      if (d.result_uris_size() > kMaxResultUris) {
        return InvalidField("late_result.result_uris", "FIELD_TOO_LONG",
                            absl::StrCat("at most ", kMaxResultUris,
                                         " result URIs are allowed"));
      }
      for (int i = 0; i < d.result_uris_size(); ++i) {
        RETURN_IF_ERROR(
            CheckId(absl::StrCat("late_result.result_uris[", i, "]"),
                    d.result_uris(i), kMaxUriBytes));
      }
      v1::FailedDetail evidence;
      evidence.set_http_status(d.http_status());
      evidence.set_error_code(d.error_code());
      evidence.set_message(d.message());
      RETURN_IF_ERROR(CheckFailureEvidence("late_result.", evidence));
      RETURN_IF_ERROR(LateOutcome(d).status());
      event.set_type(v1::EVENT_TYPE_LATE_UPSTREAM_RESULT);
      *event.mutable_late_result() = d;
      break;
    }
    case RecordEventRequest::EVENT_NOT_SET:
      return InvalidField("event", "FIELD_REQUIRED",
                          "one event (queued, started, polled, completed, "
                          "failed, downloaded, canceled, refunded, "
                          "charge_adjusted, late_result) is required");
  }
  return event;
}

absl::Status CheckEventTimes(const TaskEvent& event, absl::Time event_time) {
  if (event.type() == v1::EVENT_TYPE_COMPLETED &&
      event.completed().has_expire_time()) {
    const absl::Time expire = FromProtoTime(event.completed().expire_time());
    if (expire <= event_time) {
      return InvalidField(
          "completed.expire_time", "FIELD_OUT_OF_RANGE",
          absl::StrCat(
              "completed.expire_time ",
              absl::FormatTime(kRfc3339, expire, absl::UTCTimeZone()),
              " is not after the completion itself (",
              absl::FormatTime(kRfc3339, event_time, absl::UTCTimeZone()),
              "); results cannot expire before they exist"));
    }
  }
  return absl::OkStatus();
}

void ScrubEventText(TaskEvent* event) {
  auto scrub = [](std::string* text) {
    if (ContainsSecret(*text)) *text = ScrubSecrets(*text);
  };
  switch (event->detail_case()) {
    case TaskEvent::kQueued:
      scrub(event->mutable_queued()->mutable_route());
      break;
    case TaskEvent::kPolled:
      scrub(event->mutable_polled()->mutable_upstream_status());
      break;
    case TaskEvent::kCompleted:
      for (std::string& uri :
           *event->mutable_completed()->mutable_result_uris()) {
        scrub(&uri);
      }
      break;
    case TaskEvent::kFailed:
      scrub(event->mutable_failed()->mutable_message());
      scrub(event->mutable_failed()->mutable_error_code());
      break;
    case TaskEvent::kDownloaded:
      scrub(event->mutable_downloaded()->mutable_uri());
      scrub(event->mutable_downloaded()->mutable_client());
      break;
    case TaskEvent::kCanceled:
      scrub(event->mutable_canceled()->mutable_reason());
      break;
    case TaskEvent::kRefunded:
      scrub(event->mutable_refunded()->mutable_reason());
      break;
    case TaskEvent::kNote:
      scrub(event->mutable_note()->mutable_text());
      scrub(event->mutable_note()->mutable_final_cause());
      break;
    case TaskEvent::kChargeAdjusted:
      scrub(event->mutable_charge_adjusted()->mutable_reason());
      scrub(event->mutable_charge_adjusted()->mutable_ledger_ref());
      break;
    case TaskEvent::kLateResult: {
      v1::LateResultDetail* late = event->mutable_late_result();
      scrub(late->mutable_upstream_status());
      for (std::string& uri : *late->mutable_result_uris()) scrub(&uri);
      scrub(late->mutable_error_code());
      scrub(late->mutable_message());
      break;
    }
    default:
      break;
  }
}

void ApplyToSnapshot(const TaskEvent& event, Task* task) {
  const google::protobuf::Timestamp& time = event.time();
  const absl::Time when = FromProtoTime(time);
  if (IsUpstreamReported(event.type()) &&
      (!IsSet(task->last_upstream_event_time()) ||
       FromProtoTime(task->last_upstream_event_time()) < when)) {
    *task->mutable_last_upstream_event_time() = time;
  }
  auto leave_queue = [&] {
    if (!IsSet(task->queue_exit_time()))
      *task->mutable_queue_exit_time() = time;
  };
  switch (event.type()) {
    case v1::EVENT_TYPE_QUEUED:
      if (!event.queued().upstream_task_id().empty()) {
        task->set_upstream_task_id(event.queued().upstream_task_id());
      }
      task->set_queue_position(event.queued().queue_position());
      task->set_route(event.queued().route());
      *task->mutable_queue_enter_time() = time;
      break;
    case v1::EVENT_TYPE_STARTED:
      task->set_progress_percent(event.started().progress_percent());
      task->set_queue_position(0);
      leave_queue();
      break;
    case v1::EVENT_TYPE_POLLED: {
      const auto& d = event.polled();
      if (!d.upstream_status().empty()) {
        task->set_upstream_status(d.upstream_status());
      }
      task->set_progress_percent(d.progress_percent());
      task->set_queue_position(d.queue_position());
      *task->mutable_last_poll_time() = time;
      task->set_poll_count(task->poll_count() + 1);
      if (d.has_eta()) {
        *task->mutable_upstream_eta() = d.eta();
      } else {
        task->clear_upstream_eta();
      }
      break;
    }
    case v1::EVENT_TYPE_COMPLETED:
      *task->mutable_result_uris() = event.completed().result_uris();
      if (event.completed().has_expire_time()) {
        *task->mutable_result_expire_time() = event.completed().expire_time();
      }
      task->set_progress_percent(100);
      task->set_queue_position(0);
      task->clear_upstream_eta();
      leave_queue();
      *task->mutable_finish_time() = time;
      break;
    case v1::EVENT_TYPE_FAILED: {
      const auto& d = event.failed();
      v1::Failure* failure = task->mutable_failure();
      failure->set_http_status(d.http_status());
      failure->set_error_code(d.error_code());
      failure->set_message(d.message());
      if (failure->category() == v1::FAILURE_CATEGORY_UNSPECIFIED) {
        failure->set_category(v1::FAILURE_CATEGORY_UNKNOWN);
        failure->set_origin(v1::FAILURE_ORIGIN_UNKNOWN);
      }
      if (d.refunded() && !task->refunded()) {
        task->set_refunded(true);
        *task->mutable_refund_time() = event.record_time();
        task->set_refunded_units(ChargedUnits(*task));
      }
      task->clear_upstream_eta();
      leave_queue();
      *task->mutable_finish_time() = time;
      break;
    }
    case v1::EVENT_TYPE_CANCELED: {
      v1::Failure* failure = task->mutable_failure();
      failure->set_category(v1::FAILURE_CATEGORY_CANCELED);
      failure->set_origin(v1::FAILURE_ORIGIN_UNKNOWN);
      failure->set_message(event.canceled().reason());
      failure->set_cause(event.canceled().reason().empty()
                             ? "the task was canceled"
                             : absl::StrCat("the task was canceled: ",
                                            event.canceled().reason()));
      task->clear_upstream_eta();
      leave_queue();
      *task->mutable_finish_time() = time;
      break;
    }
    case v1::EVENT_TYPE_DOWNLOADED:
      task->set_download_count(task->download_count() + 1);
      *task->mutable_last_download_time() = time;
      break;
    case v1::EVENT_TYPE_REFUNDED:
      task->set_refunded(true);
      *task->mutable_refund_time() = event.record_time();
      task->set_refunded_units(event.refunded().units() > 0
                                   ? event.refunded().units()
                                   : ChargedUnits(*task));
      break;
    case v1::EVENT_TYPE_CHARGE_ADJUSTED:
      task->set_adjusted_units(task->adjusted_units() +
                               event.charge_adjusted().delta_units());
      if (!event.charge_adjusted().ledger_ref().empty()) {
        task->set_last_ledger_ref(event.charge_adjusted().ledger_ref());
      }
      break;
    case v1::EVENT_TYPE_LATE_UPSTREAM_RESULT: {
      *task->mutable_late_result_time() = time;
      absl::StatusOr<v1::TaskState> outcome = LateOutcome(event.late_result());
      task->set_late_outcome(outcome.ok() ? *outcome
                                          : v1::TASK_STATE_UNSPECIFIED);
      break;
    }
    case v1::EVENT_TYPE_NOTE_ADDED:
      *task->add_notes() = event.note();
      break;
    case v1::EVENT_TYPE_DUPLICATE_BLOCKED:
      task->set_duplicate_count(task->duplicate_count() + 1);
      *task->mutable_last_duplicate_time() = time;
      break;
    default:
      break;
  }
  task->set_net_units(NetUnits(*task));
}

int64_t ChargedUnits(const Task& task) {
  return task.charge_units() + task.adjusted_units();
}

int64_t NetUnits(const Task& task) {
  return ChargedUnits(task) - (task.refunded() ? task.refunded_units() : 0);
}

bool FoldsInto(const TaskEvent& last, const TaskEvent& poll) {
  if (last.type() != v1::EVENT_TYPE_POLLED ||
      poll.type() != v1::EVENT_TYPE_POLLED) {
    return false;
  }
  return google::protobuf::util::MessageDifferencer::Equals(last.polled(),
                                                            poll.polled());
}

void Fold(const TaskEvent& poll, TaskEvent* last) {
  last->set_repeat_count(std::max<int64_t>(last->repeat_count(), 1) + 1);
  *last->mutable_last_time() = poll.time();
}

std::string RequestDigest(const RecordEventRequest& request) {
  RecordEventRequest body = request;
  body.clear_task_id();
  body.clear_event_id();
  return Sha256(DeterministicBytes(body));
}

}  // namespace tasktrail
