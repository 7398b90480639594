// Support notes (AddNote) and the audit log of reads (RecordAudit,
// ListAudit).
#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "service/rules/errors.h"
#include "service/rules/status_macros.h"
#include "service/rules/time_util.h"
#include "service/rules/validator.h"
#include "service/tracker/tracker.h"
#include "service/tracker/tracker_internal.h"
#include "store/keys.h"

namespace tasktrail {
namespace {

using v1::Task;
using v1::TaskEvent;

using tracker_internal::CheckTaskId;

// ListAudit's default page size.
constexpr int kDefaultAuditPageSize = 100;

// A ListAudit page token: the prefix, then the task id (length-prefixed) and
// the position of the last entry returned, web-safe base64.
constexpr absl::string_view kAuditPageTokenPrefix = "a1:";

std::string EncodeAuditPageToken(absl::string_view task_id,
                                 absl::string_view position) {
  std::string token(kAuditPageTokenPrefix);
  token.push_back(static_cast<char>(task_id.size()));
  absl::StrAppend(&token, task_id, position);
  return absl::WebSafeBase64Escape(token);
}

// The position a token continues after. INVALID_ARGUMENT (PAGE_TOKEN_INVALID
// on `page_token`) for a token ListAudit did not issue or issued for another
// task than `task_id`.
absl::StatusOr<std::string> DecodeAuditPageToken(absl::string_view token,
                                                 absl::string_view task_id) {
  std::string decoded;
  absl::string_view rest;
  if (absl::WebSafeBase64Unescape(token, &decoded)) rest = decoded;
  if (!absl::ConsumePrefix(&rest, kAuditPageTokenPrefix) || rest.empty() ||
      rest.size() < size_t{1} + static_cast<uint8_t>(rest[0])) {
    return InvalidField("page_token", "PAGE_TOKEN_INVALID",
                        "page_token is not a token returned by ListAudit");
  }
  const size_t id_size = static_cast<uint8_t>(rest[0]);
  const absl::string_view token_task_id = rest.substr(1, id_size);
  const absl::string_view position = rest.substr(1 + id_size);
  if (token_task_id != task_id) {
    return InvalidField(
        "page_token", "PAGE_TOKEN_INVALID",
        "page_token was issued for the audit log of another task; pass the "
        "task_id it was issued with, or no page_token");
  }
  if (position.empty()) {
    return InvalidField("page_token", "PAGE_TOKEN_INVALID",
                        "page_token is not a token returned by ListAudit");
  }
  return std::string(position);
}

}  // namespace

absl::Status Tracker::RecordAudit(absl::Span<const absl::string_view> task_ids,
                                  absl::string_view principal,
                                  absl::string_view role,
                                  absl::string_view rpc) {
  if (task_ids.empty()) return absl::OkStatus();
  const absl::Time now = clock_->Now();
  v1::AuditEntry entry;
  *entry.mutable_time() = ToProtoTime(now);
  entry.set_principal(std::string(principal));
  entry.set_role(std::string(role));
  entry.set_rpc(std::string(rpc));
  std::vector<store::RawMutation> entries;
  entries.reserve(task_ids.size());
  for (absl::string_view task_id : task_ids) {
    entry.set_task_id(std::string(task_id));
    entries.push_back(store::RawMutation{
        store::ColumnFamily::kAudit,
        store::AuditKey(task_id, absl::ToUnixMicros(now), ++audit_nonce_),
        entry.SerializeAsString()});
  }
  return store_->WriteRaw(entries, store::TaskStore::Durability::kBuffered);
}

absl::StatusOr<v1::ListAuditResponse> Tracker::ListAudit(
    const v1::ListAuditRequest& request) const {
  RETURN_IF_ERROR(CheckTaskId(request.task_id()));
  std::string before;
  if (!request.page_token().empty()) {
    ASSIGN_OR_RETURN(
        before, DecodeAuditPageToken(request.page_token(), request.task_id()));
  }
  // Known tasks only: an id that names none is NOT_FOUND, not an empty log;
  // a purged task keeps the entry of its erasure (PurgeTask) and is listed.
  const absl::Status known = store_->VisitTask(
      request.task_id(), [](absl::string_view) { return absl::OkStatus(); });
  if (!known.ok() && !absl::IsNotFound(known)) return known;
  const int limit = request.page_size() <= 0
                        ? kDefaultAuditPageSize
                        : std::min(request.page_size(), kMaxPageSize);
  v1::ListAuditResponse response;
  std::string last_position;
  bool more = false;
  RETURN_IF_ERROR(store_->ScanAuditNewestFirst(
      request.task_id(), before,
      [&](absl::string_view position, absl::string_view value) {
        if (response.entries_size() == limit) {
          more = true;
          return false;
        }
        // An entry that does not parse is skipped (never shown half read),
        // but the page still moves past it.
        v1::AuditEntry entry;
        if (entry.ParseFromArray(value.data(),
                                 static_cast<int>(value.size()))) {
          *response.add_entries() = std::move(entry);
        }
        last_position.assign(position.data(), position.size());
        return true;
      }));
  if (!known.ok() && last_position.empty() && request.page_token().empty()) {
    return TaskNotFound(request.task_id());
  }
  if (more) {
    response.set_next_page_token(
        EncodeAuditPageToken(request.task_id(), last_position));
  }
  return response;
}

Tracker::Pending<Task> Tracker::PrepareNote(const v1::AddNoteRequest& request,
                                            absl::string_view actor,
                                            LockWait wait) {
  std::vector<v1::FieldViolation> violations;
  CheckIdentifier("task_id", request.task_id(), true, kMaxIdBytes, &violations);
  CheckString("text", request.text(), true, kMaxTextBytes, &violations);
  CheckIdentifier("author", request.author(), false, kMaxIdBytes, &violations);
  CheckString("final_cause", request.final_cause(), false, kMaxTextBytes,
              &violations);
  if (!violations.empty()) {
    return InvalidArgument(kInvalidRequest, "", violations);
  }
  absl::optional<StripeLocks::Lease> task_lease =
      Lock(task_locks_, request.task_id(), wait);
  if (!task_lease.has_value()) return Pending<Task>::LockBusy();
  ASSIGN_OR_RETURN(Task task, GetStoredSnapshot(request.task_id()));
  // A snapshot written before note_count existed holds all its notes.
  const int64_t note_count =
      std::max<int64_t>(task.note_count(), task.notes_size());
  if (note_count >= options_.max_notes_per_task) {
    return absl::FailedPreconditionError(
        absl::StrCat("task ", request.task_id(), " already has ", note_count,
                     " notes: a task takes at most ",
                     options_.max_notes_per_task, " notes"));
  }
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
  // The snapshot keeps the newest kNotesInSnapshot notes: the newest ones
  // but one here, and the new one that PrepareAppend appends.
  const int keep = kNotesInSnapshot - 1;
  if (task.notes_size() > keep) {
    task.mutable_notes()->DeleteSubrange(0, task.notes_size() - keep);
  }
  task.set_note_count(note_count + 1);
  PendingWrite write;
  RETURN_IF_ERROR(PrepareAppend(previous, &task, &event, "", {}, &write));
  write.leases.push_back(*std::move(task_lease));
  return Pending<Task>(std::move(task), std::move(write));
}

}  // namespace tasktrail
