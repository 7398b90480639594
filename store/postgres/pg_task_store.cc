#include "store/postgres/pg_task_store.h"

#include <algorithm>
#include <atomic>
#include <deque>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "store/keys.h"
#include "store/postgres/pg_connection.h"
#include "store/postgres/schema.h"

namespace tasktrail::store::postgres {
namespace {

using v1::Task;
using v1::TaskEvent;
using Params = std::vector<absl::optional<std::string>>;

// Rows read per statement by the scans that page (Scan, the newest-first
// walks, VerifyIndexes): the rows of one page are held in memory, and no
// connection is held while the caller visits them.
constexpr int kPageRows = 256;

// The states of the tasks_unfinished partial index (schema.cc), spelled as
// its predicate so that the planner uses it.
static_assert(v1::TASK_STATE_SUBMITTED == 1 && v1::TASK_STATE_QUEUED == 2 &&
              v1::TASK_STATE_RUNNING == 3);
constexpr absl::string_view kUnfinishedPredicate = "state IN (1, 2, 3)";

// bytea parameters and results travel in PostgreSQL's hex text form.
std::string Bytea(absl::string_view bytes) {
  return absl::StrCat("\\x", absl::BytesToHexString(bytes));
}

absl::StatusOr<std::string> FromBytea(const absl::optional<std::string>& text,
                                      absl::string_view what) {
  if (!text.has_value() || text->size() % 2 != 0 ||
      text->compare(0, 2, "\\x") != 0) {
    return absl::InternalError(
        absl::StrCat(what, ": PostgreSQL sent a bytea value not in hex form"));
  }
  return absl::HexStringToBytes(absl::string_view(*text).substr(2));
}

absl::StatusOr<int64_t> FromInt(const absl::optional<std::string>& text,
                                absl::string_view what) {
  int64_t value = 0;
  if (!text.has_value() || !absl::SimpleAtoi(*text, &value)) {
    return absl::InternalError(
        absl::StrCat(what, ": PostgreSQL sent a value that is not an integer"));
  }
  return value;
}

// Parses the stored `bytes` of an event of `task_id` onto `events`.
absl::Status ParseEventOnto(absl::string_view task_id, absl::string_view bytes,
                            std::vector<TaskEvent>* events) {
  if (!events->emplace_back().ParseFromArray(bytes.data(),
                                             static_cast<int>(bytes.size()))) {
    events->pop_back();
    return absl::DataLossError(
        absl::StrCat("stored event of task ", task_id, " does not parse"));
  }
  return absl::OkStatus();
}

std::string Text(int64_t value) { return std::to_string(value); }

int64_t UnixMicros(const google::protobuf::Timestamp& time);

// When the task's retention runs from: a finished task's finish time (its
// last change when a snapshot lacks one), any other task's last change.
int64_t RetentionMicros(const Task& task) {
  if (!IsUnfinishedState(task.state()) && task.has_finish_time()) {
    return UnixMicros(task.finish_time());
  }
  return UnixMicros(task.update_time());
}

int64_t UnixMicros(const google::protobuf::Timestamp& time) {
  return time.seconds() * 1000000 + time.nanos() / 1000;
}

// The `owed` column of a task, as PostgreSQL writes a boolean in text form.
std::string OwedText(const Task& task) { return IsOwedTask(task) ? "t" : "f"; }

// The bytes a task is stored as: without events, serialized
// deterministically, so that a snapshot read and serialized again equals the
// stored bytes (the check of TaskWrite::previous compares them).
std::string SnapshotBytes(const Task& task) {
  const Task* source = &task;
  Task without_events;
  if (task.events_size() > 0) {
    without_events = task;
    without_events.clear_events();
    source = &without_events;
  }
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    source->SerializeToCodedStream(&coded);
  }
  return bytes;
}

// One statement of a write. When `conflict` is set, changing no row means
// the write's premise no longer holds: the write is ABORTED with it.
struct Statement {
  std::string sql;
  Params params;
  std::string conflict;
};

// Each stats counter is the sum of up to this many rows (schema version
// 3): a transaction adds to one of them, so that concurrent writes of one
// model seldom wait for each other's row locks, held until their commits.
constexpr int kCounterShards = 16;

// The shard of a new write's counters: successive writes of this process
// take successive shards, starting at a random one (so that replicas do not
// walk in step). Thread-safe.
int NextCounterShard() {
  static std::atomic<uint32_t> next{std::random_device{}()};
  return static_cast<int>(next.fetch_add(1, std::memory_order_relaxed) %
                          kCounterShards);
}

// What PgTaskStore::Prepare and PrepareRaw make: the statements of one
// transaction.
struct PgWrite final : PreparedWrite::Body {
  // The row of each counter this write adds to (all of its counters take
  // the same shard, so two writes never lock shards in opposite orders).
  int counter_shard = NextCounterShard();
  // The task written (its writes keep their order); empty for raw writes.
  std::string task_id;
  // False: committed with synchronous_commit off (audit, kBuffered).
  bool synchronous = true;
  std::vector<Statement> statements;
  // Payloads sent on kNotifyChannel once the transaction committed (by the
  // Notifier, not in the transaction).
  std::vector<std::string> notifications;
  // Set when a raw mutation cannot be applied here; Commit reports it.
  absl::Status invalid;
};

constexpr char kInsertTask[] =
    "INSERT INTO tasktrail.tasks (task_id, account_id, model, state, "
    "upstream_task_id, request_id, create_time, update_time, last_seq, "
    "snapshot, retention_unix_micros, owed, route) VALUES ($1, $2, $3, $4, "
    "$5, $6, 'epoch'::timestamptz + $7::bigint * interval '1 microsecond', "
    "'epoch'::timestamptz + $8::bigint * interval '1 microsecond', $9, $10, "
    "$11, $12, $13) ON CONFLICT (task_id) DO NOTHING";

constexpr char kUpdateTask[] =
    "UPDATE tasktrail.tasks SET account_id = $2, model = $3, state = $4, "
    "upstream_task_id = $5, request_id = $6, "
    "create_time = 'epoch'::timestamptz + $7::bigint * interval "
    "'1 microsecond', "
    "update_time = 'epoch'::timestamptz + $8::bigint * interval "
    "'1 microsecond', "
    "last_seq = $9, snapshot = $10, retention_unix_micros = $11, owed = $12, "
    "route = $13 WHERE task_id = $1 AND snapshot = $14";

constexpr char kPutEvent[] =
    "INSERT INTO tasktrail.task_events (task_id, seq, event) "
    "VALUES ($1, $2, $3) "
    "ON CONFLICT (task_id, seq) DO UPDATE SET event = excluded.event";

// The channel of the notifications of timeline appends and purges; the
// payload is NotificationPayload's.
constexpr char kNotifyChannel[] = "tasktrail_events";
// Sends each line of $1 as one notification.
constexpr char kNotifyLines[] =
    "SELECT pg_notify('tasktrail_events', payload) "
    "FROM unnest(string_to_array($1, E'\\n')) AS payload";

// "TAG TASK_ID SEQ": the sending store's tag, the task and the last seq
// written (0: purged). Task ids hold no spaces; the seq is the last word.
std::string NotificationPayload(absl::string_view tag,
                                absl::string_view task_id, int64_t seq) {
  return absl::StrCat(tag, " ", task_id, " ", seq);
}

// A fresh tag for a store: 16 hex digits.
std::string NewStoreTag() {
  std::random_device random;
  const uint64_t bits =
      (static_cast<uint64_t>(random()) << 32) ^ static_cast<uint64_t>(random());
  return absl::StrCat(absl::Hex(bits, absl::kZeroPad16));
}

constexpr char kInsertEventId[] =
    "INSERT INTO tasktrail.event_ids (task_id, event_id, seq, body_digest) "
    "VALUES ($1, $2, $3, $4) ON CONFLICT (task_id, event_id) DO NOTHING";

// Binds a dedup key: free, expired (by the database's clock), the same
// task's, or the task the writer read there ($5).
constexpr char kPutDedup[] =
    "INSERT INTO tasktrail.dedup_records AS d "
    "(dedup_key, task_id, expire_unix_micros, payload) "
    "VALUES ($1, $2, $3, $4) ON CONFLICT (dedup_key) DO UPDATE SET "
    "task_id = excluded.task_id, "
    "expire_unix_micros = excluded.expire_unix_micros, "
    "payload = excluded.payload "
    "WHERE d.task_id = excluded.task_id OR d.task_id = $5 OR "
    "(d.expire_unix_micros <> 0 AND d.expire_unix_micros <= "
    "(extract(epoch FROM clock_timestamp()) * 1000000)::bigint)";

constexpr char kDeleteDedup[] =
    "DELETE FROM tasktrail.dedup_records WHERE dedup_key = $1";

constexpr char kAddCounter[] =
    "INSERT INTO tasktrail.stats_counters AS c (unix_minute, model, name, "
    "value, shard) VALUES ($1, $2, $3, $4, $5) "
    "ON CONFLICT (unix_minute, model, name, shard) "
    "DO UPDATE SET value = c.value + excluded.value";

// A counter set to a value: its shard 0 holds the value, the others go.
constexpr char kSetCounter[] =
    "WITH cleared AS (DELETE FROM tasktrail.stats_counters "
    "WHERE unix_minute = $1 AND model = $2 AND name = $3 AND shard <> 0) "
    "INSERT INTO tasktrail.stats_counters (unix_minute, model, name, value, "
    "shard) VALUES ($1, $2, $3, $4, 0) "
    "ON CONFLICT (unix_minute, model, name, shard) "
    "DO UPDATE SET value = excluded.value";

constexpr char kDeleteCounter[] =
    "DELETE FROM tasktrail.stats_counters "
    "WHERE unix_minute = $1 AND model = $2 AND name = $3";

constexpr char kPutQueueSample[] =
    "INSERT INTO tasktrail.queue_wait_samples (model, exit_unix_micros, "
    "task_id, wait_micros) VALUES ($1, $2, $3, $4) "
    "ON CONFLICT (model, exit_unix_micros, task_id) "
    "DO UPDATE SET wait_micros = excluded.wait_micros";

constexpr char kDeleteQueueSample[] =
    "DELETE FROM tasktrail.queue_wait_samples "
    "WHERE model = $1 AND exit_unix_micros = $2 AND task_id = $3";

constexpr char kPutAudit[] =
    "INSERT INTO tasktrail.audit_entries (task_id, unix_micros, nonce, entry) "
    "VALUES ($1, $2, $3, $4) ON CONFLICT (task_id, unix_micros, nonce) "
    "DO UPDATE SET entry = excluded.entry";

constexpr char kDeleteAudit[] =
    "DELETE FROM tasktrail.audit_entries "
    "WHERE task_id = $1 AND unix_micros = $2 AND nonce = $3";

// Adds the statement of `mutation` to `write`, or sets write->invalid.
void AddMutation(const RawMutation& mutation, PgWrite* write) {
  const auto refuse = [&](absl::string_view why) {
    if (write->invalid.ok()) {
      write->invalid = absl::InvalidArgumentError(
          absl::StrCat("the PostgreSQL store cannot apply a raw mutation of ",
                       kColumnFamilyNames[static_cast<int>(mutation.family)],
                       " key ", absl::CHexEscape(mutation.key), ": ", why));
    }
  };
  std::vector<Statement>& statements = write->statements;
  switch (mutation.family) {
    case ColumnFamily::kDedup: {
      if (!mutation.value.has_value()) {
        statements.push_back({kDeleteDedup, {Bytea(mutation.key)}, ""});
        return;
      }
      absl::optional<DedupRecord> record = DecodeDedupRecord(*mutation.value);
      if (!record.has_value()) return refuse("not a dedup record");
      statements.push_back(
          {kPutDedup,
           {Bytea(mutation.key), record->task_id,
            Text(record->expire_unix_micros), Bytea(record->payload),
            mutation.dedup_replaces_task_id},
           absl::StrCat("dedup key ", absl::CHexEscape(mutation.key),
                        " is bound to another live task since it was read")});
      return;
    }
    case ColumnFamily::kCounters: {
      if (!mutation.key.empty() && mutation.key[0] == kCounterTag) {
        absl::optional<ParsedCounterKey> key = ParseCounterKey(mutation.key);
        if (!key.has_value()) return refuse("not a counter key");
        Params params = {Text(key->unix_minute), key->model, key->name};
        if (!mutation.value.has_value()) {
          statements.push_back({kDeleteCounter, std::move(params), ""});
          return;
        }
        params.push_back(Text(DecodeInt64(*mutation.value)));
        if (mutation.add) params.push_back(Text(write->counter_shard));
        statements.push_back(
            {mutation.add ? kAddCounter : kSetCounter, std::move(params), ""});
        return;
      }
      if (mutation.add) return refuse("only counters are added to");
      absl::optional<ParsedQueueSampleKey> key =
          ParseQueueSampleKey(mutation.key);
      if (!key.has_value()) return refuse("not a counter or sample key");
      Params params = {key->model, Text(key->exit_unix_micros), key->task_id};
      if (!mutation.value.has_value()) {
        statements.push_back({kDeleteQueueSample, std::move(params), ""});
        return;
      }
      params.push_back(Text(DecodeInt64(*mutation.value)));
      statements.push_back({kPutQueueSample, std::move(params), ""});
      return;
    }
    case ColumnFamily::kAudit: {
      absl::optional<ParsedAuditKey> key = ParseAuditKey(mutation.key);
      if (!key.has_value() || mutation.add) return refuse("not an audit key");
      Params params = {key->task_id, Text(key->unix_micros),
                       Text(static_cast<int64_t>(key->nonce))};
      if (!mutation.value.has_value()) {
        statements.push_back({kDeleteAudit, std::move(params), ""});
        return;
      }
      params.push_back(Bytea(*mutation.value));
      statements.push_back({kPutAudit, std::move(params), ""});
      return;
    }
    default:
      return refuse("tasks, events and indexes are written with TaskWrite");
  }
}

// The position of an audit entry: time and nonce, big-endian.
std::string AuditPosition(int64_t unix_micros, int64_t nonce) {
  std::string position;
  AppendBigEndian64(static_cast<uint64_t>(unix_micros), &position);
  AppendBigEndian64(static_cast<uint64_t>(nonce), &position);
  return position;
}

absl::Status NoBackupsOfItsOwn() {
  return absl::FailedPreconditionError(
      "the PostgreSQL store takes no backups of its own: back up the "
      "database with PostgreSQL's tools (pg_dump, or base backups with "
      "pg_basebackup and WAL archiving for point-in-time recovery)");
}

absl::Status NamingTheWrite(absl::string_view what,
                            const absl::Status& status) {
  if (status.ok()) return status;
  return absl::Status(status.code(),
                      absl::StrCat(what, ": ", status.message()));
}

}  // namespace

