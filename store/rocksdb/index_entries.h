// The secondary index entries of a task in RocksDbTaskStore: which value a
// task contributes to each index (IndexKind, keys.h), and which kinds the
// format versions added. Shared by the writes (Prepare), the purge and the
// backfill of an older store.
//
// Thread safety: pure functions.
#ifndef TASKTRAIL_STORE_ROCKSDB_INDEX_ENTRIES_H_
#define TASKTRAIL_STORE_ROCKSDB_INDEX_ENTRIES_H_

#include <memory>
#include <string>
#include <utility>

#include "absl/types/optional.h"
#include "rocksdb/write_batch.h"
#include "store/keys.h"
#include "store/task_store.h"
#include "tasktrail/v1/task.pb.h"

namespace tasktrail::store {

// Every index kind the store keeps, in IndexKind order.
inline constexpr IndexKind kAllIndexKinds[] = {
    IndexKind::kAccount,      IndexKind::kState,      IndexKind::kModel,
    IndexKind::kUpstream,     IndexKind::kRequest,    IndexKind::kUnfinished,
    IndexKind::kAccountState, IndexKind::kModelState, IndexKind::kRetention,
    IndexKind::kOwed,         IndexKind::kRoute};

// The kinds format versions 2, 3, 4 and 5 added.
inline constexpr IndexKind kIndexKindsSinceVersion1[] = {
    IndexKind::kUnfinished, IndexKind::kAccountState, IndexKind::kModelState,
    IndexKind::kRetention,  IndexKind::kOwed,         IndexKind::kRoute};
inline constexpr IndexKind kIndexKindsSinceVersion2[] = {
    IndexKind::kRetention, IndexKind::kOwed, IndexKind::kRoute};
inline constexpr IndexKind kIndexKindsSinceVersion3[] = {IndexKind::kOwed,
                                                         IndexKind::kRoute};
inline constexpr IndexKind kIndexKindsSinceVersion4[] = {IndexKind::kRoute};

// The value `task` contributes to the index `kind`; nullopt means no entry
// (an empty account, a finished task in kUnfinished, ...).
absl::optional<std::string> IndexValue(IndexKind kind, const v1::Task& task);

// What RocksDbTaskStore's Prepare, PrepareRaw and PreparePurge make: one
// WriteBatch, applied by Commit.
struct PreparedBatch final : PreparedWrite::Body {
  explicit PreparedBatch(std::unique_ptr<rocksdb::WriteBatch> batch)
      : batch(std::move(batch)) {}
  std::unique_ptr<rocksdb::WriteBatch> batch;
};

}  // namespace tasktrail::store

#endif  // TASKTRAIL_STORE_ROCKSDB_INDEX_ENTRIES_H_
