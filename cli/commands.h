// The commands of the tasktrail support CLI: each one makes its gRPC calls
// to tasktraild, prints the answer on stdout (human text, or proto3 JSON with
// --json) and any error as one clear line on stderr, and returns an exit
// status of ExitCode in cli/format.h (docs/CLI.md, "Exit statuses").
//
// The bearer token is sent as `authorization` metadata and never printed.
//
// Thread safety: none; call from the main thread.
#ifndef TASKTRAIL_CLI_COMMANDS_H_
#define TASKTRAIL_CLI_COMMANDS_H_

#include <cstdint>
#include <string>
#include <vector>

namespace tasktrail::cli {

// The options every command accepts.
struct GlobalOptions {
  // host:port of tasktraild.
  std::string server = "127.0.0.1:50051";

  // Bearer token; empty sends no `authorization` metadata.
  std::string token;

  // PEM files. A non-empty `tls_ca` selects TLS (with the client certificate
  // and key when given); otherwise the channel is plaintext.
  std::string tls_ca;
  std::string tls_cert;
  std::string tls_key;

  // Show wall-clock times in UTC instead of the local zone.
  bool utc = false;

  // Print the response as proto3 JSON instead of text.
  bool json = false;

  // Deadline of every unary call, in seconds (> 0).
  double timeout_seconds = 10;
};

// `get ID [ID...]`: each ID is a task id or an upstream task id.
struct GetArgs {
  std::vector<std::string> ids;  // At least one.
  bool events = true;            // Include the timeline (one id only).
};

// `queued ID`; here and in `watch`, `note` and `audit` ID is a task id or an
// upstream task id that names one task.
struct QueuedArgs {
  std::string id;
};

// `list`: empty filters are not applied.
struct ListArgs {
  std::string account;
  std::string state;  // A lower-case state word.
  std::string model;
  std::string upstream_id;
  std::string request_id;
  std::string route;  // Only tasks on this upstream route.
  int32_t limit = 0;  // 0: the server's default page size.
  std::string page_token;
  // Creation time range [since, until): RFC 3339 times with an offset, or
  // spans back from now such as "90s", "15m", "2h", "7d" (ParseTimeOrAgo).
  std::string since;
  std::string until;
  bool unfinished = false;    // Only SUBMITTED, QUEUED or RUNNING tasks.
  bool oldest_first = false;  // Oldest first instead of newest first.
  bool all = false;           // Page on past the work bound (kListScanBound).
};

// How many tasks `list` lets the server visit before it stops and says that
// more may exist, unless --all.
inline constexpr int64_t kListScanBound = 100000;

// `stuck`: unfinished tasks, oldest first, with their queue verdicts.
struct StuckArgs {
  std::string older_than;  // A span ("15m", "2h", "7d"); empty: every one.
  std::string model;
  std::string account;
  int32_t limit = 50;  // Rows shown; the totals count every match.
};

// `watch ID`.
struct WatchArgs {
  std::string id;
  int64_t after_seq = 0;
};

// `validate`.
struct ValidateArgs {
  std::string model;
  std::string group;
  std::string prompt;
  std::string negative_prompt;
  std::string ratio;
  std::string resolution;
  int32_t duration_seconds = 0;
  std::vector<std::string> ref_images;  // "URI,MIME,BYTES,WxH" each.
  std::string callback_url;
  bool audio = false;
  int32_t image_count = 0;
  bool has_seed = false;
  int64_t seed = 0;
};

// `models`.
struct ModelsArgs {
  std::string kind;  // "", "image" or "video".
};

// `note ID TEXT`.
struct NoteArgs {
  std::string id;
  std::string text;
  std::string final_cause;
  std::string author;  // Defaults to $USER when empty.
};

// `stats`.
struct StatsArgs {
  std::string window = "15m";  // An absl duration such as "90s" or "1h".
  std::string model;
  std::string by = "model";  // "model", "route" or "group": one row of each.
};

// `classify --model M [--http N] [--code C] [--message TEXT]`.
struct ClassifyArgs {
  std::string model;
  int32_t http_status = 0;  // 0: none.
  std::string error_code;
  std::string message;
};

// `charges --account A [--since 7d] [--until T]`: one row per task of the
// account created in [since, until), with totals, for reconciling against
// the gateway's own ledger.
struct ChargesArgs {
  std::string account;  // Required.
  // RFC 3339 times with an offset, or spans back from now (ParseTimeOrAgo).
  std::string since = "7d";
  std::string until;
};

// `owed [--older-than 10m] [--model M]`: the list to refund (ListTasks with
// owed, oldest first): every task failed on the provider's or the gateway's
// side or canceled, charged and not refunded, finished at least
// --older-than ago.
struct OwedArgs {
  std::string older_than;  // A span ("10m", "2h", "7d"); empty: every one.
  std::string model;       // Empty: every model.
};

// `backup [--list]`.
struct BackupArgs {
  bool list = false;  // List the kept backups instead of taking one.
};

// `purge ID --reason TEXT`.
struct PurgeArgs {
  std::string id;
  std::string reason;
};

// `audit ID`.
struct AuditArgs {
  std::string id;
  int limit = 100;  // At most this many entries, newest first, over pages.
};

// `export`: tasks created in [since, until), oldest first, as NDJSON.
struct ExportArgs {
  // RFC 3339 times with an offset, or spans back from now (ParseTimeOrAgo);
  // empty: from the first task, up to the ones created when it starts.
  std::string since;
  std::string until;
  std::string account;  // Empty: every account.
  bool events = true;   // Each task's whole timeline in `events`.
  std::string after;    // Resume after this task id.
};

// One id: the one-screen report. Several: one BatchGetTasks call (with the
// queue statuses), one summary row per task (the verdict of each unfinished
// one) and the ids not found; exits 3 only when no id named a task. With one
// id, an upstream id that names several tasks is listed, not guessed: exit 2.
int RunGet(const GlobalOptions& global, const GetArgs& args);
int RunQueued(const GlobalOptions& global, const QueuedArgs& args);
// Pages until it has --limit tasks or the end, or until the server has
// visited kListScanBound tasks (without --all): then it says so.
int RunList(const GlobalOptions& global, const ListArgs& args);
// Pages through every matching unfinished task (ListTasks with unfinished,
// oldest_first, include_queue_status and stale_for = --older-than).
int RunStuck(const GlobalOptions& global, const StuckArgs& args);
// Resumes after the last seen seq when the server cuts a stream that was
// working (UNAVAILABLE after events or after a while); a stream that ends OK
// is a success whatever the task's final state.
int RunWatch(const GlobalOptions& global, const WatchArgs& args);
// Exits 1 when the request has violations.
int RunValidate(const GlobalOptions& global, const ValidateArgs& args);
int RunModels(const GlobalOptions& global, const ModelsArgs& args);
int RunNote(const GlobalOptions& global, const NoteArgs& args);
int RunStats(const GlobalOptions& global, const StatsArgs& args);
// What the failure rules in force make of an upstream failure of a task of
// the model (ClassifyFailure): category, origin, retryable, cause and the
// rule that decided. Exit 0 whether or not a rule matched.
int RunClassify(const GlobalOptions& global, const ClassifyArgs& args);
// Who read the task through support or admin credentials (admin only).
int RunAudit(const GlobalOptions& global, const AuditArgs& args);
// Takes a backup (CreateBackup) and prints it, or lists the kept ones
// (ListBackups) with --list. Admin only.
int RunBackup(const GlobalOptions& global, const BackupArgs& args);
// With --json, one JSON object per task per line (NDJSON): see
// FormatChargeRowJson.
int RunCharges(const GlobalOptions& global, const ChargesArgs& args);
// Pages through every owed task; one row each and the total owed, or with
// --json one JSON object per line (FormatOwedRowJson).
int RunOwed(const GlobalOptions& global, const OwedArgs& args);
// Streams ExportTasks to stdout, one proto3-JSON v1::Task per line (the
// field names of --json, on one line each), with a progress line on stderr
// while stderr is a terminal. When the stream breaks, says on stderr after
// which task id to resume (--after) and exits with the status of the error.
// Admin only.
int RunExport(const GlobalOptions& global, const ExportArgs& args);
// Deletes one task now (PurgeTask; admin only) and prints the audit entry
// that records it.
int RunPurge(const GlobalOptions& global, const PurgeArgs& args);

}  // namespace tasktrail::cli

#endif  // TASKTRAIL_CLI_COMMANDS_H_
