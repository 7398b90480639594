// Tracker: the domain of tasktrail. It registers tasks, applies lifecycle
// events under the rules in lifecycle.h, and answers reads, on top of a
// TaskStore. It knows nothing of gRPC: every method returns absl::Status.
//
// Error codes (callers translate them unchanged):
//   INVALID_ARGUMENT    the request is malformed (details carry BadRequest)
//   NOT_FOUND           unknown task
//   FAILED_PRECONDITION the event is not allowed in the task's state
//   ALREADY_EXISTS      an event_id replayed with a different body
//   UNAVAILABLE         the store failed; retry later
//
// Each write (SubmitTask, RecordEvent, AddNote) has one asynchronous form: it
// prepares the write on the calling thread and answers through a callback
// once the write is durable; the calling thread never waits for its own
// fsync, though with LockWait::kWait it may wait for a lock that an earlier
// write holds until that one is durable. AwaitWrite, below the class, runs
// one and waits for its answer (tests, benches, threads that may block).
//
// Thread safety: all methods are safe to call concurrently. Writes to one
// task (and submissions of one account) are serialised by striped locks held
// from the read of the current state until the write is durable; writes to
// different tasks are committed together (one fsync per group).
#ifndef TASKTRAIL_SERVICE_TRACKER_TRACKER_H_
#define TASKTRAIL_SERVICE_TRACKER_TRACKER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "absl/types/span.h"
#include "service/rules/catalog.h"
#include "service/rules/clock.h"
#include "service/rules/failure_rules.h"
#include "service/rules/limits.h"
#include "service/rules/task_id.h"
#include "service/tracker/conflict_retry.h"
#include "service/tracker/event_hub.h"
#include "service/tracker/queue_waits.h"
#include "service/tracker/stripe_locks.h"
#include "service/tracker/tracker_observer.h"
#include "service/tracker/unclassified_budget.h"
#include "store/task_store.h"
#include "tasktrail/v1/tracker.pb.h"

namespace tasktrail {

// How many of a task's notes its snapshot keeps (the newest): the snapshot
// is rewritten by every write and returned by every read, so it stays small;
// every note stays in the timeline as its EVENT_TYPE_NOTE_ADDED entry, and
// Task.note_count counts them all.
inline constexpr int kNotesInSnapshot = 10;

// The default of TrackerOptions::max_event_bytes_returned: 3 MiB.
inline constexpr int64_t kMaxEventBytesReturned = int64_t{3} << 20;

// BatchGetTasks takes at most this many ids.
inline constexpr int kMaxBatchIds = 100;

// BatchGetTasks answers with at most this many tasks (an upstream id may
// name several) ...
inline constexpr int kMaxBatchTasks = 1000;

// ... taking at most this many bytes: within a client's default 4 MiB limit
// with room for gRPC's framing.
inline constexpr int64_t kMaxBatchAnswerBytes = int64_t{7} << 19;  // 3.5 MiB

struct TrackerOptions {
  // How far in the future an `occur_time` may be (clock skew allowance).
  absl::Duration max_future_skew = absl::Seconds(5);

  // GetTask returns at most this many timeline entries, which take at most
  // max_event_bytes_returned bytes (framed as Task.events entries): the
  // first entry and the newest ones within both limits; the ones between
  // are counted in Task.omitted_event_count. Above 3 MiB an answer may no
  // longer fit a client's default 4 MiB limit (see kMaxSnapshotBytes in
  // tracker_queries.cc).
  int max_events_returned = 10000;
  int64_t max_event_bytes_returned = kMaxEventBytesReturned;

  // A task takes at most this many support notes: AddNote refuses one more
  // (FAILED_PRECONDITION naming the cap).
  int max_notes_per_task = 100;

  // Seed of the task id generator; 0 seeds from the OS. For tests.
  uint64_t id_seed = 0;

  // How long a request_id keeps returning its task (AIP-155 retention).
  absl::Duration dedup_retention = absl::Hours(24);

  // How long after an original SUCCEEDED an identical submission is still
  // blocked as a double click.
  absl::Duration dedup_window_after_success = absl::Minutes(2);

