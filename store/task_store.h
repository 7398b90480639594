// TaskStore: the storage seam of tasktrail. The durable home of tasks, their
// timelines, their indexes and the records beside them (dedup keys, stats
// counters, queue-wait samples, audit entries). The domain (service/tracker)
// is written once against this interface; each store implements it:
//   store/rocksdb/   RocksDbTaskStore, the embedded store (one process)
//   store/postgres/  PgTaskStore, on PostgreSQL (replicas sharing one
//                    database)
// A store knows its layout and its indexes; it knows nothing of lifecycle
// rules, gRPC or validation.
//
// Atomicity and durability: a write (Prepare + Commit) applies whole or not
// at all, and once it is reported OK it survives a crash of the process.
//
// Conflicts (ABORTED): a write is prepared from what its caller read. A store
// shared by several processes (PostgreSQL) checks at commit that what the
// write depends on is still as read: a new task's id is still free, the
// stored task still equals TaskWrite::previous, an event id is still
// unrecorded, a dedup key is still free (RawMutation::PutDedup). When not,
// the write applies nothing and reports ABORTED, which means "re-read and
// re-prepare": the caller starts its read-modify-write over (the conflict may
// turn out a replay or a duplicate then). A serialization failure or deadlock
// in the database reports ABORTED too. RocksDbTaskStore never reports
// ABORTED: one process owns it, and its callers serialise their
// read-modify-writes of one task themselves.
//
// Failure: once RocksDbTaskStore reports a write failed because its storage
// failed (failed() turns true), it refuses writes with UNAVAILABLE until it
// is reopened; reads go on answering from what was written. PgTaskStore
// answers UNAVAILABLE for the calls caught in a lost connection or an
// unreachable database and recovers by itself by reconnecting: it never
// latches failed().
//
// Thread safety: all methods are safe to call concurrently. Commit applies
// whatever it is given; callers that read-modify-write one task serialise
// those sequences inside their process themselves (the service holds a
// per-task lock); across processes the ABORTED check above does.
#ifndef TASKTRAIL_STORE_TASK_STORE_H_
#define TASKTRAIL_STORE_TASK_STORE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/optional.h"
#include "absl/types/span.h"
#include "store/keys.h"
#include "store/records.h"
#include "tasktrail/v1/task.pb.h"

namespace tasktrail::store {

// What the store remembers about a recorded event id: the timeline entry it
// produced and a digest of the request body, to tell a replay from a conflict.
struct EventIdRecord {
  int64_t seq = 0;
  std::string body_digest;
};

// One raw key/value change in a service-owned column family (dedup, counters).
struct RawMutation {
  ColumnFamily family = ColumnFamily::kCounters;
  std::string key;
  // The new value; nullopt deletes the key.
  absl::optional<std::string> value;
  // When true, `value` (EncodeInt64) is added to the key's int64 value
  // instead of replacing it. Only for ColumnFamily::kCounters.
  bool add = false;
  // For a dedup record (kDedup with a value): the task the writer read as
  // the key's owner, when it means to take over a live record of that task;
  // empty when it read the key free. A shared store commits the record only
  // while the key is free, expired, already the new record's task, or still
  // this one's (else ABORTED).
  std::string dedup_replaces_task_id = "";

