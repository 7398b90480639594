#include "service/tracker/tracker.h"

#include <algorithm>
#include <utility>

#include "absl/hash/hash.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "google/protobuf/io/coded_stream.h"
#include "service/rules/errors.h"
#include "service/rules/fingerprint.h"
#include "service/rules/lifecycle.h"
#include "service/rules/queue_verdict.h"
#include "service/rules/scrubber.h"
#include "service/rules/status_macros.h"
#include "service/rules/time_util.h"
#include "service/rules/timeline.h"
#include "service/rules/validator.h"
#include "service/rules/wire_fields.h"
#include "service/tracker/stats.h"

namespace tasktrail {
namespace {

using v1::Task;
using v1::TaskEvent;

// The key of a Task.events entry on the wire: field number and wire type 2
// (length-delimited).
constexpr uint32_t kTaskEventsTag =
    (static_cast<uint32_t>(Task::kEventsFieldNumber) << 3) | 2;

absl::Status SnapshotDoesNotParse(absl::string_view task_id) {
  return absl::DataLossError(
      absl::StrCat("stored task ", task_id, " does not parse"));
}

// The last_event_seq of a serialized Task, found by walking the message's
// fields without parsing them. DATA_LOSS when the bytes are not well-formed
// wire format (see ForEachWireField).
absl::StatusOr<int64_t> ReadLastEventSeq(absl::string_view task_id,
                                         absl::string_view snapshot) {
  int64_t last_event_seq = 0;
  if (!ForEachWireField(snapshot, [&last_event_seq](const WireField& field) {
        if (field.number == Task::kLastEventSeqFieldNumber &&
            field.type == WireType::kVarint) {
          last_event_seq = static_cast<int64_t>(field.value);
        }
      })) {
    return SnapshotDoesNotParse(task_id);
  }
  return last_event_seq;
}

constexpr absl::string_view kPageTokenPrefix = "v1:";

// Runs an asynchronous write and waits for its answer.
template <typename Response, typename Start>
absl::StatusOr<Response> AwaitAnswer(Start start) {
  absl::Notification answered;
  absl::StatusOr<Response> answer;
  start([&](absl::StatusOr<Response> result) {
    answer = std::move(result);
    answered.Notify();
  });
  answered.WaitForNotification();
  return answer;
}

std::string EncodePageToken(absl::string_view last_task_id) {
  return absl::WebSafeBase64Escape(
      absl::StrCat(kPageTokenPrefix, last_task_id));
}

absl::StatusOr<std::string> DecodePageToken(absl::string_view token) {
  std::string decoded;
  if (!absl::WebSafeBase64Unescape(token, &decoded) ||
      !absl::StartsWith(decoded, kPageTokenPrefix) ||
      !LooksLikeTaskId(decoded.substr(kPageTokenPrefix.size()))) {
    return InvalidField("page_token", "PAGE_TOKEN_INVALID",
                        "page_token is not a token returned by ListTasks");
  }
  return decoded.substr(kPageTokenPrefix.size());
}

absl::Status CheckTaskId(absl::string_view task_id) {
  std::vector<v1::FieldViolation> violations;
  CheckString("task_id", task_id, /*required=*/true, kMaxIdBytes, &violations);
  if (!violations.empty()) {
    return InvalidArgument(kInvalidRequest, "", violations);
  }
  return absl::OkStatus();
}

// Size limits on the parameters, independent of the model: they bound the
// work and storage of one request.
void CheckParamSizes(const v1::TaskParams& params,
                     std::vector<v1::FieldViolation>* violations) {
  CheckString("params.prompt", params.prompt(), false, kMaxPromptBytes,
              violations);
  CheckString("params.negative_prompt", params.negative_prompt(), false,
              kMaxPromptBytes, violations);
  CheckString("params.aspect_ratio", params.aspect_ratio(), false, kMaxIdBytes,
              violations);
  CheckString("params.resolution", params.resolution(), false, kMaxIdBytes,
              violations);
  CheckString("params.callback_url", params.callback_url(), false, kMaxUriBytes,
              violations);
  if (params.reference_images_size() > kMaxReferenceImages) {
    violations->push_back(
        Violation("params.reference_images", "FIELD_TOO_LONG",
                  absl::StrCat(params.reference_images_size(),
                               " reference images; at most ",
                               kMaxReferenceImages, " are accepted")));
    return;
  }
  for (int i = 0; i < params.reference_images_size(); ++i) {
    const v1::ReferenceImage& image = params.reference_images(i);
    const std::string at = absl::StrCat("params.reference_images[", i, "]");
    CheckString(at + ".uri", image.uri(), false, kMaxUriBytes, violations);
    CheckString(at + ".mime_type", image.mime_type(), false, kMaxIdBytes,
                violations);
  }
}

// A Timestamp that protobuf considers valid (years 1 to 9999).
bool IsValidTimestamp(const google::protobuf::Timestamp& time) {
  return time.nanos() >= 0 && time.nanos() <= 999999999 &&
         time.seconds() >= -62135596800 && time.seconds() <= 253402300799;
}

std::string FormatTime(const google::protobuf::Timestamp& time) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", FromProtoTime(time),
                          absl::UTCTimeZone());
}