  // A queued or running task with no upstream event for longer than this is
  // POLLING_STALLED.
  absl::Duration stale_after = absl::Minutes(5);

  // The failure classification table; nullptr: the built-in one.
  std::shared_ptr<const FailureClassifier> failure_rules;

  // How long a content fingerprint is remembered at all. An original still
  // unfinished after this long no longer blocks identical submissions.
  absl::Duration dedup_content_ttl = absl::Hours(24);

  // Retention. A finished task (SUCCEEDED, FAILED, CANCELED) is due for
  // purging once its finish_time + task_retention has passed; an
  // unfinished one once its update_time (its last event) +
  // unfinished_retention has (abandoned). Zero: kept forever. PurgeDueTasks
  // (run by RetentionSweeper) purges the due ones; a NOT_FOUND for an id
  // older than the shorter retention says the task may have been purged.
  absl::Duration task_retention = absl::Hours(90 * 24);
  absl::Duration unfinished_retention = absl::Hours(2 * 90 * 24);

  // Told what the Tracker did once it is durable (tracker_observer.h);
  // nullptr: nobody. REQUIRES: outlives the Tracker.
  TrackerObserver* observer = nullptr;
};

// The unfinished tasks at a moment, for gauges (UnfinishedTally::Count).
struct UnfinishedCounts {
  // Tasks per (model as recorded, state), states SUBMITTED, QUEUED and
  // RUNNING only; absent pairs are zero.
  std::map<std::pair<std::string, v1::TaskState>, int64_t> by_model_state;
  // Tasks whose queue verdict is POLLING_STALLED, per model as recorded;
  // absent models are zero.
  std::map<std::string, int64_t> stalled_by_model;
};

// Where an export stands in its range (Tracker::StartExport,
// NextExportPage). A value owned by its caller; a fresh one restarts the
// export.
struct ExportCursor {
  // The index, id bounds and resume point of the next page.
  store::TaskScan scan;
  bool include_events = false;
  // True once the range holds nothing past what was returned.
  bool done = false;
};

// One task of an export page.
struct ExportedTask {
  std::string task_id;
  // A serialized v1::Task, its whole timeline in `events` when asked.
  std::string bytes;
};

// Whether preparing a write may wait for a lock that another write holds
// until it is durable: one to the same task or a submission of the same
// account, or an unrelated one whose key shares the lock's stripe.
enum class LockWait {
  kWait,   // wait for it: for threads that may block
  kNever,  // never wait: give the write up, having recorded nothing
};

// Receives the answer of an asynchronous write: exactly once, from the store's
// commit thread, or from the calling thread when nothing had to be written or
// the request failed before its write. It must not block.
template <typename Response>
using Completion = absl::AnyInvocable<void(absl::StatusOr<Response>)>;

class Tracker {
 public:
  // REQUIRES: `store`, `catalog`, `clock` and `hub` outlive the Tracker.
  Tracker(store::TaskStore* store, const CatalogHolder* catalog,
          const Clock* clock, EventHub* hub, TrackerOptions options = {});

  Tracker(const Tracker&) = delete;
  Tracker& operator=(const Tracker&) = delete;

  // Checks model, group and params against the catalog in force. Always OK
  // unless the request itself is malformed; records and counts nothing.
  absl::StatusOr<v1::ValidateTaskResponse> ValidateTask(
      const v1::ValidateTaskRequest& request) const;

  // The catalog in force, filtered by kind (TASK_KIND_UNSPECIFIED: all).
  // INVALID_ARGUMENT (BadRequest on `kind`) for a kind this build does not
  // know, rather than an empty catalog.
  absl::StatusOr<v1::ListModelsResponse> ListModels(
      const v1::ListModelsRequest& request) const;

