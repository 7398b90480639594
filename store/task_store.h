// TaskStore: the durable home of tasks, their timelines and their indexes, on
// RocksDB. It knows the key layout and the indexes; it knows nothing of
// lifecycle rules, gRPC or validation.
//
// Durability: every write is one atomic RocksDB WriteBatch. With
// `Options::sync_writes` (the default) the WAL is fsynced before a write is
// reported OK, so a write reported OK survives kill -9 and power loss.
//
// Writes go through one commit thread (CommitQueue): writes queued while it
// is busy are applied together, with one fsync. Commit() does not block;
// Write() and WriteRaw() wait for the result.
//
// Failure: the first write that fails (disk full, I/O error), a commit or
// RocksDB's own flush or compaction, leaves the store failed until it is
// reopened. From then on nothing more is written through the database:
// commits (those already queued too), WriteRaw and Compact answer
// UNAVAILABLE without reaching RocksDB, RocksDB's automatic recovery (which
// would sync the failed WAL and flush the memtables) is off, and closing the
// store writes or syncs nothing. Reads go on answering from what was
// written.
//
// Thread safety: all methods are safe to call concurrently. Write() applies
// whatever it is given; callers that read-modify-write one task must serialise
// those sequences themselves (the service holds a per-task lock).
#ifndef TASKTRAIL_STORE_TASK_STORE_H_
#define TASKTRAIL_STORE_TASK_STORE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/log_severity.h"
#include "absl/functional/any_invocable.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/optional.h"
#include "store/commit_queue.h"
#include "store/keys.h"
#include "store/records.h"
#include "tasktrail/v1/task.pb.h"

namespace rocksdb {
class ColumnFamilyHandle;
class DB;
class Env;
class PinnableSlice;
class WriteBatch;
}  // namespace rocksdb

namespace tasktrail::store {

struct StoreOptions {
  // The data directory. Created when missing.
  std::string path;

  // When true every Write() waits for the WAL fsync. Turning it off is unsafe
  // (acknowledged writes may be lost on a crash) and meant for benchmarks.
  bool sync_writes = true;

  // Size of the shared block cache in MiB. Memtables are charged to it too.
  int block_cache_mb = 128;

  // The environment RocksDB uses for files; nullptr: the default. Tests pass
  // one wrapping a FileSystem that injects faults (disk full, I/O errors).
  std::shared_ptr<rocksdb::Env> env;

  // Called once, when a write fails (a commit, or RocksDB's own flush or
  // compaction) and the store starts refusing writes (for example to report
  // NOT_SERVING). Runs on the thread that saw the failure: the commit thread,
  // a caller of WriteRaw, or a RocksDB background thread; it must not call
  // back into the store's writes.
  std::function<void(const absl::Status&)> on_failure;

  // Receives RocksDB's own warnings and errors, one message each (without a
  // newline), from any thread, including while a write fails. nullptr: they
  // are dropped. RocksDB keeps no LOG file of its own in `path`: on a full
  // disk that file fails like any other, and librocksdb aborts the process
  // on the next line written to a log file that failed once.
  std::function<void(absl::LogSeverity, absl::string_view)> log;

  // Called on the commit thread after each group commit with the number of
  // writes it held and the seconds its write (and fsync) took, for metrics.
  // nullptr: nobody. It must not block or call into the store.
  std::function<void(size_t writes, double seconds)> on_commit;

  // Per-minute counters (CounterKey) older than this are dropped by
  // compaction, which keeps the counters bounded without any scan.
  int64_t counter_retention_minutes = 26 * 60;
};

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
  // Binds a dedup key (RequestIdDedupKey, ContentDedupKey) to `record`.
  static RawMutation PutDedup(std::string key, const DedupRecord& record) {
    return RawMutation{ColumnFamily::kDedup, std::move(key),
                       EncodeDedupRecord(record)};
  }
  // Records, or drops, one queue-wait sample of `model`.
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

// One stored queue-wait sample of a model (see ScanQueueSamples).
struct QueueSample {
  int64_t exit_unix_micros = 0;
  std::string task_id;
  int64_t wait_micros = 0;
};

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
// TaskStore::Commit. Building it does not touch the database.
class PreparedWrite {
 public:
  PreparedWrite(PreparedWrite&&) noexcept;
  PreparedWrite& operator=(PreparedWrite&&) noexcept;
  ~PreparedWrite();