// True when `task` passes every filter of `request`.
bool Matches(const v1::ListTasksRequest& request, const Task& task) {
  return (request.account_id().empty() ||
          task.account_id() == request.account_id()) &&
         (request.state() == v1::TASK_STATE_UNSPECIFIED ||
          task.state() == request.state()) &&
         (request.model().empty() || task.model() == request.model()) &&
         (request.upstream_task_id().empty() ||
          task.upstream_task_id() == request.upstream_task_id()) &&
         (request.request_id().empty() ||
          task.request_id() == request.request_id());
}

// The most selective index for the request's filters.
store::TaskScan ScanFor(const v1::ListTasksRequest& request) {
  store::TaskScan scan;
  if (!request.upstream_task_id().empty()) {
    scan.index = store::ScanIndex::kUpstream;
    scan.value = request.upstream_task_id();
  } else if (!request.request_id().empty()) {
    scan.index = store::ScanIndex::kRequest;
    scan.value = request.request_id();
  } else if (!request.account_id().empty()) {
    scan.index = store::ScanIndex::kAccount;
    scan.value = request.account_id();
  } else if (!request.model().empty()) {
    scan.index = store::ScanIndex::kModel;
    scan.value = request.model();
  } else if (request.state() != v1::TASK_STATE_UNSPECIFIED) {
    scan.index = store::ScanIndex::kState;
    scan.state = request.state();
  }
  return scan;
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
      ids_(options_.id_seed) {}

template <typename Response>
void Tracker::Complete(Pending<Response> pending, Completion<Response> done) {
  if (!pending.write.prepared.has_value()) {
    pending.write.leases.clear();
    std::move(done)(std::move(pending.result));
    return;
  }
  store::PreparedWrite prepared = *std::move(pending.write.prepared);
  store_->Commit(std::move(prepared), [pending = std::move(pending),
                                       done = std::move(done)](
                                          absl::Status status) mutable {
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

template <typename Response>
bool Tracker::Start(Pending<Response> pending, Completion<Response>* done) {
  if (pending.lock_busy) return false;
  Complete(std::move(pending), std::move(*done));
  return true;
}

absl::optional<StripeLocks::Lease> Tracker::Lock(StripeLocks& locks,
                                                 absl::string_view key,
                                                 LockWait wait) {
  if (wait == LockWait::kNever) return locks.TryAcquire(key);
  return locks.Acquire(key);
}

absl::StatusOr<absl::optional<store::DedupRecord>> Tracker::LookupDedup(
    const std::string& key, absl::Time now) const {
  ASSIGN_OR_RETURN(absl::optional<std::string> raw,
                   store_->GetRaw(store::ColumnFamily::kDedup, key));
  if (!raw.has_value()) return absl::optional<store::DedupRecord>();
  absl::optional<store::DedupRecord> record = store::DecodeDedupRecord(*raw);
  if (record.has_value() && record->expire_unix_micros != 0 &&
      record->expire_unix_micros <= absl::ToUnixMicros(now)) {
    record.reset();
  }
  return record;
}

bool Tracker::BlocksContent(const Task& original, absl::Time now) const {
  switch (original.state()) {
    case v1::TASK_STATE_SUBMITTED:
    case v1::TASK_STATE_QUEUED:
    case v1::TASK_STATE_RUNNING:
      return true;
    case v1::TASK_STATE_SUCCEEDED:
      return now < FromProtoTime(original.finish_time()) +
                       options_.dedup_window_after_success;
    default:
      return false;  // a retry after a failure or cancel is a new intent
  }
}

Tracker::Pending<v1::SubmitTaskResponse> Tracker::PrepareBlockDuplicate(
    const std::string& task_id, v1::DedupReason reason,
    const v1::SubmitTaskRequest& request, absl::string_view actor,
    std::vector<store::RawMutation> extra, StripeLocks::Lease account_lease,
    LockWait wait) {
  absl::optional<StripeLocks::Lease> task_lease =
      Lock(task_locks_, task_id, wait);
  if (!task_lease.has_value())
    return Pending<v1::SubmitTaskResponse>::LockBusy();
  ASSIGN_OR_RETURN(Task task, store_->GetTask(task_id));
  TaskEvent event;
  event.set_type(v1::EVENT_TYPE_DUPLICATE_BLOCKED);
  event.set_actor(std::string(actor));
  v1::DuplicateBlockedDetail* detail = event.mutable_duplicate_blocked();
  detail->set_reason(reason);
  detail->set_request_id(request.request_id());
  detail->set_client(request.endpoint());
  extra.push_back(store::RawMutation::Add(
      store::CounterKey(absl::ToUnixSeconds(clock_->Now()) / 60, task.model(),
                        kDuplicatesBlocked),
      1));
  const Task previous = task;
  PendingWrite write;
  RETURN_IF_ERROR(
      PrepareAppend(previous, &task, &event, "", std::move(extra), &write));
  write.leases.push_back(std::move(account_lease));
  write.leases.push_back(*std::move(task_lease));
  v1::SubmitTaskResponse response;
  *response.mutable_task() = std::move(task);
  response.set_deduplicated(true);
  response.set_dedup_reason(reason);
  return Pending<v1::SubmitTaskResponse>(std::move(response), std::move(write));
}

void Tracker::SubmitTask(const v1::SubmitTaskRequest& request,
                         absl::string_view actor,
                         Completion<v1::SubmitTaskResponse> done) {
  Complete(PrepareSubmit(request, actor, LockWait::kWait), std::move(done));
}

bool Tracker::SubmitTask(const v1::SubmitTaskRequest& request,
                         absl::string_view actor, LockWait wait,
                         Completion<v1::SubmitTaskResponse>* done) {
  return Start(PrepareSubmit(request, actor, wait), done);
}

absl::StatusOr<v1::SubmitTaskResponse> Tracker::SubmitTask(
    const v1::SubmitTaskRequest& request, absl::string_view actor) {
  return AwaitAnswer<v1::SubmitTaskResponse>(
      [&](Completion<v1::SubmitTaskResponse> done) {
        SubmitTask(request, actor, std::move(done));
      });
}

Tracker::Pending<v1::SubmitTaskResponse> Tracker::PrepareSubmit(
    const v1::SubmitTaskRequest& request, absl::string_view actor,
    LockWait wait) {
  std::vector<v1::FieldViolation> violations;
  CheckString("account_id", request.account_id(), true, kMaxIdBytes,
              &violations);
  CheckString("model", request.model(), true, kMaxIdBytes, &violations);
  CheckString("api_key_id", request.api_key_id(), false, kMaxIdBytes,
              &violations);
  CheckString("group", request.group(), false, kMaxIdBytes, &violations);
  CheckString("endpoint", request.endpoint(), false, kMaxEndpointBytes,
              &violations);
  CheckString("request_id", request.request_id(), false, kMaxIdBytes,
              &violations);
  CheckParamSizes(request.params(), &violations);
  if (request.charge_units() < 0) {
    violations.push_back(
        Violation("charge_units", "FIELD_OUT_OF_RANGE",
                  absl::StrCat("charge_units is ", request.charge_units(),
                               "; it must not be negative")));
  }
  if (!violations.empty()) {
    return InvalidArgument(kInvalidRequest, request.model(), violations);
  }
  const std::string& account = request.account_id();
  absl::optional<StripeLocks::Lease> account_lease =
      Lock(account_locks_, account, wait);
  if (!account_lease.has_value()) {
    return Pending<v1::SubmitTaskResponse>::LockBusy();
  }
  const absl::Time now = clock_->Now();

  // 1. A request_id seen before: the original answer, whatever else changed.
  const std::string request_key =
      store::DedupKey(absl::StrCat("r:", account), request.request_id());
  const std::string request_shape = RequestShape(
      CanonicalParts(request.model(), request.endpoint(), request.params()));
  const store::DedupRecord request_record{
      absl::ToUnixMicros(now + options_.dedup_retention), "", request_shape};
  if (!request.request_id().empty()) {
    ASSIGN_OR_RETURN(absl::optional<store::DedupRecord> seen,
                     LookupDedup(request_key, now));
    if (seen.has_value()) {
      if (seen->payload != request_shape) {
        return absl::AlreadyExistsError(absl::StrCat(
            "request_id ", request.request_id(),
            " was already used by this account for task ", seen->task_id,
            " with a different ",
            absl::StrJoin(DifferingFields(seen->payload, request_shape), ", "),
            "; send a new request_id for a new request"));
      }
      return PrepareBlockDuplicate(seen->task_id,
                                   v1::DEDUP_REASON_SAME_REQUEST_ID, request,
                                   actor, {}, *std::move(account_lease), wait);
    }
  }

  // 2. The catalog.
  const std::shared_ptr<const Catalog> catalog = catalog_->Get();
  ValidationResult validation =
      tasktrail::ValidateTask(*catalog, request.model(), request.group(),
                              GroupCheck::kAlways, request.params());
  if (!validation.violations.empty()) {
    // Unknown model names are caller-chosen strings: count them under one
    // name so that they cannot create unbounded stats rows.
    Pending<v1::SubmitTaskResponse> rejected(InvalidArgument(
        kInvalidTaskParameters, request.model(), validation.violations));
    rejected.write.prepared = CountRejection(
        validation.model != nullptr ? request.model()
                                    : absl::string_view("(unknown)"),
        validation.violations);
    return rejected;
  }

  // 3. The same content while the original is live (or just succeeded).
  auto request_binding = [&](const std::string& task_id) {
    std::vector<store::RawMutation> extra;
    if (!request.request_id().empty()) {
      store::DedupRecord record = request_record;
      record.task_id = task_id;
      extra.push_back(store::RawMutation{store::ColumnFamily::kDedup,
                                         request_key,
                                         store::EncodeDedupRecord(record)});
    }
    return extra;
  };
  const std::string content_key = store::DedupKey(
      absl::StrCat("c:", account),
      ContentFingerprint(account,
                         CanonicalParts(request.model(), request.endpoint(),
                                        validation.effective)));
  if (!request.force_new()) {
    ASSIGN_OR_RETURN(absl::optional<store::DedupRecord> seen,
                     LookupDedup(content_key, now));
    if (seen.has_value()) {
      absl::StatusOr<Task> original = store_->GetTask(seen->task_id);
      if (!original.ok() && !absl::IsNotFound(original.status())) {
        return original.status();
      }
      if (original.ok() && BlocksContent(*original, now)) {
        return PrepareBlockDuplicate(
            seen->task_id, v1::DEDUP_REASON_SAME_CONTENT, request, actor,
            request_binding(seen->task_id), *std::move(account_lease), wait);
      }
    }
  }

  // 4. A new task, with its dedup keys in the same atomic write.
  Task task;
  task.set_task_id(ids_.Next(now));
  task.set_account_id(account);
  // A full secret sent as the key's id is kept only as a fingerprint.
  task.set_api_key_id(SafeKeyId(request.api_key_id()));
  task.set_group(request.group());
  task.set_model(request.model());
  task.set_endpoint(request.endpoint());
  task.set_kind(validation.model->spec.kind());
  task.set_catalog_version(catalog->version());
  *task.mutable_params() = std::move(validation.effective);
  task.set_state(v1::TASK_STATE_SUBMITTED);
  *task.mutable_create_time() = ToProtoTime(now);
  *task.mutable_update_time() = task.create_time();
  task.set_request_id(request.request_id());
  task.set_charge_units(request.charge_units());

  TaskEvent event;
  event.set_type(v1::EVENT_TYPE_SUBMITTED);
  event.set_actor(std::string(actor));
  v1::SubmittedDetail* detail = event.mutable_submitted();
  detail->set_model(request.model());
  detail->set_endpoint(request.endpoint());
  detail->set_request_id(request.request_id());
  detail->set_charge_units(request.charge_units());

  std::vector<store::RawMutation> extra = request_binding(task.task_id());
  extra.push_back(store::RawMutation{
      store::ColumnFamily::kDedup, content_key,
      store::EncodeDedupRecord(
          {absl::ToUnixMicros(now + options_.dedup_content_ttl), task.task_id(),
           ""})});
  PendingWrite write;
  {
    absl::optional<StripeLocks::Lease> task_lease =
        Lock(task_locks_, task.task_id(), wait);
    if (!task_lease.has_value()) {
      return Pending<v1::SubmitTaskResponse>::LockBusy();
    }
    Task previous;  // empty: the task is new
    RETURN_IF_ERROR(
        PrepareAppend(previous, &task, &event, "", std::move(extra), &write));
    write.leases.push_back(*std::move(account_lease));
    write.leases.push_back(*std::move(task_lease));
  }
  v1::SubmitTaskResponse response;
  *response.mutable_task() = std::move(task);
  return Pending<v1::SubmitTaskResponse>(std::move(response), std::move(write));
}

store::PreparedWrite Tracker::CountRejection(
    absl::string_view model,
    const std::vector<v1::FieldViolation>& violations) {
  const int64_t minute = absl::ToUnixSeconds(clock_->Now()) / 60;
  std::vector<store::RawMutation> counts;
  counts.push_back(
      store::RawMutation::Add(store::CounterKey(minute, model, kRejected), 1));
  std::vector<std::string> reasons;
  for (const v1::FieldViolation& violation : violations) {
    if (std::find(reasons.begin(), reasons.end(), violation.reason()) !=
        reasons.end()) {
      continue;
    }
    reasons.push_back(violation.reason());
    counts.push_back(store::RawMutation::Add(
        store::CounterKey(minute, model,
                          absl::StrCat(kRejectedPrefix, violation.reason())),
        1));
  }
  // The rejection is answered whether or not it could be counted (Complete
  // keeps an error result); a store that fails here also fails the next
  // write, which reports UNAVAILABLE.
  return store_->PrepareRaw(counts);
}

absl::StatusOr<v1::ValidateTaskResponse> Tracker::ValidateTask(
    const v1::ValidateTaskRequest& request) const {
  std::vector<v1::FieldViolation> violations;
  CheckString("model", request.model(), false, kMaxIdBytes, &violations);
  CheckString("group", request.group(), false, kMaxIdBytes, &violations);
  CheckParamSizes(request.params(), &violations);
  if (!violations.empty()) {
    return InvalidArgument(kInvalidRequest, request.model(), violations);
  }
  const std::shared_ptr<const Catalog> catalog = catalog_->Get();
  ValidationResult validation =
      tasktrail::ValidateTask(*catalog, request.model(), request.group(),
                              GroupCheck::kIfGiven, request.params());
  v1::ValidateTaskResponse response;
  for (v1::FieldViolation& violation : validation.violations) {
    *response.add_violations() = std::move(violation);
  }
  response.set_catalog_version(catalog->version());
  return response;
}

v1::ListModelsResponse Tracker::ListModels(
    const v1::ListModelsRequest& request) const {
  const std::shared_ptr<const Catalog> catalog = catalog_->Get();
  v1::ListModelsResponse response;
  response.set_catalog_version(catalog->version());
  for (const v1::ModelSpec& spec : catalog->document().models()) {
    if (request.kind() == v1::TASK_KIND_UNSPECIFIED ||
        spec.kind() == request.kind()) {
      *response.add_models() = spec;
    }
  }
  return response;
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
    *task->mutable_failure() = failure_rules_->Classify(
        event->failed().http_status(), event->failed().error_code(),
        event->failed().message());
    task->set_refunded(refunded);
  }
  *task->mutable_update_time() = event->record_time();

  // Stats: the state entered (and why a task failed), counted in the minute
  // it was recorded; the queue wait of a task that left the queue.
  const int64_t minute = absl::ToUnixSeconds(now) / 60;
  if (is_new_task || previous.state() != task->state()) {
    extra.push_back(store::RawMutation::Add(
        store::CounterKey(
            minute, task->model(),
            absl::StrCat(kEnteredStatePrefix, StateName(task->state()))),
        1));
    if (task->state() == v1::TASK_STATE_FAILED) {
      const std::string& category =
          v1::FailureCategory_Name(task->failure().category());
      const std::string& origin =
          v1::FailureOrigin_Name(task->failure().origin());
      extra.push_back(store::RawMutation::Add(
          store::CounterKey(
              minute, task->model(),
              absl::StrCat(kFailureCategoryPrefix,
                           absl::StripPrefix(category, "FAILURE_CATEGORY_"))),
          1));
      extra.push_back(store::RawMutation::Add(
          store::CounterKey(
              minute, task->model(),
              absl::StrCat(kFailureOriginPrefix,
                           absl::StripPrefix(origin, "FAILURE_ORIGIN_"))),
          1));
    }
  }
  const bool left_queue = !is_new_task &&
                          previous.state() == v1::TASK_STATE_QUEUED &&
                          task->state() != v1::TASK_STATE_QUEUED;
  absl::Duration queue_wait;
  if (left_queue) {
    queue_wait = FromProtoTime(task->queue_exit_time()) -
                 FromProtoTime(task->queue_enter_time());
    ASSIGN_OR_RETURN(std::vector<store::RawMutation> sample,
                     waits_.SampleMutations(
                         task->model(), FromProtoTime(task->queue_exit_time()),
                         task->task_id(), queue_wait));
    for (store::RawMutation& mutation : sample) {
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
  if (left_queue) {
    write->after_commit.push_back(
        [this, model = task->model(),
         exit_time = FromProtoTime(task->queue_exit_time()),
         task_id = task->task_id(),
         queue_wait] { waits_.Add(model, exit_time, task_id, queue_wait); });
  }
  if (fold) *event = folded;
  write->after_commit.push_back(
      [this, task_id = task->task_id()] { hub_->Notify(task_id); });
  return absl::OkStatus();
}

void Tracker::RecordEvent(const v1::RecordEventRequest& request,
                          absl::string_view actor,
                          Completion<v1::RecordEventResponse> done) {
  Complete(PrepareEvent(request, actor, LockWait::kWait), std::move(done));
}

bool Tracker::RecordEvent(const v1::RecordEventRequest& request,
                          absl::string_view actor, LockWait wait,
                          Completion<v1::RecordEventResponse>* done) {
  return Start(PrepareEvent(request, actor, wait), done);
}

absl::StatusOr<v1::RecordEventResponse> Tracker::RecordEvent(
    const v1::RecordEventRequest& request, absl::string_view actor) {
  return AwaitAnswer<v1::RecordEventResponse>(
      [&](Completion<v1::RecordEventResponse> done) {
        RecordEvent(request, actor, std::move(done));
      });
}

Tracker::Pending<v1::RecordEventResponse> Tracker::PrepareEvent(
    const v1::RecordEventRequest& request, absl::string_view actor,
    LockWait wait) {
  RETURN_IF_ERROR(CheckTaskId(request.task_id()));
  if (request.event_id().size() > kMaxIdBytes) {
    return InvalidField(
        "event_id", "FIELD_TOO_LONG",
        absl::StrCat("event_id is ", request.event_id().size(),
                     " bytes; at most ", kMaxIdBytes, " are allowed"));
  }
  if (request.event_case() == v1::RecordEventRequest::EVENT_NOT_SET) {
    return EventFromRequest(request).status();
  }
  if (request.has_occur_time() && !IsValidTimestamp(request.occur_time())) {
    return InvalidField("occur_time", "FIELD_OUT_OF_RANGE",
                        "occur_time is not a valid timestamp");
  }
  const std::string digest =
      request.event_id().empty() ? "" : RequestDigest(request);

  absl::optional<StripeLocks::Lease> task_lease =
      Lock(task_locks_, request.task_id(), wait);
  if (!task_lease.has_value()) {
    return Pending<v1::RecordEventResponse>::LockBusy();
  }
  ASSIGN_OR_RETURN(Task task, store_->GetTask(request.task_id()));

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

  ASSIGN_OR_RETURN(v1::TaskState next, StateAfter(task.state(), event.type()));
  if (event.type() == v1::EVENT_TYPE_REFUNDED) {
    if (task.refunded()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "task ", task.task_id(), " was already refunded at ",
          FormatTime(task.refund_time()), " (", task.refunded_units(),
          " units); a charge is refunded once"));
    }
    if (event.refunded().units() > task.charge_units()) {
      return InvalidField(
          "refunded.units", "REFUND_EXCEEDS_CHARGE",
          absl::StrCat("refunded.units is ", event.refunded().units(),
                       " but the task was charged ", task.charge_units(),
                       " units"));
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

absl::StatusOr<Task> Tracker::GetTask(const v1::GetTaskRequest& request) const {
  ASSIGN_OR_RETURN(const std::string bytes, GetTaskBytes(request));
  Task task;
  if (!task.ParseFromString(bytes)) {
    return SnapshotDoesNotParse(request.task_id());
  }
  return task;
}

absl::StatusOr<std::string> Tracker::GetTaskBytes(
    const v1::GetTaskRequest& request) const {
  RETURN_IF_ERROR(CheckTaskId(request.task_id()));
  std::string bytes;
  RETURN_IF_ERROR(
      store_->VisitTask(request.task_id(), [&bytes](absl::string_view stored) {
        bytes.assign(stored.data(), stored.size());
        return absl::OkStatus();
      }));
  ASSIGN_OR_RETURN(const int64_t last_event_seq,
                   ReadLastEventSeq(request.task_id(), bytes));
  if (!request.include_events()) return bytes;
  const auto append_event = [&bytes](absl::string_view event) {
    using google::protobuf::io::CodedOutputStream;
    uint8_t header[10];  // a tag and a length: two varint32s, 5 bytes each
    uint8_t* end = CodedOutputStream::WriteTagToArray(kTaskEventsTag, header);
    end = CodedOutputStream::WriteVarint32ToArray(
        static_cast<uint32_t>(event.size()), end);
    bytes.append(reinterpret_cast<const char*>(header), end - header);
    bytes.append(event.data(), event.size());
    return absl::OkStatus();
  };
  // A timeline's seqs are 1..last_event_seq without gaps: short ones are
  // fetched by point lookups, long ones by a bounded scan.
  constexpr int64_t kPointLookupLimit = 64;
  if (last_event_seq <= kPointLookupLimit) {
    RETURN_IF_ERROR(store_->VisitEventRange(request.task_id(), 1,
                                            last_event_seq, append_event));
  } else {
    RETURN_IF_ERROR(store_->VisitEvents(
        request.task_id(), 0, options_.max_events_returned, append_event));
  }
  return bytes;
}

absl::StatusOr<Task> Tracker::GetSnapshot(absl::string_view task_id) const {
  RETURN_IF_ERROR(CheckTaskId(task_id));
  return store_->GetTask(task_id);
}

absl::StatusOr<std::vector<TaskEvent>> Tracker::ReadEvents(
    absl::string_view task_id, int64_t after_seq, int limit) const {
  return store_->ReadEvents(task_id, after_seq, limit);
}

absl::StatusOr<v1::ListTasksResponse> Tracker::ListTasks(
    const v1::ListTasksRequest& request) const {
  std::vector<v1::FieldViolation> violations;
  CheckString("account_id", request.account_id(), false, kMaxIdBytes,
              &violations);
  CheckString("model", request.model(), false, kMaxIdBytes, &violations);
  CheckString("upstream_task_id", request.upstream_task_id(), false,
              kMaxIdBytes, &violations);
  CheckString("request_id", request.request_id(), false, kMaxIdBytes,
              &violations);
  if (request.page_size() < 0) {
    violations.push_back(Violation("page_size", "FIELD_OUT_OF_RANGE",
                                   "page_size must not be negative"));
  }
  if (!v1::TaskState_IsValid(request.state())) {
    violations.push_back(Violation("state", "FIELD_OUT_OF_RANGE",
                                   "state is not a known TaskState"));
  }
  if (!violations.empty()) {
    return InvalidArgument(kInvalidRequest, "", violations);
  }
  const int page_size = request.page_size() == 0
                            ? kDefaultPageSize
                            : std::min(request.page_size(), kMaxPageSize);

  store::TaskScan scan = ScanFor(request);
  if (!request.page_token().empty()) {
    ASSIGN_OR_RETURN(scan.before_task_id,
                     DecodePageToken(request.page_token()));
  }
  // Bound the work of one call; a sparse filter continues on the next page.
  scan.max_visits = std::max(page_size + 1, 10 * kMaxPageSize);

  v1::ListTasksResponse response;
  int visits = 0;
  bool more = false;
  ASSIGN_OR_RETURN(std::string last_visited,
                   store_->Scan(scan, [&](const Task& task) {
                     ++visits;
                     if (!Matches(request, task)) return true;
                     if (response.tasks_size() == page_size) {
                       more = true;
                       return false;
                     }
                     *response.add_tasks() = task;
                     return true;
                   }));
  if (more) {
    response.set_next_page_token(
        EncodePageToken(response.tasks(response.tasks_size() - 1).task_id()));
  } else if (visits >= scan.max_visits && !last_visited.empty()) {
    response.set_next_page_token(EncodePageToken(last_visited));
  }
  return response;
}

absl::Status Tracker::GetQueueStatus(const v1::GetQueueStatusRequest& request,
                                     v1::QueueStatus* status) {
  RETURN_IF_ERROR(CheckTaskId(request.task_id()));
  // Judged from the snapshot where it lies: of its fields only those the
  // verdict needs are read.
  return store_->VisitTask(
      request.task_id(), [&](absl::string_view snapshot) -> absl::Status {
        const absl::optional<QueueFacts> facts = ReadQueueFacts(snapshot);
        if (!facts.has_value()) return SnapshotDoesNotParse(request.task_id());
        ASSIGN_OR_RETURN(const TypicalWait typical,
                         waits_.Typical(facts->model));
        JudgeQueue(*facts, typical, clock_->Now(), options_.stale_after,
                   status);
        return absl::OkStatus();
      });
}

absl::StatusOr<v1::Stats> Tracker::GetStats(
    const v1::GetStatsRequest& request) {
  absl::Duration window = request.has_window()
                              ? FromProtoDuration(request.window())
                              : absl::Minutes(15);
  if (window < absl::Minutes(1) || window > kMaxStatsWindow) {
    return InvalidField("window", "FIELD_OUT_OF_RANGE",
                        absl::StrCat("window is ", absl::FormatDuration(window),
                                     "; it must be between 1m and 24h"));
  }
  std::vector<v1::FieldViolation> violations;
  CheckString("model", request.model(), false, kMaxIdBytes, &violations);
  if (!violations.empty()) {
    return InvalidArgument(kInvalidRequest, "", violations);
  }
  return ComputeStats(*store_, &waits_, request.model(), window, clock_->Now());
}

absl::Status Tracker::RecordAudit(absl::string_view task_id,
                                  absl::string_view principal,
                                  absl::string_view role,
                                  absl::string_view rpc) {
  v1::AuditEntry entry;
  entry.set_task_id(std::string(task_id));
  const absl::Time now = clock_->Now();
  *entry.mutable_time() = ToProtoTime(now);
  entry.set_principal(std::string(principal));
  entry.set_role(std::string(role));
  entry.set_rpc(std::string(rpc));
  return store_->WriteRaw(
      {{store::ColumnFamily::kAudit,
        store::AuditKey(task_id, absl::ToUnixMicros(now), ++audit_nonce_),
        entry.SerializeAsString()}},
      store::TaskStore::Durability::kBuffered);
}

absl::StatusOr<v1::ListAuditResponse> Tracker::ListAudit(
    const v1::ListAuditRequest& request) const {
  RETURN_IF_ERROR(CheckTaskId(request.task_id()));
  const int limit = request.page_size() <= 0
                        ? 100
                        : std::min(request.page_size(), kMaxPageSize);
  std::vector<v1::AuditEntry> entries;
  RETURN_IF_ERROR(store_->ScanRaw(
      store::ColumnFamily::kAudit, store::EventPrefix(request.task_id()),
      [&](absl::string_view, absl::string_view value) {
        v1::AuditEntry entry;
        if (entry.ParseFromArray(value.data(),
                                 static_cast<int>(value.size()))) {
          entries.push_back(std::move(entry));
        }
        return true;
      }));
  v1::ListAuditResponse response;
  for (auto it = entries.rbegin();
       it != entries.rend() && response.entries_size() < limit; ++it) {
    *response.add_entries() = std::move(*it);
  }
  return response;
}

void Tracker::AddNote(const v1::AddNoteRequest& request,
                      absl::string_view actor, Completion<Task> done) {
  Complete(PrepareNote(request, actor, LockWait::kWait), std::move(done));
}

bool Tracker::AddNote(const v1::AddNoteRequest& request,
                      absl::string_view actor, LockWait wait,
                      Completion<Task>* done) {
  return Start(PrepareNote(request, actor, wait), done);
}

absl::StatusOr<Task> Tracker::AddNote(const v1::AddNoteRequest& request,
                                      absl::string_view actor) {
  return AwaitAnswer<Task>(
      [&](Completion<Task> done) { AddNote(request, actor, std::move(done)); });
}

Tracker::Pending<Task> Tracker::PrepareNote(const v1::AddNoteRequest& request,
                                            absl::string_view actor,
                                            LockWait wait) {
  std::vector<v1::FieldViolation> violations;
  CheckString("task_id", request.task_id(), true, kMaxIdBytes, &violations);
  CheckString("text", request.text(), true, kMaxTextBytes, &violations);
  CheckString("author", request.author(), false, kMaxIdBytes, &violations);
  CheckString("final_cause", request.final_cause(), false, kMaxTextBytes,
              &violations);
  if (!violations.empty()) {
    return InvalidArgument(kInvalidRequest, "", violations);
  }
  absl::optional<StripeLocks::Lease> task_lease =
      Lock(task_locks_, request.task_id(), wait);
  if (!task_lease.has_value()) return Pending<Task>::LockBusy();
  ASSIGN_OR_RETURN(Task task, store_->GetTask(request.task_id()));
  TaskEvent event;
  event.set_type(v1::EVENT_TYPE_NOTE_ADDED);
  const std::string author =
      actor.empty() ? request.author() : std::string(actor);
  event.set_actor(author);
  v1::Note* note = event.mutable_note();
  note->set_author(author);
  note->set_text(request.text());
  note->set_final_cause(request.final_cause());
  *note->mutable_create_time() = ToProtoTime(clock_->Now());
  const Task previous = task;
  PendingWrite write;
  RETURN_IF_ERROR(PrepareAppend(previous, &task, &event, "", {}, &write));
  write.leases.push_back(*std::move(task_lease));
  return Pending<Task>(std::move(task), std::move(write));
}

}  // namespace tasktrail
