// The RocksDB options a TaskStore opens its database with: one block cache
// for all column families (memtables charged to it), and for each family the
// table, filter, memtable and compaction settings that suit how it is read
// and written, with its merge operator and compaction filter
// (compaction.h). The store adds its own logger, failure listener and Env.
//
// Thread safety: the function is thread-safe; the options it returns are
// plain values until handed to rocksdb::DB::Open.
#ifndef TASKTRAIL_STORE_ROCKSDB_OPTIONS_H_
#define TASKTRAIL_STORE_ROCKSDB_OPTIONS_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "rocksdb/compaction_filter.h"
#include "rocksdb/db.h"
#include "rocksdb/options.h"

namespace tasktrail::store {

struct RocksDbOptions {
  // The database's options (creating what is missing, background jobs, WAL
  // size, the write buffer manager on the shared cache).
  rocksdb::DBOptions db;

  // One descriptor per ColumnFamily, in the enum's order, named by
  // kColumnFamilyNames.
  std::vector<rocksdb::ColumnFamilyDescriptor> families;

  // The counters family's compaction filter. RocksDB keeps a raw pointer to
  // it: keep this alive for as long as the database is open.
  std::shared_ptr<rocksdb::CompactionFilter> counter_expiry;
};

// The options for a store with a block cache of `block_cache_mb` MiB (at
// least 8; memtables take up to half of it) whose per-minute counters are
// kept `counter_retention_minutes`.
RocksDbOptions TunedRocksDbOptions(int block_cache_mb,
                                   int64_t counter_retention_minutes);

}  // namespace tasktrail::store

#endif  // TASKTRAIL_STORE_ROCKSDB_OPTIONS_H_
