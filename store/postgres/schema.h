// The PostgreSQL store's schema and its migrations. Every table lives in the
// `tasktrail` schema (namespace), so the store can share a database with the
// gateway's own tables. schema.cc holds the whole SQL layout, one migration
// per schema version, in order.
//
// Replicas migrate at start-up. Concurrent callers (several replicas starting
// together) serialize on a transaction-scoped advisory lock: the first one
// applies what is missing, the others then find it applied. The missing
// migrations and their rows in tasktrail.schema_migrations commit in one
// transaction: a failed start leaves the schema as it found it.
//
// Thread safety: the functions use only the connection they are given.
#ifndef TASKTRAIL_STORE_POSTGRES_SCHEMA_H_
#define TASKTRAIL_STORE_POSTGRES_SCHEMA_H_

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "store/postgres/pg_connection.h"

namespace tasktrail::store::postgres {

// One step of the schema. Versions start at 1 and increase by one.
struct Migration {
  int version;
  const char* description;
  const char* sql;  // one or more statements
};

// The migrations this build knows, oldest first.
absl::Span<const Migration> SchemaMigrations();

// The newest schema version this build knows.
int KnownSchemaVersion();

struct MigrationResult {
  int from_version = 0;  // 0: the database had no tasktrail schema
  int to_version = 0;
};

// The database's schema version: 0 when it has none.
absl::StatusOr<int> ReadSchemaVersion(PgConnection& connection);

// Brings the database to the newest version of `migrations` (by default
// SchemaMigrations()). FAILED_PRECONDITION naming both versions when the
// database's schema is newer than this build knows (a newer replica migrated
// it); otherwise the connection's errors (the failing migration is named and
// nothing of it stays).
absl::StatusOr<MigrationResult> MigrateSchema(
    PgConnection& connection,
    absl::Span<const Migration> migrations = SchemaMigrations());

}  // namespace tasktrail::store::postgres

#endif  // TASKTRAIL_STORE_POSTGRES_SCHEMA_H_