// At most `size` connections, opened when needed. A connection found lost
// after a call is dropped, so the next call connects anew.
class PgTaskStore::ConnectionPool {
 public:
  ConnectionPool(std::string conninfo, int size)
      : conninfo_(std::move(conninfo)), size_(size) {}

  // A connection, back in the pool when the lease ends (unless lost).
  class Lease {
   public:
    Lease(ConnectionPool* pool, std::unique_ptr<PgConnection> connection,
          bool reused)
        : pool_(pool), connection_(std::move(connection)), reused_(reused) {}
    Lease(Lease&& other) noexcept
        : pool_(other.pool_),
          connection_(std::move(other.connection_)),
          reused_(other.reused_),
          discard_(other.discard_) {}
    Lease& operator=(Lease&& other) noexcept {
      if (this != &other) {
        ReturnConnection();
        pool_ = other.pool_;
        connection_ = std::move(other.connection_);
        reused_ = other.reused_;
        discard_ = other.discard_;
      }
      return *this;
    }
    ~Lease() { ReturnConnection(); }

    PgConnection& connection() { return *connection_; }
    // True when the connection served an earlier call (it may have been
    // closed by the server since).
    bool reused() const { return reused_; }
    // Closes the connection instead of returning it (its state is unknown).
    void Discard() { discard_ = true; }