  // A counter increment: key += delta.
  static RawMutation Add(std::string key, int64_t delta) {
    return RawMutation{ColumnFamily::kCounters, std::move(key),
                       EncodeInt64(delta), true};
  }
  // Counts one in the counter of `kind` (and `detail`, see CounterName) of
  // `model` in `unix_minute`.
  static RawMutation CountOne(int64_t unix_minute, absl::string_view model,
                              CounterKind kind, absl::string_view detail = "") {
    return Add(CounterKey(unix_minute, model, CounterName(kind, detail)), 1);
  }
  // Counts one in the counter of `kind` (and `detail`) of the row of the
  // route or group `value` (`scope`) of `model` in `unix_minute`; kModel
  // counts in the model's own row, as CountOne.
  static RawMutation CountOneIn(StatsScope scope, absl::string_view value,
                                int64_t unix_minute, absl::string_view model,
                                CounterKind kind,
                                absl::string_view detail = "") {
    return Add(
        CounterKey(unix_minute, model,
                   ScopedCounterName(scope, value, CounterName(kind, detail))),
        1);
  }
  // Binds a dedup key (RequestIdDedupKey, ContentDedupKey) to `record`.
  // `replaces_task_id`: see dedup_replaces_task_id.
  static RawMutation PutDedup(std::string key, const DedupRecord& record,
                              absl::string_view replaces_task_id = "") {
    return RawMutation{ColumnFamily::kDedup, std::move(key),
                       EncodeDedupRecord(record), false,
                       std::string(replaces_task_id)};
  }
  // Records, or drops, one duration sample of a series (SampleSeries; a
  // model's queue waits are the series named by the model).
  static RawMutation PutQueueSample(absl::string_view model,
                                    int64_t exit_unix_micros,
                                    absl::string_view task_id,
                                    int64_t wait_micros) {
    return RawMutation{ColumnFamily::kCounters,
                       QueueSampleKey(model, exit_unix_micros, task_id),
                       EncodeInt64(wait_micros)};
  }
  static RawMutation DeleteQueueSample(absl::string_view model,
                                       int64_t exit_unix_micros,
                                       absl::string_view task_id) {
    return RawMutation{ColumnFamily::kCounters,
                       QueueSampleKey(model, exit_unix_micros, task_id),
                       absl::nullopt};
  }
};

// One stored duration sample of a series (see ScanQueueSamples): for a
// queue wait, when the task left the queue; for a run or end-to-end time,
// when it finished.
struct QueueSample {
  int64_t exit_unix_micros = 0;
  std::string task_id;
  int64_t wait_micros = 0;
};

// Where one duration sample of a task is kept: its series (SampleSeries)
// and time.
struct TaskSampleKey {
  std::string series;
  int64_t unix_micros = 0;
};

// Every duration sample the service may have kept of `task`: its queue wait
// under its queue_exit_time, its run time and end-to-end time under its
// finish_time, each in the series of its model and, when it has them, of its
// route and of its group. PreparePurge deletes them all.
std::vector<TaskSampleKey> TaskSampleKeys(const v1::Task& task);

// One atomic change of one task. The store derives the index entries from the
// difference between `previous` and `task`.
struct TaskWrite {
  // The snapshot before the change; nullptr when `task` is new.
  const v1::Task* previous = nullptr;
  // The snapshot after the change. Its `events` field is not stored.
  // REQUIRES: non-null, non-empty task_id.
  const v1::Task* task = nullptr;
  // Timeline entries to put at (task_id, seq): new ones, or rewrites of a
  // folded poll.
  std::vector<const v1::TaskEvent*> events;
  // When set, records `event_id` -> `record` for the task.
  absl::optional<std::pair<std::string, EventIdRecord>> event_id;
  // Further changes that must commit atomically with this one.
  std::vector<RawMutation> extra;
};

// One atomic change, built by TaskStore::Prepare or PrepareRaw and applied by
// TaskStore::Commit of the same store. Building it does not touch the
// database.
class PreparedWrite {
 public:
  // What a store keeps of a prepared change (RocksDbTaskStore: a
  // WriteBatch). Each store defines its own.
  class Body {
   public:
    virtual ~Body() = default;
  };

  // `what` names the write in an error message.
  PreparedWrite(std::unique_ptr<Body> body, std::string what);
  PreparedWrite(PreparedWrite&&) noexcept;
  PreparedWrite& operator=(PreparedWrite&&) noexcept;
  ~PreparedWrite();

  // The body, for the store that made it; nullptr after TakeBody.
  Body* body() const { return body_.get(); }
  std::unique_ptr<Body> TakeBody() { return std::move(body_); }
  const std::string& what() const { return what_; }

