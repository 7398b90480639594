// Reads: GetTask (parsed, and the stored snapshot's bytes with its timeline),
// GetSnapshot, ReadEvents, ListTasks (request checks, page tokens and the
// choice of index), GetQueueStatus and GetStats.
#include <algorithm>
#include <limits>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "google/protobuf/io/coded_stream.h"
#include "service/rules/errors.h"
#include "service/rules/limits.h"
#include "service/rules/queue_verdict.h"
#include "service/rules/status_macros.h"
#include "service/rules/task_id.h"
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

// The largest snapshot a task can have (a Task without events), from the
// limits on what requests carry (limits.h), each field with room for its key
// and length:
//   ten identifiers of at most kMaxIdBytes (task, account, API key, group,
//     model, request and upstream ids, upstream status, error code, catalog
//     version) and the endpoint:                            ~1.5 KiB
//   params: prompt and negative prompt (2 × 32 KiB), aspect ratio and
//     resolution, callback URL (2 KiB), 16 reference images (URI 2 KiB and
//     MIME type each):                                      ~101 KiB
//   64 result URIs of 2 KiB:                                ~128 KiB
//   the failure: message (4 KiB) and cause (a cancel reason, 4 KiB):
//                                                           ~8.3 KiB
//   kNotesInSnapshot notes (author, text 4 KiB, final cause 4 KiB):
//                                                           ~82 KiB
//   timestamps, counts and enums:                            1 KiB
// about 322 KiB in all. With the timeline's 3 MiB (max_event_bytes_returned)
// and the omitted_event_count field, GetTask's largest answer is under
// 3.35 MiB: within a client's default 4 MiB limit with more than 600 KiB to
// spare (for the catalog version, which the operator's catalog sets, and for
// gRPC's own framing). A snapshot stored before the notes were capped may
// hold more notes: GetStoredTaskBytes cuts those to the newest ones.
constexpr int64_t kFieldOverhead = 6;  // a key and a length
constexpr int64_t kMaxSnapshotBytes =
    11 * (static_cast<int64_t>(kMaxIdBytes) + kFieldOverhead) +
    (static_cast<int64_t>(kMaxEndpointBytes) + kFieldOverhead) +
    2 * (static_cast<int64_t>(kMaxPromptBytes) + kFieldOverhead) +
    3 * (static_cast<int64_t>(kMaxIdBytes) + kFieldOverhead) +
    (static_cast<int64_t>(kMaxUriBytes) + kFieldOverhead) +
    kMaxReferenceImages * (static_cast<int64_t>(kMaxUriBytes + kMaxIdBytes) +
                           4 * kFieldOverhead + 32) +
    kMaxResultUris * (static_cast<int64_t>(kMaxUriBytes) + kFieldOverhead) +
    2 * (static_cast<int64_t>(kMaxTextBytes) + kFieldOverhead) + 256 +
    kNotesInSnapshot * (static_cast<int64_t>(kMaxIdBytes + 2 * kMaxTextBytes) +
                        6 * kFieldOverhead + 32) +
    1024;
constexpr int64_t kDefaultClientLimit = int64_t{4} << 20;
static_assert(kMaxSnapshotBytes < 340 * 1024, "update the sum above");
static_assert(kMaxSnapshotBytes + kMaxEventBytesReturned + 64 <
                  kDefaultClientLimit - 512 * 1024,
              "GetTask's largest answer must fit a client's default 4 MiB "
              "limit with room to spare");

// What GetStoredTaskBytes reads of a stored snapshot, found by walking the
// message's fields without parsing them.
struct SnapshotFacts {
  int64_t last_event_seq = 0;
  int notes = 0;           // entries of Task.notes
  int64_t note_count = 0;  // Task.note_count
};

// DATA_LOSS when the bytes are not well-formed wire format (see
// ForEachWireField).
absl::StatusOr<SnapshotFacts> ReadSnapshotFacts(absl::string_view task_id,
                                                absl::string_view snapshot) {
  SnapshotFacts facts;
  if (!ForEachWireField(snapshot, [&facts](const WireField& field) {
        if (field.number == Task::kLastEventSeqFieldNumber &&
            field.type == WireType::kVarint) {
          facts.last_event_seq = static_cast<int64_t>(field.value);
        } else if (field.number == Task::kNotesFieldNumber) {
          ++facts.notes;
        } else if (field.number == Task::kNoteCountFieldNumber &&
                   field.type == WireType::kVarint) {
          facts.note_count = static_cast<int64_t>(field.value);
        }
      })) {
    return SnapshotDoesNotParse(task_id);
  }
  return facts;
}