  // Registers one task per user intent. In order:
  //  1. a `request_id` this account used before (within dedup_retention)
  //     returns the original task (deduplicated, SAME_REQUEST_ID), or
  //     ALREADY_EXISTS naming the fields that differ;
  //  2. catalog validation: violations are INVALID_ARGUMENT (ErrorInfo
  //     INVALID_TASK_PARAMETERS), counted per model and reason;
  //  3. unless `force_new`, identical content from the same account returns
  //     the original (SAME_CONTENT) while it is SUBMITTED, QUEUED or RUNNING,
  //     or SUCCEEDED less than dedup_window_after_success ago; the
  //     request_id, if any, is bound to the original;
  //  4. otherwise a new task in SUBMITTED with its first timeline entry.
  // Every blocked duplicate appends DUPLICATE_BLOCKED to the original. The
  // check and the insert are atomic per account (a lock held across the
  // durable write). `actor` is the authenticated principal ("" if unknown).
  // `request` and `actor` need only live until the call returns.
  //
  // With LockWait::kWait the request is always taken: returns an empty
  // Completion, and `done` is called as described for Completion. With
  // LockWait::kNever, when a lock it needs is held (see LockWait), it gives
  // the request up at once, having recorded and counted nothing (at most a
  // task id was drawn and is skipped), and returns `done` itself, not
  // called (call again with kWait on a thread that may block).
  [[nodiscard]] Completion<v1::SubmitTaskResponse> SubmitTask(
      const v1::SubmitTaskRequest& request, absl::string_view actor,
      LockWait wait, Completion<v1::SubmitTaskResponse> done);

  // Appends one lifecycle event. Replays of an `event_id` with the same body
  // answer applied=false; with another body ALREADY_EXISTS. Checks, in order:
  // request shape, task exists, event_id replay, event body, occur_time,
  // lifecycle (and refund-once).
  // LockWait and the Completion returned as SubmitTask's.
  [[nodiscard]] Completion<v1::RecordEventResponse> RecordEvent(
      const v1::RecordEventRequest& request, absl::string_view actor,
      LockWait wait, Completion<v1::RecordEventResponse> done);

  // One task; its timeline when `include_events`: the whole timeline, or,
  // beyond max_events_returned entries or max_event_bytes_returned bytes,
  // its first entry and the newest ones within both limits, with
  // omitted_event_count counting the ones between. NOT_FOUND when unknown,
  // INVALID_ARGUMENT for a malformed id, DATA_LOSS when what is stored does
  // not parse or RocksDB finds a checksum mismatch.
  absl::StatusOr<v1::Task> GetTask(const v1::GetTaskRequest& request) const;

  // The stored snapshot's bytes, followed, when `include_events`, by the
  // stored bytes of the timeline's entries GetTask returns, each framed as an
  // entry of Task.events, and by omitted_event_count when some were left
  // out: a serialized v1::Task equal to GetTask's answer (a message followed
  // by a field of the same message parses as their merge; GetTask parses
  // these bytes). Only the snapshot's framing is read (for last_event_seq
  // and its notes); the bytes are not parsed, so beyond RocksDB's block
  // checksums a malformed field inside them reaches the caller as it is. A
  // snapshot stored before notes were capped, holding more than
  // kNotesInSnapshot of them, is parsed and answered with the newest ones
  // and note_count. Errors as GetTask's.
  absl::StatusOr<std::string> GetStoredTaskBytes(
      const v1::GetTaskRequest& request) const;

  // The tasks of up to kMaxBatchIds ids, each a task id or an upstream task
  // id, as documented on v1::BatchGetTasksRequest: in request order, with
  // the ids that name no task in missing_ids, each with its MissingId in
  // `missing` (maybe_purged and the message as TaskNotFound's). With
  // include_events each
  // timeline is cut as GetTask cuts it, to an equal share of what the tasks'
  // snapshots leave of kMaxBatchAnswerBytes (at most max_event_bytes_returned
  // in all). INVALID_ARGUMENT naming `ids` (none, or more
  // than kMaxBatchIds) or `ids[i]` (malformed); RESOURCE_EXHAUSTED ("too
  // large") when the answer would hold more than kMaxBatchTasks tasks or
  // take more than kMaxBatchAnswerBytes (queue statuses included); DATA_LOSS
  // as GetTask. Not const: the queue statuses read (and cache) the models'
  // typical waits.
  absl::StatusOr<v1::BatchGetTasksResponse> BatchGetTasks(
      const v1::BatchGetTasksRequest& request);

