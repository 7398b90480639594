// The Tracker's construction, the plumbing every write goes through (locks,
// Complete/Start, the write entry points) and PrepareAppend, the one place a
// timeline entry is appended with its counters and queue-wait sample. The
// other concerns live beside it: tracker_submit.cc (submission, dedup,
// validation), tracker_events.cc (RecordEvent and its rules),
// tracker_queries.cc (reads), tracker_batch.cc (BatchGetTasks),
// tracker_notes.cc (notes and audit), tracker_retention.cc (retention and
// erasure).
#include "service/tracker/tracker.h"

#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "service/rules/errors.h"
#include "service/rules/lifecycle.h"
#include "service/rules/scrubber.h"
#include "service/rules/status_macros.h"
#include "service/rules/time_util.h"
#include "service/rules/timeline.h"
#include "service/rules/unclassified.h"
#include "service/rules/validator.h"
#include "service/tracker/tracker_internal.h"

namespace tasktrail {
namespace tracker_internal {

absl::Status CheckTaskId(absl::string_view task_id) {
  std::vector<v1::FieldViolation> violations;
  CheckIdentifier("task_id", task_id, /*required=*/true, kMaxIdBytes,
                  &violations);
  if (!violations.empty()) {
    return InvalidArgument(kInvalidRequest, "", violations);
  }
  return absl::OkStatus();
}

absl::Status SnapshotDoesNotParse(absl::string_view task_id) {
  return absl::DataLossError(
      absl::StrCat("stored task ", task_id, " does not parse"));
}

void CountForTask(int64_t unix_minute, const v1::Task& task,
                  store::CounterKind kind, absl::string_view detail,
                  std::vector<store::RawMutation>* out) {
  out->push_back(
      store::RawMutation::CountOne(unix_minute, task.model(), kind, detail));
  if (!task.route().empty()) {
    out->push_back(store::RawMutation::CountOneIn(store::StatsScope::kRoute,
                                                  task.route(), unix_minute,
                                                  task.model(), kind, detail));
  }
  if (!task.group().empty()) {
    out->push_back(store::RawMutation::CountOneIn(store::StatsScope::kGroup,
                                                  task.group(), unix_minute,
                                                  task.model(), kind, detail));
  }
}

}  // namespace tracker_internal

namespace {

using v1::Task;
using v1::TaskEvent;

// One duration sample a write keeps (QueueWaits, store::SampleSeries).
struct DurationSample {
  std::string series;
  absl::Time at;
  absl::Duration value;
};

// The samples a change from `previous` to `task` adds: the queue wait of a
// task that left the queue (`left_queue`, `queue_wait`), and the run time
// (of a task that was RUNNING) and end-to-end time of a task that finished;
// each in the series of its model, and of its route and group when it has
// them. The times are those store::TaskSampleKeys names.
std::vector<DurationSample> NewDurationSamples(const Task& previous,
                                               const Task& task,
                                               bool left_queue,
                                               absl::Duration queue_wait) {
  const bool finished = !previous.task_id().empty() &&
                        store::IsUnfinishedState(previous.state()) &&
                        !store::IsUnfinishedState(task.state()) &&
                        task.has_finish_time();
  std::vector<std::pair<store::StatsScope, absl::string_view>> rows = {
      {store::StatsScope::kModel, ""}};
  if (!task.route().empty()) {
    rows.emplace_back(store::StatsScope::kRoute, task.route());
  }
  if (!task.group().empty()) {
    rows.emplace_back(store::StatsScope::kGroup, task.group());
  }
  std::vector<DurationSample> samples;
  for (const auto& [scope, value] : rows) {
    const auto series = [&, scope = scope,
                         value = value](store::SampleKind kind) {
      return store::SampleSeries(kind, task.model(), scope, value);
    };
    if (left_queue) {
      samples.push_back({series(store::SampleKind::kQueueWait),
                         FromProtoTime(task.queue_exit_time()), queue_wait});
    }
    if (!finished) continue;
    const absl::Time finish = FromProtoTime(task.finish_time());
    if (previous.state() == v1::TASK_STATE_RUNNING &&
        task.has_queue_exit_time()) {
      samples.push_back({series(store::SampleKind::kRunTime), finish,
                         finish - FromProtoTime(task.queue_exit_time())});
    }
    samples.push_back({series(store::SampleKind::kEndToEnd), finish,
                       finish - FromProtoTime(task.create_time())});
  }
  return samples;
}

}  // namespace

Tracker::Tracker(store::TaskStore* store, const CatalogHolder* catalog,
                 const Clock* clock, EventHub* hub, TrackerOptions options)
    : store_(store),
      catalog_(catalog),
      clock_(clock),
      hub_(hub),
      options_(std::move(options)),
      failure_rules_(options_.failure_rules != nullptr
                         ? options_.failure_rules
                         : FailureClassifier::BuiltIn()),
      waits_(store),
      ids_(options_.id_seed) {
  hub_attachment_ = hub_->Attach(store_);
}

Tracker::~Tracker() { hub_->Detach(hub_attachment_); }

template <typename Response>
Completion<Response> Tracker::Run(Preparer<Response> prepare, LockWait wait,
                                  Completion<Response> done) {
  auto shared = std::make_shared<const Preparer<Response>>(std::move(prepare));
  Pending<Response> pending = (*shared)(wait);
  if (pending.lock_busy) return done;
  Complete(std::move(shared), 1, std::move(pending), std::move(done));
  return nullptr;
}

template <typename Response>
void Tracker::Complete(std::shared_ptr<const Preparer<Response>> prepare,
                       int attempt, Pending<Response> pending,
                       Completion<Response> done) {
  if (!pending.write.prepared.has_value()) {
    pending.write.leases.clear();
    std::move(done)(std::move(pending.result));
    return;
  }
  store::PreparedWrite prepared = *std::move(pending.write.prepared);
  store_->Commit(std::move(prepared), [this, prepare = std::move(prepare),
                                       attempt, pending = std::move(pending),
                                       done = std::move(done)](
                                          absl::Status status) mutable {
    if (absl::IsAborted(status) && pending.result.ok()) {
      pending.write.leases.clear();
      if (attempt >= ConflictRetrier::kMaxAttempts) {
        std::move(done)(ConflictRetrier::GaveUp(attempt, status));
        return;
      }
      retrier_.Schedule(retrier_.Backoff(attempt + 1),
                        [this, prepare = std::move(prepare), attempt,
                         done = std::move(done)]() mutable {
                          Pending<Response> again = (*prepare)(LockWait::kWait);
                          Complete(std::move(prepare), attempt + 1,
                                   std::move(again), std::move(done));
                        });
      return;
    }
    if (status.ok()) {
      for (const std::function<void()>& effect : pending.write.after_commit) {
        effect();
      }
    } else if (pending.result.ok()) {
      pending.result = std::move(status);
    }
    pending.write.leases.clear();
    std::move(done)(std::move(pending.result));
  });
}

absl::optional<StripeLocks::Lease> Tracker::Lock(StripeLocks& locks,
                                                 absl::string_view key,
                                                 LockWait wait) {
  if (wait == LockWait::kNever) return locks.TryAcquire(key);
  return locks.Acquire(key);
}

Completion<v1::SubmitTaskResponse> Tracker::SubmitTask(
    const v1::SubmitTaskRequest& request, absl::string_view actor,
    LockWait wait, Completion<v1::SubmitTaskResponse> done) {
  return Run<v1::SubmitTaskResponse>(
      [this, request, actor = std::string(actor)](LockWait wait) {
        return PrepareSubmit(request, actor, wait);
      },
      wait, std::move(done));
}

Completion<v1::RecordEventResponse> Tracker::RecordEvent(
    const v1::RecordEventRequest& request, absl::string_view actor,
    LockWait wait, Completion<v1::RecordEventResponse> done) {
  return Run<v1::RecordEventResponse>(
      [this, request, actor = std::string(actor)](LockWait wait) {
        return PrepareEvent(request, actor, wait);
      },
      wait, std::move(done));
}

Completion<v1::Task> Tracker::AddNote(const v1::AddNoteRequest& request,
                                      absl::string_view actor, LockWait wait,
                                      Completion<v1::Task> done) {
  return Run<v1::Task>(
      [this, request, actor = std::string(actor)](LockWait wait) {
        return PrepareNote(request, actor, wait);
      },
      wait, std::move(done));
}

v1::Failure Tracker::ClassifyFailure(absl::string_view model,
                                     int32_t http_status,
                                     absl::string_view error_code,
                                     absl::string_view message) const {
  const CompiledModel* spec = nullptr;
  const std::shared_ptr<const Catalog> catalog = catalog_->Get();
  if (!model.empty()) spec = catalog->Find(model);
  return failure_rules_->Classify(spec == nullptr ? "" : spec->spec.vendor(),
                                  http_status, error_code, message);
}

absl::StatusOr<v1::Failure> Tracker::ClassifyFailure(
    const v1::ClassifyFailureRequest& request) const {
  std::vector<v1::FieldViolation> violations;
  CheckIdentifier("model", request.model(), /*required=*/true, kMaxIdBytes,
                  &violations);
  if (!violations.empty()) {
    return InvalidArgument(kInvalidRequest, "", violations);
  }
  v1::TaskEvent event;
  event.set_type(v1::EVENT_TYPE_FAILED);
  v1::FailedDetail* failed = event.mutable_failed();
  failed->set_http_status(request.http_status());
  failed->set_error_code(request.error_code());
  failed->set_message(request.message());
  RETURN_IF_ERROR(CheckFailureEvidence("", *failed));
  const std::shared_ptr<const Catalog> catalog = catalog_->Get();
  const CompiledModel* spec = catalog->Find(request.model());
  if (spec == nullptr) {
    return InvalidArgument(kInvalidTaskParameters, request.model(),
                           {UnknownModelViolation(*catalog, request.model())});
  }
  ScrubEventText(&event);
  return failure_rules_->Classify(spec->spec.vendor(), failed->http_status(),
                                  failed->error_code(), failed->message());
}

std::function<void()> Tracker::ObserveAppend(const Task& previous,
                                             const Task& task,
                                             const TaskEvent& event,
                                             bool left_queue,
                                             absl::Duration queue_wait) const {
  const bool is_new_task = previous.task_id().empty();
  const bool entered = is_new_task || previous.state() != task.state();
  const bool refunded = task.refunded() && !previous.refunded();
  const bool duplicate = event.type() == v1::EVENT_TYPE_DUPLICATE_BLOCKED;
  return [observer = options_.observer, model = task.model(), is_new_task,
          entered, state = task.state(), category = task.failure().category(),
          origin = task.failure().origin(), refunded, duplicate,
          reason = event.duplicate_blocked().reason(), left_queue, queue_wait,
          task_id = task.task_id(),
          last_upstream = FromProtoTime(task.last_upstream_event_time())] {
    observer->OnTaskWritten(task_id, model, state, last_upstream);
    if (is_new_task) observer->OnSubmitted(model);
    if (entered) {
      observer->OnStateEntered(model, state);
      if (state == v1::TASK_STATE_FAILED) {
        observer->OnFailed(model, category, origin);
      }
    }
    if (duplicate) observer->OnDuplicateBlocked(model, reason);
    if (refunded) observer->OnRefunded(model);
    if (left_queue) observer->OnLeftQueue(model, queue_wait);
  };
}

absl::Status Tracker::PrepareAppend(const Task& previous, Task* task,
                                    TaskEvent* event,
                                    const std::string& event_id_digest,
                                    std::vector<store::RawMutation> extra,
                                    PendingWrite* write) {
  const absl::Time now = clock_->Now();
  ScrubEventText(event);
  *event->mutable_record_time() = ToProtoTime(now);
  if (!event->has_time()) *event->mutable_time() = event->record_time();
  event->set_task_id(task->task_id());
  const bool is_new_task = previous.task_id().empty();

  // A poll that repeats the previous entry is folded into it.
  TaskEvent folded;
  bool fold = false;
  if (event->type() == v1::EVENT_TYPE_POLLED && task->last_event_seq() > 0) {
    ASSIGN_OR_RETURN(
        std::vector<TaskEvent> last,
        store_->ReadEventRange(task->task_id(), task->last_event_seq(),
                               task->last_event_seq()));
    if (!last.empty() && FoldsInto(last.front(), *event)) {
      folded = std::move(last.front());
      Fold(*event, &folded);
      fold = true;
    }
  }

  ApplyToSnapshot(*event, task);
  if (event->type() == v1::EVENT_TYPE_FAILED) {
    const bool refunded = task->refunded();
    *task->mutable_failure() = ClassifyFailure(
        task->model(), event->failed().http_status(),
        event->failed().error_code(), event->failed().message());
    if (event->failed().by_gateway()) {
      task->mutable_failure()->set_origin(v1::FAILURE_ORIGIN_GATEWAY);
      task->mutable_failure()->set_cause(kGatewayGaveUpCause);
    }
    task->set_refunded(refunded);
  }
  *task->mutable_update_time() = event->record_time();

  // Stats: the state entered (and why a task failed, with the message of a
  // failure no rule recognised), counted in the minute it was recorded, in
  // the rows of the task's model, route and group; the queue wait of a task
  // that left the queue, and the run and end-to-end times of one that
  // finished.
  const int64_t minute = absl::ToUnixSeconds(now) / 60;
  if (is_new_task || previous.state() != task->state()) {
    tracker_internal::CountForTask(minute, *task,
                                   store::CounterKind::kEnteredState,
                                   StateName(task->state()), &extra);
    if (task->state() == v1::TASK_STATE_FAILED) {
      const std::string& category =
          v1::FailureCategory_Name(task->failure().category());
      const std::string& origin =
          v1::FailureOrigin_Name(task->failure().origin());
      tracker_internal::CountForTask(
          minute, *task, store::CounterKind::kFailureCategory,
          absl::StripPrefix(category, "FAILURE_CATEGORY_"), &extra);
      tracker_internal::CountForTask(
          minute, *task, store::CounterKind::kFailureOrigin,
          absl::StripPrefix(origin, "FAILURE_ORIGIN_"), &extra);
      if (IsUnclassified(task->failure())) {
        extra.push_back(store::RawMutation::CountOne(
            minute, task->model(), store::CounterKind::kUnclassifiedMessage,
            unclassified_.Admit(
                minute, task->model(),
                NormaliseFailureMessage(task->failure().message()))));
      }
    }
  }
  if (event->type() == v1::EVENT_TYPE_LATE_UPSTREAM_RESULT) {
    tracker_internal::CountForTask(minute, *task,
                                   store::CounterKind::kLateResult,
                                   StateName(task->late_outcome()), &extra);
  }
  const bool left_queue = !is_new_task &&
                          previous.state() == v1::TASK_STATE_QUEUED &&
                          task->state() != v1::TASK_STATE_QUEUED;
  absl::Duration queue_wait;
  if (left_queue) {
    queue_wait = FromProtoTime(task->queue_exit_time()) -
                 FromProtoTime(task->queue_enter_time());
  }
  const std::vector<DurationSample> samples =
      NewDurationSamples(previous, *task, left_queue, queue_wait);
  for (const DurationSample& sample : samples) {
    ASSIGN_OR_RETURN(std::vector<store::RawMutation> mutations,
                     waits_.SampleMutations(sample.series, sample.at,
                                            task->task_id(), sample.value));
    for (store::RawMutation& mutation : mutations) {
      extra.push_back(std::move(mutation));
    }
  }
  if (fold) {
    event->set_seq(folded.seq());
  } else {
    event->set_seq(task->last_event_seq() + 1);
    task->set_last_event_seq(event->seq());
    event->set_state_after(task->state());
    if (event->type() == v1::EVENT_TYPE_POLLED) event->set_repeat_count(1);
  }

  store::TaskWrite task_write;
  task_write.extra = std::move(extra);
  task_write.previous = is_new_task ? nullptr : &previous;
  task_write.task = task;
  task_write.events.push_back(fold ? &folded : event);
  if (!event->event_id().empty()) {
    task_write.event_id.emplace(
        event->event_id(), store::EventIdRecord{event->seq(), event_id_digest});
  }
  ASSIGN_OR_RETURN(write->prepared, store_->Prepare(task_write));
  if (!samples.empty()) {
    write->after_commit.push_back(
        [this, samples = std::move(samples), task_id = task->task_id()] {
          for (const DurationSample& sample : samples) {
            waits_.Add(sample.series, sample.at, task_id, sample.value);
          }
        });
  }
  if (options_.observer != nullptr) {
    write->after_commit.push_back(
        ObserveAppend(previous, *task, *event, left_queue, queue_wait));
  }
  if (fold) *event = folded;
  // Watchers get the entry itself once it is durable: the commit thread only
  // queues it on the task's channel, whatever the number of watchers.
  auto published = std::make_shared<PublishedEvent>();
  published->event = *event;
  write->after_commit.push_back(
      [this, task_id = task->task_id(), published = std::move(published)] {
        hub_->Publish(task_id, published);
      });
  return absl::OkStatus();
}

}  // namespace tasktrail