 private:
  std::unique_ptr<Body> body_;
  std::string what_;
};

// Which index a scan walks.
enum class ScanIndex {
  kAll,  // every task
  kAccount,
  kState,
  kModel,
  kUpstream,
  kRequest,
  kUnfinished,    // tasks in SUBMITTED, QUEUED or RUNNING (IsUnfinishedState)
  kAccountState,  // tasks of one account (`value`) in one `state`
  kModelState,    // tasks of one model (`value`) in one `state`
  kOwed,          // tasks whose charge is owed back (IsOwedTask)
  kRoute,         // tasks whose route (Task.route) is `value`
};

// True for the states whose tasks the kUnfinished index holds: SUBMITTED,
// QUEUED and RUNNING.
bool IsUnfinishedState(v1::TaskState state);

// True for the tasks the kOwed index holds: the list of charges to refund.
// A task is owed when all of these hold:
//  - it is CANCELED, or FAILED with an origin other than CONFIGURATION or
//    USER_CONTENT. PROVIDER and GATEWAY failures are the platform's side;
//    an UNKNOWN or unclassified failure is owed too, since nobody showed the
//    user was at fault. A cancellation counts whoever asked for it: the
//    user got no result, and a gateway whose policy keeps the charge of a
//    canceled task records that as a charge adjustment to 0.
//  - its charge after adjustments (charge_units + adjusted_units) is
//    above 0;
//  - it was not refunded (`refunded`, a whole or partial refund settles it).
// A late result (late_result_time, late_outcome) changes none of these, so
// it never moves a task in or out of the index.
bool IsOwedTask(const v1::Task& task);

// A scan over one index in task id order, that is by creation time: newest
// first unless `oldest_first`.
struct TaskScan {
  ScanIndex index = ScanIndex::kAll;
  // The indexed value: the account, model, upstream id, request id or route
  // (for kAccountState and kModelState, the account or the model). Unused
  // for kAll, kState, kUnfinished and kOwed.
  std::string value;
  // The state, for kState, kAccountState and kModelState.
  v1::TaskState state = v1::TASK_STATE_UNSPECIFIED;
  // Oldest (smallest task id) first instead of newest first.
  bool oldest_first = false;
  // Start strictly past this task id in the scan's direction; empty: from
  // the first task of the direction.
  std::string resume_after_task_id;
  // Only task ids in [min_task_id, end_task_id); empty: unbounded.
  std::string min_task_id;
  std::string end_task_id;
  // Stop after visiting this many tasks.
  int max_visits = 1000;
};

// While alive, marks the reads of the thread that created it as bulk reads
// (an export reading everything once): a store may then read around its
// cache (RocksDB: the block cache is not filled, scans read ahead), so that
// they do not evict what foreground reads keep hot. Scopes nest; other
// threads are not affected. Not movable: it belongs to one thread's stack.
class BulkReadScope {
 public:
  BulkReadScope();
  ~BulkReadScope();
  BulkReadScope(const BulkReadScope&) = delete;
  BulkReadScope& operator=(const BulkReadScope&) = delete;

  // True on a thread inside a BulkReadScope.
  static bool Active();
};

// One backup of a store (CreateBackup, ListBackups).
struct BackupInfo {
  int64_t backup_id = 0;
  int64_t create_unix_seconds = 0;
  // Bytes of the backup's files (files shared with other backups counted).
  int64_t size_bytes = 0;
  // Tasks in the store when the backup began.
  int64_t task_count = 0;
};

// A write that another process sharing the store committed, as that store
// learns of it (TaskStore::WatchOtherWriters).
struct OtherWrite {
  // The task written, or empty when writes may have gone unreported (the
  // store could not hear of them for a while): any task may have changed.
  std::string task_id;
  // The seq of the newest timeline entry the write put; 0 when it put none
  // (the task was purged).
  int64_t last_seq = 0;
};

class TaskStore {
 public:
  virtual ~TaskStore() = default;

