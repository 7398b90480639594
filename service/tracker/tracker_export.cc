// Export: the tasks of a creation-time range, oldest first, a bounded page
// at a time (StartExport, NextExportPage).
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "service/rules/errors.h"
#include "service/rules/limits.h"
#include "service/rules/status_macros.h"
#include "service/rules/task_id.h"
#include "service/rules/time_util.h"
#include "service/tracker/tracker.h"

namespace tasktrail {

absl::StatusOr<ExportCursor> Tracker::StartExport(
    const v1::ExportTasksRequest& request) const {
  std::vector<v1::FieldViolation> violations;
  CheckIdentifier("account_id", request.account_id(), false, kMaxIdBytes,
                  &violations);
  if (!request.after_task_id().empty() &&
      !LooksLikeTaskId(request.after_task_id())) {
    violations.push_back(Violation(
        "after_task_id", "FIELD_INVALID",
        absl::StrCat("after_task_id must be a task id (", kTaskIdLength,
                     " characters of Crockford base32), the last task of "
                     "the export to resume")));
  }
  if (request.has_create_time_after()) {
    RETURN_IF_ERROR(
        CheckTimestampField("create_time_after", request.create_time_after()));
  }
  if (request.has_create_time_before()) {
    RETURN_IF_ERROR(CheckTimestampField("create_time_before",
                                        request.create_time_before()));
  }
  if (request.has_create_time_after() && request.has_create_time_before() &&
      FromProtoTime(request.create_time_before()) <
          FromProtoTime(request.create_time_after())) {
    violations.push_back(
        Violation("create_time_before", "FIELD_OUT_OF_RANGE",
                  "create_time_before must not be before create_time_after"));
  }
  if (!violations.empty()) {
    return InvalidArgument(kInvalidRequest, "", violations);
  }
  ExportCursor cursor;
  cursor.include_events = request.include_events();
  store::TaskScan& scan = cursor.scan;
  if (!request.account_id().empty()) {
    scan.index = store::ScanIndex::kAccount;
    scan.value = request.account_id();
  }
  scan.oldest_first = true;
  scan.resume_after_task_id = request.after_task_id();
  // The bounds are the ids' own times: a task whose id is in range is
  // exported, and no task outside the range is read.
  if (request.has_create_time_after()) {
    scan.min_task_id = TaskIdFloor(FromProtoTime(request.create_time_after()));
  }
  // Without an upper bound, the tasks created until the call: an export
  // ends even while tasks keep being submitted faster than it reads.
  scan.end_task_id =
      TaskIdFloor(request.has_create_time_before()
                      ? FromProtoTime(request.create_time_before())
                      : clock_->Now() + absl::Milliseconds(1));
  return cursor;
}

absl::Status Tracker::NextExportPage(ExportCursor* cursor, int max_tasks,
                                     int64_t max_bytes,
                                     std::vector<ExportedTask>* page) const {
  page->clear();
  if (cursor->done) return absl::OkStatus();
  store::TaskScan scan = cursor->scan;
  scan.max_visits = max_tasks;
  // The page's snapshots as the scan reads them, in sequence; then each
  // one's timeline is added in place.
  std::vector<ExportedTask> read;
  read.reserve(static_cast<size_t>(max_tasks));
  ASSIGN_OR_RETURN(
      const std::string last_visited,
      store_->ScanStoredTasks(
          scan, [&read](absl::string_view task_id, absl::string_view snapshot) {
            read.push_back(
                ExportedTask{std::string(task_id), std::string(snapshot)});
            return true;
          }));
  bool done = static_cast<int>(read.size()) < max_tasks;
  std::string resume_after = last_visited;
  int64_t bytes = 0;
  for (size_t i = 0; i < read.size(); ++i) {
    ExportedTask& task = read[i];
    ASSIGN_OR_RETURN(task.bytes,
                     StoredTaskBytesOf(task.task_id, std::move(task.bytes),
                                       cursor->include_events, kWholeTimeline,
                                       kWholeTimeline));
    bytes += static_cast<int64_t>(task.bytes.size());
    if (bytes >= max_bytes && i + 1 < read.size()) {
      resume_after = task.task_id;
      read.resize(i + 1);
      done = false;
      break;
    }
  }
  if (!resume_after.empty()) cursor->scan.resume_after_task_id = resume_after;
  cursor->done = done;
  *page = std::move(read);
  return absl::OkStatus();
}

}  // namespace tasktrail