   private:
    void ReturnConnection() {
      if (connection_ != nullptr) {
        pool_->Release(std::move(connection_), discard_);
      }
    }

    ConnectionPool* pool_;
    std::unique_ptr<PgConnection> connection_;
    bool reused_;
    bool discard_ = false;
  };

  // Waits for a free connection, or opens one; UNAVAILABLE when it cannot.
  absl::StatusOr<Lease> Acquire(bool fresh = false) {
    mutex_.LockWhen(absl::Condition(
        +[](ConnectionPool* pool) ABSL_EXCLUSIVE_LOCKS_REQUIRED(pool->mutex_) {
          return !pool->idle_.empty() || pool->open_ < pool->size_;
        },
        this));
    if (fresh && !idle_.empty() && open_ >= size_) {
      // Make room for a new connection: the idle ones may all be stale.
      idle_.erase(idle_.begin());
      --open_;
    }
    if (!fresh && !idle_.empty()) {
      std::unique_ptr<PgConnection> connection = std::move(idle_.back());
      idle_.pop_back();
      mutex_.Unlock();
      return Lease(this, std::move(connection), /*reused=*/true);
    }
    ++open_;
    mutex_.Unlock();
    absl::StatusOr<std::unique_ptr<PgConnection>> connection =
        PgConnection::Connect(conninfo_);
    if (!connection.ok()) {
      absl::MutexLock lock(&mutex_);
      --open_;
      return connection.status();
    }
    return Lease(this, *std::move(connection), /*reused=*/false);
  }

  // Runs one statement outside any transaction. A connection from the pool
  // that turns out lost is replaced once (the server may have restarted
  // since it was last used).
  absl::StatusOr<PgRows> Query(absl::string_view sql, const Params& params,
                               absl::string_view what) {
    absl::StatusOr<Lease> lease = Acquire();
    if (!lease.ok()) return NamingTheWrite(what, lease.status());
    absl::StatusOr<PgRows> rows = lease->connection().Query(sql, params, what);
    if (rows.ok() || lease->connection().connected()) return rows;
    lease->Discard();
    if (!lease->reused()) return rows;
    lease = Acquire(/*fresh=*/true);
    if (!lease.ok()) return NamingTheWrite(what, lease.status());
    rows = lease->connection().Query(sql, params, what);
    if (!rows.ok() && !lease->connection().connected()) lease->Discard();
    return rows;
  }

 private:
  void Release(std::unique_ptr<PgConnection> connection, bool discard) {
    const bool keep = !discard && connection->connected();
    if (!keep) connection.reset();  // closed outside the lock
    absl::MutexLock lock(&mutex_);
    if (keep) {
      idle_.push_back(std::move(connection));
    } else {
      --open_;
    }
  }

  const std::string conninfo_;
  const int size_;
  absl::Mutex mutex_;
  std::vector<std::unique_ptr<PgConnection>> idle_ ABSL_GUARDED_BY(mutex_);
  int open_ ABSL_GUARDED_BY(mutex_) = 0;
};

// Sends the notifications of committed writes on kNotifyChannel, in
// batches, each in its own transaction with synchronous_commit off.
// PostgreSQL serializes the commits of transactions that notify (a
// database-wide lock held through the commit's WAL flush): with pg_notify
// inside every write, the writes of all replicas committed one at a time
// (pgbench's submission transaction: 1,370-1,480 tx/s without pg_notify,
// 290-370 with). Apart, writes keep sharing their flushes and a batch
// commits without waiting for the disk. A notification lost (a crash
// between a write's commit and its batch, a failed batch, a full queue) is
// made good by the listeners' periodic re-read (Listener::kRefreshInterval).
// Thread safety: Enqueue may be called from any thread.
class PgTaskStore::Notifier {
 public:
  explicit Notifier(ConnectionPool* pool)
      : pool_(pool), thread_([this] { Run(); }) {}

  // Sends what is queued, then stops.
  ~Notifier() {
    {
      absl::MutexLock lock(&mutex_);
      stopping_ = true;
    }
    thread_.join();
  }

  void Enqueue(std::vector<std::string> payloads) {
    absl::MutexLock lock(&mutex_);
    for (std::string& payload : payloads) {
      if (queue_.size() >= kMaxQueued) return;
      queue_.push_back(std::move(payload));
    }
  }

 private:
  static constexpr size_t kMaxQueued = 100000;
  static constexpr size_t kMaxBatch = 1000;

  void Run() {
    while (true) {
      std::vector<std::string> batch;
      {
        absl::MutexLock lock(&mutex_);
        mutex_.Await(absl::Condition(
            +[](Notifier* notifier)
                 ABSL_EXCLUSIVE_LOCKS_REQUIRED(notifier->mutex_) {
                   return notifier->stopping_ || !notifier->queue_.empty();
                 },
            this));
        if (queue_.empty()) return;  // stopping, and drained
        while (!queue_.empty() && batch.size() < kMaxBatch) {
          batch.push_back(std::move(queue_.front()));
          queue_.pop_front();
        }
      }
      Send(batch).IgnoreError();  // made good by the listeners' re-read
    }
  }

  absl::Status Send(const std::vector<std::string>& payloads) {
    absl::StatusOr<ConnectionPool::Lease> lease = pool_->Acquire();
    if (!lease.ok()) return lease.status();
    PgConnection& connection = lease->connection();
    absl::Status status = connection.Execute(
        "BEGIN; SET LOCAL synchronous_commit TO OFF", "starting to notify");
    if (status.ok()) {
      status = connection
                   .Query(kNotifyLines, {absl::StrJoin(payloads, "\n")},
                          "notifying other replicas")
                   .status();
    }
    if (status.ok()) status = connection.Execute("COMMIT", "notifying");
    if (!status.ok() && !connection.Execute("ROLLBACK", "rolling back").ok()) {
      lease->Discard();
    }
    return status;
  }

  ConnectionPool* const pool_;
  absl::Mutex mutex_;
  std::deque<std::string> queue_ ABSL_GUARDED_BY(mutex_);
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  // Last: started once the members above exist.
  std::thread thread_;
};