  // Returns the task snapshot (without events), parsed from VisitTask.
  // NOT_FOUND when unknown; DATA_LOSS when the stored snapshot does not
  // parse.
  absl::StatusOr<v1::Task> GetTask(absl::string_view task_id) const;

  // Called with stored bytes, valid only during the call. An error stops
  // the visit and is returned.
  using BytesVisitor = absl::FunctionRef<absl::Status(absl::string_view)>;

  // Calls `visit` with the stored snapshot of the task, a serialized
  // v1::Task without events (not parsed), and returns what it returns.
  // NOT_FOUND (without calling `visit`) when unknown; DATA_LOSS when the
  // store finds the bytes damaged.
  virtual absl::Status VisitTask(absl::string_view task_id,
                                 BytesVisitor visit) const = 0;

  // Returns up to `limit` events of the task with seq > after_seq, oldest
  // first. An unknown task yields an empty list.
  virtual absl::StatusOr<std::vector<v1::TaskEvent>> ReadEvents(
      absl::string_view task_id, int64_t after_seq, int limit) const = 0;

  // Returns the events with seq in [first_seq, last_seq]. Missing seqs are
  // skipped.
  virtual absl::StatusOr<std::vector<v1::TaskEvent>> ReadEventRange(
      absl::string_view task_id, int64_t first_seq, int64_t last_seq) const = 0;

  // ReadEvents and ReadEventRange without parsing: `visit` is called with
  // the stored bytes (a serialized v1::TaskEvent) of each event they would
  // return, in the same order.
  virtual absl::Status VisitEvents(absl::string_view task_id, int64_t after_seq,
                                   int limit, BytesVisitor visit) const = 0;
  virtual absl::Status VisitEventRange(absl::string_view task_id,
                                       int64_t first_seq, int64_t last_seq,
                                       BytesVisitor visit) const = 0;

  // Calls `visit` with the seq and stored bytes (valid only during the call)
  // of each event of the task with seq in [first_seq, last_seq], newest
  // first, until it returns false. Its cost is that of the events visited,
  // not of the whole timeline.
  virtual absl::Status VisitEventsNewestFirst(
      absl::string_view task_id, int64_t first_seq, int64_t last_seq,
      absl::FunctionRef<bool(int64_t seq, absl::string_view bytes)> visit)
      const = 0;

  // Returns the record of `event_id` for the task, or nullopt when unseen.
  virtual absl::StatusOr<absl::optional<EventIdRecord>> GetEventIdRecord(
      absl::string_view task_id, absl::string_view event_id) const = 0;

  // Builds the change of `write` for Commit. INVALID_ARGUMENT without a
  // task.
  virtual absl::StatusOr<PreparedWrite> Prepare(
      const TaskWrite& write) const = 0;

  // Builds a change of raw mutations for Commit.
  virtual PreparedWrite PrepareRaw(
      const std::vector<RawMutation>& mutations) const = 0;

  // Applies `prepared` (made by this store) atomically and durably, and
  // returns at once. `done` is called exactly once with the result: from a
  // thread of the store, or before Commit returns when the store has
  // already failed. It must not block: writes queued behind it may wait for
  // it. Writes of one task are applied in Commit order (RocksDbTaskStore:
  // all writes are).
  // Errors: ABORTED when what the write depends on changed since it was read
  // (see "Conflicts" above; nothing is applied); UNAVAILABLE when the
  // storage fails (disk full, I/O error, lost database; a write whose
  // connection is lost while committing may or may not have applied).
  // After a storage failure RocksDbTaskStore refuses further writes until
  // reopened (failed()).
  virtual void Commit(PreparedWrite prepared,
                      absl::AnyInvocable<void(absl::Status)> done) = 0;

  // Prepare and Commit, waiting for the result.
  // REQUIRES: not called from a Commit callback (it would wait for itself).
  absl::Status Write(const TaskWrite& write);

  // Visits the tasks of `scan` in its direction, calling `visit` for each
  // until it returns false or `scan.max_visits` tasks were visited. Returns
  // the id of the last task visited (empty when none), which is the
  // `resume_after_task_id` of the next page. DATA_LOSS when a stored
  // snapshot does not parse.
  absl::StatusOr<std::string> Scan(
      const TaskScan& scan,
      const std::function<bool(const v1::Task&)>& visit) const;

