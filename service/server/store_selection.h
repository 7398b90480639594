// tasktraild's store: the embedded RocksDB store in a data directory (--db,
// the default) or PostgreSQL shared by replicas (--postgres). Holds the flags
// that choose and configure it, their checks, the opening of the chosen
// store, and the probe that keeps the health status in step with a
// PostgreSQL database. Only tasktraild's main uses it: the domain knows the
// TaskStore seam alone.
#ifndef TASKTRAIL_SERVICE_SERVER_STORE_SELECTION_H_
#define TASKTRAIL_SERVICE_SERVER_STORE_SELECTION_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/notification.h"
#include "store/postgres/pg_task_store.h"
#include "store/rocksdb/rocksdb_task_store.h"
#include "store/task_store.h"

namespace tasktrail {

// The command-line flags of the store.
struct StoreFlags {
  // RocksDB: the data directory, fsync per write, block cache, backups.
  std::string db = "./data";
  bool sync = true;
  int block_cache_mb = 128;
  std::string backup_dir;
  int backup_keep = 7;
  // PostgreSQL: the libpq connection string (empty: serve from `db`), the
  // pool size, and where the LISTEN connection goes (empty: `postgres`).
  std::string postgres;
  int postgres_pool = 8;
  int postgres_batch = 32;  // writes per transaction (group commit)
  std::string postgres_listen;
  bool postgres_prepared_statements = true;
};

// Checks that the store flags given on the command line fit the store
// chosen. With --postgres, none of RocksDB's (--db, the backup flags, --sync,
// --block-cache-mb) may be given; without it, none of PostgreSQL's
// (--postgres-pool, --postgres-batch, --postgres-listen,
// --postgres-prepared-statements). `given(flag)` says
// whether `flag` (spelled "--db") was given. INVALID_ARGUMENT naming the flag,
// in a line fit for stderr, otherwise.
absl::Status CheckStoreFlags(const StoreFlags& flags,
                             absl::FunctionRef<bool(absl::string_view)> given);

// The store tasktraild serves from: exactly one of `rocksdb` and `postgres`
// is set.
struct SelectedStore {
  std::unique_ptr<store::RocksDbTaskStore> rocksdb;
  std::unique_ptr<store::postgres::PgTaskStore> postgres;

  store::TaskStore* get() const;
  // "rocksdb" or "postgres".
  const char* kind() const;
};

// Opens the store `flags` choose. For RocksDB, `rocksdb_options` brings the
// callbacks (on_commit, on_failure); the path, durability, cache and backup
// fields are taken from `flags`, and RocksDB's own warnings and errors go
// to the log. Logs why when it fails (naming the directory, or the
// PostgreSQL server without its password) and returns that error; logs a
// warning when writes are not synced.
absl::StatusOr<SelectedStore> OpenSelectedStore(
    const StoreFlags& flags, store::StoreOptions rocksdb_options);

// Checks every second that the PostgreSQL database answers (Ping) and keeps
// the health status in step through `set_serving`: false while it cannot be
// reached, true again once it answers. Logs each change once. Stop() ends
// the probe; the status is left as it was.
//
// Thread safety: `set_serving` runs on the probe's own thread.
class DatabaseHealthProbe {
 public:
  DatabaseHealthProbe(const store::postgres::PgTaskStore* store,
                      std::function<void(bool serving)> set_serving);
  ~DatabaseHealthProbe();
  DatabaseHealthProbe(const DatabaseHealthProbe&) = delete;
  DatabaseHealthProbe& operator=(const DatabaseHealthProbe&) = delete;

  // Waits for a probe in progress; idempotent.
  void Stop();

 private:
  void Run();

  const store::postgres::PgTaskStore* const store_;
  const std::function<void(bool serving)> set_serving_;
  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace tasktrail

#endif  // TASKTRAIL_SERVICE_SERVER_STORE_SELECTION_H_
