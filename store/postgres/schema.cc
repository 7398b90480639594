#include "store/postgres/schema.h"

#include <cstdint>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace tasktrail::store::postgres {
namespace {

// Held (transaction-scoped) while the schema is checked and migrated.
constexpr int64_t kMigrationLockKey = 0x7461736b74726c01;  // "tasktrl" 1

// The whole layout of the PostgreSQL store. Text columns that are ids use
// the "C" collation, so that they sort by bytes as task ids are made to
// (task ids sort by creation time). Snapshots, events and audit entries are
// the serialized protobuf messages the RocksDB store keeps too; the columns
// beside them are what the indexes and the constraints need.
constexpr Migration kMigrations[] = {
    {1, "tasks, timelines, event ids, dedup records, stats, audit", R"sql(
-- The task snapshot (a serialized tasktrail.v1.Task without its events)
-- and the fields the indexes need. last_seq is the newest timeline entry:
-- seq numbers are dense, 1..last_seq.
CREATE TABLE tasktrail.tasks (
  task_id          text COLLATE "C" PRIMARY KEY,
  account_id       text COLLATE "C" NOT NULL,
  model            text COLLATE "C" NOT NULL,
  state            smallint NOT NULL CHECK (state >= 0),
  upstream_task_id text COLLATE "C" NOT NULL DEFAULT '',
  request_id       text COLLATE "C" NOT NULL DEFAULT '',
  create_time      timestamptz NOT NULL,
  update_time      timestamptz NOT NULL,
  last_seq         bigint NOT NULL CHECK (last_seq >= 0),
  -- When the task's retention runs from (ListDueTasks): a finished task's
  -- finish time, any other task's last change, in Unix microseconds.
  retention_unix_micros bigint NOT NULL DEFAULT 0,
  -- Whether the task's charge is owed back (IsOwedTask, store/task_store.h):
  -- derived from the snapshot in the same statement that writes it.
  owed             boolean NOT NULL DEFAULT false,
  snapshot         bytea NOT NULL
);
-- The scans of ListTasks: newest (or oldest) first within each filter.
CREATE INDEX tasks_by_account ON tasktrail.tasks (account_id, task_id);
CREATE INDEX tasks_by_state ON tasktrail.tasks (state, task_id);
CREATE INDEX tasks_by_model ON tasktrail.tasks (model, task_id);
CREATE INDEX tasks_by_account_state
  ON tasktrail.tasks (account_id, state, task_id);
CREATE INDEX tasks_by_model_state ON tasktrail.tasks (model, state, task_id);
CREATE INDEX tasks_by_upstream ON tasktrail.tasks (upstream_task_id, task_id)
  WHERE upstream_task_id <> '';
CREATE INDEX tasks_by_request ON tasktrail.tasks (request_id, task_id)
  WHERE request_id <> '';
-- SUBMITTED, QUEUED and RUNNING: what `tasktrail stuck` reads.
CREATE INDEX tasks_unfinished ON tasktrail.tasks (task_id)
  WHERE state IN (1, 2, 3);
-- The charges to refund: what `tasktrail owed` reads, so its cost follows
-- the number of owed tasks.
CREATE INDEX tasks_owed ON tasktrail.tasks (task_id) WHERE owed;
-- The two halves of retention (ListDueTasks): finished tasks by finish
-- time, the others by their last change.
CREATE INDEX tasks_finished_by_retention
  ON tasktrail.tasks (retention_unix_micros, task_id) WHERE state IN (4, 5, 6);
CREATE INDEX tasks_unfinished_by_retention
  ON tasktrail.tasks (retention_unix_micros, task_id)
  WHERE state NOT IN (4, 5, 6);

-- The timeline: serialized tasktrail.v1.TaskEvent by seq.
CREATE TABLE tasktrail.task_events (
  task_id text COLLATE "C" NOT NULL
    REFERENCES tasktrail.tasks ON DELETE CASCADE,
  seq     bigint NOT NULL CHECK (seq > 0),
  event   bytea NOT NULL,
  PRIMARY KEY (task_id, seq)
);

-- Event ids already applied: a replay answers with the entry it made; a
-- different body under the same id is a conflict (body_digest).
CREATE TABLE tasktrail.event_ids (
  task_id     text COLLATE "C" NOT NULL
    REFERENCES tasktrail.tasks ON DELETE CASCADE,
  event_id    text COLLATE "C" NOT NULL,
  seq         bigint NOT NULL,
  body_digest bytea NOT NULL,
  PRIMARY KEY (task_id, event_id)
);

-- Dedup keys (a request id, a content fingerprint) bound to the task they
-- created until they expire (expire_unix_micros; 0: never). The primary key
-- is what blocks a duplicate across replicas: a write binds a key only when
-- it is absent, expired, already the same task's, or the task the writer
-- read there (see PgTaskStore).
CREATE TABLE tasktrail.dedup_records (
  dedup_key          bytea PRIMARY KEY,
  task_id            text COLLATE "C" NOT NULL,
  expire_unix_micros bigint NOT NULL DEFAULT 0,
  payload            bytea NOT NULL DEFAULT ''
);
CREATE INDEX dedup_records_by_expiry
  ON tasktrail.dedup_records (expire_unix_micros)
  WHERE expire_unix_micros <> 0;

-- Per-minute counters of each model (GetStats).
CREATE TABLE tasktrail.stats_counters (
  unix_minute bigint NOT NULL,
  model       text COLLATE "C" NOT NULL,
  name        text COLLATE "C" NOT NULL,
  value       bigint NOT NULL,
  PRIMARY KEY (unix_minute, model, name)
);

-- Queue-wait samples of each model (queue verdicts).
CREATE TABLE tasktrail.queue_wait_samples (
  model            text COLLATE "C" NOT NULL,
  exit_unix_micros bigint NOT NULL,
  task_id          text COLLATE "C" NOT NULL,
  wait_micros      bigint NOT NULL,
  PRIMARY KEY (model, exit_unix_micros, task_id)
);

-- Who read or changed what: serialized tasktrail.v1.AuditEntry per task,
-- ordered by time and then by the writer's nonce (entries of one
-- microsecond). Kept apart from tasks: ListAudit answers for a task's whole
-- life.
CREATE TABLE tasktrail.audit_entries (
  task_id     text COLLATE "C" NOT NULL,
  unix_micros bigint NOT NULL,
  nonce       bigint NOT NULL,
  entry       bytea NOT NULL,
  PRIMARY KEY (task_id, unix_micros, nonce)
);
)sql"},
    {2, "the route of each task, indexed", R"sql(
-- Task.route: the upstream route (channel, key alias or region) of the
-- task's latest queued event. Tasks stored before this version have none.
ALTER TABLE tasktrail.tasks
  ADD COLUMN route text COLLATE "C" NOT NULL DEFAULT '';
-- The scan of ListTasksRequest.route, newest (or oldest) first.
CREATE INDEX tasks_by_route ON tasktrail.tasks (route, task_id)
  WHERE route <> '';
)sql"},
    {3, "stats counters spread over shards", R"sql(
-- Every event adds to counters of its model's current minute. With one row
-- per counter, concurrent writes of one model queued on its row locks, one
-- commit (WAL flush) at a time. A counter is now the sum of up to 16 rows;
-- each transaction adds to the shard it drew, so concurrent writers seldom
-- meet on a row.
ALTER TABLE tasktrail.stats_counters
  ADD COLUMN shard smallint NOT NULL DEFAULT 0 CHECK (shard >= 0);
ALTER TABLE tasktrail.stats_counters DROP CONSTRAINT stats_counters_pkey;
ALTER TABLE tasktrail.stats_counters
  ADD PRIMARY KEY (unix_minute, model, name, shard);
)sql"},
};

