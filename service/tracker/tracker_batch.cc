// BatchGetTasks: the tasks of many ids at once, each a task id or an
// upstream task id, with their queue statuses when asked, within one
// answer's size limit.
#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "service/rules/errors.h"
#include "service/rules/limits.h"
#include "service/rules/queue_verdict.h"
#include "service/rules/status_macros.h"
#include "service/rules/task_id.h"
#include "service/rules/validator.h"
#include "service/tracker/tracker.h"
#include "service/tracker/tracker_internal.h"

namespace tasktrail {
namespace {

using v1::Task;

using tracker_internal::SnapshotDoesNotParse;

// What an entry of BatchGetTasksResponse adds to the answer besides its
// bytes: its key and length.
constexpr int64_t kEntryOverhead = 6;

// The room the timeline budget leaves for each task's queue status (with
// include_queue_status): a QueueStatus holds a task id and an upstream
// status of at most kMaxIdBytes, an advice sentence, and numbers, times and
// spans, well within it.
constexpr int64_t kQueueStatusRoom = 1024;

// INVALID_ARGUMENT naming `ids` (none, or too many) or `ids[i]` (each
// malformed one).
absl::Status CheckIds(const v1::BatchGetTasksRequest& request) {
  std::vector<v1::FieldViolation> violations;
  if (request.ids().empty()) {
    violations.push_back(
        Violation("ids", "FIELD_REQUIRED",
                  "ids must hold at least one task id or upstream task id"));
  } else if (request.ids_size() > kMaxBatchIds) {
    violations.push_back(Violation(
        "ids", "FIELD_OUT_OF_RANGE",
        absl::StrCat("ids holds ", request.ids_size(), " ids; at most ",
                     kMaxBatchIds, " are taken at once")));
  } else {
    for (int i = 0; i < request.ids_size(); ++i) {
      CheckIdentifier(absl::StrCat("ids[", i, "]"), request.ids(i),
                      /*required=*/true, kMaxIdBytes, &violations);
    }
  }
  if (violations.empty()) return absl::OkStatus();
  return InvalidArgument(kInvalidRequest, "", violations);
}

absl::Status TooLarge(absl::string_view what) {
  return absl::ResourceExhaustedError(absl::StrCat(
      "the answer would be too large: ", what,
      "; ask for fewer ids, or list an upstream id's tasks with ListTasks"));
}

// The ids of the tasks `id` names: the task of that id, or else every task
// the upstream gave that id, newest first (at most kMaxBatchTasks + 1);
// none when it names no task.
absl::StatusOr<std::vector<std::string>> TaskIdsNamedBy(
    const store::TaskStore& store, const std::string& id) {
  std::vector<std::string> task_ids;
  if (LooksLikeTaskId(id)) {
    const absl::Status exists =
        store.VisitTask(id, [](absl::string_view) { return absl::OkStatus(); });
    if (exists.ok()) return std::vector<std::string>{id};
    if (!absl::IsNotFound(exists)) return exists;
  }
  store::TaskScan scan;
  scan.index = store::ScanIndex::kUpstream;
  scan.value = id;
  scan.max_visits = kMaxBatchTasks + 1;
  const auto collect = [&id, &task_ids](const Task& task) {
    if (task.upstream_task_id() == id) task_ids.push_back(task.task_id());
    return true;
  };
  RETURN_IF_ERROR(store.Scan(scan, collect).status());
  return task_ids;
}

}  // namespace

absl::StatusOr<v1::BatchGetTasksResponse> Tracker::BatchGetTasks(
    const v1::BatchGetTasksRequest& request) {
  RETURN_IF_ERROR(CheckIds(request));

  absl::flat_hash_map<std::string, std::vector<std::string>> tasks_of;
  int64_t answered = 0;  // tasks in the answer, each repetition counted
  for (const std::string& id : request.ids()) {
    auto it = tasks_of.find(id);
    if (it == tasks_of.end()) {
      ASSIGN_OR_RETURN(std::vector<std::string> task_ids,
                       TaskIdsNamedBy(*store_, id));
      it = tasks_of.emplace(id, std::move(task_ids)).first;
    }
    answered += static_cast<int64_t>(it->second.size());
  }
  if (answered > kMaxBatchTasks) {
    return TooLarge(absl::StrCat(answered, " tasks; at most ", kMaxBatchTasks,
                                 " are answered at once"));
  }

  // With the timelines: the snapshots first, then what is left of the
  // answer's budget (and at most max_event_bytes_returned) is shared
  // equally among the timelines of the tasks answered.
  int64_t event_bytes = 0;
  if (request.include_events() && answered > 0) {
    absl::flat_hash_map<std::string, int64_t> snapshot_size;
    int64_t size =
        request.include_queue_status() ? answered * kQueueStatusRoom : 0;
    for (const std::string& id : request.ids()) {
      for (const std::string& task_id : tasks_of[id]) {
        auto it = snapshot_size.find(task_id);
        if (it == snapshot_size.end()) {
          ASSIGN_OR_RETURN(
              const std::string bytes,
              StoredTaskBytes(task_id, /*include_events=*/false, 0, 0));
          it = snapshot_size.emplace(task_id, bytes.size()).first;
        }
        size += kEntryOverhead + it->second;
      }
    }
    if (size > kMaxBatchAnswerBytes) {
      return TooLarge(absl::StrCat("the ", answered,
                                   " tasks alone take more than ",
                                   kMaxBatchAnswerBytes, " bytes"));
    }
    event_bytes = std::min(options_.max_event_bytes_returned,
                           kMaxBatchAnswerBytes - size) /
                  answered;
  }

  absl::flat_hash_map<std::string, Task> read;
  v1::BatchGetTasksResponse response;
  int64_t size = 0;
  for (const std::string& id : request.ids()) {
    const std::vector<std::string>& task_ids = tasks_of[id];
    if (task_ids.empty()) {
      v1::MissingId* missing = response.add_missing();
      missing->set_id(id);
      missing->set_maybe_purged(MayNamePurgedTask(id));
      missing->set_message(std::string(TaskNotFound(id).message()));
      size += 2 * kEntryOverhead + 2 * static_cast<int64_t>(id.size()) +
              static_cast<int64_t>(missing->message().size());
      response.add_missing_ids(id);
    }
    for (const std::string& task_id : task_ids) {
      auto it = read.find(task_id);
      if (it == read.end()) {
        ASSIGN_OR_RETURN(
            const std::string bytes,
            StoredTaskBytes(task_id, request.include_events(),
                            options_.max_events_returned, event_bytes));
        Task task;
        if (!task.ParseFromString(bytes)) return SnapshotDoesNotParse(task_id);
        it = read.emplace(task_id, std::move(task)).first;
      }
      // A timeline's first entry is kept whatever its share: tasks whose
      // first entries are large may still make the answer too large.
      size += kEntryOverhead + static_cast<int64_t>(it->second.ByteSizeLong());
      if (size > kMaxBatchAnswerBytes) {
        return TooLarge(absl::StrCat("the ", answered, " tasks take more than ",
                                     kMaxBatchAnswerBytes, " bytes"));
      }
      *response.add_tasks() = it->second;
    }
  }
  if (request.include_queue_status()) {
    const absl::Time now = clock_->Now();
    for (const Task& task : response.tasks()) {
      ASSIGN_OR_RETURN(const TypicalWait typical, waits_.Typical(task.model()));
      v1::QueueStatus* status = response.add_queue_statuses();
      JudgeQueue(QueueFactsOf(task), typical, now, options_.stale_after,
                 status);
      size += kEntryOverhead + static_cast<int64_t>(status->ByteSizeLong());
      if (size > kMaxBatchAnswerBytes) {
        return TooLarge(absl::StrCat("the ", answered,
                                     " tasks with their queue statuses take "
                                     "more than ",
                                     kMaxBatchAnswerBytes, " bytes"));
      }
    }
  }
  return response;
}

}  // namespace tasktrail
