// PgTaskStore: the TaskStore (store/task_store.h) on PostgreSQL, for
// replicas of tasktraild sharing one database. The SQL layout is schema.cc;
// the statements are in pg_task_store.cc (writes) and pg_task_reads.cc
// (reads); the connection pool, the commit threads and the notifications
// between stores are pg_pool.h, pg_committer.h and pg_notify.h.
//
// Cross-replica guarantees live in the database, not in process locks. Each
// write commits in a transaction (READ COMMITTED) that checks what the
// write was prepared from and reports ABORTED, applying nothing of that
// write, when it changed:
//   - a new task (TaskWrite::previous null) is INSERTed; an id already
//     taken is a conflict;
//   - an existing task is UPDATEd only while its stored snapshot is still
//     TaskWrite::previous (compared byte for byte; snapshots are serialized
//     deterministically); no row updated is a conflict;
//   - an event id is a primary key; a second record of it is a conflict (the
//     caller re-reads, finds the record and answers as a replay);
//   - a dedup record (RawMutation::PutDedup) is inserted when the key is
//     free, or replaces the stored one when that one expired (by the
//     database's clock), already names the same task, or names
//     dedup_replaces_task_id; a live record of another task is a conflict;
//   - timeline entries are keyed (task_id, seq); counters are added with
//     INSERT ... ON CONFLICT DO UPDATE, so concurrent increments all count,
//     each counter spread over up to 16 rows (one per shard, summed when
//     read) so that concurrent writes of one model seldom wait for each
//     other's row locks.
// Serialization failures and deadlocks (SQLSTATE 40001, 40P01) are ABORTED
// too. ABORTED always means: re-read and re-prepare.
//
// Group commit: a commit thread commits the writes queued to it together,
// up to max_batch_writes in one transaction, so that one WAL flush serves
// them all, and sends their statements in one flight (libpq pipeline
// mode). Each write runs in a savepoint of its own: one that fails is
// rolled back alone and answered alone, the others commit (pg_committer.h).
//
// Connections: at most `pool_size` per store, opened when needed and shared
// by reads and commits. Commits run on the store's own threads (one per
// pooled connection); the writes of one task go to one thread, in Commit
// order. A connection that fails is dropped: the calls caught in it answer
// UNAVAILABLE (the writes of a batch whose COMMIT got no answer may have
// applied) and the next call connects anew, so the store recovers when the
// database returns. failed() is always false.
//
// Writes of other replicas (WatchOtherWriters): once a commit that appends
// to a timeline or purges a task is done, the store sends a notification on
// channel tasktrail_events whose payload is small: the sending store's tag,
// the task id and the last seq written (0 for a purge). Notifications go out
// in batches, in transactions of their own with synchronous_commit off, not
// inside the writes: PostgreSQL commits notifying transactions one at a
// time. Once a listener is set, the store keeps one connection of its own
// outside the pool (to listen_conninfo) that LISTENs on that channel and
// hands the other stores' notifications to the listener, skipping its own.
// It reports that notifications may have been missed (an OtherWrite
// without a task) after reconnecting (with backoff) when that connection is
// lost, and every 5 s, so that a notification lost after its write
// committed (a crash, a failed batch) delays watchers, never loses events.
//
// Durability: a commit is reported OK once PostgreSQL reports its
// transaction's COMMIT done, with synchronous_commit as the database is
// configured; audit entries and Durability::kBuffered raw writes commit
// with synchronous_commit off, in transactions of their own.
//
// Backups are the database's own (pg_dump, base backups with WAL
// archiving): CreateBackup and ListBackups answer FAILED_PRECONDITION.
//
// Thread safety: all methods are safe to call concurrently.
#ifndef TASKTRAIL_STORE_POSTGRES_PG_TASK_STORE_H_
#define TASKTRAIL_STORE_POSTGRES_PG_TASK_STORE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/optional.h"
#include "store/task_store.h"
#include "tasktrail/v1/task.pb.h"

