// RocksDbTaskStore: the embedded TaskStore (store/task_store.h), on RocksDB
// in one data directory owned by one process. The key layout is keys.h; the
// tuning of each column family rocksdb_options.h.
//
// Durability: every write is one atomic RocksDB WriteBatch. With
// `StoreOptions::sync_writes` (the default) the WAL is fsynced before a write
// is reported OK, so a write reported OK survives kill -9 and power loss.
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
// Thread safety: all methods are safe to call concurrently (see TaskStore).
#ifndef TASKTRAIL_STORE_ROCKSDB_ROCKSDB_TASK_STORE_H_
#define TASKTRAIL_STORE_ROCKSDB_ROCKSDB_TASK_STORE_H_

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
#include "absl/synchronization/mutex.h"
#include "absl/types/optional.h"
#include "store/keys.h"
#include "store/rocksdb/commit_queue.h"
#include "store/task_store.h"
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

  // Where CreateBackup puts backups (RocksDB's BackupEngine: incremental,
  // checksummed); empty: backups are off. The directory should be on
  // another disk than `path`.
  std::string backup_dir;
  // CreateBackup keeps the newest this many backups. At least 1.
  int backup_keep = 7;
};

class RocksDbTaskStore final : public TaskStore {
 public:
  // Opens (creating when missing) the store at `options.path`.
  // Errors: FAILED_PRECONDITION when the directory is locked by another
  // process or has an unknown format version; DATA_LOSS when RocksDB reports
  // corruption; UNAVAILABLE for other I/O errors.
  static absl::StatusOr<std::unique_ptr<RocksDbTaskStore>> Open(
      const StoreOptions& options);

  ~RocksDbTaskStore() override;
  RocksDbTaskStore(const RocksDbTaskStore&) = delete;
  RocksDbTaskStore& operator=(const RocksDbTaskStore&) = delete;

  // TaskStore. VisitTask pins the bytes where they lie when they come from
  // the block cache (no copy; a memtable's value is copied into the pin).
  // ReadEventRange and VisitEventRange make point lookups (one batched
  // MultiGet, cheaper than an iterator for a short timeline);
  // VisitEventsNewestFirst is one reverse scan. Commit groups the writes
  // queued meanwhile into one WriteBatch group with one fsync (when
  // sync_writes). WriteAudit and kBuffered raw writes go to the WAL without
  // an fsync.
  absl::Status VisitTask(absl::string_view task_id,
                         BytesVisitor visit) const override;
  absl::StatusOr<std::vector<v1::TaskEvent>> ReadEvents(
      absl::string_view task_id, int64_t after_seq, int limit) const override;
  absl::StatusOr<std::vector<v1::TaskEvent>> ReadEventRange(
      absl::string_view task_id, int64_t first_seq,
      int64_t last_seq) const override;
  absl::Status VisitEvents(absl::string_view task_id, int64_t after_seq,
                           int limit, BytesVisitor visit) const override;
  absl::Status VisitEventRange(absl::string_view task_id, int64_t first_seq,
                               int64_t last_seq,
                               BytesVisitor visit) const override;
  absl::Status VisitEventsNewestFirst(
      absl::string_view task_id, int64_t first_seq, int64_t last_seq,
      absl::FunctionRef<bool(int64_t seq, absl::string_view bytes)> visit)
      const override;
  absl::StatusOr<absl::optional<EventIdRecord>> GetEventIdRecord(
      absl::string_view task_id, absl::string_view event_id) const override;
  absl::StatusOr<PreparedWrite> Prepare(const TaskWrite& write) const override;
  PreparedWrite PrepareRaw(
      const std::vector<RawMutation>& mutations) const override;
  void Commit(PreparedWrite prepared,
              absl::AnyInvocable<void(absl::Status)> done) override;
  absl::StatusOr<std::string> ScanStoredTasks(
      const TaskScan& scan,
      const std::function<bool(absl::string_view task_id,
                               absl::string_view snapshot)>& visit)
      const override;
  absl::StatusOr<absl::optional<DedupRecord>> GetDedupRecord(
      absl::string_view key, int64_t now_unix_micros) const override;
  absl::Status ScanCounters(
      int64_t first_minute, int64_t end_minute,
      const std::function<void(const ParsedCounterKey& counter, int64_t value)>&
          visit) const override;
  absl::Status ScanQueueSamples(
      absl::string_view model,
      const std::function<void(QueueSample sample)>& visit) const override;
  absl::Status WriteAudit(absl::string_view task_id, int64_t unix_micros,
                          uint64_t nonce, std::string entry) override;
  absl::Status ScanAudit(
      absl::string_view task_id,
      const std::function<void(absl::string_view entry)>& visit) const override;
  absl::Status ScanAuditNewestFirst(
      absl::string_view task_id, absl::string_view before_position,
      absl::FunctionRef<bool(absl::string_view position,
                             absl::string_view entry)>
          visit) const override;
  absl::Status WriteRaw(const std::vector<RawMutation>& mutations,
                        Durability durability = Durability::kSynced) override;
  absl::Status VerifyIndexes() const override;
  // ListDueTasks is two bounded scans of the retention index. PurgeTask
  // writes point deletes of the task's keys (found by one prefix seek per
  // column family), not range deletes: see PreparePurge in retention.cc.
  absl::StatusOr<std::vector<std::string>> ListDueTasks(
      int64_t finished_before_unix_micros,
      int64_t unfinished_before_unix_micros, int limit) const override;
  absl::StatusOr<PreparedWrite> PreparePurge(
      absl::string_view task_id,
      absl::Span<const std::string> dedup_keys) const override;
  bool failed() const override;
  // One backup at a time: a call made while another runs waits for it. The
  // memtables are flushed first, so a backup is SST files alone.
  absl::StatusOr<BackupInfo> CreateBackup() override;
  absl::StatusOr<std::vector<BackupInfo>> ListBackups() const override;

