// RocksDbTaskStore's backups, with RocksDB's BackupEngine: incremental (SST
// files shared between backups are copied once), checksummed, and online.
#include <sys/stat.h>

#include <filesystem>
#include <memory>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "rocksdb/db.h"
#include "rocksdb/env.h"
#include "rocksdb/utilities/backup_engine.h"
#include "store/rocksdb/rocksdb_status.h"
#include "store/rocksdb/rocksdb_task_store.h"

namespace tasktrail::store {
namespace {

// The backup's app metadata: "task_count=N".
constexpr absl::string_view kTaskCountPrefix = "task_count=";

BackupInfo FromEngine(const rocksdb::BackupInfo& engine_info) {
  BackupInfo info;
  info.backup_id = engine_info.backup_id;
  info.create_unix_seconds = engine_info.timestamp;
  info.size_bytes = static_cast<int64_t>(engine_info.size);
  absl::string_view metadata = engine_info.app_metadata;
  if (absl::ConsumePrefix(&metadata, kTaskCountPrefix)) {
    int64_t count = 0;
    if (absl::SimpleAtoi(metadata, &count)) info.task_count = count;
  }
  return info;
}

absl::Status BackupsOff() {
  return absl::FailedPreconditionError(
      "backups are off: start tasktraild with --backup-dir DIR");
}

// `dir` is missing, or an empty directory.
bool MissingOrEmpty(const std::string& dir) {
  std::error_code error;
  if (!std::filesystem::exists(dir, error)) return true;
  return std::filesystem::is_directory(dir, error) &&
         std::filesystem::is_empty(dir, error);
}

}  // namespace

absl::StatusOr<BackupInfo> RocksDbTaskStore::CreateBackup() {
  if (options_.backup_dir.empty()) return BackupsOff();
  absl::MutexLock lock(&backup_mutex_);
  if (failed()) {
    return absl::UnavailableError(
        "the store failed an earlier write; no backup is taken from it");
  }
  rocksdb::BackupEngine* raw_engine = nullptr;
  rocksdb::IOStatus opened = rocksdb::BackupEngine::Open(
      rocksdb::BackupEngineOptions(options_.backup_dir), db_->GetEnv(),
      &raw_engine);
  if (!opened.ok()) {
    return FromRocks(opened, absl::StrCat("opening the backup directory ",
                                          options_.backup_dir));
  }
  std::unique_ptr<rocksdb::BackupEngine> engine(raw_engine);

  // The tasks the backup holds at least: those written before it began.
  int64_t task_count = 0;
  {
    rocksdb::ReadOptions read;
    read.fill_cache = false;
    std::unique_ptr<rocksdb::Iterator> it(
        db_->NewIterator(read, handle(ColumnFamily::kTasks)));
    for (it->SeekToFirst(); it->Valid(); it->Next()) ++task_count;
    if (!it->status().ok()) {
      return FromRocks(it->status(), "counting tasks for a backup");
    }
  }
  rocksdb::CreateBackupOptions create;
  // Every acknowledged write is in the WAL; the flush puts it in SST files,
  // so the backup needs no WAL and a restore replays nothing.
  create.flush_before_backup = true;
  rocksdb::BackupID backup_id = 0;
  rocksdb::IOStatus created = engine->CreateNewBackupWithMetadata(
      create, db_.get(), absl::StrCat(kTaskCountPrefix, task_count),
      &backup_id);
  if (!created.ok()) {
    return FromRocks(
        created, absl::StrCat("creating a backup in ", options_.backup_dir));
  }
  rocksdb::IOStatus purged = engine->PurgeOldBackups(
      static_cast<uint32_t>(std::max(options_.backup_keep, 1)));
  if (!purged.ok()) {
    return FromRocks(purged, "removing backups beyond --backup-keep");
  }
  rocksdb::BackupInfo engine_info;
  rocksdb::Status described = engine->GetBackupInfo(backup_id, &engine_info);
  if (!described.ok()) {
    return FromRocks(described,
                     absl::StrCat("reading backup ", backup_id, "'s size"));
  }
  return FromEngine(engine_info);
}

absl::StatusOr<std::vector<BackupInfo>> RocksDbTaskStore::ListBackups() const {
  if (options_.backup_dir.empty()) return BackupsOff();
  absl::MutexLock lock(&backup_mutex_);
  rocksdb::BackupEngineReadOnly* raw_engine = nullptr;
  rocksdb::IOStatus opened = rocksdb::BackupEngineReadOnly::Open(
      rocksdb::BackupEngineOptions(options_.backup_dir), db_->GetEnv(),
      &raw_engine);
  if (!opened.ok()) {
    return FromRocks(opened, absl::StrCat("opening the backup directory ",
                                          options_.backup_dir));
  }
  std::unique_ptr<rocksdb::BackupEngineReadOnly> engine(raw_engine);
  std::vector<rocksdb::BackupInfo> engine_infos;
  engine->GetBackupInfo(&engine_infos);
  std::vector<BackupInfo> backups;
  for (auto it = engine_infos.rbegin(); it != engine_infos.rend(); ++it) {
    backups.push_back(FromEngine(*it));
  }
  return backups;
}

absl::StatusOr<BackupInfo> RocksDbTaskStore::RestoreBackup(
    const std::string& backup_dir, int64_t backup_id,
    const std::string& db_dir) {
  if (!MissingOrEmpty(db_dir)) {
    return absl::FailedPreconditionError(
        absl::StrCat("restore target ", db_dir,
                     " is not empty; restore into a new or empty directory"));
  }
  std::error_code error;
  if (!std::filesystem::exists(backup_dir + "/meta", error)) {
    return absl::NotFoundError(absl::StrCat("no backups in ", backup_dir,
                                            " (it holds no backup directory)"));
  }
  rocksdb::Env* env = rocksdb::Env::Default();
  rocksdb::BackupEngineReadOnly* raw_engine = nullptr;
  rocksdb::IOStatus opened = rocksdb::BackupEngineReadOnly::Open(
      rocksdb::BackupEngineOptions(backup_dir), env, &raw_engine);
  if (!opened.ok()) {
    return FromRocks(opened,
                     absl::StrCat("opening the backup directory ", backup_dir));
  }
  std::unique_ptr<rocksdb::BackupEngineReadOnly> engine(raw_engine);
  std::vector<rocksdb::BackupInfo> engine_infos;
  engine->GetBackupInfo(&engine_infos);
  std::vector<rocksdb::BackupID> corrupt;
  engine->GetCorruptedBackups(&corrupt);
  if (engine_infos.empty() && corrupt.empty()) {
    return absl::NotFoundError(absl::StrCat("no backups in ", backup_dir));
  }
  rocksdb::BackupID id = static_cast<rocksdb::BackupID>(backup_id);
  if (backup_id == 0) {
    // The newest, damaged or not: an older backup is restored only when
    // asked for by id.
    id = engine_infos.empty() ? 0 : engine_infos.back().backup_id;
    for (rocksdb::BackupID damaged : corrupt) id = std::max(id, damaged);
  }
  for (rocksdb::BackupID damaged : corrupt) {
    if (damaged == id) {
      return absl::DataLossError(absl::StrCat(
          "backup ", id, " in ", backup_dir,
          " is damaged (a file is missing or its description does not "
          "parse); restore an older one with --backup-id"));
    }
  }
  rocksdb::BackupInfo engine_info;
  rocksdb::Status described = engine->GetBackupInfo(id, &engine_info);
  if (!described.ok()) {
    return absl::NotFoundError(
        absl::StrCat("no backup ", id, " in ", backup_dir));
  }
  rocksdb::IOStatus verified =
      engine->VerifyBackup(id, /*verify_with_checksum=*/true);
  if (!verified.ok()) {
    return absl::DataLossError(absl::StrCat(
        "backup ", id, " in ", backup_dir, " is damaged: ", verified.ToString(),
        "; restore an older one with --backup-id"));
  }
  rocksdb::IOStatus restored = engine->RestoreDBFromBackup(id, db_dir, db_dir);
  if (!restored.ok()) {
    return FromRocks(restored,
                     absl::StrCat("restoring backup ", id, " into ", db_dir));
  }
  // The restored store opens and its indexes match its tasks.
  StoreOptions options;
  options.path = db_dir;
  absl::StatusOr<std::unique_ptr<RocksDbTaskStore>> store = Open(options);
  if (!store.ok()) {
    return absl::DataLossError(
        absl::StrCat("the restored store in ", db_dir,
                     " does not open: ", store.status().message()));
  }
  absl::Status indexes = (*store)->VerifyIndexes();
  if (!indexes.ok()) {
    return absl::DataLossError(
        absl::StrCat("the restored store in ", db_dir,
                     " fails its index check: ", indexes.message()));
  }
  return FromEngine(engine_info);
}

}  // namespace tasktrail::store