// Appends a varint field to serialized message bytes; a later occurrence of
// a scalar field overrides an earlier one when parsed.
void AppendVarintField(int number, uint64_t value, std::string* bytes) {
  using google::protobuf::io::CodedOutputStream;
  uint8_t field[15];  // a key (5 bytes at most) and a varint64 (10)
  uint8_t* end = CodedOutputStream::WriteTagToArray(
      (static_cast<uint32_t>(number) << 3) | 0, field);
  end = CodedOutputStream::WriteVarint64ToArray(value, end);
  bytes->append(reinterpret_cast<const char*>(field), end - field);
}

// The size of an event's bytes framed as a Task.events entry.
int64_t FramedSize(absl::string_view event) {
  using google::protobuf::io::CodedOutputStream;
  return CodedOutputStream::VarintSize32(kTaskEventsTag) +
         CodedOutputStream::VarintSize32(static_cast<uint32_t>(event.size())) +
         static_cast<int64_t>(event.size());
}

// Appends an event's bytes framed as a Task.events entry.
void AppendEvent(absl::string_view event, std::string* bytes) {
  using google::protobuf::io::CodedOutputStream;
  uint8_t header[10];  // a tag and a length: two varint32s, 5 bytes each
  uint8_t* end = CodedOutputStream::WriteTagToArray(kTaskEventsTag, header);
  end = CodedOutputStream::WriteVarint32ToArray(
      static_cast<uint32_t>(event.size()), end);
  bytes->append(reinterpret_cast<const char*>(header), end - header);
  bytes->append(event.data(), event.size());
}

// Page tokens: web-safe base64 of "v2:" DIGEST ":" TASK_ID, where DIGEST is
// FiltersDigest of the request that was answered and TASK_ID the last task
// visited. Tokens of the first format ("v1:" TASK_ID) are refused.
constexpr absl::string_view kPageTokenVersion = "v2";

// A digest of every field of `request` but page_size and page_token, as 16
// hex digits: a token carries it so that it is refused with other filters.
// FNV-1a over the serialized fields, which are written in field-number
// order (the message has no maps), so the digest is stable across
// processes.
std::string FiltersDigest(const v1::ListTasksRequest& request) {
  v1::ListTasksRequest filters = request;
  filters.clear_page_size();
  filters.clear_page_token();
  uint64_t hash = 14695981039346656037ull;
  for (const char c : filters.SerializeAsString()) {
    hash ^= static_cast<uint8_t>(c);
    hash *= 1099511628211ull;
  }
  return absl::StrFormat("%016x", hash);
}

std::string EncodePageToken(absl::string_view digest,
                            absl::string_view last_task_id) {
  return absl::WebSafeBase64Escape(
      absl::StrCat(kPageTokenVersion, ":", digest, ":", last_task_id));
}

// The task id a token resumes after. INVALID_ARGUMENT (PAGE_TOKEN_INVALID)
// naming page_token when it is not a token of ListTasks or was issued for
// other filters.
absl::StatusOr<std::string> DecodePageToken(absl::string_view token,
                                            absl::string_view digest) {
  std::string decoded;
  const std::vector<absl::string_view> parts =
      absl::WebSafeBase64Unescape(token, &decoded)
          ? absl::StrSplit(decoded, absl::MaxSplits(':', 2))
          : std::vector<absl::string_view>();
  if (parts.size() != 3 || parts[0] != kPageTokenVersion ||
      !LooksLikeTaskId(parts[2])) {
    return InvalidField("page_token", "PAGE_TOKEN_INVALID",
                        "page_token is not a token returned by ListTasks");
  }
  if (parts[1] != digest) {
    return InvalidField("page_token", "PAGE_TOKEN_INVALID",
                        "page_token was issued for other filters; pass the "
                        "filters of the call that returned it");
  }
  return std::string(parts[2]);
}