absl::StatusOr<int> ParseVersion(const PgRows& rows) {
  int version = 0;
  if (rows.rows.empty() || rows.rows[0].empty() ||
      !rows.rows[0][0].has_value() ||
      !absl::SimpleAtoi(*rows.rows[0][0], &version)) {
    return absl::InternalError("reading the schema version: no number");
  }
  return version;
}

// Reads the newest applied version; the table must exist.
absl::StatusOr<int> ReadVersionLocked(PgConnection& connection) {
  absl::StatusOr<PgRows> rows = connection.Query(
      "SELECT coalesce(max(version), 0) FROM tasktrail.schema_migrations", {},
      "reading the schema version");
  if (!rows.ok()) return rows.status();
  return ParseVersion(*rows);
}

// Everything MigrateSchema does between BEGIN and COMMIT.
absl::StatusOr<MigrationResult> MigrateInTransaction(
    PgConnection& connection, absl::Span<const Migration> migrations) {
  absl::Status status = connection.Execute(
      absl::StrCat("SELECT pg_advisory_xact_lock(", kMigrationLockKey,
                   ");\n"
                   "CREATE SCHEMA IF NOT EXISTS tasktrail;\n"
                   "CREATE TABLE IF NOT EXISTS tasktrail.schema_migrations (\n"
                   "  version     integer PRIMARY KEY,\n"
                   "  description text NOT NULL,\n"
                   "  applied_at  timestamptz NOT NULL DEFAULT now()\n"
                   ");"),
      "preparing the schema migration");
  if (!status.ok()) return status;
  absl::StatusOr<int> version = ReadVersionLocked(connection);
  if (!version.ok()) return version.status();
  const int known = migrations.empty() ? 0 : migrations.back().version;
  MigrationResult result{*version, *version};
  if (*version > known) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the database's tasktrail schema is version ", *version,
        ", newer than this tasktraild knows (version ", known,
        "): run a tasktraild at least as new as the one that migrated it"));
  }
  for (const Migration& migration : migrations) {
    if (migration.version <= *version) continue;
    status = connection.Execute(
        migration.sql, absl::StrCat("schema migration ", migration.version,
                                    " (", migration.description, ")"));
    if (!status.ok()) return status;
    absl::StatusOr<PgRows> recorded = connection.Query(
        "INSERT INTO tasktrail.schema_migrations (version, description) "
        "VALUES ($1, $2)",
        {std::to_string(migration.version), std::string(migration.description)},
        "recording a schema migration");
    if (!recorded.ok()) return recorded.status();
    result.to_version = migration.version;
  }
  return result;
}

}  // namespace

absl::Span<const Migration> SchemaMigrations() { return kMigrations; }

int KnownSchemaVersion() { return SchemaMigrations().back().version; }

absl::StatusOr<int> ReadSchemaVersion(PgConnection& connection) {
  absl::StatusOr<PgRows> exists = connection.Query(
      "SELECT to_regclass('tasktrail.schema_migrations') IS NOT NULL", {},
      "reading the schema version");
  if (!exists.ok()) return exists.status();
  if (exists->rows.empty() || exists->rows[0][0] != "t") return 0;
  return ReadVersionLocked(connection);
}

absl::StatusOr<MigrationResult> MigrateSchema(
    PgConnection& connection, absl::Span<const Migration> migrations) {
  absl::Status status = connection.Execute("BEGIN", "starting the migration");
  if (!status.ok()) return status;
  absl::StatusOr<MigrationResult> result =
      MigrateInTransaction(connection, migrations);
  if (!result.ok()) {
    // Nothing of the transaction stays; a lost connection rolls back alone.
    connection.Execute("ROLLBACK", "rolling back the migration").IgnoreError();
    return result.status();
  }
  status = connection.Execute("COMMIT", "committing the migration");
  if (!status.ok()) return status;
  return result;
}

}  // namespace tasktrail::store::postgres
