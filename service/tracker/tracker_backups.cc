// Backups: the store's backups in the API's terms.
#include <vector>

#include "absl/time/time.h"
#include "service/rules/status_macros.h"
#include "service/rules/time_util.h"
#include "service/tracker/tracker.h"

namespace tasktrail {
namespace {

v1::Backup ToProto(const store::BackupInfo& info) {
  v1::Backup backup;
  backup.set_backup_id(info.backup_id);
  *backup.mutable_create_time() =
      ToProtoTime(absl::FromUnixSeconds(info.create_unix_seconds));
  backup.set_size_bytes(info.size_bytes);
  backup.set_task_count(info.task_count);
  return backup;
}

}  // namespace

absl::StatusOr<v1::Backup> Tracker::CreateBackup() {
  ASSIGN_OR_RETURN(store::BackupInfo info, store_->CreateBackup());
  return ToProto(info);
}

absl::StatusOr<v1::ListBackupsResponse> Tracker::ListBackups() const {
  ASSIGN_OR_RETURN(std::vector<store::BackupInfo> infos, store_->ListBackups());
  v1::ListBackupsResponse response;
  for (const store::BackupInfo& info : infos) {
    *response.add_backups() = ToProto(info);
  }
  return response;
}

}  // namespace tasktrail