// One commit thread: applies its queue in order, one transaction each, and
// hands the notifications of each write committed to the Notifier.
class PgTaskStore::Committer {
 public:
  Committer(ConnectionPool* pool, Notifier* notifier)
      : pool_(pool), notifier_(notifier), thread_([this] { Run(); }) {}

  // Applies what is queued, then stops.
  ~Committer() {
    {
      absl::MutexLock lock(&mutex_);
      stopping_ = true;
    }
    thread_.join();
  }

  void Enqueue(std::unique_ptr<PgWrite> write, std::string what,
               absl::AnyInvocable<void(absl::Status)> done) {
    absl::MutexLock lock(&mutex_);
    queue_.push_back({std::move(write), std::move(what), std::move(done)});
  }

  // The committer whose thread calls this, or null on any other thread.
  static Committer* Current() { return current_; }

  // Applies `write` on the calling thread, this committer's own, and calls
  // `done`: for a write that a completion running on this thread makes (the
  // audit entry of an audited write), which, queued, could wait for itself.
  void ApplyNow(std::unique_ptr<PgWrite> write, std::string what,
                absl::AnyInvocable<void(absl::Status)> done) {
    Process({std::move(write), std::move(what), std::move(done)});
  }

 private:
  struct Job {
    std::unique_ptr<PgWrite> write;
    std::string what;
    absl::AnyInvocable<void(absl::Status)> done;
  };

  void Process(Job job) {
    absl::Status status = Apply(*job.write);
    if (status.ok() && !job.write->notifications.empty()) {
      notifier_->Enqueue(std::move(job.write->notifications));
    }
    std::move(job.done)(NamingTheWrite(job.what, status));
  }

  void Run() {
    current_ = this;
    while (true) {
      Job job;
      {
        absl::MutexLock lock(&mutex_);
        mutex_.Await(absl::Condition(
            +[](Committer* committer)
                 ABSL_EXCLUSIVE_LOCKS_REQUIRED(committer->mutex_) {
                   return committer->stopping_ || !committer->queue_.empty();
                 },
            this));
        if (queue_.empty()) return;  // stopping, and drained
        job = std::move(queue_.front());
        queue_.pop_front();
      }
      Process(std::move(job));
    }
  }

  // One transaction. A reused connection that turns out lost at BEGIN
  // (nothing sent yet) is replaced once.
  absl::Status Apply(const PgWrite& write) {
    if (!write.invalid.ok()) return write.invalid;
    const absl::string_view begin =
        write.synchronous ? "BEGIN"
                          : "BEGIN; SET LOCAL synchronous_commit TO OFF";
    absl::StatusOr<ConnectionPool::Lease> lease = pool_->Acquire();
    if (!lease.ok()) return lease.status();
    absl::Status status =
        lease->connection().Execute(begin, "starting a transaction");
    if (!status.ok() && lease->reused() && !lease->connection().connected()) {
      lease->Discard();
      lease = pool_->Acquire(/*fresh=*/true);
      if (!lease.ok()) return lease.status();
      status = lease->connection().Execute(begin, "starting a transaction");
    }
    if (!status.ok()) {
      lease->Discard();
      return status;
    }
    PgConnection& connection = lease->connection();
    for (const Statement& statement : write.statements) {
      absl::StatusOr<PgRows> rows =
          connection.Query(statement.sql, statement.params, "writing");
      if (rows.ok() && rows->affected == 0 && !statement.conflict.empty()) {
        rows = absl::AbortedError(
            absl::StrCat(statement.conflict, "; re-read and retry"));
      }
      if (!rows.ok()) {
        if (!connection.Execute("ROLLBACK", "rolling back").ok()) {
          lease->Discard();
        }
        return rows.status().code() == absl::StatusCode::kAlreadyExists
                   ? absl::AbortedError(rows.status().message())
                   : rows.status();
      }
    }
    status = connection.Execute("COMMIT", "committing");
    if (!status.ok()) lease->Discard();
    return status;
  }

  inline static thread_local Committer* current_ = nullptr;

  ConnectionPool* const pool_;
  Notifier* const notifier_;
  absl::Mutex mutex_;
  std::deque<Job> queue_ ABSL_GUARDED_BY(mutex_);
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  // Last: started once the members above exist.
  std::thread thread_;
};

// The listening connection of WatchOtherWriters: one thread that keeps a
// connection LISTENing on kNotifyChannel and hands what arrives to the
// listener. Thread safety: SetListener may be called from any thread.
class PgTaskStore::Listener {
 public:
  Listener(std::string conninfo, std::string own_tag)
      : conninfo_(std::move(conninfo)),
        own_tag_(std::move(own_tag)),
        thread_([this] { Run(); }) {}

  ~Listener() {
    {
      absl::MutexLock lock(&mutex_);
      stopping_ = true;
    }
    thread_.join();
  }

  // Replaces the listener; once it returns the previous one is not running.
  void SetListener(std::function<void(const OtherWrite&)> listener) {
    absl::MutexLock lock(&call_mutex_);
    listener_ = std::move(listener);
  }

 private:
  // How long a wait for notifications lasts before the thread looks whether
  // it should stop.
  static constexpr absl::Duration kPollInterval = absl::Milliseconds(200);
  // A connection idle this long is checked with a query, so that a
  // connection lost without a word is noticed.
  static constexpr absl::Duration kIdleCheck = absl::Seconds(5);
  // Every watched task is re-read this often whatever arrives, so that a
  // notification lost after its write committed (see Notifier) delays its
  // watchers by at most this long.
  static constexpr absl::Duration kRefreshInterval = absl::Seconds(5);
  static constexpr absl::Duration kFirstBackoff = absl::Milliseconds(100);
  static constexpr absl::Duration kMaxBackoff = absl::Seconds(5);

  void Run() {
    absl::Duration backoff = kFirstBackoff;
    while (!Stopping()) {
      absl::StatusOr<std::unique_ptr<PgConnection>> connection =
          PgConnection::Connect(conninfo_);
      absl::Status listening = connection.status();
      if (listening.ok()) {
        listening = (*connection)
                        ->Execute(absl::StrCat("SET application_name = '",
                                               kListenerApplicationName,
                                               "'; LISTEN ", kNotifyChannel),
                                  "listening for other replicas' writes");
      }
      if (!listening.ok()) {
        if (WaitForStop(backoff)) return;
        backoff = std::min(backoff * 2, kMaxBackoff);
        continue;
      }
      backoff = kFirstBackoff;
      // Whatever was written while nobody listened went unreported.
      Report(OtherWrite{});
      Listen(**connection);
    }
  }

  // Hands on notifications until the connection is lost or the listener
  // stops.
  void Listen(PgConnection& connection) {
    absl::Time last_heard = absl::Now();
    absl::Time last_refresh = absl::Now();
    while (!Stopping()) {
      if (absl::Now() - last_refresh > kRefreshInterval) {
        Report(OtherWrite{});
        last_refresh = absl::Now();
      }
      absl::StatusOr<std::vector<PgNotification>> received =
          connection.AwaitNotifications(kPollInterval);
      if (!received.ok()) return;
      if (!received->empty()) last_heard = absl::Now();
      for (const PgNotification& notification : *received) {
        std::vector<absl::string_view> words =
            absl::StrSplit(notification.payload, ' ');
        int64_t seq = 0;
        if (words.size() != 3 || words[0] == own_tag_ ||
            !absl::SimpleAtoi(words[2], &seq)) {
          continue;
        }
        Report(OtherWrite{std::string(words[1]), seq});
      }
      if (absl::Now() - last_heard > kIdleCheck) {
        if (!connection.Execute("SELECT 1", "checking the listening connection")
                 .ok()) {
          return;
        }
        last_heard = absl::Now();
      }
    }
  }