  // Tasks newest (or oldest) first, filtered through the most selective
  // index; at most max(page_size + 1, 10 * kMaxPageSize) tasks are visited
  // per call (see ListTasksResponse). INVALID_ARGUMENT naming the field for
  // a malformed filter or a page token of other filters. Not const: the
  // queue statuses read (and cache) the models' typical waits.
  absl::StatusOr<v1::ListTasksResponse> ListTasks(
      const v1::ListTasksRequest& request);

  // "Is it still queued, and is that normal?": fills `status` (expected
  // empty; it may live on the call's arena) with JudgeQueue's answer, from
  // the snapshot's fields the verdict reads (ReadQueueFacts).
  // INVALID_ARGUMENT for a malformed task id, NOT_FOUND when unknown,
  // DATA_LOSS when the snapshot's fields or those read are not well formed
  // (other fields are not looked into); `status` is unchanged on error.
  absl::Status GetQueueStatus(const v1::GetQueueStatusRequest& request,
                              v1::QueueStatus* status);

  // Counts, failures, queue waits and incident hints over a recent window
  // (default 15 min; INVALID_ARGUMENT above 24 h or below 1 min).
  absl::StatusOr<v1::Stats> GetStats(const v1::GetStatsRequest& request);

  // Checks an ExportTasksRequest and returns the cursor of its first page:
  // the tasks of the account index (account_id set) or of all tasks whose
  // ids fall in the creation-time range (TaskIdFloor of each bound, so the
  // bounds are exact to the millisecond the ids carry; without
  // create_time_before, up to the tasks created when it is called), after
  // after_task_id. INVALID_ARGUMENT naming the field: create_time_after or
  // create_time_before outside protobuf's range, create_time_before before
  // create_time_after, a malformed account_id, an after_task_id that is
  // not a task id.
  absl::StatusOr<ExportCursor> StartExport(
      const v1::ExportTasksRequest& request) const;

  // Replaces `page` with the next tasks of the export, oldest first: at
  // most `max_tasks`, and no more once their bytes reach `max_bytes` (at
  // least one task, whatever its size), and advances `cursor` past them
  // (cursor->done once nothing remains). A task that disappears between
  // the index and its read is skipped. Reads only what it returns: memory
  // is bounded by the page. DATA_LOSS or UNAVAILABLE as GetTask; `cursor`
  // is unchanged on error. REQUIRES: max_tasks > 0.
  absl::Status NextExportPage(ExportCursor* cursor, int max_tasks,
                              int64_t max_bytes,
                              std::vector<ExportedTask>* page) const;

  // Calls `visit` with the snapshot of every unfinished task (those in the
  // store's unfinished index), oldest first: one pass reading each one's
  // snapshot, for UnfinishedTally::Load. DATA_LOSS when a snapshot does not
  // parse; UNAVAILABLE when the store cannot be read.
  absl::Status VisitUnfinished(
      const std::function<void(const v1::Task&)>& visit) const;

  // Records that `principal` (with `role`) read each of `task_ids` through
  // `rpc` in the audit log (not the timeline): one entry per task, all in
  // one write, without waiting for an fsync. Nothing is written when
  // `task_ids` is empty. UNAVAILABLE when the store fails the write.
  absl::Status RecordAudit(absl::Span<const absl::string_view> task_ids,
                           absl::string_view principal, absl::string_view role,
                           absl::string_view rpc);

  // The audit log of a task, newest first, a page of at most page_size
  // entries (default 100, at most 1000) after the one `page_token` ends.
  // INVALID_ARGUMENT for a malformed task id or a page token that ListAudit
  // did not issue for this task (PAGE_TOKEN_INVALID), NOT_FOUND when the
  // task is unknown.
  absl::StatusOr<v1::ListAuditResponse> ListAudit(
      const v1::ListAuditRequest& request) const;

  // Takes a backup of the store now, and lists the backups kept, newest
  // first (store::TaskStore::CreateBackup, ListBackups): FAILED_PRECONDITION
  // when the store takes no backups (naming why), UNAVAILABLE when the
  // backup cannot be written.
  absl::StatusOr<v1::Backup> CreateBackup();
  absl::StatusOr<v1::ListBackupsResponse> ListBackups() const;

