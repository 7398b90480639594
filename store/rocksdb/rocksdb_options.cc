#include "store/rocksdb/rocksdb_options.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "rocksdb/cache.h"
#include "rocksdb/filter_policy.h"
#include "rocksdb/slice_transform.h"
#include "rocksdb/table.h"
#include "rocksdb/utilities/table_properties_collectors.h"
#include "rocksdb/write_buffer_manager.h"
#include "store/keys.h"
#include "store/rocksdb/compaction.h"

namespace tasktrail::store {
namespace {

// The prefix shared by the keys of one task in the events, event_ids and
// audit families: len16(task_id) task_id (see EventPrefix). Lets RocksDB use
// prefix bloom filters for the per-task scans.
class TaskPrefixTransform final : public rocksdb::SliceTransform {
 public:
  const char* Name() const override { return "tasktrail.TaskPrefix"; }
  rocksdb::Slice Transform(const rocksdb::Slice& key) const override {
    return rocksdb::Slice(key.data(), PrefixLength(key));
  }
  bool InDomain(const rocksdb::Slice& key) const override {
    return key.size() >= 2 && key.size() >= PrefixLength(key);
  }

 private:
  static size_t PrefixLength(const rocksdb::Slice& key) {
    return 2 +
           ((static_cast<uint8_t>(key[0]) << 8) | static_cast<uint8_t>(key[1]));
  }
};

// How a family is read, which decides some of its options.
struct FamilyReads {
  // Keys start with EventPrefix(task_id).
  bool task_prefixed = false;
  // The family's index and filter partitions stay in the cache for as long
  // as their file lives; only for a family whose size is bounded by
  // something other than the store's age.
  bool pin_partitions = false;
  // Mostly point lookups of keys that exist (task snapshots, read by every
  // GetTask and GetQueueStatus).
  bool point_hits = false;
};

// Options shared by all families, adjusted to how the family is read.
rocksdb::ColumnFamilyOptions FamilyOptions(
    const std::shared_ptr<rocksdb::Cache>& cache, const FamilyReads& reads) {
  rocksdb::ColumnFamilyOptions options;
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = cache;
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  // Index and filter blocks live in the cache (so memory stays bounded by
  // it), partitioned into block-sized pieces: a whole-file index or filter of
  // a large file is megabytes, which a cache shard cannot keep, so every
  // point lookup would read and decompress it again. Only the small
  // top-level partition index stays pinned; the partitions compete at high
  // priority with data blocks.
  table.cache_index_and_filter_blocks = true;
  table.cache_index_and_filter_blocks_with_high_priority = true;
  table.index_type = rocksdb::BlockBasedTableOptions::kTwoLevelIndexSearch;
  table.partition_filters = true;
  table.metadata_block_size = 4096;
  table.pin_top_level_index_and_filter = true;
  table.pin_l0_filter_and_index_blocks_in_cache = true;
  if (reads.pin_partitions) {
    table.metadata_cache_options.partition_pinning = rocksdb::PinningTier::kAll;
  }
  if (reads.point_hits) {
    // A point lookup finds its key through a hash index in the data block
    // instead of scanning the block's entries from a restart point. Every
    // entry is a restart point, so no key is delta-encoded: about 10 bytes
    // more per task stored, 8 % more data in this family.
    table.block_restart_interval = 1;
    table.data_block_index_type =
        rocksdb::BlockBasedTableOptions::kDataBlockBinaryAndHash;
    // A lookup that reaches the last level will find its key there, so that
    // level's bloom filter is skipped (and, written there, not built). The
    // price is paid by lookups of unknown task ids (NOT_FOUND): an index
    // partition and a data block of the last level instead of a filter.
    options.optimize_filters_for_hits = true;
  }
  options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  options.write_buffer_size = 16 << 20;
  options.max_write_buffer_number = 3;
  if (reads.task_prefixed) {
    options.prefix_extractor = std::make_shared<TaskPrefixTransform>();
  }
  // Point lookups that miss a memtable skip its skiplist search.
  options.memtable_whole_key_filtering = true;
  options.memtable_prefix_bloom_size_ratio = 0.05;
  return options;
}

}  // namespace

RocksDbOptions TunedRocksDbOptions(int block_cache_mb,
                                   int64_t counter_retention_minutes) {
  // 16 shards rather than RocksDB's default of 64 for this size (8 MB each
  // at 128 MB instead of 2 MB): a shard must hold what it caches with room
  // to spare, memtable reservations included; on two cores 16 shards keep
  // lock contention low. A quarter of the cache is kept for high-priority
  // entries (index and filter partitions).
  const size_t cache_bytes = static_cast<size_t>(std::max(block_cache_mb, 8))
                             << 20;
  rocksdb::LRUCacheOptions cache_options;
  cache_options.capacity = cache_bytes;
  cache_options.num_shard_bits = 4;
  cache_options.high_pri_pool_ratio = 0.25;
  auto cache = rocksdb::NewLRUCache(cache_options);

  RocksDbOptions tuned;
  rocksdb::DBOptions& db_options = tuned.db;
  db_options.create_if_missing = true;
  db_options.create_missing_column_families = true;
  db_options.max_background_jobs = 2;
  db_options.max_total_wal_size = 64 << 20;
  // Memtables of all families together stay within half the block cache and
  // are charged to it, so memory is bounded by --block-cache-mb.
  db_options.write_buffer_manager =
      std::make_shared<rocksdb::WriteBufferManager>(cache_bytes / 2, cache);

  std::vector<rocksdb::ColumnFamilyDescriptor>& families = tuned.families;
  for (int i = 0; i < kColumnFamilyCount; ++i) {
    const auto family = static_cast<ColumnFamily>(i);
    FamilyReads reads;
    reads.task_prefixed = family == ColumnFamily::kEvents ||
                          family == ColumnFamily::kEventIds ||
                          family == ColumnFamily::kAudit;
    // A dedup lookup of a new submission finds nothing, so it consults the
    // filter of every sorted run of the family; pinned, each of those skips
    // a block-cache lookup. Dedup records expire (after a day by default),
    // so what is pinned is bounded by the submissions of that window: about
    // 5 MB per million.
    reads.pin_partitions = family == ColumnFamily::kDedup;
    reads.point_hits = family == ColumnFamily::kTasks;
    families.emplace_back(kColumnFamilyNames[i], FamilyOptions(cache, reads));
    // Retention purges a task with point deletes in every family that holds
    // its keys (RocksDbTaskStore::PurgeTask). A file written with a run of
    // them is marked for compaction at once, so that the tombstones and the
    // values they cover leave the disk without waiting for the level to fill
    // up: the live size levels off under a constant load.
    if (family == ColumnFamily::kTasks || family == ColumnFamily::kEvents ||
        family == ColumnFamily::kEventIds || family == ColumnFamily::kIndexes ||
        family == ColumnFamily::kAudit) {
      families.back().options.table_properties_collector_factories.push_back(
          rocksdb::NewCompactOnDeletionCollectorFactory(
              /*sliding_window_size=*/64 * 1024,
              /*deletion_trigger=*/16 * 1024, /*deletion_ratio=*/0.3));
    }
  }
  // Kept alive by the store: RocksDB keeps a raw pointer for the DB's
  // lifetime.
  tuned.counter_expiry = NewCounterExpiryFilter(counter_retention_minutes);
  rocksdb::ColumnFamilyOptions& counters =
      families[static_cast<int>(ColumnFamily::kCounters)].options;
  counters.merge_operator = NewInt64AddOperator();
  counters.compaction_filter = tuned.counter_expiry.get();
  rocksdb::ColumnFamilyOptions& dedup =
      families[static_cast<int>(ColumnFamily::kDedup)].options;
  dedup.compaction_filter = DedupExpiryFilter();
  // (Its index and filter partitions are pinned: see the loop above.)
  // Dedup keys are digests: every flush overlaps the whole key range, so
  // leveled compaction would rewrite all of level 1 for each few memtables
  // flushed, and that cost grows with the store. Universal compaction merges
  // sorted runs of similar size instead; lookups stay point lookups through
  // each run's bloom filter.
  dedup.compaction_style = rocksdb::kCompactionStyleUniversal;
  // Compact files at least daily so that expired records leave the disk
  // even when few new ones arrive (under universal compaction RocksDB runs
  // this as its periodic compaction).
  dedup.ttl = 24 * 60 * 60;
  // Index keys of accounts, request ids and upstream ids are spread over the
  // key range too; waiting for 8 level-0 files instead of 4 halves how often
  // level 1 is rewritten, at the cost of 4 more files to merge in a scan.
  families[static_cast<int>(ColumnFamily::kIndexes)]
      .options.level0_file_num_compaction_trigger = 8;
  return tuned;
}

}  // namespace tasktrail::store
