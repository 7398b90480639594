// Output formats of the tasktrail support CLI: one-screen task reports,
// timeline lines, tables, JSON, and the mapping of gRPC status codes to the
// CLI's exit statuses (documented for users in docs/CLI.md).
//
// Every function here is pure: it reads only its arguments (the current time
// and time zone come in through FormatOptions), performs no I/O and never
// prints a secret (tokens never reach this layer). Each returned block of
// text ends with a newline unless the function says otherwise.
//
// Thread safety: all functions are thread-safe.
//
// The task report is defined in format_task.cc, the other commands' answers
// in format_commands.cc, the summaries of several tasks in format_batch.cc,
// everything else (and the building blocks they share,
// format_internal.h) in format.cc.
#ifndef TASKTRAIL_CLI_FORMAT_H_
#define TASKTRAIL_CLI_FORMAT_H_

#include <grpcpp/support/status_code_enum.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "google/protobuf/duration.pb.h"
#include "google/protobuf/message.h"
#include "google/protobuf/timestamp.pb.h"
#include "tasktrail/v1/catalog.pb.h"
#include "tasktrail/v1/task.pb.h"
#include "tasktrail/v1/tracker.pb.h"

namespace tasktrail::cli {

// The CLI's exit statuses (docs/CLI.md, "Exit statuses").
enum ExitCode : int {
  // Success; an empty list and a watch that ends in FAILED are successes.
  kExitOk = 0,
  // `validate` found violations, or the server refused the request.
  kExitRefused = 1,
  // The command line is wrong.
  kExitUsage = 2,
  // The task (or other entity) does not exist.
  kExitNotFound = 3,
  // The server is unreachable, unavailable, overloaded or too slow: try later.
  kExitUnavailable = 4,
  // No or bad credentials, or the role is not allowed.
  kExitAuth = 5,
  // Any other failure.
  kExitOther = 6,
};

// How times are rendered.
struct FormatOptions {
  // The zone wall-clock times are shown in; UTCTimeZone() for --utc.
  absl::TimeZone zone = absl::LocalTimeZone();