  // Scan without parsing: `visit` is called with the id and the stored
  // snapshot (a serialized v1::Task without events, valid only during the
  // call) of each task Scan would visit, in the same order and with the same
  // return value. A scan over every task (kAll) reads the snapshots in
  // sequence rather than each by a lookup. Fails as Scan does, but for a
  // snapshot that does not parse.
  virtual absl::StatusOr<std::string> ScanStoredTasks(
      const TaskScan& scan,
      const std::function<bool(absl::string_view task_id,
                               absl::string_view snapshot)>& visit) const = 0;

  // The dedup record under `key` (RequestIdDedupKey, ContentDedupKey);
  // nullopt when absent, unreadable, or expired at `now_unix_micros`.
  virtual absl::StatusOr<absl::optional<DedupRecord>> GetDedupRecord(
      absl::string_view key, int64_t now_unix_micros) const = 0;

  // The dedup records under `keys`, in their order, as GetDedupRecord reads
  // each; a store where each read is a round trip reads them in one. Fails
  // as GetDedupRecord does, with no partial answer.
  virtual absl::StatusOr<std::vector<absl::optional<DedupRecord>>>
  GetDedupRecords(const std::vector<std::string>& keys,
                  int64_t now_unix_micros) const {
    std::vector<absl::optional<DedupRecord>> records;
    records.reserve(keys.size());
    for (const std::string& key : keys) {
      absl::StatusOr<absl::optional<DedupRecord>> record =
          GetDedupRecord(key, now_unix_micros);
      if (!record.ok()) return record.status();
      records.push_back(*std::move(record));
    }
    return records;
  }

  // Visits the per-minute counters of minutes [first_minute, end_minute) in
  // order of minute, then model, then name, with their values.
  virtual absl::Status ScanCounters(
      int64_t first_minute, int64_t end_minute,
      const std::function<void(const ParsedCounterKey& counter, int64_t value)>&
          visit) const = 0;

  // Visits the stored samples of the series `model` (a model's queue waits,
  // or any SampleSeries), oldest first.
  virtual absl::Status ScanQueueSamples(
      absl::string_view model,
      const std::function<void(QueueSample sample)>& visit) const = 0;

  // Appends `entry` (a serialized v1::AuditEntry) to the audit log of
  // `task_id` at `unix_micros` (`nonce` tells apart entries of one
  // microsecond). The entry may be lost in a power failure (it is not
  // waited on to reach the disk), never half-written.
  virtual absl::Status WriteAudit(absl::string_view task_id,
                                  int64_t unix_micros, uint64_t nonce,
                                  std::string entry) = 0;

  // Visits the audit log of `task_id` (serialized v1::AuditEntry values),
  // oldest first.
  virtual absl::Status ScanAudit(
      absl::string_view task_id,
      const std::function<void(absl::string_view entry)>& visit) const = 0;

  // Visits the audit log of `task_id` newest first, starting strictly below
  // (older than) `before_position` (empty: from the newest entry), until
  // `visit` returns false. `position` is the entry's place in the log, an
  // opaque byte string that orders the entries of one task; pass it as
  // `before_position` to continue after that entry.
  virtual absl::Status ScanAuditNewestFirst(
      absl::string_view task_id, absl::string_view before_position,
      absl::FunctionRef<bool(absl::string_view position,
                             absl::string_view entry)>
          visit) const = 0;

  // Applies raw mutations atomically, without a task, and waits. kSynced
  // is durable when it returns; kBuffered may be lost in a power failure
  // (never half-applied): for records such as audit entries of reads.
  enum class Durability { kSynced, kBuffered };
  virtual absl::Status WriteRaw(
      const std::vector<RawMutation>& mutations,
      Durability durability = Durability::kSynced) = 0;