  // Restores backup `backup_id` (0: the newest) of `backup_dir` into
  // `db_dir`, which must be missing or empty, after verifying every file of
  // the backup against its checksum, and then opens the restored store to
  // check it. Returns the backup restored. FAILED_PRECONDITION for a
  // non-empty `db_dir`; NOT_FOUND for an unknown backup or a directory
  // without backups; DATA_LOSS naming the damage when the backup is
  // corrupted (nothing usable is left in `db_dir` then).
  static absl::StatusOr<BackupInfo> RestoreBackup(const std::string& backup_dir,
                                                  int64_t backup_id,
                                                  const std::string& db_dir);

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

  // Compacts the whole column family now (expired counters and dedup records
  // are dropped). For tests and maintenance; compaction also runs on its own.
  // UNAVAILABLE once the store failed (compacting flushes the memtable).
  absl::Status Compact(ColumnFamily family);

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

  // Committed writes so far and the groups (fsyncs) they were applied in.
  CommitQueue::Counts commit_counts() const;

  const StoreOptions& options() const { return options_; }

 private:
  // The failure state, shared with the listener that RocksDB calls from its
  // own threads.
  class FailureLatch;

  RocksDbTaskStore(StoreOptions options, std::unique_ptr<rocksdb::DB> db,
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

  // On a store of an older format version, adds the entries of the index
  // `kinds` it lacks (version 1: kUnfinished, kAccountState, kModelState and
  // kRetention; version 2: kRetention) from one pass over the tasks, in
  // batches, and then writes the current format version. Idempotent: a
  // store that crashed during the backfill keeps its old version and is
  // backfilled again. `what` names the backfill in an error.
  absl::Status BackfillIndexes(absl::Span<const IndexKind> kinds,
                               absl::string_view what);

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
  // Reset first by ~RocksDbTaskStore, so that it drains before the database
  // closes.
  std::unique_ptr<CommitQueue> commit_queue_;
  // Kept alive for the DB, which holds a raw pointer to it.
  std::shared_ptr<const void> counter_expiry_;
  // Serializes CreateBackup; guards nothing else.
  mutable absl::Mutex backup_mutex_;
};

}  // namespace tasktrail::store

#endif  // TASKTRAIL_STORE_ROCKSDB_ROCKSDB_TASK_STORE_H_