namespace tasktrail::store::postgres {

class Committer;
class ConnectionPool;
class Listener;
class Notifier;

struct PgStoreOptions {
  // A libpq URI or key=value string (PgConnection::Connect).
  std::string conninfo;
  // Connections (and commit threads) of this store. At least 1.
  int pool_size = 8;
  // The most writes a commit thread commits in one transaction (group
  // commit: one WAL flush for all of them), 1 to 64. Each write of a batch
  // runs in a savepoint of its own, and PostgreSQL keeps up to 64 of a
  // transaction's subtransactions in shared memory: beyond, every other
  // session's visibility checks slow down.
  int max_batch_writes = 32;
  // Migrate the schema when opening (MigrateSchema); otherwise opening
  // requires the database to be at KnownSchemaVersion() already.
  bool migrate = true;
  // Prepare each statement once per pooled connection (PgConnection::
  // Connect): PostgreSQL then parses it once, not on every call, and may
  // keep a generic plan.
  // Off behind a pooler that does not keep prepared statements across
  // transactions (PgBouncer before 1.21 in transaction mode).
  bool prepare_statements = true;
  // Where the listening connection goes (WatchOtherWriters); empty: to
  // `conninfo`. LISTEN needs a session of its own: behind a pooler in
  // transaction mode (PgBouncer pool_mode=transaction), point it at the
  // database directly or at a session-mode pool.
  std::string listen_conninfo;
};

class PgTaskStore final : public TaskStore {
 public:
  // Connects and migrates (or checks) the schema. INVALID_ARGUMENT for a
  // pool_size below 1 or a max_batch_writes outside 1 to 64; UNAVAILABLE when
  // the database cannot be reached; FAILED_PRECONDITION, naming both versions,
  // when the schema is newer than this build knows (or older, without
  // `migrate`).
  static absl::StatusOr<std::unique_ptr<PgTaskStore>> Open(
      const PgStoreOptions& options);

  // Applies the commits already queued, then closes the connections.
  ~PgTaskStore() override;
  PgTaskStore(const PgTaskStore&) = delete;
  PgTaskStore& operator=(const PgTaskStore&) = delete;

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
  // One statement for all of `keys`.
  absl::StatusOr<std::vector<absl::optional<DedupRecord>>> GetDedupRecords(
      const std::vector<std::string>& keys,
      int64_t now_unix_micros) const override;
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
  // Positions are 16 bytes: the entry's time and nonce, big-endian (as
  // RocksDbTaskStore's). INVALID_ARGUMENT for a position of another shape.
  absl::Status ScanAuditNewestFirst(
      absl::string_view task_id, absl::string_view before_position,
      absl::FunctionRef<bool(absl::string_view position,
                             absl::string_view entry)>
          visit) const override;
  absl::Status WriteRaw(const std::vector<RawMutation>& mutations,
                        Durability durability = Durability::kSynced) override;
  // Checks the indexed columns of every task row against its snapshot.
  absl::StatusOr<std::vector<std::string>> ListDueTasks(
      int64_t finished_before_unix_micros,
      int64_t unfinished_before_unix_micros, int limit) const override;
  absl::StatusOr<PreparedWrite> PreparePurge(
      absl::string_view task_id,
      absl::Span<const std::string> dedup_keys) const override;
  absl::Status VerifyIndexes() const override;
  bool failed() const override { return false; }
  // Runs `SELECT 1` on a pooled connection (waiting for one when all are
  // busy): OK when the database answers, UNAVAILABLE with libpq's reason
  // when it cannot be reached. For health checks.
  absl::Status Ping() const;
  absl::StatusOr<BackupInfo> CreateBackup() override;
  absl::StatusOr<std::vector<BackupInfo>> ListBackups() const override;
  // Starts the listening connection on the first call with a listener.
  void WatchOtherWriters(
      std::function<void(const OtherWrite&)> listener) override;

  // What the commit threads committed so far: transactions, and the writes
  // they held (writes / transactions: the writes per WAL flush). For tests
  // and diagnostics.
  struct CommitStats {
    int64_t transactions = 0;
    int64_t writes = 0;
  };
  CommitStats commit_stats() const;

  // The application_name of the listening connection (in pg_stat_activity).
  static constexpr char kListenerApplicationName[] = "tasktraild-listener";

 private:
  PgTaskStore(std::unique_ptr<ConnectionPool> pool,
              const PgStoreOptions& options);

  std::unique_ptr<ConnectionPool> pool_;
  // Tells this store's notifications apart from other stores'.
  const std::string tag_;
  const std::string listen_conninfo_;
  absl::Mutex listener_mutex_;
  std::unique_ptr<Listener> listener_ ABSL_GUARDED_BY(listener_mutex_);
  // Sends the notifications of committed writes; outlives the committers.
  std::unique_ptr<Notifier> notifier_;
  // Raw writes (no task) go to the committers in turn.
  std::atomic<size_t> next_raw_committer_{0};
  // Destroyed first: drains the queued commits while the pool still exists.
  std::vector<std::unique_ptr<Committer>> committers_;
};

}  // namespace tasktrail::store::postgres

#endif  // TASKTRAIL_STORE_POSTGRES_PG_TASK_STORE_H_