 private:
  friend class TaskStore;
  PreparedWrite(std::unique_ptr<rocksdb::WriteBatch> batch, std::string what);

  std::unique_ptr<rocksdb::WriteBatch> batch_;
  std::string what_;  // names the write in an error message
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
};

// True for the states whose tasks the kUnfinished index holds: SUBMITTED,
// QUEUED and RUNNING.
bool IsUnfinishedState(v1::TaskState state);

// A scan over one index in task id order, that is by creation time: newest
// first unless `oldest_first`.
struct TaskScan {
  ScanIndex index = ScanIndex::kAll;
  // The indexed value: the account, model, upstream id or request id (for
  // kAccountState and kModelState, the account or the model). Unused for
  // kAll, kState and kUnfinished.
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

class TaskStore {
 public:
  // Opens (creating when missing) the store at `options.path`.
  // Errors: FAILED_PRECONDITION when the directory is locked by another
  // process or has an unknown format version; DATA_LOSS when RocksDB reports
  // corruption; UNAVAILABLE for other I/O errors.
  static absl::StatusOr<std::unique_ptr<TaskStore>> Open(
      const StoreOptions& options);

  ~TaskStore();
  TaskStore(const TaskStore&) = delete;
  TaskStore& operator=(const TaskStore&) = delete;

  // Returns the task snapshot (without events). NOT_FOUND when unknown;
  // DATA_LOSS when the stored snapshot does not parse.
  absl::StatusOr<v1::Task> GetTask(absl::string_view task_id) const;

  // Called with stored bytes, valid only during the call. An error stops
  // the visit and is returned.
  using BytesVisitor = absl::FunctionRef<absl::Status(absl::string_view)>;

  // Calls `visit` with the stored snapshot of the task, a serialized
  // v1::Task without events (not parsed), and returns what it returns. The
  // bytes are pinned where they lie when they come
  // from the block cache (no copy); a memtable's value is copied into the
  // pin first. NOT_FOUND (without calling `visit`) when unknown; DATA_LOSS
  // when RocksDB finds a checksum mismatch.
  absl::Status VisitTask(absl::string_view task_id, BytesVisitor visit) const;

  // Returns up to `limit` events of the task with seq > after_seq, oldest
  // first. An unknown task yields an empty list.
  absl::StatusOr<std::vector<v1::TaskEvent>> ReadEvents(
      absl::string_view task_id, int64_t after_seq, int limit) const;

  // Returns the events with seq in [first_seq, last_seq] by point lookups
  // (one batched MultiGet, cheaper than an iterator for a short timeline).
  // Missing seqs are skipped.
  absl::StatusOr<std::vector<v1::TaskEvent>> ReadEventRange(
      absl::string_view task_id, int64_t first_seq, int64_t last_seq) const;

  // ReadEvents and ReadEventRange without parsing: `visit` is called with
  // the stored bytes (a serialized v1::TaskEvent) of each event they would
  // return, in the same order.
  absl::Status VisitEvents(absl::string_view task_id, int64_t after_seq,
                           int limit, BytesVisitor visit) const;
  absl::Status VisitEventRange(absl::string_view task_id, int64_t first_seq,
                               int64_t last_seq, BytesVisitor visit) const;

  // Calls `visit` with the seq and stored bytes (valid only during the call)
  // of each event of the task with seq in [first_seq, last_seq], newest
  // first, until it returns false: one reverse scan, whose cost is that of
  // the events visited, not of the whole timeline.
  absl::Status VisitEventsNewestFirst(
      absl::string_view task_id, int64_t first_seq, int64_t last_seq,
      absl::FunctionRef<bool(int64_t seq, absl::string_view bytes)> visit)
      const;