// Since when an unfinished task has waited for its upstream: its last
// upstream event, or its creation while SUBMITTED (or when no upstream
// event was recorded).
absl::Time WaitingSince(const Task& task) {
  if (task.state() != v1::TASK_STATE_SUBMITTED &&
      IsSet(task.last_upstream_event_time())) {
    return FromProtoTime(task.last_upstream_event_time());
  }
  return FromProtoTime(task.create_time());
}

// When a finished task finished: its finish_time, or its last change when a
// snapshot lacks one.
absl::Time FinishedAt(const Task& task) {
  return FromProtoTime(IsSet(task.finish_time()) ? task.finish_time()
                                                 : task.update_time());
}

// The filters of a ListTasksRequest, checked and converted once per call.
struct ListFilters {
  bool unfinished = false;
  absl::optional<absl::Duration> stale_for;
  bool owed = false;
  absl::optional<absl::Duration> owed_for;
  absl::optional<absl::Time> created_after;   // inclusive
  absl::optional<absl::Time> created_before;  // exclusive
};

// True when `task` passes every filter of `request` at `now`.
bool Matches(const v1::ListTasksRequest& request, const ListFilters& filters,
             absl::Time now, const Task& task) {
  if (!((request.account_id().empty() ||
         task.account_id() == request.account_id()) &&
        (request.state() == v1::TASK_STATE_UNSPECIFIED ||
         task.state() == request.state()) &&
        (request.model().empty() || task.model() == request.model()) &&
        (request.upstream_task_id().empty() ||
         task.upstream_task_id() == request.upstream_task_id()) &&
        (request.request_id().empty() ||
         task.request_id() == request.request_id()) &&
        (request.route().empty() || task.route() == request.route()))) {
    return false;
  }
  if (filters.unfinished && !store::IsUnfinishedState(task.state())) {
    return false;
  }
  if (filters.stale_for.has_value() &&
      now - WaitingSince(task) < *filters.stale_for) {
    return false;
  }
  if (filters.owed && !store::IsOwedTask(task)) return false;
  if (filters.owed_for.has_value() &&
      now - FinishedAt(task) < *filters.owed_for) {
    return false;
  }
  if (filters.created_after.has_value() || filters.created_before.has_value()) {
    const absl::Time created = FromProtoTime(task.create_time());
    if (filters.created_after.has_value() && created < *filters.created_after) {
      return false;
    }
    if (filters.created_before.has_value() &&
        created >= *filters.created_before) {
      return false;
    }
  }
  return true;
}

// How far a task id's time may run ahead of its create_time: an id is never
// older than the millisecond of create_time, but after the clock stepped
// back the id generator keeps counting from the later millisecond it had
// reached.
constexpr absl::Duration kTaskIdClockStepMargin = absl::Minutes(1);

// The most selective index for the request's filters, bounded by the
// creation time range.
store::TaskScan ScanFor(const v1::ListTasksRequest& request,
                        const ListFilters& filters) {
  store::TaskScan scan;
  const bool has_state = request.state() != v1::TASK_STATE_UNSPECIFIED;
  if (!request.upstream_task_id().empty()) {
    scan.index = store::ScanIndex::kUpstream;
    scan.value = request.upstream_task_id();
  } else if (!request.request_id().empty()) {
    scan.index = store::ScanIndex::kRequest;
    scan.value = request.request_id();
  } else if (filters.owed) {
    // The list to refund is short by design: smaller than any index of an
    // account, a model or a state.
    scan.index = store::ScanIndex::kOwed;
  } else if (!request.route().empty()) {
    // A route carries a share of one model's traffic: fewer tasks than the
    // model, and usually than an account in a state.
    scan.index = store::ScanIndex::kRoute;
    scan.value = request.route();
  } else if (!request.account_id().empty() && has_state) {
    scan.index = store::ScanIndex::kAccountState;
    scan.value = request.account_id();
    scan.state = request.state();
  } else if (!request.model().empty() && has_state) {
    scan.index = store::ScanIndex::kModelState;
    scan.value = request.model();
    scan.state = request.state();
  } else if (has_state) {
    scan.index = store::ScanIndex::kState;
    scan.state = request.state();
  } else if (filters.unfinished) {
    scan.index = store::ScanIndex::kUnfinished;
  } else if (!request.account_id().empty()) {
    scan.index = store::ScanIndex::kAccount;
    scan.value = request.account_id();
  } else if (!request.model().empty()) {
    scan.index = store::ScanIndex::kModel;
    scan.value = request.model();
  }
  scan.oldest_first = request.oldest_first();
  if (filters.created_after.has_value()) {
    scan.min_task_id = TaskIdFloor(*filters.created_after);
  }
  if (filters.created_before.has_value()) {
    scan.end_task_id =
        TaskIdFloor(*filters.created_before + kTaskIdClockStepMargin);
  }
  return scan;
}

