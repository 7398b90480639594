#include "service/server/store_selection.h"

#include <utility>

#include "absl/base/log_severity.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "service/server/log.h"

namespace tasktrail {

absl::Status CheckStoreFlags(const StoreFlags& flags,
                             absl::FunctionRef<bool(absl::string_view)> given) {
  if (flags.postgres.empty()) {
    for (const char* flag :
         {"--postgres-pool", "--postgres-batch", "--postgres-listen",
          "--postgres-prepared-statements"}) {
      if (given(flag)) {
        return absl::InvalidArgumentError(
            absl::StrCat(flag, " needs --postgres"));
      }
    }
    return absl::OkStatus();
  }
  if (given("--db")) {
    return absl::InvalidArgumentError(
        "--db and --postgres are mutually exclusive: serve either from a "
        "RocksDB directory (--db) or from PostgreSQL (--postgres)");
  }
  for (const char* flag :
       {"--backup-dir", "--backup-keep", "--restore-from", "--backup-id"}) {
    if (given(flag)) {
      return absl::InvalidArgumentError(absl::StrCat(
          flag,
          " does not apply with --postgres: back up the database itself "
          "(pg_dump, or base backups with WAL archiving)"));
    }
  }
  for (const char* flag : {"--sync", "--block-cache-mb"}) {
    if (given(flag)) {
      return absl::InvalidArgumentError(absl::StrCat(
          flag,
          " configures the RocksDB store and does not apply with --postgres "
          "(PostgreSQL's synchronous_commit decides durability)"));
    }
  }
  return absl::OkStatus();
}

store::TaskStore* SelectedStore::get() const {
  if (rocksdb != nullptr) return rocksdb.get();
  return postgres.get();
}

const char* SelectedStore::kind() const {
  return postgres != nullptr ? "postgres" : "rocksdb";
}

absl::StatusOr<SelectedStore> OpenSelectedStore(
    const StoreFlags& flags, store::StoreOptions rocksdb_options) {
  SelectedStore selected;
  if (!flags.postgres.empty()) {
    store::postgres::PgStoreOptions postgres_options;
    postgres_options.conninfo = flags.postgres;
    postgres_options.pool_size = flags.postgres_pool;
    postgres_options.max_batch_writes = flags.postgres_batch;
    postgres_options.listen_conninfo = flags.postgres_listen;
    postgres_options.prepare_statements = flags.postgres_prepared_statements;
    absl::StatusOr<std::unique_ptr<store::postgres::PgTaskStore>> opened =
        store::postgres::PgTaskStore::Open(postgres_options);
    if (!opened.ok()) {
      // The message names the server and the reason, never the password.
      Log(LogLevel::kError, "cannot open the PostgreSQL store",
          {{"error", opened.status().message()}});
      return opened.status();
    }
    selected.postgres = *std::move(opened);
    return selected;
  }
  rocksdb_options.path = flags.db;
  rocksdb_options.sync_writes = flags.sync;
  rocksdb_options.block_cache_mb = flags.block_cache_mb;
  rocksdb_options.backup_dir = flags.backup_dir;
  rocksdb_options.backup_keep = flags.backup_keep;
  rocksdb_options.log = [](absl::LogSeverity severity,
                           absl::string_view message) {
    Log(severity >= absl::LogSeverity::kError ? LogLevel::kError
                                              : LogLevel::kWarning,
        message, {{"component", "rocksdb"}});
  };
  absl::StatusOr<std::unique_ptr<store::RocksDbTaskStore>> opened =
      store::RocksDbTaskStore::Open(rocksdb_options);
  if (!opened.ok()) {
    Log(LogLevel::kError, "cannot open store",
        {{"db", flags.db}, {"error", opened.status().message()}});
    return opened.status();
  }
  selected.rocksdb = *std::move(opened);
  if (!flags.sync) {
    Log(LogLevel::kWarning,
        "sync=false: acknowledged writes may be lost on a crash; "
        "use only for benchmarks");
  }
  return selected;
}

DatabaseHealthProbe::DatabaseHealthProbe(
    const store::postgres::PgTaskStore* store,
    std::function<void(bool serving)> set_serving)
    : store_(store),
      set_serving_(std::move(set_serving)),
      thread_([this] { Run(); }) {}

DatabaseHealthProbe::~DatabaseHealthProbe() { Stop(); }

void DatabaseHealthProbe::Stop() {
  if (!stop_.HasBeenNotified()) stop_.Notify();
  if (thread_.joinable()) thread_.join();
}

void DatabaseHealthProbe::Run() {
  bool serving = true;
  while (!stop_.WaitForNotificationWithTimeout(absl::Seconds(1))) {
    const absl::Status ping = store_->Ping();
    if (stop_.HasBeenNotified()) break;
    if (ping.ok() == serving) continue;
    serving = ping.ok();
    if (serving) {
      Log(LogLevel::kInfo, "database reachable again; health SERVING");
    } else {
      Log(LogLevel::kError, "database unreachable; health NOT_SERVING",
          {{"error", ping.message()}});
    }
    set_serving_(serving);
  }
}

}  // namespace tasktrail
