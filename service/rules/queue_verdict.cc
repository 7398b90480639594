#include "service/rules/queue_verdict.h"

#include <string>
#include <tuple>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "service/rules/lifecycle.h"
#include "service/rules/time_util.h"
#include "service/rules/wire_fields.h"

namespace tasktrail {
namespace {

std::string TypicalText(const QueueFacts& task, const TypicalWait& typical) {
  if (typical.samples == 0) {
    return absl::StrCat("no typical wait is known yet for ", task.model);
  }
  return absl::StrCat("typical wait for ", task.model, ": p50 ",
                      HumanSpan(typical.p50), ", p90 ", HumanSpan(typical.p90),
                      " over ", typical.samples, " recent task",
                      typical.samples == 1 ? "" : "s");
}

std::string PositionText(const QueueFacts& task) {
  return task.queue_position > 0
             ? absl::StrCat(", position ", task.queue_position)
             : "";
}

std::string EtaText(const QueueFacts& task) {
  if (!task.upstream_eta.has_value()) return "";
  return absl::StrCat(" The provider itself estimates about ",
                      HumanSpan(task.upstream_eta->AsDuration()),
                      " remaining (its estimate, not a promise).");
}

std::string FinishedAdvice(const QueueFacts& task) {
  switch (task.state) {
    case v1::TASK_STATE_SUCCEEDED:
      return "Finished successfully; the results are on the task.";
    case v1::TASK_STATE_CANCELED:
      return absl::StrCat("Canceled",
                          task.failure_message.empty()
                              ? ""
                              : absl::StrCat(": ", task.failure_message),
                          "; submit again only if the user still wants it.");
    default: {
      const absl::string_view cause = task.failure_cause.empty()
                                          ? "the cause was not recognised"
                                          : task.failure_cause;
      // Built-in causes already say whether a retry helps.
      if (absl::StrContains(cause, "retry")) {
        return absl::StrCat("Failed: ", cause, ".");
      }
      if (task.failure_category == v1::FAILURE_CATEGORY_UNKNOWN) {
        return absl::StrCat("Failed: ", cause,
                            ". Whether a retry helps is not known; read the "
                            "raw message before advising the user.");
      }
      return absl::StrCat(
          "Failed: ", cause, ". ",
          task.failure_retryable
              ? "Retrying later should work."
              : "Retrying unchanged will fail again; fix the cause first.");
    }
  }
}

ProtoSpan SpanOf(const google::protobuf::Timestamp& time) {
  return ProtoSpan{time.seconds(), time.nanos()};
}

ProtoSpan SpanOf(const google::protobuf::Duration& duration) {
  return ProtoSpan{duration.seconds(), duration.nanos()};
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

QueueFacts QueueFactsOf(const v1::Task& task) {
  QueueFacts facts;
  facts.task_id = task.task_id();
  facts.model = task.model();
  facts.state = task.state();
  facts.create_time = SpanOf(task.create_time());
  facts.queue_enter_time = SpanOf(task.queue_enter_time());
  facts.queue_exit_time = SpanOf(task.queue_exit_time());
  facts.last_upstream_event_time = SpanOf(task.last_upstream_event_time());
  if (task.has_last_poll_time()) {
    facts.last_poll_time = SpanOf(task.last_poll_time());
  }
  facts.upstream_status = task.upstream_status();
  facts.queue_position = task.queue_position();
  facts.progress_percent = task.progress_percent();
  if (task.has_upstream_eta()) facts.upstream_eta = SpanOf(task.upstream_eta());
  facts.failure_category = task.failure().category();
  facts.failure_message = task.failure().message();
  facts.failure_cause = task.failure().cause();
  facts.failure_retryable = task.failure().retryable();
  return facts;
}

bool operator==(const QueueFacts& a, const QueueFacts& b) {
  const auto fields = [](const QueueFacts& f) {
    return std::tie(f.task_id, f.model, f.state, f.create_time,
                    f.queue_enter_time, f.queue_exit_time,
                    f.last_upstream_event_time, f.last_poll_time,
                    f.upstream_status, f.queue_position, f.progress_percent,
                    f.upstream_eta, f.failure_category, f.failure_message,
                    f.failure_cause, f.failure_retryable);
  };
  return fields(a) == fields(b);
}

absl::optional<QueueFacts> ReadQueueFacts(absl::string_view snapshot) {
  // A Timestamp's or Duration's fields are merged into `span`, so that a
  // submessage repeated on the wire merges field by field as protobuf's
  // parser merges it.
  const auto merge_span = [](absl::string_view payload, ProtoSpan* span) {
    static_assert(int{google::protobuf::Timestamp::kSecondsFieldNumber} ==
                      int{google::protobuf::Duration::kSecondsFieldNumber} &&
                  int{google::protobuf::Timestamp::kNanosFieldNumber} ==
                      int{google::protobuf::Duration::kNanosFieldNumber});
    return ForEachWireField(payload, [span](const WireField& field) {
      if (field.type != WireType::kVarint) return;
      if (field.number == google::protobuf::Timestamp::kSecondsFieldNumber) {
        span->seconds = static_cast<int64_t>(field.value);
      } else if (field.number ==
                 google::protobuf::Timestamp::kNanosFieldNumber) {
        span->nanos = static_cast<int32_t>(field.value);
      }
    });
  };
  // A span that may be absent: present once it occurs on the wire.
  const auto merge_optional_span = [&merge_span](
                                       absl::string_view payload,
                                       absl::optional<ProtoSpan>* span) {
    if (!span->has_value()) span->emplace();
    return merge_span(payload, &**span);
  };
  QueueFacts facts;
  bool well_formed = true;
  const auto read_failure = [&facts](const WireField& field) {
    using v1::Failure;
    if (field.type == WireType::kVarint) {
      if (field.number == Failure::kCategoryFieldNumber) {
        facts.failure_category =
            static_cast<v1::FailureCategory>(static_cast<int32_t>(field.value));
      } else if (field.number == Failure::kRetryableFieldNumber) {
        facts.failure_retryable = field.value != 0;
      }
    } else if (field.type == WireType::kLengthDelimited) {
      if (field.number == Failure::kMessageFieldNumber) {
        facts.failure_message = field.payload;
      } else if (field.number == Failure::kCauseFieldNumber) {
        facts.failure_cause = field.payload;
      }
    }
  };
  const bool framed = ForEachWireField(snapshot, [&](const WireField& field) {
    using v1::Task;
    if (field.type == WireType::kVarint) {
      switch (field.number) {
        case Task::kStateFieldNumber:
          facts.state =
              static_cast<v1::TaskState>(static_cast<int32_t>(field.value));
          break;
        case Task::kQueuePositionFieldNumber:
          facts.queue_position = static_cast<int64_t>(field.value);
          break;
        case Task::kProgressPercentFieldNumber:
          facts.progress_percent = static_cast<int32_t>(field.value);
          break;
      }
      return;
    }
    if (field.type != WireType::kLengthDelimited) return;
    switch (field.number) {
      case Task::kTaskIdFieldNumber:
        facts.task_id = field.payload;
        break;
      case Task::kModelFieldNumber:
        facts.model = field.payload;
        break;
      case Task::kUpstreamStatusFieldNumber:
        facts.upstream_status = field.payload;
        break;
      case Task::kFailureFieldNumber:
        well_formed &= ForEachWireField(field.payload, read_failure);
        break;
      case Task::kCreateTimeFieldNumber:
        well_formed &= merge_span(field.payload, &facts.create_time);
        break;
      case Task::kQueueEnterTimeFieldNumber:
        well_formed &= merge_span(field.payload, &facts.queue_enter_time);
        break;
      case Task::kQueueExitTimeFieldNumber:
        well_formed &= merge_span(field.payload, &facts.queue_exit_time);
        break;
      case Task::kLastUpstreamEventTimeFieldNumber:
        well_formed &=
            merge_span(field.payload, &facts.last_upstream_event_time);
        break;
      case Task::kLastPollTimeFieldNumber:
        well_formed &=
            merge_optional_span(field.payload, &facts.last_poll_time);
        break;
      case Task::kUpstreamEtaFieldNumber:
        well_formed &= merge_optional_span(field.payload, &facts.upstream_eta);
        break;
    }
  });
  // The strings are copied into the answer, whose string fields must hold
  // UTF-8 as much as the snapshot's.
  if (!framed || !well_formed || !IsValidUtf8(facts.task_id) ||
      !IsValidUtf8(facts.model) || !IsValidUtf8(facts.upstream_status) ||
      !IsValidUtf8(facts.failure_message) ||
      !IsValidUtf8(facts.failure_cause)) {
    return absl::nullopt;
  }
  return facts;
}

bool IsPollingStalled(const QueueFacts& task, absl::Time now,
                      absl::Duration stale_after) {
  const bool upstream_side = task.state == v1::TASK_STATE_QUEUED ||
                             task.state == v1::TASK_STATE_RUNNING;
  return upstream_side &&
         now - task.last_upstream_event_time.AsTime() > stale_after;
}

void JudgeQueue(const QueueFacts& task, const TypicalWait& typical,
                absl::Time now, absl::Duration stale_after,
                v1::QueueStatus* status) {
  status->set_task_id(task.task_id.data(), task.task_id.size());
  status->set_state(task.state);
  status->set_queued(task.state == v1::TASK_STATE_SUBMITTED ||
                     task.state == v1::TASK_STATE_QUEUED);
  const absl::Time entered = task.queue_enter_time.IsSet()
                                 ? task.queue_enter_time.AsTime()
                                 : task.create_time.AsTime();
  const absl::Time left =
      task.queue_exit_time.IsSet() ? task.queue_exit_time.AsTime() : now;
  const absl::Duration in_queue = left - entered;
  *status->mutable_time_in_queue() = ToProtoDuration(in_queue);
  if (task.last_poll_time.has_value()) {
    status->mutable_last_poll_time()->set_seconds(task.last_poll_time->seconds);
    status->mutable_last_poll_time()->set_nanos(task.last_poll_time->nanos);
  }
  status->set_upstream_status(task.upstream_status.data(),
                              task.upstream_status.size());
  status->set_queue_position(task.queue_position);
  *status->mutable_typical_wait_p50() = ToProtoDuration(typical.p50);
  *status->mutable_typical_wait_p90() = ToProtoDuration(typical.p90);
  status->set_typical_wait_samples(typical.samples);
  if (task.upstream_eta.has_value() && !IsFinished(task.state)) {
    status->mutable_upstream_eta()->set_seconds(task.upstream_eta->seconds);
    status->mutable_upstream_eta()->set_nanos(task.upstream_eta->nanos);
  }

  const std::string poll =
      task.last_poll_time.has_value()
          ? absl::StrCat(", last poll ",
                         HumanSpan(now - task.last_poll_time->AsTime()), " ago")
          : ", not polled yet";
  if (IsFinished(task.state)) {
    status->set_verdict(v1::QUEUE_VERDICT_FINISHED);
    status->set_resubmit_advised(task.state == v1::TASK_STATE_FAILED &&
                                 task.failure_retryable);
    status->set_advice(FinishedAdvice(task));
    return;
  }
  const absl::Time last_upstream = task.last_upstream_event_time.AsTime();
  if (IsPollingStalled(task, now, stale_after)) {
    // An estimate older than the stale limit is no estimate.
    status->clear_upstream_eta();
    status->set_verdict(v1::QUEUE_VERDICT_POLLING_STALLED);
    status->set_advice(absl::StrCat(
        "No update from the provider for ", HumanSpan(now - last_upstream),
        " (more than ", HumanSpan(stale_after),
        "): the gateway's poller has probably stopped polling it. Escalate to "
        "the gateway team first (do not report it to the provider yet); "
        "resubmitting would only add a second charge."));
    return;
  }
  switch (task.state) {
    case v1::TASK_STATE_SUBMITTED:
      status->set_verdict(v1::QUEUE_VERDICT_WAITING_FOR_UPSTREAM);
      status->set_advice(absl::StrCat(
          "Submitted ", HumanSpan(in_queue),
          " ago and not yet accepted by the provider; do not resubmit, that "
          "would only add a second charge.",
          EtaText(task)));
      break;
    case v1::TASK_STATE_RUNNING:
      status->set_verdict(v1::QUEUE_VERDICT_RUNNING);
      status->set_advice(absl::StrCat("The provider is generating (progress ",
                                      task.progress_percent, "%", poll,
                                      "); do not resubmit.", EtaText(task)));
      break;
    default:
      if (typical.samples >= kMinSamplesForVerdict && in_queue > typical.p90) {
        status->set_verdict(v1::QUEUE_VERDICT_QUEUED_LONGER_THAN_USUAL);
        status->set_advice(absl::StrCat(
            "Queued at the provider for ", HumanSpan(in_queue),
            PositionText(task), poll, "; that is longer than usual (",
            TypicalText(task, typical),
            "). The provider is slow, but resubmitting would queue a second, "
            "charged job; wait, or cancel and refund.",
            EtaText(task)));
      } else {
        status->set_verdict(v1::QUEUE_VERDICT_QUEUED_NORMAL);
        status->set_advice(
            absl::StrCat("Queued at the provider for ", HumanSpan(in_queue),
                         PositionText(task), poll, "; ",
                         typical.samples >= kMinSamplesForVerdict
                             ? "that is a normal wait"
                             : "too few finished tasks to call it usual or not",
                         " (", TypicalText(task, typical),
                         "). Do not resubmit.", EtaText(task)));
      }
  }
}

}  // namespace tasktrail