  void Report(const OtherWrite& write) {
    absl::MutexLock lock(&call_mutex_);
    if (listener_ != nullptr) listener_(write);
  }

  bool Stopping() {
    absl::MutexLock lock(&mutex_);
    return stopping_;
  }

  // Waits `pause` or until stopping; true when stopping.
  bool WaitForStop(absl::Duration pause) {
    absl::MutexLock lock(&mutex_);
    mutex_.AwaitWithTimeout(absl::Condition(&stopping_), pause);
    return stopping_;
  }

  const std::string conninfo_;
  const std::string own_tag_;
  absl::Mutex call_mutex_;
  std::function<void(const OtherWrite&)> listener_ ABSL_GUARDED_BY(call_mutex_);
  absl::Mutex mutex_;
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  // Last: started once the members above exist.
  std::thread thread_;
};

void PgTaskStore::WatchOtherWriters(
    std::function<void(const OtherWrite&)> listener) {
  absl::MutexLock lock(&listener_mutex_);
  if (listener_ == nullptr) {
    if (listener == nullptr) return;
    listener_ = std::make_unique<Listener>(listen_conninfo_, tag_);
  }
  listener_->SetListener(std::move(listener));
}

absl::StatusOr<std::unique_ptr<PgTaskStore>> PgTaskStore::Open(
    const PgStoreOptions& options) {
  if (options.pool_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("the PostgreSQL pool size is ", options.pool_size,
                     "; it must be at least 1"));
  }
  auto pool =
      std::make_unique<ConnectionPool>(options.conninfo, options.pool_size);
  {
    absl::StatusOr<ConnectionPool::Lease> lease = pool->Acquire();
    if (!lease.ok()) return lease.status();
    if (options.migrate) {
      absl::StatusOr<MigrationResult> migrated =
          MigrateSchema(lease->connection());
      if (!migrated.ok()) return migrated.status();
    } else {
      absl::StatusOr<int> version = ReadSchemaVersion(lease->connection());
      if (!version.ok()) return version.status();
      if (*version != KnownSchemaVersion()) {
        return absl::FailedPreconditionError(absl::StrCat(
            "the database's tasktrail schema is version ", *version,
            "; this tasktraild needs version ", KnownSchemaVersion()));
      }
    }
  }
  return std::unique_ptr<PgTaskStore>(new PgTaskStore(
      std::move(pool), options.pool_size,
      options.listen_conninfo.empty() ? options.conninfo
                                      : options.listen_conninfo));
}

PgTaskStore::PgTaskStore(std::unique_ptr<ConnectionPool> pool, int committers,
                         std::string listen_conninfo)
    : pool_(std::move(pool)),
      tag_(NewStoreTag()),
      listen_conninfo_(std::move(listen_conninfo)),
      notifier_(std::make_unique<Notifier>(pool_.get())) {
  for (int i = 0; i < committers; ++i) {
    committers_.push_back(
        std::make_unique<Committer>(pool_.get(), notifier_.get()));
  }
}

PgTaskStore::~PgTaskStore() {
  committers_.clear();
  notifier_.reset();
}

absl::Status PgTaskStore::Ping() const {
  return pool_->Query("SELECT 1", {}, "checking the database").status();
}

absl::StatusOr<Task> PgTaskStore::GetTask(absl::string_view task_id) const {
  Task task;
  absl::Status read = VisitTask(task_id, [&](absl::string_view bytes) {
    if (!task.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
      return absl::DataLossError(
          absl::StrCat("stored task ", task_id, " does not parse"));
    }
    return absl::OkStatus();
  });
  if (!read.ok()) return read;
  return task;
}

absl::Status PgTaskStore::VisitTask(absl::string_view task_id,
                                    BytesVisitor visit) const {
  absl::StatusOr<PgRows> rows =
      pool_->Query("SELECT snapshot FROM tasktrail.tasks WHERE task_id = $1",
                   {std::string(task_id)}, "reading task");
  if (!rows.ok()) return rows.status();
  if (rows->rows.empty()) {
    return absl::NotFoundError(absl::StrCat("task ", task_id, " not found"));
  }
  absl::StatusOr<std::string> bytes =
      FromBytea(rows->rows[0][0], "reading task");
  if (!bytes.ok()) return bytes.status();
  return visit(*bytes);
}

absl::StatusOr<std::vector<TaskEvent>> PgTaskStore::ReadEvents(
    absl::string_view task_id, int64_t after_seq, int limit) const {
  std::vector<TaskEvent> events;
  absl::Status read =
      VisitEvents(task_id, after_seq, limit, [&](absl::string_view bytes) {
        return ParseEventOnto(task_id, bytes, &events);
      });
  if (!read.ok()) return read;
  return events;
}

absl::StatusOr<std::vector<TaskEvent>> PgTaskStore::ReadEventRange(
    absl::string_view task_id, int64_t first_seq, int64_t last_seq) const {
  std::vector<TaskEvent> events;
  absl::Status read = VisitEventRange(
      task_id, first_seq, last_seq, [&](absl::string_view bytes) {
        return ParseEventOnto(task_id, bytes, &events);
      });
  if (!read.ok()) return read;
  return events;
}

