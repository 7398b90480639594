#include "store/postgres/pg_task_store.h"

#include <algorithm>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "store/keys.h"
#include "store/postgres/pg_committer.h"
#include "store/postgres/pg_connection.h"
#include "store/postgres/pg_notify.h"
#include "store/postgres/pg_pool.h"
#include "store/postgres/pg_values.h"
#include "store/postgres/pg_write.h"
#include "store/postgres/schema.h"

namespace tasktrail::store::postgres {
namespace {

using v1::Task;
using v1::TaskEvent;
using Params = PgParams;

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
        if (mutation.add && mutation.value.has_value()) {
          write->AddCounter({key->unix_minute, key->model, key->name,
                             DecodeInt64(*mutation.value)});
          return;
        }
        write->KeepCountersInOrder();
        Params params = {Text(key->unix_minute), key->model, key->name};
        if (!mutation.value.has_value()) {
          statements.push_back({kDeleteCounter, std::move(params), ""});
          return;
        }
        params.push_back(Text(DecodeInt64(*mutation.value)));
        statements.push_back({kSetCounter, std::move(params), ""});
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

absl::Status NoBackupsOfItsOwn() {
  return absl::FailedPreconditionError(
      "the PostgreSQL store takes no backups of its own: back up the "
      "database with PostgreSQL's tools (pg_dump, or base backups with "
      "pg_basebackup and WAL archiving for point-in-time recovery)");
}

}  // namespace

void PgTaskStore::WatchOtherWriters(
    std::function<void(const OtherWrite&)> listener) {
  absl::MutexLock lock(&listener_mutex_);
  if (listener_ == nullptr) {
    if (listener == nullptr) return;
    listener_ = std::make_unique<Listener>(listen_conninfo_, tag_,
                                           kListenerApplicationName);
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
  if (options.max_batch_writes < 1 || options.max_batch_writes > 64) {
    return absl::InvalidArgumentError(
        absl::StrCat("the PostgreSQL store's max_batch_writes is ",
                     options.max_batch_writes, "; it must be 1 to 64"));
  }
  auto pool = std::make_unique<ConnectionPool>(
      options.conninfo, options.pool_size, options.prepare_statements);
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
  return std::unique_ptr<PgTaskStore>(
      new PgTaskStore(std::move(pool), options));
}

PgTaskStore::PgTaskStore(std::unique_ptr<ConnectionPool> pool,
                         const PgStoreOptions& options)
    : pool_(std::move(pool)),
      tag_(NewStoreTag()),
      listen_conninfo_(options.listen_conninfo.empty()
                           ? options.conninfo
                           : options.listen_conninfo),
      notifier_(std::make_unique<Notifier>(pool_.get())) {
  for (int i = 0; i < options.pool_size; ++i) {
    committers_.push_back(std::make_unique<Committer>(
        pool_.get(), notifier_.get(), options.max_batch_writes));
  }
}

PgTaskStore::CommitStats PgTaskStore::commit_stats() const {
  CommitStats stats;
  for (const std::unique_ptr<Committer>& committer : committers_) {
    stats.transactions += committer->transactions();
    stats.writes += committer->writes();
  }
  return stats;
}

PgTaskStore::~PgTaskStore() {
  committers_.clear();
  notifier_.reset();
}

absl::Status PgTaskStore::Ping() const {
  return pool_->Query("SELECT 1", {}, "checking the database").status();
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
  // A write made on a commit thread (by a completion) is applied there:
  // queued, it could wait for its own thread.
  if (Committer* current = Committer::Current()) {
    current->ApplyNow(std::move(write), prepared.what(), std::move(done));
    return;
  }
  committers_[slot % committers_.size()]->Enqueue(
      std::move(write), prepared.what(), std::move(done));
}

absl::Status PgTaskStore::WriteAudit(absl::string_view task_id,
                                     int64_t unix_micros, uint64_t nonce,
                                     std::string entry) {
  return WriteRaw({{ColumnFamily::kAudit, AuditKey(task_id, unix_micros, nonce),
                    std::move(entry)}},
                  Durability::kBuffered);
}

absl::Status PgTaskStore::WriteRaw(const std::vector<RawMutation>& mutations,
                                   Durability durability) {
  PreparedWrite prepared = PrepareRaw(mutations);
  static_cast<PgWrite*>(prepared.body())->synchronous =
      durability == Durability::kSynced;
  return CommitAndWait(std::move(prepared));
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