  // Erasure: deletes the task now, whatever its state, as retention does
  // (store::TaskStore::PurgeTask, its content dedup record included), then
  // appends to its audit log one entry that keeps only the task id,
  // `principal`, the time and the reason (rpc "PurgeTask"), durably.
  // Waits for the task's locks and for the writes: not for a thread that
  // must not block. INVALID_ARGUMENT naming `task_id` (malformed) or
  // `reason` (FIELD_REQUIRED, FIELD_TOO_LONG over kMaxTextBytes); NOT_FOUND
  // when no such task; UNAVAILABLE when the store fails.
  absl::StatusOr<v1::PurgeTaskResponse> PurgeTask(
      const v1::PurgeTaskRequest& request, absl::string_view principal);

  // Retention: purges up to `limit` tasks that are due at the clock's now
  // (see TrackerOptions::task_retention), oldest first, each in its own
  // atomic write taken under its account's and its task's locks. Yields to
  // foreground writes: a task whose lock another write holds or waits for is
  // skipped (it stays due for the next call). Returns how many tasks were
  // purged; fewer than `limit` when no more are due now (or some were
  // skipped). UNAVAILABLE when the store fails.
  absl::StatusOr<int> PurgeDueTasks(int limit);

  // Appends a support note. When `actor` is non-empty it is the author.
  // FAILED_PRECONDITION naming the cap when the task already has
  // max_notes_per_task notes. The snapshot keeps the newest
  // kNotesInSnapshot notes and counts all in note_count.
  // LockWait and the Completion returned as SubmitTask's.
  [[nodiscard]] Completion<v1::Task> AddNote(const v1::AddNoteRequest& request,
                                             absl::string_view actor,
                                             LockWait wait,
                                             Completion<v1::Task> done);

  // Timeline entries with seq > after_seq, oldest first, at most `limit`.
  absl::StatusOr<std::vector<v1::TaskEvent>> ReadEvents(
      absl::string_view task_id, int64_t after_seq, int limit) const;

  // The snapshot without events. NOT_FOUND when unknown.
  absl::StatusOr<v1::Task> GetSnapshot(absl::string_view task_id) const;

  // Classifies an upstream failure of a task of `model` with the failure
  // rules in force, scoped to the vendor the catalog in force gives the model
  // (the generic rules only when the catalog does not know it). Records
  // nothing.
  v1::Failure ClassifyFailure(absl::string_view model, int32_t http_status,
                              absl::string_view error_code,
                              absl::string_view message) const;

  // ClassifyFailure for the RPC: the request's fields checked as a FAILED
  // event's (CheckFailureEvidence), the model required and in the catalog in
  // force, and the error code and message scrubbed of secrets as a stored
  // event's are before they are classified (the answer carries the scrubbed
  // text). INVALID_ARGUMENT naming the field: `model` FIELD_REQUIRED or
  // MODEL_UNKNOWN (ErrorInfo INVALID_TASK_PARAMETERS, as SubmitTask), or a
  // malformed field (INVALID_REQUEST). Records nothing.
  absl::StatusOr<v1::Failure> ClassifyFailure(
      const v1::ClassifyFailureRequest& request) const;

  const Clock* clock() const { return clock_; }

  // NOT_FOUND for `task_id`, as GetTask answers for a task not stored: when
  // the id is older than the shorter retention (it may name a purged task),
  // saying how long finished tasks are kept. Reads nothing.
  absl::Status TaskNotFound(absl::string_view task_id) const;

  // The Tracker reads its store through `hub` (EventHub::Attach) until it
  // is destroyed.
  ~Tracker();

 private:
  // A write that must be durable before an answer is given, with the locks
  // held until then and the in-memory effects of the write.
  struct PendingWrite {
    absl::optional<store::PreparedWrite> prepared;  // nullopt: nothing to write
    std::vector<StripeLocks::Lease> leases;
    // Run after the write is durable, before the leases are released.
    std::vector<std::function<void()>> after_commit;
  };