  // Retention. Every task has one entry in the store's retention index: a
  // finished task (SUCCEEDED, FAILED, CANCELED) under its finish_time, an
  // unfinished one under its update_time (its last event); Prepare keeps it
  // in the same atomic write as every change of the task.
  //
  // The ids of up to `limit` tasks due for purging: finished tasks that
  // finished before `finished_before_unix_micros`, oldest first, then
  // unfinished tasks last changed before `unfinished_before_unix_micros`,
  // oldest first. A cutoff <= 0 lists none of its class. Reads only the
  // index entries it returns (no scan of the tasks).
  virtual absl::StatusOr<std::vector<std::string>> ListDueTasks(
      int64_t finished_before_unix_micros,
      int64_t unfinished_before_unix_micros, int limit) const = 0;

  // Builds, for Commit, the one atomic write that deletes everything stored
  // of the task: its snapshot (with its notes), every timeline entry, every
  // index entry, its event-id records, its audit log, its duration samples
  // (TaskSampleKeys),
  // and its request_id dedup record plus those of `dedup_keys`
  // (ContentDedupKey, which the store cannot derive) when they name this
  // task. A dedup key bound to another task is left alone. Once committed,
  // the store holds no key of the task. Unlike Prepare it reads the store
  // (to find the task's keys). NOT_FOUND when the task is not stored.
  // Several purges committed together (the retention sweeper's batches)
  // share one durable write and still apply whole task by whole task.
  // REQUIRES: no write of the task is prepared or committed until this one
  // has committed (the caller holds the task's lock).
  virtual absl::StatusOr<PreparedWrite> PreparePurge(
      absl::string_view task_id,
      absl::Span<const std::string> dedup_keys) const = 0;

  // PreparePurge and Commit, waiting for the result. NOT_FOUND (nothing
  // written) when the task is not stored; UNAVAILABLE as Commit.
  // REQUIRES: as PreparePurge; not called from a Commit callback.
  absl::Status PurgeTask(absl::string_view task_id,
                         absl::Span<const std::string> dedup_keys);

  // Checks that the secondary indexes hold exactly the entries the stored
  // tasks imply. OK, or DATA_LOSS naming the first few differences. Reads
  // the whole store: for tests and repair tools, not for serving.
  virtual absl::Status VerifyIndexes() const = 0;

  // True once a write failed because the storage did; the store refuses
  // writes from then on. Always false for a store that recovers by itself
  // (PgTaskStore).
  virtual bool failed() const = 0;

  // Writes committed elsewhere. A store shared by several processes
  // (PgTaskStore) calls `listener` for each timeline append or purge another
  // process commits, soon after it commits (best effort: when it may have
  // missed some, it says so with an OtherWrite without a task id, once it
  // can hear of them again). It may also report this process's own writes.
  // `listener` runs on a thread of the store and must not block or call the
  // store. A later call replaces the listener; nullptr stops the calls.
  // Once this returns, the previous listener is not running and will not be
  // called again. The default does nothing: a store that one process owns
  // (RocksDbTaskStore) has no other writers.
  virtual void WatchOtherWriters(
      std::function<void(const OtherWrite&)> listener) {
    (void)listener;
  }

  // Takes a backup now, online: writes go on meanwhile, and every write
  // acknowledged before the call is in the backup. FAILED_PRECONDITION,
  // naming why, when this store takes no backups of its own (not
  // configured, or a database with its own backup tools); UNAVAILABLE when
  // the storage fails or the store has failed.
  virtual absl::StatusOr<BackupInfo> CreateBackup() = 0;

  // The backups kept, newest first; FAILED_PRECONDITION as CreateBackup.
  virtual absl::StatusOr<std::vector<BackupInfo>> ListBackups() const = 0;

 protected:
  // Commits `prepared` and waits for the result.
  // REQUIRES: not called from a Commit callback.
  absl::Status CommitAndWait(PreparedWrite prepared);
};

}  // namespace tasktrail::store

#endif  // TASKTRAIL_STORE_TASK_STORE_H_
