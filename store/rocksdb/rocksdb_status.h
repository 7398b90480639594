// The absl::Status of a RocksDB status, for the RocksDB store's files.
#ifndef TASKTRAIL_STORE_ROCKSDB_ROCKSDB_STATUS_H_
#define TASKTRAIL_STORE_ROCKSDB_ROCKSDB_STATUS_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "rocksdb/status.h"

namespace tasktrail::store {

// `status` as an absl::Status whose message starts with `context`:
// corruption is DATA_LOSS, NotFound NOT_FOUND, InvalidArgument
// INVALID_ARGUMENT, anything else (I/O errors) UNAVAILABLE.
inline absl::Status FromRocks(const rocksdb::Status& status,
                              absl::string_view context) {
  if (status.ok()) return absl::OkStatus();
  const std::string message = absl::StrCat(context, ": ", status.ToString());
  if (status.IsCorruption()) return absl::DataLossError(message);
  if (status.IsNotFound()) return absl::NotFoundError(message);
  if (status.IsInvalidArgument()) return absl::InvalidArgumentError(message);
  return absl::UnavailableError(message);
}

}  // namespace tasktrail::store

#endif  // TASKTRAIL_STORE_ROCKSDB_ROCKSDB_STATUS_H_