  // Returns the record of `event_id` for the task, or nullopt when unseen.
  absl::StatusOr<absl::optional<EventIdRecord>> GetEventIdRecord(
      absl::string_view task_id, absl::string_view event_id) const;

  // Builds the batch of `write` for Commit. INVALID_ARGUMENT without a task.
  absl::StatusOr<PreparedWrite> Prepare(const TaskWrite& write) const;

  // Builds a batch of raw mutations for Commit.
  PreparedWrite PrepareRaw(const std::vector<RawMutation>& mutations) const;

  // Applies `prepared` atomically (and durably when sync_writes), grouped
  // with the other writes queued meanwhile, and returns at once. `done` is
  // called exactly once with the result: from the commit thread, or before
  // Commit returns when the store has already failed. It must not block: the
  // writes queued behind it wait for it. Writes are applied in Commit order.
  // Errors: UNAVAILABLE when RocksDB fails to write (disk full, I/O error);
  // the store then refuses further writes until reopened.
  void Commit(PreparedWrite prepared,
              absl::AnyInvocable<void(absl::Status)> done);

  // Prepare and Commit, waiting for the result.
  // REQUIRES: not called from a Commit callback (it would wait for itself).
  absl::Status Write(const TaskWrite& write);

  // Visits the tasks of `scan` in its direction, calling `visit` for each
  // until it returns false or `scan.max_visits` tasks were visited. Returns
  // the id of the last task visited (empty when none), which is the
  // `resume_after_task_id` of the next page.
  absl::StatusOr<std::string> Scan(
      const TaskScan& scan,
      const std::function<bool(const v1::Task&)>& visit) const;

  // The dedup record under `key` (RequestIdDedupKey, ContentDedupKey);
  // nullopt when absent, unreadable, or expired at `now_unix_micros`.
  absl::StatusOr<absl::optional<DedupRecord>> GetDedupRecord(
      absl::string_view key, int64_t now_unix_micros) const;

  // Visits the per-minute counters of minutes [first_minute, end_minute) in
  // key order (minute, then model, then name), with their values; keys that
  // are not counter keys are skipped.
  absl::Status ScanCounters(
      int64_t first_minute, int64_t end_minute,
      const std::function<void(const ParsedCounterKey& counter, int64_t value)>&
          visit) const;

  // Visits the stored queue-wait samples of `model`, oldest exit first.
  absl::Status ScanQueueSamples(
      absl::string_view model,
      const std::function<void(QueueSample sample)>& visit) const;

  // Appends `entry` (a serialized v1::AuditEntry) to the audit log of
  // `task_id` at `unix_micros` (`nonce` tells apart entries of one
  // microsecond), without waiting for an fsync (Durability::kBuffered).
  absl::Status WriteAudit(absl::string_view task_id, int64_t unix_micros,
                          uint64_t nonce, std::string entry);

  // Visits the audit log of `task_id` (serialized v1::AuditEntry values),
  // oldest first.
  absl::Status ScanAudit(
      absl::string_view task_id,
      const std::function<void(absl::string_view entry)>& visit) const;

  // Visits the audit log of `task_id` newest first, starting strictly below
  // (older than) `before_position` (empty: from the newest entry), until
  // `visit` returns false. `position` is the entry's place in the log, an
  // opaque byte string that orders the entries of one task; pass it as
  // `before_position` to continue after that entry.
  absl::Status ScanAuditNewestFirst(
      absl::string_view task_id, absl::string_view before_position,
      absl::FunctionRef<bool(absl::string_view position,
                             absl::string_view entry)>
          visit) const;

  // Reads a raw value from a service-owned column family; nullopt if absent.
  absl::StatusOr<absl::optional<std::string>> GetRaw(
      ColumnFamily family, absl::string_view key) const;

  // Visits raw keys of `family` in [start, limit) in key order until `visit`
  // returns false.
  absl::Status ScanRange(
      ColumnFamily family, absl::string_view start, absl::string_view limit,
      const std::function<bool(absl::string_view key, absl::string_view value)>&
          visit) const;

