#include "service/queue_verdict.h"

#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "service/lifecycle.h"
#include "service/time_util.h"

namespace tasktrail {
namespace {

std::string TypicalText(const v1::Task& task, const TypicalWait& typical) {
  if (typical.samples == 0) {
    return absl::StrCat("no typical wait is known yet for ", task.model());
  }
  return absl::StrCat("typical wait for ", task.model(), ": p50 ",
                      HumanSpan(typical.p50), ", p90 ", HumanSpan(typical.p90),
                      " over ", typical.samples, " recent task",
                      typical.samples == 1 ? "" : "s");
}

std::string PositionText(const v1::Task& task) {
  return task.queue_position() > 0
             ? absl::StrCat(", position ", task.queue_position())
             : "";
}

std::string EtaText(const v1::Task& task) {
  if (!task.has_upstream_eta()) return "";
  return absl::StrCat(" The provider itself estimates about ",
                      HumanSpan(FromProtoDuration(task.upstream_eta())),
                      " remaining (its estimate, not a promise).");
}

std::string FinishedAdvice(const v1::Task& task) {
  switch (task.state()) {
    case v1::TASK_STATE_SUCCEEDED:
      return "Finished successfully; the results are on the task.";
    case v1::TASK_STATE_CANCELED:
      return absl::StrCat("Canceled",
                          task.failure().message().empty()
                              ? ""
                              : absl::StrCat(": ", task.failure().message()),
                          "; submit again only if the user still wants it.");
    default: {
      const std::string cause = task.failure().cause().empty()
                                    ? "the cause was not recognised"
                                    : task.failure().cause();
      // Built-in causes already say whether a retry helps.
      if (absl::StrContains(cause, "retry")) {
        return absl::StrCat("Failed: ", cause, ".");
      }
      if (task.failure().category() == v1::FAILURE_CATEGORY_UNKNOWN) {
        return absl::StrCat("Failed: ", cause,
                            ". Whether a retry helps is not known; read the "
                            "raw message before advising the user.");
      }
      return absl::StrCat(
          "Failed: ", cause, ". ",
          task.failure().retryable()
              ? "Retrying later should work."
              : "Retrying unchanged will fail again; fix the cause first.");
    }
  }
}

}  // namespace

std::string HumanSpan(absl::Duration span) {
  if (span < absl::ZeroDuration()) span = absl::ZeroDuration();
  const int64_t seconds = absl::ToInt64Seconds(span);
  if (seconds < 60) return absl::StrCat(seconds, "s");
  if (seconds < 3600) {
    return seconds % 60 == 0 || seconds >= 600
               ? absl::StrCat(seconds / 60, "m")
               : absl::StrFormat("%dm%02ds", seconds / 60, seconds % 60);
  }
  return absl::StrFormat("%dh%02dm", seconds / 3600, (seconds % 3600) / 60);
}

v1::QueueStatus JudgeQueue(const v1::Task& task, const TypicalWait& typical,
                           absl::Time now, absl::Duration stale_after) {
  v1::QueueStatus status;
  status.set_task_id(task.task_id());
  status.set_state(task.state());
  status.set_queued(task.state() == v1::TASK_STATE_SUBMITTED ||
                    task.state() == v1::TASK_STATE_QUEUED);
  const absl::Time entered = IsSet(task.queue_enter_time())
                                 ? FromProtoTime(task.queue_enter_time())
                                 : FromProtoTime(task.create_time());
  const absl::Time left = IsSet(task.queue_exit_time())
                              ? FromProtoTime(task.queue_exit_time())
                              : now;
  const absl::Duration in_queue = left - entered;
  *status.mutable_time_in_queue() = ToProtoDuration(in_queue);
  if (task.has_last_poll_time()) {
    *status.mutable_last_poll_time() = task.last_poll_time();
  }
  status.set_upstream_status(task.upstream_status());
  status.set_queue_position(task.queue_position());
  *status.mutable_typical_wait_p50() = ToProtoDuration(typical.p50);
  *status.mutable_typical_wait_p90() = ToProtoDuration(typical.p90);
  status.set_typical_wait_samples(typical.samples);
  if (task.has_upstream_eta() && !IsFinished(task.state())) {
    *status.mutable_upstream_eta() = task.upstream_eta();
  }

  const std::string poll =
      task.has_last_poll_time()
          ? absl::StrCat(", last poll ",
                         HumanSpan(now - FromProtoTime(task.last_poll_time())),
                         " ago")
          : ", not polled yet";
  if (IsFinished(task.state())) {
    status.set_verdict(v1::QUEUE_VERDICT_FINISHED);
    status.set_resubmit_advised(task.state() == v1::TASK_STATE_FAILED &&
                                task.failure().retryable());
    status.set_advice(FinishedAdvice(task));
    return status;
  }
  const bool upstream_side = task.state() == v1::TASK_STATE_QUEUED ||
                             task.state() == v1::TASK_STATE_RUNNING;
  const absl::Time last_upstream =
      FromProtoTime(task.last_upstream_event_time());
  if (upstream_side && now - last_upstream > stale_after) {
    // An estimate older than the stale limit is no estimate.
    status.clear_upstream_eta();
    status.set_verdict(v1::QUEUE_VERDICT_POLLING_STALLED);
    status.set_advice(absl::StrCat(
        "No update from the provider for ", HumanSpan(now - last_upstream),
        " (more than ", HumanSpan(stale_after),
        "): the gateway's poller has probably stopped polling it. Escalate to "
        "the gateway team first (do not report it to the provider yet); "
        "resubmitting would only add a second charge."));
    return status;
  }
  switch (task.state()) {
    case v1::TASK_STATE_SUBMITTED:
      status.set_verdict(v1::QUEUE_VERDICT_WAITING_FOR_UPSTREAM);
      status.set_advice(absl::StrCat(
          "Submitted ", HumanSpan(in_queue),
          " ago and not yet accepted by the provider; do not resubmit, that "
          "would only add a second charge.",
          EtaText(task)));
      break;
    case v1::TASK_STATE_RUNNING:
      status.set_verdict(v1::QUEUE_VERDICT_RUNNING);
      status.set_advice(absl::StrCat("The provider is generating (progress ",
                                     task.progress_percent(), "%", poll,
                                     "); do not resubmit.", EtaText(task)));
      break;
    default:
      if (typical.samples >= kMinSamplesForVerdict && in_queue > typical.p90) {
        status.set_verdict(v1::QUEUE_VERDICT_QUEUED_LONGER_THAN_USUAL);
        status.set_advice(absl::StrCat(
            "Queued at the provider for ", HumanSpan(in_queue),
            PositionText(task), poll, "; that is longer than usual (",
            TypicalText(task, typical),
            "). The provider is slow, but resubmitting would queue a second, "
            "charged job; wait, or cancel and refund.",
            EtaText(task)));
      } else {
        status.set_verdict(v1::QUEUE_VERDICT_QUEUED_NORMAL);
        status.set_advice(
            absl::StrCat("Queued at the provider for ", HumanSpan(in_queue),
                         PositionText(task), poll, "; ",
                         typical.samples >= kMinSamplesForVerdict
                             ? "that is a normal wait"
                             : "too few finished tasks to call it usual or not",
                         " (", TypicalText(task, typical),
                         "). Do not resubmit.", EtaText(task)));
      }
  }
  return status;
}

}  // namespace tasktrail