// Checks the filters of `request`; INVALID_ARGUMENT naming each field that
// is wrong.
absl::StatusOr<ListFilters> CheckListRequest(
    const v1::ListTasksRequest& request) {
  std::vector<v1::FieldViolation> violations;
  CheckIdentifier("account_id", request.account_id(), false, kMaxIdBytes,
                  &violations);
  CheckIdentifier("model", request.model(), false, kMaxIdBytes, &violations);
  CheckIdentifier("upstream_task_id", request.upstream_task_id(), false,
                  kMaxIdBytes, &violations);
  CheckIdentifier("request_id", request.request_id(), false, kMaxIdBytes,
                  &violations);
  CheckIdentifier("route", request.route(), false, kMaxIdBytes, &violations);
  if (request.page_size() < 0) {
    violations.push_back(Violation("page_size", "FIELD_OUT_OF_RANGE",
                                   "page_size must not be negative"));
  }
  if (!v1::TaskState_IsValid(request.state())) {
    violations.push_back(Violation("state", "FIELD_OUT_OF_RANGE",
                                   "state is not a known TaskState"));
  }
  ListFilters filters;
  filters.unfinished = request.unfinished() || request.has_stale_for();
  if (request.has_stale_for()) {
    RETURN_IF_ERROR(CheckDurationField("stale_for", request.stale_for()));
    const absl::Duration stale_for = FromProtoDuration(request.stale_for());
    if (stale_for < absl::ZeroDuration()) {
      violations.push_back(Violation("stale_for", "FIELD_OUT_OF_RANGE",
                                     "stale_for must not be negative"));
    } else {
      filters.stale_for = stale_for;
    }
  }
  filters.owed = request.owed() || request.has_owed_for();
  if (request.has_owed_for()) {
    RETURN_IF_ERROR(CheckDurationField("owed_for", request.owed_for()));
    const absl::Duration owed_for = FromProtoDuration(request.owed_for());
    if (owed_for < absl::ZeroDuration()) {
      violations.push_back(Violation("owed_for", "FIELD_OUT_OF_RANGE",
                                     "owed_for must not be negative"));
    } else {
      filters.owed_for = owed_for;
    }
  }
  if (request.has_create_time_after()) {
    RETURN_IF_ERROR(
        CheckTimestampField("create_time_after", request.create_time_after()));
    filters.created_after = FromProtoTime(request.create_time_after());
  }
  if (request.has_create_time_before()) {
    RETURN_IF_ERROR(CheckTimestampField("create_time_before",
                                        request.create_time_before()));
    filters.created_before = FromProtoTime(request.create_time_before());
  }
  if (filters.created_after.has_value() && filters.created_before.has_value() &&
      *filters.created_after >= *filters.created_before) {
    violations.push_back(
        Violation("create_time_before", "FIELD_OUT_OF_RANGE",
                  "create_time_before must be after create_time_after"));
  }
  if (!violations.empty()) {
    return InvalidArgument(kInvalidRequest, "", violations);
  }
  return filters;
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
  absl::StatusOr<std::string> bytes = StoredTaskBytes(
      request.task_id(), request.include_events(), options_.max_events_returned,
      options_.max_event_bytes_returned);
  if (!bytes.ok()) return ExplainNotFound(request.task_id(), bytes.status());
  return bytes;
}

absl::StatusOr<std::string> Tracker::StoredTaskBytes(
    absl::string_view task_id, bool include_events, int64_t max_events,
    int64_t max_event_bytes) const {
  std::string snapshot;
  RETURN_IF_ERROR(
      store_->VisitTask(task_id, [&snapshot](absl::string_view stored) {
        snapshot.assign(stored.data(), stored.size());
        return absl::OkStatus();
      }));
  return StoredTaskBytesOf(task_id, std::move(snapshot), include_events,
                           max_events, max_event_bytes);
}

