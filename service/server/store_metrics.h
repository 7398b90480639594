// The store's and the process's metrics.
//
// StoreMetrics (histograms fed by StoreOptions::on_commit, and gauges read
// from the TaskStore when scraped):
//   tasktrail_store_commit_batch_size        histogram: writes per group
//                                            commit (one fsync each)
//   tasktrail_store_commit_seconds           histogram: a group commit's
//                                            write and fsync
//   tasktrail_store_failed                   1 once a write failed (the
//                                            store refuses writes), else 0
//   tasktrail_rocksdb_live_data_bytes        rocksdb.estimate-live-data-size
//   tasktrail_rocksdb_sst_bytes              rocksdb.total-sst-files-size
//   tasktrail_rocksdb_pending_compaction_bytes
//                                  rocksdb.estimate-pending-compaction-bytes
//   tasktrail_rocksdb_running_compactions    rocksdb.num-running-compactions
//   tasktrail_rocksdb_block_cache_usage_bytes rocksdb.block-cache-usage
//
// ProcessCollector, the standard process_* series of Prometheus' client
// libraries, read from /proc/self when scraped: process_cpu_seconds_total,
// process_resident_memory_bytes, process_virtual_memory_bytes,
// process_open_fds, process_max_fds, process_start_time_seconds. A value
// that cannot be read is left out of that scrape.
//
// Thread safety: thread-safe.
#ifndef TASKTRAIL_SERVICE_SERVER_STORE_METRICS_H_
#define TASKTRAIL_SERVICE_SERVER_STORE_METRICS_H_

#include <atomic>
#include <cstddef>
#include <vector>

#include "prometheus/collectable.h"
#include "prometheus/family.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "store/rocksdb/rocksdb_task_store.h"

namespace tasktrail {

class StoreMetrics final : public prometheus::Collectable {
 public:
  // Adds the commit histograms to `registry`; the gauges are Collect's.
  explicit StoreMetrics(prometheus::Registry& registry);

  // Counts one group commit (for StoreOptions::on_commit).
  void OnCommit(size_t writes, double seconds);

  // The store the gauges read, once it is open; until then they are left
  // out. REQUIRES: `store` outlives this, or is reset to nullptr first.
  void SetStore(const store::RocksDbTaskStore* store) { store_.store(store); }

  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  prometheus::Histogram& batch_size_;
  prometheus::Histogram& commit_seconds_;
  std::atomic<const store::RocksDbTaskStore*> store_{nullptr};
};

class ProcessCollector final : public prometheus::Collectable {
 public:
  std::vector<prometheus::MetricFamily> Collect() const override;
};

}  // namespace tasktrail

#endif  // TASKTRAIL_SERVICE_SERVER_STORE_METRICS_H_