  // "Now", the reference of relative times such as "(12m ago)".
  absl::Time now = absl::Now();
};

// ---- Names -----------------------------------------------------------------

// The upper-case word of a state: TASK_STATE_QUEUED -> "QUEUED". Values this
// build does not know come out as "STATE_<number>".
std::string StateName(tasktrail::v1::TaskState state);

// Parses a lower-case state word ("queued") into its enum value.
// Returns TASK_STATE_UNSPECIFIED for anything else.
tasktrail::v1::TaskState ParseStateName(absl::string_view name);

// The lower-case short name of an event type: "submitted", "queued",
// "started", "polled", "completed", "failed", "downloaded", "canceled",
// "duplicate-blocked", "note", "refunded"; "event-<number>" when unknown.
std::string EventTypeName(tasktrail::v1::EventType type);

// "image", "video" or "unknown".
std::string KindName(tasktrail::v1::TaskKind kind);

// The canonical upper-case name of a gRPC status code, such as "NOT_FOUND".
std::string StatusCodeName(grpc::StatusCode code);

// ---- Times and spans -------------------------------------------------------

// Converts a protobuf Timestamp; an unset (all-zero) one gives
// absl::InfinitePast(), which the formatters below treat as "not set".
absl::Time ToAbslTime(const google::protobuf::Timestamp& ts);

// Converts a protobuf Duration.
absl::Duration ToAbslDuration(const google::protobuf::Duration& d);

// How long ago `then` was, coarsely: "45s ago", "12m ago", "3h ago",
// "2d ago"; a future time gives "in 45s" etc. Rounds down.
std::string FormatRelative(absl::Time then, absl::Time now);

// A compact span: "45s", "6m", "6m30s", "1h25m", "2d3h", "350ms", "0s".
std::string FormatSpan(absl::Duration d);

// A time as its age and its wall-clock time in opts.zone, the date added
// when that is not opts.now's day in opts.zone: "12m ago, 21:03:12",
// "2d ago, 2026-11-25 21:03:12", "in 5h, 2026-11-28 02:00:00". "-" when `t`
// is not set.
std::string FormatTimeWithAge(absl::Time t, const FormatOptions& opts);

// A time's wall clock in opts.zone, "21:03:12" on opts.now's day in
// opts.zone, else with the date: "2026-11-25 21:03:12". "-" when `t` is not
// set.
std::string FormatClock(absl::Time t, const FormatOptions& opts);

// ---- Task report -----------------------------------------------------------

// The charge line: "charged 40 units · refunded 21:14:03",
// "charged 40 units · refunded 20 units 21:14:03" (partial refund),
// "charged 40 units · not refunded", or "not charged". A task whose charge
// was adjusted shows the settlement and the net: "charged 40 · adjusted +8
// (ledger L-991) · refunded 0 · net 48". No trailing newline.
std::string FormatChargeLine(const tasktrail::v1::Task& task,
                             const FormatOptions& opts);

// `charges`: one row per task (id, model, state, charged, adjusted,
// refunded, net, failure origin, and "late: provider completed|failed" when
// the provider reported after the task finished here), then the totals:
// "3 tasks · charged 120 · adjusted +8 · refunded 40 · net 88".
std::string FormatCharges(
    const google::protobuf::RepeatedPtrField<tasktrail::v1::Task>& tasks);

// One task of `charges --json` as one line of JSON: task_id, model, state,
// create_time (RFC 3339), charged, adjusted, refunded, net (numbers),
// failure_origin and late_outcome (names without prefix, "" when none).
absl::StatusOr<std::string> FormatChargeRowJson(
    const tasktrail::v1::Task& task);

// `owed`: one row per owed task (id, model, account, state, failure origin,
// charged after adjustments, finished age as "12m ago"), then the total:
// "3 tasks owed · 120 units". "nothing owed" when there is none.
std::string FormatOwed(
    const google::protobuf::RepeatedPtrField<tasktrail::v1::Task>& tasks,
    const FormatOptions& opts);

// One task of `owed --json` as one line of JSON: task_id, model,
// account_id, state, failure_origin (name without prefix, "" when none),
// owed_units (charged after adjustments), finish_time (RFC 3339) and
// finished_seconds_ago (from `now`).
absl::StatusOr<std::string> FormatOwedRowJson(const tasktrail::v1::Task& task,
                                              absl::Time now);

// What the provider reported after the task failed or was canceled here:
// "provider completed 12m after the gateway failed it · refunded 40",
// "provider failed 3m after it was canceled · not refunded". Empty when no
// late result was recorded. No trailing newline.
std::string FormatLateResultLine(const tasktrail::v1::Task& task);

// "blocked 2 duplicate submissions (last 21:03:12)"; empty when
// duplicate_count is 0. No trailing newline.
std::string FormatDuplicatesLine(const tasktrail::v1::Task& task,
                                 const FormatOptions& opts);

// "note by alice (21:14:03): text — final cause: ...", the time as
// FormatClock shows it. No trailing newline.
std::string FormatNote(const tasktrail::v1::Note& note,
                       const FormatOptions& opts);

// One short summary of an event's detail, such as "in_queue · position 14"
// or, for folded polls, "in_queue ×12 until 21:10:00". No trailing newline.
std::string FormatEventDetail(const tasktrail::v1::TaskEvent& event,
                              const FormatOptions& opts);

// One self-contained line for `watch`:
// "#3  2026-11-27 21:03:12 +01:00  polled  poller  in_queue · position 14".
std::string FormatEventLine(const tasktrail::v1::TaskEvent& event,
                            const FormatOptions& opts);

// The timeline as an aligned table with the columns SEQ, TIME, EVENT, ACTOR,
// DETAIL; TIME as FormatClock shows it (the date when not today).
std::string FormatTimeline(
    const google::protobuf::RepeatedPtrField<tasktrail::v1::TaskEvent>& events,
    const FormatOptions& opts);

// The one-screen report of `get`: header, notes, upstream, params, results,
// failure, charge, duplicates, and the timeline when `task.events` is set
// (preceded by "… N earlier events omitted; `tasktrail watch ID` replays them
// all" when the server cut it). Only set values are shown.
std::string FormatTask(const tasktrail::v1::Task& task,
                       const FormatOptions& opts);

// ---- Other commands --------------------------------------------------------

// The answer of `queued`: state, verdict, time in queue against the typical
// wait, upstream position and last poll, the upstream's ETA only when it gave
// one, resubmit advice.
std::string FormatQueueStatus(const tasktrail::v1::QueueStatus& status,
                              const FormatOptions& opts);

// The `list` table (TASK ID, CREATED with the creation time and its age,
// ACCOUNT, MODEL, STATE, UPSTREAM ID), "no tasks" when empty, and "next page:
// --page-token XYZ" when there is one. With `stopped_at_work_bound` it ends
// with "scanned N tasks; more may exist (--all to go on)" (N: the
// response's scanned_count) and an empty page does not say "no tasks".
std::string FormatTaskList(const tasktrail::v1::ListTasksResponse& response,
                           const FormatOptions& opts,
                           bool stopped_at_work_bound = false);

// The `stuck` answer from every matching unfinished task (`matching.tasks`
// oldest first, with their `queue_statuses`): a table of the first `limit`
// (TASK ID, MODEL, ACCOUNT, STATE, VERDICT, WAITING: since the last upstream
// event, or since creation while SUBMITTED), "… and N more (--limit)" when
// cut, then one line of totals per verdict over all of them, most urgent
// first: "3 POLLING_STALLED · 12 QUEUED_LONGER_THAN_USUAL". "no stuck tasks"
// when there is none.
std::string FormatStuck(const tasktrail::v1::ListTasksResponse& matching,
                        int limit, const FormatOptions& opts);

// The `validate` answer: "field: description (REASON)" per violation, or
// "valid for MODEL" when there is none.
std::string FormatValidation(
    const tasktrail::v1::ValidateTaskResponse& response,
    absl::string_view model);

// The `models` table (NAME, KIND, VENDOR, SOURCE) and the catalog version.
// The audit log of a task: one line per read, newest first.
std::string FormatAudit(const tasktrail::v1::ListAuditResponse& response,
                        const FormatOptions& opts);

std::string FormatModels(const tasktrail::v1::ListModelsResponse& response);

// The `classify` answer: the model, then the failure as `get` shows it
// (category, origin, HTTP status, code, message, cause, retryable) and a
// "rule" line naming the rule that decided, or saying that none did
// (unclassified). Defined beside the task report, whose failure lines it
// shares.
std::string FormatClassification(const tasktrail::v1::Failure& failure,
                                 absl::string_view model);

// A table of backups: id, when taken, tasks and size; "no backups" when
// there are none.
std::string FormatBackups(const std::vector<tasktrail::v1::Backup>& backups,
                          const FormatOptions& opts);

// The `stats` answer: one block per row, a model or a route or group of a
// model (tasks by state, failures by category and origin, rejections, the
// most frequent unclassified failure messages, duplicates, queue waits, run
// and end-to-end times), then incidents.
std::string FormatStats(const tasktrail::v1::Stats& stats,
                        const FormatOptions& opts);

// ---- Several tasks ---------------------------------------------------------

// The queue verdict of each unfinished task, by task id.
using QueueVerdicts = absl::flat_hash_map<std::string, v1::QueueVerdict>;

// The answer of `get ID ID...`: one row per task in the response's order
// (TASK ID, MODEL, STATE, CREATED, VERDICT / CAUSE, CHARGE), the cause
// being the failure's cause in plain words for a failed or canceled task and
// the verdict in `verdicts` for an unfinished one ("-" when neither is
// known); then "not found: ID, ID" when some ids named no task.
std::string FormatTaskSummaries(const v1::BatchGetTasksResponse& response,
                                const QueueVerdicts& verdicts,
                                const FormatOptions& opts);

// What a command says when `id` is the upstream id of several tasks:
// "upstream id ID matches N tasks; pass one of their task ids:" and a table
// of them (TASK ID, MODEL, STATE, CREATED).
std::string FormatAmbiguousId(
    absl::string_view id,
    const google::protobuf::RepeatedPtrField<v1::Task>& tasks,
    const FormatOptions& opts);

// ---- Terminal safety -------------------------------------------------------

// `text` with every control character made visible, so that text from the
// server cannot move the cursor, retitle or clear the terminal it is printed
// on: "\n", "\r" and "\t" for those three, "\xNN" for the other C0
// characters and DEL, "\u00NN" for the C1 characters U+0080 to U+009F.
// Everything else (printable ASCII, other UTF-8) is kept as it is.
std::string EscapeControlCharacters(absl::string_view text);

// Applies EscapeControlCharacters to every string field of `message`, at any
// depth (repeated fields, map keys and values included). Bytes fields are
// left alone (the human formats print none).
void EscapeControlCharactersIn(google::protobuf::Message* message);

// ---- JSON ------------------------------------------------------------------

// Proto3 JSON with the proto's field names and default values printed; pretty
// (multi-line) or compact (one line). Ends with a newline. JSON escapes
// control characters itself. Errors: InvalidArgument with the converter's
// reason when the message cannot be printed as JSON (e.g. a Timestamp or
// Duration outside protobuf's valid range).
absl::StatusOr<std::string> ToJson(const google::protobuf::Message& message,
                                   bool pretty);

// ---- Errors and exit statuses ----------------------------------------------

// The exit status for a gRPC status code (docs/CLI.md). RESOURCE_EXHAUSTED is 1
// when `message` says the request was too large ("too large", "larger than
// max"), else 4 (overload: try later).
int ExitCodeFor(grpc::StatusCode code, absl::string_view message);

// The one clear stderr line for a failed call to the server at `server`.
// Unreachable-type failures name the address tried:
// "cannot reach tasktraild at 127.0.0.1:50051: <message>". No newline.
std::string FormatRpcError(grpc::StatusCode code, absl::string_view message,
                           absl::string_view server);

// Decodes the `grpc-status-details-bin` payload (a serialized
// google.rpc.Status) into lines "  field: description (reason)", one per
// google.rpc.BadRequest field violation, plus "  reason: ..." for a
// google.rpc.ErrorInfo when there are no violations. Empty when `details`
// is empty or undecodable. Each line ends with a newline.
std::string FormatErrorDetails(const std::string& details);

// ---- Argument parsing ------------------------------------------------------

// Parses "URI,MIME,BYTES,WxH" (trailing fields optional, empty fields mean
// "not declared"; commas inside the URI are kept when all four fields are
// present). Errors: InvalidArgument naming the bad field.
absl::StatusOr<tasktrail::v1::ReferenceImage> ParseReferenceImage(
    absl::string_view spec);

// Parses a span of time: "90s", "15m", "2h", "7d" (whole days), or any
// absl duration such as "1h30m". Errors: InvalidArgument for anything else,
// or a negative span.
absl::StatusOr<absl::Duration> ParseSpan(absl::string_view text);

// Parses a point in time: an RFC 3339 time with its offset
// ("2026-12-04T21:00:00+01:00", "2026-12-04T20:00:00Z", fractions allowed),
// or a span back from `now` (ParseSpan: "2h" is now - 2h). Errors:
// InvalidArgument naming the accepted forms.
absl::StatusOr<absl::Time> ParseTimeOrAgo(absl::string_view text,
                                          absl::Time now);

}  // namespace tasktrail::cli

#endif  // TASKTRAIL_CLI_FORMAT_H_
