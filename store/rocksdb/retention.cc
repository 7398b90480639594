// RocksDbTaskStore's side of retention: listing the tasks past their
// retention from the retention index (IndexKind::kRetention), and preparing
// the purge of one task, which the retention sweeper and PurgeTask commit.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "rocksdb/write_batch.h"
#include "store/rocksdb/index_entries.h"
#include "store/rocksdb/rocksdb_task_store.h"

namespace tasktrail::store {

absl::StatusOr<std::vector<std::string>> RocksDbTaskStore::ListDueTasks(
    int64_t finished_before_unix_micros, int64_t unfinished_before_unix_micros,
    int limit) const {
  std::vector<std::string> due;
  const auto list = [&](RetentionClass retention_class, int64_t before) {
    if (before <= 0 || static_cast<int>(due.size()) >= limit) {
      return absl::OkStatus();
    }
    // Every value of a class has one length, so the prefix of time 0 and
    // that of the cutoff bound the class's entries older than the cutoff.
    const std::string lower = IndexPrefix(
        IndexKind::kRetention, RetentionIndexValue(retention_class, 0));
    const std::string upper = IndexPrefix(
        IndexKind::kRetention, RetentionIndexValue(retention_class, before));
    return ScanRange(ColumnFamily::kIndexes, lower, upper,
                     [&](absl::string_view key, absl::string_view) {
                       if (key.size() > lower.size()) {
                         due.emplace_back(key.substr(lower.size()));
                       }
                       return static_cast<int>(due.size()) < limit;
                     });
  };
  absl::Status listed =
      list(RetentionClass::kFinished, finished_before_unix_micros);
  if (listed.ok()) {
    listed = list(RetentionClass::kUnfinished, unfinished_before_unix_micros);
  }
  if (!listed.ok()) return listed;
  return due;
}

// Point deletes, not range deletes: a task's keys are few (its timeline is
// folded and capped) and contiguous under one prefix in each column family,
// so one seek finds them, while a range tombstone per purged task would
// pile up thousands of tombstones that every read and iterator over those
// families has to consult until compaction drops them. The space is
// reclaimed by compaction: the tombstones and what they cover are dropped
// when their files are compacted (the families that purges delete from mark
// files dense with deletions for compaction, see rocksdb_options.cc).
absl::StatusOr<PreparedWrite> RocksDbTaskStore::PreparePurge(
    absl::string_view task_id, absl::Span<const std::string> dedup_keys) const {
  absl::StatusOr<v1::Task> task = GetTask(task_id);
  if (!task.ok()) return task.status();
  auto batch = std::make_unique<rocksdb::WriteBatch>();
  batch->Delete(handle(ColumnFamily::kTasks),
                rocksdb::Slice(task_id.data(), task_id.size()));
  for (IndexKind kind : kAllIndexKinds) {
    const absl::optional<std::string> value = IndexValue(kind, *task);
    if (value.has_value()) {
      batch->Delete(handle(ColumnFamily::kIndexes),
                    IndexKey(kind, *value, task_id));
    }
  }
  const std::string prefix = EventPrefix(task_id);
  for (ColumnFamily family :
       {ColumnFamily::kEvents, ColumnFamily::kEventIds, ColumnFamily::kAudit}) {
    absl::Status found =
        ScanRaw(family, prefix, [&](absl::string_view key, absl::string_view) {
          batch->Delete(handle(family), rocksdb::Slice(key.data(), key.size()));
          return true;
        });
    if (!found.ok()) return found;
  }
  for (const TaskSampleKey& sample : TaskSampleKeys(*task)) {
    batch->Delete(handle(ColumnFamily::kCounters),
                  QueueSampleKey(sample.series, sample.unix_micros, task_id));
  }
  std::vector<std::string> dedup(dedup_keys.begin(), dedup_keys.end());
  if (!task->request_id().empty()) {
    dedup.push_back(RequestIdDedupKey(task->account_id(), task->request_id()));
  }
  for (const std::string& key : dedup) {
    absl::StatusOr<absl::optional<std::string>> raw =
        GetRaw(ColumnFamily::kDedup, key);
    if (!raw.ok()) return raw.status();
    if (!raw->has_value()) continue;
    absl::optional<DedupRecord> record = DecodeDedupRecord(**raw);
    if (record.has_value() && record->task_id == task_id) {
      batch->Delete(handle(ColumnFamily::kDedup), key);
    }
  }
  return PreparedWrite(std::make_unique<PreparedBatch>(std::move(batch)),
                       absl::StrCat("purging task ", task_id));
}

}  // namespace tasktrail::store