absl::StatusOr<std::string> Tracker::StoredTaskBytesOf(
    absl::string_view task_id, std::string snapshot, bool include_events,
    int64_t max_events, int64_t max_event_bytes) const {
  std::string bytes = std::move(snapshot);
  ASSIGN_OR_RETURN(const SnapshotFacts facts,
                   ReadSnapshotFacts(task_id, bytes));
  if (facts.notes > kNotesInSnapshot) {
    // Stored before the snapshot kept only the newest notes: answered as
    // the snapshot of its next note will be.
    Task task;
    if (!task.ParseFromString(bytes)) {
      return SnapshotDoesNotParse(task_id);
    }
    task.mutable_notes()->DeleteSubrange(0,
                                         task.notes_size() - kNotesInSnapshot);
    task.set_note_count(std::max<int64_t>(facts.note_count, facts.notes));
    bytes = task.SerializeAsString();
  } else if (facts.note_count < facts.notes) {
    AppendVarintField(Task::kNoteCountFieldNumber,
                      static_cast<uint64_t>(facts.notes), &bytes);
  }
  const int64_t last_seq = facts.last_event_seq;
  if (!include_events || last_seq <= 0) return bytes;

  // The first entry and the newest ones within both limits (entries, and
  // bytes framed as Task.events entries); a timeline's seqs are
  // 1..last_event_seq without gaps, so the ones left out are those between.
  const int64_t max_count = std::max<int64_t>(max_events, 1);
  const int64_t max_bytes = max_event_bytes;

  // A short timeline is fetched whole by point lookups (cheaper than an
  // iterator), and returned whole when it fits.
  constexpr int64_t kPointLookupLimit = 64;
  if (last_seq <= std::min(kPointLookupLimit, max_count)) {
    const size_t snapshot_size = bytes.size();
    RETURN_IF_ERROR(store_->VisitEventRange(task_id, 1, last_seq,
                                            [&bytes](absl::string_view event) {
                                              AppendEvent(event, &bytes);
                                              return absl::OkStatus();
                                            }));
    if (static_cast<int64_t>(bytes.size() - snapshot_size) <= max_bytes) {
      return bytes;
    }
    bytes.resize(snapshot_size);
  }
  if (last_seq <= max_count && max_bytes == kWholeTimeline) {
    // The whole timeline, in one pass of an iterator.
    RETURN_IF_ERROR(
        store_->VisitEvents(task_id, 0,
                            static_cast<int>(std::min<int64_t>(
                                last_seq, std::numeric_limits<int>::max())),
                            [&bytes](absl::string_view event) {
                              AppendEvent(event, &bytes);
                              return absl::OkStatus();
                            }));
    return bytes;
  }

  std::string first;
  RETURN_IF_ERROR(
      store_->VisitEventRange(task_id, 1, 1, [&first](absl::string_view event) {
        first.assign(event.data(), event.size());
        return absl::OkStatus();
      }));
  int64_t count = 1;
  int64_t size = FramedSize(first);
  // The newest entries, newest first, framed, one after the other in
  // `newest`; `ends` holds where each ends.
  std::string newest;
  std::vector<size_t> ends;
  int64_t oldest_newest_seq = last_seq + 1;
  RETURN_IF_ERROR(store_->VisitEventsNewestFirst(
      task_id, 2, last_seq, [&](int64_t seq, absl::string_view event) {
        const int64_t framed = FramedSize(event);
        if (count + 1 > max_count || size + framed > max_bytes) return false;
        ++count;
        size += framed;
        AppendEvent(event, &newest);
        ends.push_back(newest.size());
        oldest_newest_seq = seq;
        return true;
      }));
  bytes.reserve(bytes.size() + static_cast<size_t>(size) + 16);
  if (!first.empty()) AppendEvent(first, &bytes);
  // Oldest of the newest first: entry i spans [ends[i-1], ends[i]).
  for (size_t i = ends.size(); i-- > 0;) {
    const size_t begin = i == 0 ? 0 : ends[i - 1];
    bytes.append(newest, begin, ends[i] - begin);
  }
  const int64_t omitted = std::max<int64_t>(oldest_newest_seq - 2, 0);
  if (omitted > 0) {
    AppendVarintField(Task::kOmittedEventCountFieldNumber,
                      static_cast<uint64_t>(omitted), &bytes);
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
    const v1::ListTasksRequest& request) {
  ASSIGN_OR_RETURN(const ListFilters filters, CheckListRequest(request));
  const int page_size = request.page_size() == 0
                            ? kDefaultPageSize
                            : std::min(request.page_size(), kMaxPageSize);
  const std::string digest = FiltersDigest(request);

  v1::ListTasksResponse response;
  if (filters.unfinished && request.state() != v1::TASK_STATE_UNSPECIFIED &&
      !store::IsUnfinishedState(request.state())) {
    return response;  // a finished state is never unfinished
  }
  if (filters.owed && filters.unfinished) {
    return response;  // an owed task is finished
  }
  store::TaskScan scan = ScanFor(request, filters);
  if (!request.page_token().empty()) {
    ASSIGN_OR_RETURN(scan.resume_after_task_id,
                     DecodePageToken(request.page_token(), digest));
  }
  // Bound the work of one call; a sparse filter continues on the next page.
  scan.max_visits = std::max(page_size + 1, 10 * kMaxPageSize);

  const absl::Time now = clock_->Now();
  int visits = 0;
  bool more = false;
  ASSIGN_OR_RETURN(std::string last_visited,
                   store_->Scan(scan, [&](const Task& task) {
                     ++visits;
                     if (!Matches(request, filters, now, task)) return true;
                     if (response.tasks_size() == page_size) {
                       more = true;
                       return false;
                     }
                     *response.add_tasks() = task;
                     return true;
                   }));
  if (more) {
    // The task that showed there is more is visited again on the next page.
    --visits;
    response.set_next_page_token(EncodePageToken(
        digest, response.tasks(response.tasks_size() - 1).task_id()));
  } else if (visits >= scan.max_visits && !last_visited.empty()) {
    response.set_next_page_token(EncodePageToken(digest, last_visited));
  }
  response.set_scanned_count(visits);
  if (request.include_queue_status()) {
    for (const Task& task : response.tasks()) {
      ASSIGN_OR_RETURN(const TypicalWait typical, waits_.Typical(task.model()));
      JudgeQueue(QueueFactsOf(task), typical, now, options_.stale_after,
                 response.add_queue_statuses());
    }
  }
  return response;
}

absl::Status Tracker::GetQueueStatus(const v1::GetQueueStatusRequest& request,
                                     v1::QueueStatus* status) {
  RETURN_IF_ERROR(CheckTaskId(request.task_id()));
  // Judged from the snapshot where it lies: of its fields only those the
  // verdict needs are read.
  return ExplainNotFound(
      request.task_id(),
      store_->VisitTask(
          request.task_id(), [&](absl::string_view snapshot) -> absl::Status {
            const absl::optional<QueueFacts> facts = ReadQueueFacts(snapshot);
            if (!facts.has_value())
              return SnapshotDoesNotParse(request.task_id());
            ASSIGN_OR_RETURN(const TypicalWait typical,
                             waits_.Typical(facts->model));
            JudgeQueue(*facts, typical, clock_->Now(), options_.stale_after,
                       status);
            return absl::OkStatus();
          }));
}

absl::Status Tracker::VisitUnfinished(
    const std::function<void(const Task&)>& visit) const {
  store::TaskScan scan;
  scan.index = store::ScanIndex::kUnfinished;
  scan.oldest_first = true;
  scan.max_visits = std::numeric_limits<int>::max();
  absl::StatusOr<std::string> last = store_->Scan(scan, [&](const Task& task) {
    visit(task);
    return true;
  });
  return last.status();
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
  if (!v1::StatsGroupBy_IsValid(request.group_by())) {
    violations.push_back(Violation("group_by", "FIELD_OUT_OF_RANGE",
                                   "group_by is not a known StatsGroupBy"));
  }
  if (!violations.empty()) {
    return InvalidArgument(kInvalidRequest, "", violations);
  }
  return ComputeStats(*store_, &waits_, request.model(), request.group_by(),
                      window, clock_->Now());
}

}  // namespace tasktrail