  // A prepared answer: `result` is given once `write` (if any) is durable.
  // When the write fails, an OK result becomes the write's error; an error
  // result (a rejection whose counters are written) stays as it is.
  template <typename Response>
  struct Pending {
    Pending(absl::Status status) : result(std::move(status)) {}  // NOLINT
    Pending(Response response, PendingWrite pending_write = {})  // NOLINT
        : result(std::move(response)), write(std::move(pending_write)) {}
    // Nothing was prepared: a lock was held and LockWait::kNever given.
    static Pending LockBusy() {
      Pending busy(absl::AbortedError("a lock is held by another write"));
      busy.lock_busy = true;
      return busy;
    }
    absl::StatusOr<Response> result;
    PendingWrite write;
    bool lock_busy = false;
  };

  Pending<v1::SubmitTaskResponse> PrepareSubmit(
      const v1::SubmitTaskRequest& request, absl::string_view actor,
      LockWait wait);
  Pending<v1::RecordEventResponse> PrepareEvent(
      const v1::RecordEventRequest& request, absl::string_view actor,
      LockWait wait);
  Pending<v1::Task> PrepareNote(const v1::AddNoteRequest& request,
                                absl::string_view actor, LockWait wait);

  // Prepares one write (a read-modify-write) given the LockWait; called
  // again from fresh reads when its commit conflicts.
  template <typename Response>
  using Preparer = std::function<Pending<Response>(LockWait)>;

  // Prepares with `prepare` and completes the write with `done`, returning
  // an empty Completion; when the preparation was LockBusy, returns `done`
  // as it is. Every write of the Tracker goes through here.
  template <typename Response>
  Completion<Response> Run(Preparer<Response> prepare, LockWait wait,
                           Completion<Response> done);

  // Commits `pending.write` (if any; attempt `attempt` of the write), then
  // answers `done`. A commit answered ABORTED (store/task_store.h: what the
  // write was read from changed, as when another replica wrote first)
  // recorded nothing: the leases are released and the write is prepared
  // again with `prepare` (LockWait::kWait) on retrier_'s thread after its
  // backoff, up to ConflictRetrier::kMaxAttempts attempts in all; then
  // ConflictRetrier::GaveUp is the answer.
  template <typename Response>
  void Complete(std::shared_ptr<const Preparer<Response>> prepare, int attempt,
                Pending<Response> pending, Completion<Response> done);

  // The lease of `key`: waited for with kWait; with kNever nullopt when
  // another write holds it.
  static absl::optional<StripeLocks::Lease> Lock(StripeLocks& locks,
                                                 absl::string_view key,
                                                 LockWait wait);

  // Appends `event` (seq, times and state_after filled in here) to `task`
  // and prepares its write, together with `extra`, into `write`; the stored
  // entry is published to the task's watchers (EventHub::Publish) once it is
  // durable. On return `event` is the stored entry.
  // REQUIRES: the lease of task_id held (and moved into `write` by the
  // caller).
  absl::Status PrepareAppend(const v1::Task& previous, v1::Task* task,
                             v1::TaskEvent* event,
                             const std::string& event_id_digest,
                             std::vector<store::RawMutation> extra,
                             PendingWrite* write);

  // What options_.observer is told once the append of `event`, which took
  // `previous` to `task`, is durable. REQUIRES: options_.observer.
  std::function<void()> ObserveAppend(const v1::Task& previous,
                                      const v1::Task& task,
                                      const v1::TaskEvent& event,
                                      bool left_queue,
                                      absl::Duration queue_wait) const;

  // GetStoredTaskBytes with the timeline (when `include_events`) cut to at
  // most `max_events` entries and `max_event_bytes` bytes; kWholeTimeline
  // for both: never cut.
  absl::StatusOr<std::string> StoredTaskBytes(absl::string_view task_id,
                                              bool include_events,
                                              int64_t max_events,
                                              int64_t max_event_bytes) const;
  // StoredTaskBytes of a task whose stored snapshot was already read
  // (`snapshot`, as TaskStore::VisitTask gives it): only its timeline is
  // read.
  absl::StatusOr<std::string> StoredTaskBytesOf(absl::string_view task_id,
                                                std::string snapshot,
                                                bool include_events,
                                                int64_t max_events,
                                                int64_t max_event_bytes) const;
  static constexpr int64_t kWholeTimeline = std::numeric_limits<int64_t>::max();

