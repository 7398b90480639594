// How the store's data lives on in RocksDB's background work: the merge
// operator that adds counter increments, and the compaction filters that drop
// what has expired (per-minute counters past their retention, queue-wait
// samples past kQueueSampleRetentionMinutes, dedup records past their
// expiry). Lookups never rely on a filter having run: they check expiry
// themselves; the filters only bound the space.
//
// Thread safety: the objects returned are immutable; RocksDB calls them from
// any of its threads.
#ifndef TASKTRAIL_STORE_COMPACTION_H_
#define TASKTRAIL_STORE_COMPACTION_H_

#include <cstdint>
#include <memory>

namespace rocksdb {
class CompactionFilter;
class MergeOperator;
}  // namespace rocksdb

namespace tasktrail::store {

// The merge operator of ColumnFamily::kCounters: adds 8-byte big-endian int64
// operands (EncodeInt64) to the key's value.
std::shared_ptr<rocksdb::MergeOperator> NewInt64AddOperator();

// The compaction filter of ColumnFamily::kCounters: drops per-minute counters
// (CounterKey) older than `retention_minutes`, and queue-wait samples older
// than kQueueSampleRetentionMinutes. RocksDB keeps a raw pointer to it: the
// caller keeps it alive for as long as the database is open.
std::shared_ptr<rocksdb::CompactionFilter> NewCounterExpiryFilter(
    int64_t retention_minutes);

// The compaction filter of ColumnFamily::kDedup: drops dedup records whose
// expiry has passed. Lives as long as the process.
const rocksdb::CompactionFilter* DedupExpiryFilter();

}  // namespace tasktrail::store

#endif  // TASKTRAIL_STORE_COMPACTION_H_