  // Visits raw keys of `family` starting with `prefix` in key order until
  // `visit` returns false.
  absl::Status ScanRaw(
      ColumnFamily family, absl::string_view prefix,
      const std::function<bool(absl::string_view key, absl::string_view value)>&
          visit) const;

  // Applies raw mutations atomically, without a task, and waits. kSynced
  // goes through Commit; kBuffered is written directly, without an fsync (the
  // write still goes to the WAL): for records that may be lost in a power
  // failure, such as audit entries of reads.
  enum class Durability { kSynced, kBuffered };
  absl::Status WriteRaw(const std::vector<RawMutation>& mutations,
                        Durability durability = Durability::kSynced);

  // Compacts the whole column family now (expired counters and dedup records
  // are dropped). For tests and maintenance; compaction also runs on its own.
  // UNAVAILABLE once the store failed (compacting flushes the memtable).
  absl::Status Compact(ColumnFamily family);

  // Checks that the secondary indexes hold exactly the entries the stored
  // tasks imply (for the kUnfinished index: one entry for each task whose
  // state IsUnfinishedState, and no other). OK, or DATA_LOSS naming the
  // first few differences. Reads the whole store: for tests and repair
  // tools, not for serving.
  absl::Status VerifyIndexes() const;

  // RocksDB's view of the store's size and background work, read from its
  // properties when asked (no I/O): summed over the column families, but
  // for the shared block cache and the compactions running, which are
  // the database's.
  struct Properties {
    uint64_t live_data_bytes = 0;  // rocksdb.estimate-live-data-size
    uint64_t sst_bytes = 0;        // rocksdb.total-sst-files-size
    uint64_t pending_compaction_bytes =
        0;                             // ...estimate-pending-compaction-bytes
    uint64_t running_compactions = 0;  // rocksdb.num-running-compactions
    uint64_t block_cache_bytes = 0;    // rocksdb.block-cache-usage
  };
  Properties properties() const;

  // True once a write failed; the store refuses writes from then on.
  bool failed() const;

  // Committed writes so far and the groups (fsyncs) they were applied in.
  CommitQueue::Counts commit_counts() const;

  const StoreOptions& options() const { return options_; }

 private:
  // The failure state, shared with the listener that RocksDB calls from its
  // own threads.
  class FailureLatch;

  TaskStore(StoreOptions options, std::unique_ptr<rocksdb::DB> db,
            std::vector<rocksdb::ColumnFamilyHandle*> handles,
            std::shared_ptr<FailureLatch> failure);

  // Visits the keys of `family` in [lower, upper), all of one task's prefix,
  // in reverse key order until `visit` returns false. `what` names the read
  // in an error.
  absl::Status VisitNewestFirst(
      ColumnFamily family, absl::string_view lower, absl::string_view upper,
      absl::string_view what,
      absl::FunctionRef<bool(absl::string_view key, absl::string_view value)>
          visit) const;

  // Adds `mutations` to `batch`.
  void AddMutations(const std::vector<RawMutation>& mutations,
                    rocksdb::WriteBatch* batch) const;

  // On a store of format version 1, adds the index entries version 2 added
  // (kUnfinished, kAccountState, kModelState) from one pass over the tasks,
  // in batches, and then writes format version 2. Idempotent: a store that
  // crashed during the backfill is still version 1 and is backfilled again.
  absl::Status BackfillFleetIndexes();

  // Writes `batch`. Marks the store failed when RocksDB refuses the write;
  // the error does not name the write (callers prefix what they wrote).
  absl::Status ApplyBatch(rocksdb::WriteBatch* batch, bool sync);

  rocksdb::ColumnFamilyHandle* handle(ColumnFamily family) const {
    return handles_[static_cast<int>(family)];
  }

  const StoreOptions options_;
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  const std::shared_ptr<FailureLatch> failure_;
  // Reset first by ~TaskStore, so that it drains before the database closes.
  std::unique_ptr<CommitQueue> commit_queue_;
  // Kept alive for the DB, which holds a raw pointer to it.
  std::shared_ptr<const void> counter_expiry_;
};

}  // namespace tasktrail::store

#endif  // TASKTRAIL_STORE_TASK_STORE_H_
