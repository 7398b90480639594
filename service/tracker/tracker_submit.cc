// Submission: request checks, the request_id and content dedup, catalog
// validation (and the counted rejection), and the new task; ValidateTask and
// ListModels, which share the checks and the catalog.
#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "service/rules/errors.h"
#include "service/rules/fingerprint.h"
#include "service/rules/scrubber.h"
#include "service/rules/status_macros.h"
#include "service/rules/time_util.h"
#include "service/rules/validator.h"
#include "service/tracker/tracker.h"
#include "service/tracker/tracker_internal.h"

namespace tasktrail {
namespace {

using v1::Task;
using v1::TaskEvent;

// Size limits on the parameters, independent of the model: they bound the
// work and storage of one request.
void CheckParamSizes(const v1::TaskParams& params,
                     std::vector<v1::FieldViolation>* violations) {
  CheckString("params.prompt", params.prompt(), false, kMaxPromptBytes,
              violations);
  CheckString("params.negative_prompt", params.negative_prompt(), false,
              kMaxPromptBytes, violations);
  CheckIdentifier("params.aspect_ratio", params.aspect_ratio(), false,
                  kMaxIdBytes, violations);
  CheckIdentifier("params.resolution", params.resolution(), false, kMaxIdBytes,
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
    CheckIdentifier(at + ".mime_type", image.mime_type(), false, kMaxIdBytes,
                    violations);
  }
}

}  // namespace

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
  tracker_internal::CountForTask(absl::ToUnixSeconds(clock_->Now()) / 60, task,
                                 store::CounterKind::kDuplicatesBlocked, "",
                                 &extra);
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

Tracker::Pending<v1::SubmitTaskResponse> Tracker::PrepareSubmit(
    const v1::SubmitTaskRequest& request, absl::string_view actor,
    LockWait wait) {
  std::vector<v1::FieldViolation> violations;
  CheckIdentifier("account_id", request.account_id(), true, kMaxIdBytes,
                  &violations);
  CheckIdentifier("model", request.model(), true, kMaxIdBytes, &violations);
  CheckIdentifier("api_key_id", request.api_key_id(), false, kMaxIdBytes,
                  &violations);
  CheckIdentifier("group", request.group(), false, kMaxIdBytes, &violations);
  CheckIdentifier("endpoint", request.endpoint(), false, kMaxEndpointBytes,
                  &violations);
  CheckIdentifier("request_id", request.request_id(), false, kMaxIdBytes,
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
      store::RequestIdDedupKey(account, request.request_id());
  const std::string request_shape = RequestShape(
      CanonicalParts(request.model(), request.endpoint(), request.params()));
  const store::DedupRecord request_record{
      absl::ToUnixMicros(now + options_.dedup_retention), "", request_shape};
  // The catalog's verdict comes before the request_id's only in time: the
  // content key needs the effective parameters, and both dedup records are
  // then read together (one round trip on a database).
  const std::shared_ptr<const Catalog> catalog = catalog_->Get();
  ValidationResult validation =
      tasktrail::ValidateTask(*catalog, request.model(), request.group(),
                              GroupCheck::kAlways, request.params());
  std::vector<std::string> dedup_keys;
  if (!request.request_id().empty()) dedup_keys.push_back(request_key);
  std::string content_key;
  if (validation.violations.empty()) {
    content_key = store::ContentDedupKey(
        account,
        ContentFingerprint(account,
                           CanonicalParts(request.model(), request.endpoint(),
                                          validation.effective)));
    dedup_keys.push_back(content_key);
  }
  ASSIGN_OR_RETURN(
      std::vector<absl::optional<store::DedupRecord>> dedup_records,
      store_->GetDedupRecords(dedup_keys, absl::ToUnixMicros(now)));
  if (!request.request_id().empty()) {
    const absl::optional<store::DedupRecord>& seen = dedup_records.front();
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
  if (!validation.violations.empty()) {
    // Unknown model names are caller-chosen strings: count them under one
    // name so that they cannot create unbounded stats rows.
    Pending<v1::SubmitTaskResponse> rejected(InvalidArgument(
        kInvalidTaskParameters, request.model(), validation.violations));
    std::string model(validation.model != nullptr ? request.model()
                                                  : kUnknownModel);
    std::vector<std::string> reasons;
    for (const v1::FieldViolation& violation : validation.violations) {
      if (std::find(reasons.begin(), reasons.end(), violation.reason()) ==
          reasons.end()) {
        reasons.push_back(violation.reason());
      }
    }
    rejected.write.prepared = CountRejection(model, reasons);
    if (options_.observer != nullptr) {
      rejected.write.after_commit.push_back([observer = options_.observer,
                                             model = std::move(model),
                                             reasons = std::move(reasons)] {
        observer->OnRejected(model, reasons);
      });
    }
    return rejected;
  }

  // 3. The same content while the original is live (or just succeeded).
  auto request_binding = [&](const std::string& task_id) {
    std::vector<store::RawMutation> extra;
    if (!request.request_id().empty()) {
      store::DedupRecord record = request_record;
      record.task_id = task_id;
      extra.push_back(store::RawMutation::PutDedup(request_key, record));
    }
    return extra;
  };
  // The content key's owner, read even with force_new: the new task takes
  // the key over from it (a store shared by replicas checks that it is
  // still the owner when the write commits).
  const absl::optional<store::DedupRecord>& seen = dedup_records.back();
  const std::string content_owner = seen.has_value() ? seen->task_id : "";
  if (!request.force_new()) {
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
  extra.push_back(store::RawMutation::PutDedup(
      content_key,
      {absl::ToUnixMicros(now + options_.dedup_content_ttl), task.task_id(),
       ""},
      content_owner));
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
    absl::string_view model, const std::vector<std::string>& reasons) {
  const int64_t minute = absl::ToUnixSeconds(clock_->Now()) / 60;
  std::vector<store::RawMutation> counts;
  counts.push_back(store::RawMutation::CountOne(minute, model,
                                                store::CounterKind::kRejected));
  for (const std::string& reason : reasons) {
    counts.push_back(store::RawMutation::CountOne(
        minute, model, store::CounterKind::kRejectedReason, reason));
  }
  // The rejection is answered whether or not it could be counted (Complete
  // keeps an error result); a store that fails here also fails the next
  // write, which reports UNAVAILABLE.
  return store_->PrepareRaw(counts);
}

absl::StatusOr<v1::ValidateTaskResponse> Tracker::ValidateTask(
    const v1::ValidateTaskRequest& request) const {
  std::vector<v1::FieldViolation> violations;
  CheckIdentifier("model", request.model(), false, kMaxIdBytes, &violations);
  CheckIdentifier("group", request.group(), false, kMaxIdBytes, &violations);
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

absl::StatusOr<v1::ListModelsResponse> Tracker::ListModels(
    const v1::ListModelsRequest& request) const {
  if (!v1::TaskKind_IsValid(request.kind())) {
    return InvalidField(
        "kind", "FIELD_OUT_OF_RANGE",
        absl::StrCat("kind ", static_cast<int>(request.kind()),
                     " is not a known TaskKind; use TASK_KIND_IMAGE, "
                     "TASK_KIND_VIDEO, or TASK_KIND_UNSPECIFIED for all"));
  }
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

}  // namespace tasktrail