  // Records a blocked duplicate on the original task and answers with it.
  // `account_lease` is the submitting account's lease.
  Pending<v1::SubmitTaskResponse> PrepareBlockDuplicate(
      const std::string& task_id, v1::DedupReason reason,
      const v1::SubmitTaskRequest& request, absl::string_view actor,
      std::vector<store::RawMutation> extra, StripeLocks::Lease account_lease,
      LockWait wait);

  // True when `task_id` is a task id created longer ago than the shorter
  // retention: the task it names may have been purged.
  bool MayNamePurgedTask(absl::string_view task_id) const;
  // `status`, or TaskNotFound(task_id) when `status` is NOT_FOUND.
  absl::Status ExplainNotFound(absl::string_view task_id,
                               absl::Status status) const;
  // The stored snapshot; TaskNotFound when unknown.
  absl::StatusOr<v1::Task> GetStoredSnapshot(absl::string_view task_id) const;

  // A purge prepared under the task's locks, not yet committed: the locks
  // are held until it is (or until it is dropped).
  struct PreparedPurge {
    store::PreparedWrite write;
    std::string task_id;
    std::string model;
    std::vector<StripeLocks::Lease> leases;
  };

  // Prepares the purge of `task_id` if it is (still) due at `now`
  // (`due_only`) or in any case, under the account's and the task's locks
  // (waited for with kWait; with kNever the task is skipped when busy).
  // nullopt when skipped: busy (then `*busy` is set, when given) or no
  // longer due; NOT_FOUND when no such task.
  absl::StatusOr<absl::optional<PreparedPurge>> PreparePurgeOne(
      absl::string_view task_id, bool due_only, absl::Time now, LockWait wait,
      bool* busy = nullptr);

  // Commits `purges` together (one durable write for all of them, each task
  // whole) and waits; releases their locks and tells the observer. Returns
  // how many were purged, or the first commit error.
  absl::StatusOr<int> CommitPurges(std::vector<PreparedPurge> purges);

  // True when an identical submission is still the original's intent.
  bool BlocksContent(const v1::Task& original, absl::Time now) const;

  // The write that counts a rejected submission per model and each of
  // `reasons` (distinct violation reasons).
  store::PreparedWrite CountRejection(absl::string_view model,
                                      const std::vector<std::string>& reasons);

  store::TaskStore* const store_;
  const CatalogHolder* const catalog_;
  const Clock* const clock_;
  EventHub* const hub_;
  // This Tracker's attachment of its store to hub_.
  uint64_t hub_attachment_ = 0;
  const TrackerOptions options_;
  const std::shared_ptr<const FailureClassifier> failure_rules_;
  QueueWaits waits_;
  // Which unclassified failure messages are counted by their own text.
  UnclassifiedBudget unclassified_;
  TaskIdGenerator ids_;
  StripeLocks task_locks_;
  std::atomic<uint64_t> audit_nonce_{0};
  // Taken before a task lock, never after one.
  StripeLocks account_locks_;
  // Last: destroyed first, running the retries still waiting.
  ConflictRetrier retrier_;
};

// Runs one of the Tracker's writes with LockWait::kWait and waits for its
// answer, for example AwaitWrite(tracker, &Tracker::SubmitTask, request, "").
// For tests, benches and threads that may block; never on a gRPC thread nor
// in a Completion (it would wait for itself).
template <typename Request, typename Response>
absl::StatusOr<Response> AwaitWrite(
    Tracker& tracker,
    Completion<Response> (Tracker::*write)(const Request&, absl::string_view,
                                           LockWait, Completion<Response>),
    const Request& request, absl::string_view actor) {
  absl::Notification answered;
  absl::StatusOr<Response> answer;
  Completion<Response> given_back =
      (tracker.*write)(request, actor, LockWait::kWait,
                       [&answered, &answer](absl::StatusOr<Response> result) {
                         answer = std::move(result);
                         answered.Notify();
                       });
  // A write that may wait is never given back.
  if (given_back != nullptr) {
    return absl::InternalError("a write that may wait was given back");
  }
  answered.WaitForNotification();
  return answer;
}

}  // namespace tasktrail

#endif  // TASKTRAIL_SERVICE_TRACKER_TRACKER_H_