namespace {

// Calls `visit` with the bytea in column 0 of each row.
absl::Status VisitByteaColumn(const PgRows& rows, absl::string_view what,
                              TaskStore::BytesVisitor visit) {
  for (const std::vector<absl::optional<std::string>>& row : rows.rows) {
    absl::StatusOr<std::string> bytes = FromBytea(row[0], what);
    if (!bytes.ok()) return bytes.status();
    absl::Status visited = visit(*bytes);
    if (!visited.ok()) return visited;
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status PgTaskStore::VisitEvents(absl::string_view task_id,
                                      int64_t after_seq, int limit,
                                      BytesVisitor visit) const {
  if (limit <= 0) return absl::OkStatus();
  absl::StatusOr<PgRows> rows = pool_->Query(
      "SELECT event FROM tasktrail.task_events WHERE task_id = $1 AND seq > $2 "
      "ORDER BY seq LIMIT $3",
      {std::string(task_id), Text(after_seq), Text(limit)}, "reading events");
  if (!rows.ok()) return rows.status();
  return VisitByteaColumn(*rows, "reading events", visit);
}

absl::Status PgTaskStore::VisitEventRange(absl::string_view task_id,
                                          int64_t first_seq, int64_t last_seq,
                                          BytesVisitor visit) const {
  if (last_seq < first_seq) return absl::OkStatus();
  absl::StatusOr<PgRows> rows = pool_->Query(
      "SELECT event FROM tasktrail.task_events WHERE task_id = $1 "
      "AND seq BETWEEN $2 AND $3 ORDER BY seq",
      {std::string(task_id), Text(first_seq), Text(last_seq)},
      "reading events");
  if (!rows.ok()) return rows.status();
  return VisitByteaColumn(*rows, "reading events", visit);
}

absl::Status PgTaskStore::VisitEventsNewestFirst(
    absl::string_view task_id, int64_t first_seq, int64_t last_seq,
    absl::FunctionRef<bool(int64_t seq, absl::string_view bytes)> visit) const {
  constexpr absl::string_view kWhat = "reading events";
  while (last_seq >= first_seq && last_seq >= 0) {
    absl::StatusOr<PgRows> rows = pool_->Query(
        "SELECT seq, event FROM tasktrail.task_events WHERE task_id = $1 "
        "AND seq BETWEEN $2 AND $3 ORDER BY seq DESC LIMIT $4",
        {std::string(task_id), Text(first_seq), Text(last_seq),
         Text(kPageRows)},
        kWhat);
    if (!rows.ok()) return rows.status();
    for (const std::vector<absl::optional<std::string>>& row : rows->rows) {
      absl::StatusOr<int64_t> seq = FromInt(row[0], kWhat);
      if (!seq.ok()) return seq.status();
      absl::StatusOr<std::string> bytes = FromBytea(row[1], kWhat);
      if (!bytes.ok()) return bytes.status();
      if (!visit(*seq, *bytes)) return absl::OkStatus();
      last_seq = *seq - 1;
    }
    if (rows->rows.size() < static_cast<size_t>(kPageRows)) break;
  }
  return absl::OkStatus();
}

absl::StatusOr<absl::optional<EventIdRecord>> PgTaskStore::GetEventIdRecord(
    absl::string_view task_id, absl::string_view event_id) const {
  constexpr absl::string_view kWhat = "reading an event id";
  absl::StatusOr<PgRows> rows = pool_->Query(
      "SELECT seq, body_digest FROM tasktrail.event_ids "
      "WHERE task_id = $1 AND event_id = $2",
      {std::string(task_id), std::string(event_id)}, kWhat);
  if (!rows.ok()) return rows.status();
  if (rows->rows.empty()) return absl::optional<EventIdRecord>();
  EventIdRecord record;
  absl::StatusOr<int64_t> seq = FromInt(rows->rows[0][0], kWhat);
  if (!seq.ok()) return seq.status();
  absl::StatusOr<std::string> digest = FromBytea(rows->rows[0][1], kWhat);
  if (!digest.ok()) return digest.status();
  record.seq = *seq;
  record.body_digest = *std::move(digest);
  return absl::optional<EventIdRecord>(std::move(record));
}

absl::StatusOr<PreparedWrite> PgTaskStore::Prepare(
    const TaskWrite& write) const {
  if (write.task == nullptr || write.task->task_id().empty()) {
    return absl::InvalidArgumentError("TaskWrite without a task");
  }
  const Task& task = *write.task;
  const std::string& task_id = task.task_id();
  auto body = std::make_unique<PgWrite>();
  body->task_id = task_id;
  Params row = {task_id,
                task.account_id(),
                task.model(),
                Text(task.state()),
                task.upstream_task_id(),
                task.request_id(),
                Text(UnixMicros(task.create_time())),
                Text(UnixMicros(task.update_time())),
                Text(task.last_event_seq()),
                Bytea(SnapshotBytes(task)),
                Text(RetentionMicros(task)),
                OwedText(task),
                task.route()};
  if (write.previous == nullptr) {
    body->statements.push_back(
        {kInsertTask, std::move(row),
         absl::StrCat("task ", task_id, " already exists")});
  } else {
    row.push_back(Bytea(SnapshotBytes(*write.previous)));
    body->statements.push_back(
        {kUpdateTask, std::move(row),
         absl::StrCat("task ", task_id,
                      " changed (or was removed) since it was read")});
  }
  for (const TaskEvent* event : write.events) {
    body->statements.push_back(
        {kPutEvent,
         {task_id, Text(event->seq()), Bytea(event->SerializeAsString())},
         ""});
  }
  if (!write.events.empty()) {
    int64_t last_seq = 0;
    for (const TaskEvent* event : write.events) {
      last_seq = std::max(last_seq, event->seq());
    }
    body->notifications.push_back(NotificationPayload(tag_, task_id, last_seq));
  }
  if (write.event_id.has_value()) {
    const auto& [event_id, record] = *write.event_id;
    body->statements.push_back(
        {kInsertEventId,
         {task_id, event_id, Text(record.seq), Bytea(record.body_digest)},
         absl::StrCat("event id ", event_id, " of task ", task_id,
                      " was recorded since it was read")});
  }
  for (const RawMutation& mutation : write.extra) {
    AddMutation(mutation, body.get());
  }
  return PreparedWrite(std::move(body), absl::StrCat("writing task ", task_id));
}

PreparedWrite PgTaskStore::PrepareRaw(
    const std::vector<RawMutation>& mutations) const {
  auto body = std::make_unique<PgWrite>();
  for (const RawMutation& mutation : mutations) {
    AddMutation(mutation, body.get());
  }
  return PreparedWrite(std::move(body), "writing");
}

void PgTaskStore::Commit(PreparedWrite prepared,
                         absl::AnyInvocable<void(absl::Status)> done) {
  // REQUIRES: prepared by this store (a PgWrite).
  std::unique_ptr<PgWrite> write(
      static_cast<PgWrite*>(prepared.TakeBody().release()));
  const size_t slot =
      write->task_id.empty()
          ? next_raw_committer_.fetch_add(1, std::memory_order_relaxed)
          : std::hash<std::string>()(write->task_id);
  // A write made on a committer's thread (by a completion) is applied there:
  // queued, it would wait for its own thread or, while that committer's
  // completion waits the other way, for another committer's.
  if (Committer* const current = Committer::Current(); current != nullptr) {
    current->ApplyNow(std::move(write), prepared.what(), std::move(done));
    return;
  }
  committers_[slot % committers_.size()]->Enqueue(
      std::move(write), prepared.what(), std::move(done));
}

absl::StatusOr<std::string> PgTaskStore::Scan(
    const TaskScan& scan, const std::function<bool(const Task&)>& visit) const {
  Params params;
  std::vector<std::string> conditions;
  const auto param = [&params](std::string value) {
    params.push_back(std::move(value));
    return absl::StrCat("$", params.size());
  };
  const auto equals = [&](absl::string_view column, std::string value) {
    conditions.push_back(absl::StrCat(column, " = ", param(std::move(value))));
  };
  switch (scan.index) {
    case ScanIndex::kAll:
      break;
    case ScanIndex::kAccount:
    case ScanIndex::kModel:
    case ScanIndex::kUpstream:
    case ScanIndex::kRequest:
    case ScanIndex::kRoute:
      // Tasks without the value are in no index.
      if (scan.value.empty()) return std::string();
      equals(scan.index == ScanIndex::kAccount    ? "account_id"
             : scan.index == ScanIndex::kModel    ? "model"
             : scan.index == ScanIndex::kUpstream ? "upstream_task_id"
             : scan.index == ScanIndex::kRoute    ? "route"
                                                  : "request_id",
             scan.value);
      break;
    case ScanIndex::kState:
      equals("state", Text(scan.state));
      break;
    case ScanIndex::kUnfinished:
      conditions.emplace_back(kUnfinishedPredicate);
      break;
    case ScanIndex::kOwed:
      // The predicate of the tasks_owed partial index.
      conditions.emplace_back("owed");
      break;
    case ScanIndex::kAccountState:
    case ScanIndex::kModelState:
      equals(scan.index == ScanIndex::kAccountState ? "account_id" : "model",
             scan.value);
      equals("state", Text(scan.state));
      break;
  }
  if (!scan.min_task_id.empty()) {
    conditions.push_back(absl::StrCat("task_id >= ", param(scan.min_task_id)));
  }
  if (!scan.end_task_id.empty()) {
    conditions.push_back(absl::StrCat("task_id < ", param(scan.end_task_id)));
  }
  // The resume bound is the last parameter but one, the limit the last.
  const std::string select = absl::StrCat(
      "SELECT task_id, snapshot FROM tasktrail.tasks WHERE ",
      absl::StrJoin(conditions, " AND "), conditions.empty() ? "" : " AND ",
      "($", params.size() + 1, "::text IS NULL OR task_id ",
      scan.oldest_first ? ">" : "<", " $", params.size() + 1,
      ") ORDER BY task_id ", scan.oldest_first ? "ASC" : "DESC", " LIMIT $",
      params.size() + 2);
  absl::optional<std::string> resume;
  if (!scan.resume_after_task_id.empty()) resume = scan.resume_after_task_id;
  std::string last_visited;
  int visits = 0;
  while (visits < scan.max_visits) {
    const int page = std::min(kPageRows, scan.max_visits - visits);
    Params page_params = params;
    page_params.push_back(resume);
    page_params.push_back(Text(page));
    absl::StatusOr<PgRows> rows =
        pool_->Query(select, page_params, "scanning tasks");
    if (!rows.ok()) return rows.status();
    for (const std::vector<absl::optional<std::string>>& row : rows->rows) {
      absl::StatusOr<std::string> bytes = FromBytea(row[1], "scanning tasks");
      if (!bytes.ok()) return bytes.status();
      Task task;
      if (!task.ParseFromString(*bytes)) {
        return absl::DataLossError(absl::StrCat(
            "stored task ", row[0].value_or(""), " does not parse"));
      }
      ++visits;
      last_visited = task.task_id();
      if (!visit(task)) return last_visited;
    }
    if (rows->rows.size() < static_cast<size_t>(page)) break;
    resume = last_visited;
  }
  return last_visited;
}

absl::StatusOr<absl::optional<DedupRecord>> PgTaskStore::GetDedupRecord(
    absl::string_view key, int64_t now_unix_micros) const {
  constexpr absl::string_view kWhat = "reading a dedup record";
  absl::StatusOr<PgRows> rows = pool_->Query(
      "SELECT task_id, expire_unix_micros, payload "
      "FROM tasktrail.dedup_records WHERE dedup_key = $1",
      {Bytea(key)}, kWhat);
  if (!rows.ok()) return rows.status();
  if (rows->rows.empty()) return absl::optional<DedupRecord>();
  const std::vector<absl::optional<std::string>>& row = rows->rows[0];
  DedupRecord record;
  record.task_id = row[0].value_or("");
  absl::StatusOr<int64_t> expire = FromInt(row[1], kWhat);
  if (!expire.ok()) return expire.status();
  absl::StatusOr<std::string> payload = FromBytea(row[2], kWhat);
  if (!payload.ok()) return payload.status();
  record.expire_unix_micros = *expire;
  record.payload = *std::move(payload);
  if (record.expire_unix_micros != 0 &&
      record.expire_unix_micros <= now_unix_micros) {
    return absl::optional<DedupRecord>();
  }
  return absl::optional<DedupRecord>(std::move(record));
}

absl::Status PgTaskStore::ScanCounters(
    int64_t first_minute, int64_t end_minute,
    const std::function<void(const ParsedCounterKey& counter, int64_t value)>&
        visit) const {
  constexpr absl::string_view kWhat = "reading counters";
  absl::StatusOr<PgRows> rows = pool_->Query(
      "SELECT unix_minute, model, name, sum(value)::bigint "
      "FROM tasktrail.stats_counters "
      "WHERE unix_minute >= $1 AND unix_minute < $2 "
      "GROUP BY unix_minute, model, name "
      "ORDER BY unix_minute, octet_length(model), model, name",
      {Text(first_minute), Text(end_minute)}, kWhat);
  if (!rows.ok()) return rows.status();
  for (const std::vector<absl::optional<std::string>>& row : rows->rows) {
    absl::StatusOr<int64_t> minute = FromInt(row[0], kWhat);
    if (!minute.ok()) return minute.status();
    absl::StatusOr<int64_t> value = FromInt(row[3], kWhat);
    if (!value.ok()) return value.status();
    visit(ParsedCounterKey{*minute, row[1].value_or(""), row[2].value_or("")},
          *value);
  }
  return absl::OkStatus();
}

absl::Status PgTaskStore::ScanQueueSamples(
    absl::string_view model,
    const std::function<void(QueueSample sample)>& visit) const {
  constexpr absl::string_view kWhat = "reading queue-wait samples";
  absl::StatusOr<PgRows> rows = pool_->Query(
      "SELECT exit_unix_micros, task_id, wait_micros "
      "FROM tasktrail.queue_wait_samples WHERE model = $1 "
      "ORDER BY exit_unix_micros, task_id",
      {std::string(model)}, kWhat);
  if (!rows.ok()) return rows.status();
  for (const std::vector<absl::optional<std::string>>& row : rows->rows) {
    absl::StatusOr<int64_t> exit = FromInt(row[0], kWhat);
    if (!exit.ok()) return exit.status();
    absl::StatusOr<int64_t> wait = FromInt(row[2], kWhat);
    if (!wait.ok()) return wait.status();
    visit(QueueSample{*exit, row[1].value_or(""), *wait});
  }
  return absl::OkStatus();
}

absl::Status PgTaskStore::WriteAudit(absl::string_view task_id,
                                     int64_t unix_micros, uint64_t nonce,
                                     std::string entry) {
  return WriteRaw({{ColumnFamily::kAudit, AuditKey(task_id, unix_micros, nonce),
                    std::move(entry)}},
                  Durability::kBuffered);
}

absl::Status PgTaskStore::ScanAudit(
    absl::string_view task_id,
    const std::function<void(absl::string_view entry)>& visit) const {
  absl::StatusOr<PgRows> rows = pool_->Query(
      "SELECT entry FROM tasktrail.audit_entries WHERE task_id = $1 "
      "ORDER BY unix_micros, nonce",
      {std::string(task_id)}, "reading the audit log");
  if (!rows.ok()) return rows.status();
  return VisitByteaColumn(*rows, "reading the audit log",
                          [&visit](absl::string_view entry) {
                            visit(entry);
                            return absl::OkStatus();
                          });
}

absl::Status PgTaskStore::ScanAuditNewestFirst(
    absl::string_view task_id, absl::string_view before_position,
    absl::FunctionRef<bool(absl::string_view position, absl::string_view entry)>
        visit) const {
  constexpr absl::string_view kWhat = "reading the audit log";
  absl::optional<std::string> before_micros;
  absl::optional<std::string> before_nonce;
  if (!before_position.empty()) {
    if (before_position.size() != 16) {
      return absl::InvalidArgumentError(
          "audit position is not one this store made");
    }
    before_micros =
        Text(static_cast<int64_t>(ReadBigEndian64(before_position)));
    before_nonce =
        Text(static_cast<int64_t>(ReadBigEndian64(before_position.substr(8))));
  }
  while (true) {
    absl::StatusOr<PgRows> rows = pool_->Query(
        "SELECT unix_micros, nonce, entry FROM tasktrail.audit_entries "
        "WHERE task_id = $1 AND ($2::bigint IS NULL OR "
        "(unix_micros, nonce) < ($2::bigint, $3::bigint)) "
        "ORDER BY unix_micros DESC, nonce DESC LIMIT $4",
        {std::string(task_id), before_micros, before_nonce, Text(kPageRows)},
        kWhat);
    if (!rows.ok()) return rows.status();
    for (const std::vector<absl::optional<std::string>>& row : rows->rows) {
      absl::StatusOr<int64_t> micros = FromInt(row[0], kWhat);
      if (!micros.ok()) return micros.status();
      absl::StatusOr<int64_t> nonce = FromInt(row[1], kWhat);
      if (!nonce.ok()) return nonce.status();
      absl::StatusOr<std::string> entry = FromBytea(row[2], kWhat);
      if (!entry.ok()) return entry.status();
      if (!visit(AuditPosition(*micros, *nonce), *entry)) {
        return absl::OkStatus();
      }
      before_micros = row[0];
      before_nonce = row[1];
    }
    if (rows->rows.size() < static_cast<size_t>(kPageRows)) {
      return absl::OkStatus();
    }
  }
}

absl::Status PgTaskStore::WriteRaw(const std::vector<RawMutation>& mutations,
                                   Durability durability) {
  PreparedWrite prepared = PrepareRaw(mutations);
  static_cast<PgWrite*>(prepared.body())->synchronous =
      durability == Durability::kSynced;
  return CommitAndWait(std::move(prepared));
}

absl::Status PgTaskStore::VerifyIndexes() const {
  constexpr absl::string_view kWhat = "verifying the indexed columns";
  std::vector<std::string> differences;
  const auto note = [&differences](
                        const std::string& task_id, absl::string_view column,
                        absl::string_view stored, absl::string_view expected) {
    if (differences.size() < 5) {
      differences.push_back(absl::StrCat(
          "task ", task_id, " has ", column, " ", absl::CHexEscape(stored),
          " but its snapshot says ", absl::CHexEscape(expected)));
    }
  };
  absl::optional<std::string> after;
  while (true) {
    absl::StatusOr<PgRows> rows = pool_->Query(
        "SELECT task_id, account_id, model, state, upstream_task_id, "
        "request_id, last_seq, snapshot, retention_unix_micros, owed, route "
        "FROM tasktrail.tasks "
        "WHERE $1::text IS NULL OR task_id > $1 ORDER BY task_id LIMIT $2",
        {after, Text(kPageRows)}, kWhat);
    if (!rows.ok()) return rows.status();
    for (const std::vector<absl::optional<std::string>>& row : rows->rows) {
      const std::string task_id = row[0].value_or("");
      absl::StatusOr<std::string> bytes = FromBytea(row[7], kWhat);
      if (!bytes.ok()) return bytes.status();
      Task task;
      if (!task.ParseFromString(*bytes)) {
        return absl::DataLossError(
            absl::StrCat("stored task ", task_id, " does not parse"));
      }
      const std::pair<const char*, std::string> expected[] = {
          {"task_id", task.task_id()},
          {"account_id", task.account_id()},
          {"model", task.model()},
          {"state", Text(task.state())},
          {"upstream_task_id", task.upstream_task_id()},
          {"request_id", task.request_id()},
          {"last_seq", Text(task.last_event_seq())},
          {"retention_unix_micros", Text(RetentionMicros(task))},
          {"owed", OwedText(task)},
          {"route", task.route()}};
      const std::string stored[] = {task_id,
                                    row[1].value_or(""),
                                    row[2].value_or(""),
                                    row[3].value_or(""),
                                    row[4].value_or(""),
                                    row[5].value_or(""),
                                    row[6].value_or(""),
                                    row[8].value_or(""),
                                    row[9].value_or(""),
                                    row[10].value_or("")};
      for (size_t i = 0; i < std::size(expected); ++i) {
        if (stored[i] != expected[i].second) {
          note(task_id, expected[i].first, stored[i], expected[i].second);
        }
      }
      after = task_id;
    }
    if (rows->rows.size() < static_cast<size_t>(kPageRows)) break;
  }
  if (differences.empty()) return absl::OkStatus();
  return absl::DataLossError(
      absl::StrCat("the indexed columns disagree with the tasks: ",
                   absl::StrJoin(differences, "; ")));
}

absl::StatusOr<std::vector<std::string>> PgTaskStore::ListDueTasks(
    int64_t finished_before_unix_micros, int64_t unfinished_before_unix_micros,
    int limit) const {
  constexpr absl::string_view kWhat = "listing the tasks due for purging";
  std::vector<std::string> due;
  const std::pair<const char*, int64_t> halves[] = {
      {"state IN (4, 5, 6)", finished_before_unix_micros},
      {"state NOT IN (4, 5, 6)", unfinished_before_unix_micros}};
  for (const auto& [predicate, before] : halves) {
    if (before <= 0 || static_cast<int>(due.size()) >= limit) continue;
    absl::StatusOr<PgRows> rows = pool_->Query(
        absl::StrCat("SELECT task_id FROM tasktrail.tasks WHERE ", predicate,
                     " AND retention_unix_micros < $1 "
                     "ORDER BY retention_unix_micros, task_id LIMIT $2"),
        {Text(before), Text(limit - static_cast<int>(due.size()))}, kWhat);
    if (!rows.ok()) return rows.status();
    for (const std::vector<absl::optional<std::string>>& row : rows->rows) {
      due.push_back(row[0].value_or(""));
    }
  }
  return due;
}

absl::StatusOr<PreparedWrite> PgTaskStore::PreparePurge(
    absl::string_view task_id, absl::Span<const std::string> dedup_keys) const {
  absl::StatusOr<Task> task = GetTask(task_id);
  if (!task.ok()) return task.status();
  auto body = std::make_unique<PgWrite>();
  body->task_id = std::string(task_id);
  std::vector<std::string> keys(dedup_keys.begin(), dedup_keys.end());
  if (!task->request_id().empty()) {
    keys.push_back(RequestIdDedupKey(task->account_id(), task->request_id()));
  }
  for (const std::string& key : keys) {
    body->statements.push_back(
        {"DELETE FROM tasktrail.dedup_records "
         "WHERE dedup_key = $1 AND task_id = $2",
         {Bytea(key), std::string(task_id)},
         ""});
  }
  body->statements.push_back(
      {"DELETE FROM tasktrail.audit_entries WHERE task_id = $1",
       {std::string(task_id)},
       ""});
  for (const TaskSampleKey& sample : TaskSampleKeys(*task)) {
    body->statements.push_back(
        {"DELETE FROM tasktrail.queue_wait_samples "
         "WHERE model = $1 AND exit_unix_micros = $2 AND task_id = $3",
         {sample.series, Text(sample.unix_micros), std::string(task_id)},
         ""});
  }
  // Its timeline and event ids go with it (ON DELETE CASCADE).
  body->statements.push_back(
      {"DELETE FROM tasktrail.tasks WHERE task_id = $1",
       {std::string(task_id)},
       absl::StrCat("task ", task_id, " was removed meanwhile")});
  body->notifications.push_back(NotificationPayload(tag_, task_id, 0));
  return PreparedWrite(std::move(body), absl::StrCat("purging task ", task_id));
}

absl::StatusOr<BackupInfo> PgTaskStore::CreateBackup() {
  return NoBackupsOfItsOwn();
}

absl::StatusOr<std::vector<BackupInfo>> PgTaskStore::ListBackups() const {
  return NoBackupsOfItsOwn();
}

}  // namespace tasktrail::store::postgres
