// Reads: GetTask (parsed, and the stored snapshot's bytes with its timeline),
// GetSnapshot, ReadEvents, ListTasks (request checks, page tokens and the
// choice of index), GetQueueStatus and GetStats.
#include <algorithm>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "google/protobuf/io/coded_stream.h"
#include "service/rules/errors.h"
#include "service/rules/queue_verdict.h"
#include "service/rules/status_macros.h"
#include "service/rules/time_util.h"
#include "service/rules/validator.h"
#include "service/rules/wire_fields.h"
#include "service/tracker/stats.h"
#include "service/tracker/tracker.h"
#include "service/tracker/tracker_internal.h"

namespace tasktrail {
namespace {

using v1::Task;
using v1::TaskEvent;

using tracker_internal::CheckTaskId;
using tracker_internal::SnapshotDoesNotParse;

// The key of a Task.events entry on the wire: field number and wire type 2
// (length-delimited).
constexpr uint32_t kTaskEventsTag =
    (static_cast<uint32_t>(Task::kEventsFieldNumber) << 3) | 2;

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

absl::StatusOr<Task> Tracker::GetTask(const v1::GetTaskRequest& request) const {
  ASSIGN_OR_RETURN(const std::string bytes, GetStoredTaskBytes(request));
  Task task;
  if (!task.ParseFromString(bytes)) {
    return SnapshotDoesNotParse(request.task_id());
  }
  return task;
}

absl::StatusOr<std::string> Tracker::GetStoredTaskBytes(
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
  CheckIdentifier("account_id", request.account_id(), false, kMaxIdBytes,
                  &violations);
  CheckIdentifier("model", request.model(), false, kMaxIdBytes, &violations);
  CheckIdentifier("upstream_task_id", request.upstream_task_id(), false,
                  kMaxIdBytes, &violations);
  CheckIdentifier("request_id", request.request_id(), false, kMaxIdBytes,
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
  if (request.has_window()) {
    RETURN_IF_ERROR(CheckDurationField("window", request.window()));
  }
  absl::Duration window = request.has_window()
                              ? FromProtoDuration(request.window())
                              : absl::Minutes(15);
  if (window < absl::Minutes(1) || window > kMaxStatsWindow) {
    return InvalidField("window", "FIELD_OUT_OF_RANGE",
                        absl::StrCat("window is ", absl::FormatDuration(window),
                                     "; it must be between 1m and 24h"));
  }
  std::vector<v1::FieldViolation> violations;
  CheckIdentifier("model", request.model(), false, kMaxIdBytes, &violations);
  if (!violations.empty()) {
    return InvalidArgument(kInvalidRequest, "", violations);
  }
  return ComputeStats(*store_, &waits_, request.model(), window, clock_->Now());
}

}  // namespace tasktrail
