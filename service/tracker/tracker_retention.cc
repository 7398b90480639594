// Retention and erasure: PurgeDueTasks (what RetentionSweeper runs),
// PurgeTask (an erasure request) and the NOT_FOUND answer for ids that may
// name a purged task.
#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "service/rules/errors.h"
#include "service/rules/fingerprint.h"
#include "service/rules/status_macros.h"
#include "service/rules/time_util.h"
#include "service/tracker/tracker.h"
#include "service/tracker/tracker_internal.h"

namespace tasktrail {
namespace {

using tracker_internal::CheckTaskId;
using v1::Task;

// The cutoff of a retention at `now` in Unix microseconds: tasks whose
// retention time is before it are due; 0 (none due) for a retention of 0.
int64_t CutoffMicros(absl::Duration retention, absl::Time now) {
  if (retention <= absl::ZeroDuration()) return 0;
  return std::max<int64_t>(absl::ToUnixMicros(now - retention), 0);
}

}  // namespace

bool Tracker::MayNamePurgedTask(absl::string_view task_id) const {
  absl::Duration shortest = absl::InfiniteDuration();
  for (absl::Duration retention :
       {options_.task_retention, options_.unfinished_retention}) {
    if (retention > absl::ZeroDuration()) {
      shortest = std::min(shortest, retention);
    }
  }
  // A task is purged at the earliest `shortest` after it was created: a
  // younger id cannot name a purged task.
  return shortest != absl::InfiniteDuration() && LooksLikeTaskId(task_id) &&
         TaskIdTime(task_id) < clock_->Now() - shortest;
}

absl::Status Tracker::TaskNotFound(absl::string_view task_id) const {
  if (MayNamePurgedTask(task_id)) {
    if (options_.task_retention > absl::ZeroDuration()) {
      return absl::NotFoundError(
          absl::StrCat("task ", task_id, " not found; finished tasks are kept ",
                       FormatRetention(options_.task_retention)));
    }
    return absl::NotFoundError(
        absl::StrCat("task ", task_id, " not found; unfinished tasks are kept ",
                     FormatRetention(options_.unfinished_retention),
                     " after their last event"));
  }
  return absl::NotFoundError(absl::StrCat("task ", task_id, " not found"));
}

absl::Status Tracker::ExplainNotFound(absl::string_view task_id,
                                      absl::Status status) const {
  if (absl::IsNotFound(status)) return TaskNotFound(task_id);
  return status;
}

absl::StatusOr<Task> Tracker::GetStoredSnapshot(
    absl::string_view task_id) const {
  absl::StatusOr<Task> task = store_->GetTask(task_id);
  if (!task.ok()) return ExplainNotFound(task_id, task.status());
  return task;
}

absl::StatusOr<absl::optional<Tracker::PreparedPurge>> Tracker::PreparePurgeOne(
    absl::string_view task_id, bool due_only, absl::Time now, LockWait wait,
    bool* busy) {
  if (busy != nullptr) *busy = false;
  // The account's lock is taken before the task's (the order SubmitTask
  // takes them in), so that no submission of the account reads a dedup
  // record of the task while it goes.
  ASSIGN_OR_RETURN(const Task unlocked, store_->GetTask(task_id));
  absl::optional<StripeLocks::Lease> account_lease =
      Lock(account_locks_, unlocked.account_id(), wait);
  absl::optional<StripeLocks::Lease> task_lease;
  if (account_lease.has_value()) {
    task_lease = Lock(task_locks_, task_id, wait);
  }
  if (!task_lease.has_value()) {
    if (busy != nullptr) *busy = true;
    return absl::optional<PreparedPurge>();
  }
  // Read again under the locks: an event may have changed it meanwhile.
  ASSIGN_OR_RETURN(const Task task, store_->GetTask(task_id));
  if (due_only) {
    const bool unfinished = store::IsUnfinishedState(task.state());
    const absl::Time since = FromProtoTime(!unfinished && task.has_finish_time()
                                               ? task.finish_time()
                                               : task.update_time());
    const int64_t cutoff = CutoffMicros(
        unfinished ? options_.unfinished_retention : options_.task_retention,
        now);
    if (cutoff == 0 || absl::ToUnixMicros(since) >= cutoff) {
      return absl::optional<PreparedPurge>();
    }
  }
  const std::string content_key = store::ContentDedupKey(
      task.account_id(),
      ContentFingerprint(
          task.account_id(),
          CanonicalParts(task.model(), task.endpoint(), task.params())));
  ASSIGN_OR_RETURN(store::PreparedWrite write,
                   store_->PreparePurge(task_id, {content_key}));
  PreparedPurge purge{std::move(write), std::string(task_id), task.model(), {}};
  purge.leases.push_back(*std::move(account_lease));
  purge.leases.push_back(*std::move(task_lease));
  return absl::optional<PreparedPurge>(std::move(purge));
}

absl::StatusOr<int> Tracker::CommitPurges(std::vector<PreparedPurge> purges) {
  absl::Mutex mutex;
  size_t pending = purges.size();
  absl::Status first_error;
  int purged = 0;
  for (PreparedPurge& purge : purges) {
    // The commit thread runs the callback: it releases the locks and tells
    // the observer (which must not block), then counts.
    store_->Commit(
        std::move(purge.write),
        [&, task_id = std::move(purge.task_id), model = std::move(purge.model),
         leases = std::move(purge.leases)](absl::Status status) mutable {
          leases.clear();
          // Its watchers are told it is gone.
          if (status.ok()) hub_->Refresh(task_id);
          if (status.ok() && options_.observer != nullptr) {
            // Gone: no longer counted among the unfinished tasks.
            options_.observer->OnTaskWritten(
                task_id, model, v1::TASK_STATE_UNSPECIFIED, absl::UnixEpoch());
          }
          absl::MutexLock lock(&mutex);
          if (status.ok()) {
            ++purged;
          } else if (first_error.ok()) {
            first_error = std::move(status);
          }
          --pending;
        });
  }
  absl::MutexLock lock(&mutex);
  mutex.Await(absl::Condition(
      +[](size_t* left) { return *left == 0; }, &pending));
  if (!first_error.ok()) return first_error;
  return purged;
}

absl::StatusOr<int> Tracker::PurgeDueTasks(int limit) {
  const absl::Time now = clock_->Now();
  const int64_t finished_cutoff = CutoffMicros(options_.task_retention, now);
  const int64_t unfinished_cutoff =
      CutoffMicros(options_.unfinished_retention, now);
  if (finished_cutoff == 0 && unfinished_cutoff == 0) return 0;
  ASSIGN_OR_RETURN(
      const std::vector<std::string> due,
      store_->ListDueTasks(finished_cutoff, unfinished_cutoff, limit));
  // The batch is committed together: one durable write instead of one per
  // task. Its tasks stay locked until then; a busy one waits for the next
  // sweep.
  // A task may be busy because this batch holds its stripe (tasks of one
  // account share the account's lock): the batch so far is committed, which
  // frees its stripes, and the task is tried once more.
  std::vector<PreparedPurge> purges;
  int purged = 0;
  for (const std::string& task_id : due) {
    for (int attempt = 0; attempt < 2; ++attempt) {
      bool busy = false;
      absl::StatusOr<absl::optional<PreparedPurge>> prepared = PreparePurgeOne(
          task_id, /*due_only=*/true, now, LockWait::kNever, &busy);
      // Purged meanwhile by an erasure: nothing left to do.
      if (absl::IsNotFound(prepared.status())) break;
      if (!prepared.ok()) return prepared.status();
      if (prepared->has_value()) {
        purges.push_back(**std::move(prepared));
        break;
      }
      if (!busy || purges.empty()) break;
      ASSIGN_OR_RETURN(const int committed, CommitPurges(std::move(purges)));
      purged += committed;
      purges.clear();
    }
  }
  ASSIGN_OR_RETURN(const int committed, CommitPurges(std::move(purges)));
  return purged + committed;
}

absl::StatusOr<v1::PurgeTaskResponse> Tracker::PurgeTask(
    const v1::PurgeTaskRequest& request, absl::string_view principal) {
  RETURN_IF_ERROR(CheckTaskId(request.task_id()));
  std::vector<v1::FieldViolation> violations;
  CheckString("reason", request.reason(), /*required=*/true, kMaxTextBytes,
              &violations);
  if (!violations.empty()) {
    return InvalidArgument(kInvalidRequest, "", violations);
  }
  const absl::Time now = clock_->Now();
  absl::StatusOr<absl::optional<PreparedPurge>> prepared = PreparePurgeOne(
      request.task_id(), /*due_only=*/false, now, LockWait::kWait);
  if (!prepared.ok()) {
    return ExplainNotFound(request.task_id(), prepared.status());
  }
  std::vector<PreparedPurge> purge;
  if (prepared->has_value()) purge.push_back(**std::move(prepared));
  RETURN_IF_ERROR(CommitPurges(std::move(purge)).status());
  // Written after the purge, which deletes the task's audit log: this entry
  // is what stays of the task.
  v1::PurgeTaskResponse response;
  v1::AuditEntry& entry = *response.mutable_audit_entry();
  entry.set_task_id(request.task_id());
  *entry.mutable_time() = ToProtoTime(now);
  entry.set_principal(std::string(principal));
  entry.set_rpc("PurgeTask");
  entry.set_reason(request.reason());
  RETURN_IF_ERROR(store_->WriteRaw(
      {store::RawMutation{
          store::ColumnFamily::kAudit,
          store::AuditKey(request.task_id(), absl::ToUnixMicros(now),
                          ++audit_nonce_),
          entry.SerializeAsString()}},
      store::TaskStore::Durability::kSynced));
  return response;
}

}  // namespace tasktrail
