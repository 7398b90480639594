#include "service/server/store_metrics.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"

namespace tasktrail {
namespace {

prometheus::MetricFamily OneValue(std::string name, std::string help,
                                  prometheus::MetricType type, double value) {
  prometheus::MetricFamily family;
  family.name = std::move(name);
  family.help = std::move(help);
  family.type = type;
  prometheus::ClientMetric metric;
  if (type == prometheus::MetricType::Counter) {
    metric.counter.value = value;
  } else {
    metric.gauge.value = value;
  }
  family.metric.push_back(std::move(metric));
  return family;
}

prometheus::MetricFamily Gauge(std::string name, std::string help,
                               double value) {
  return OneValue(std::move(name), std::move(help),
                  prometheus::MetricType::Gauge, value);
}

// The whole of a small file, or empty.
std::string ReadSmallFile(const char* path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The fields of /proc/self/stat after the command name (which may hold
// spaces and parentheses): field 3 (state) is [0].
std::vector<std::string> StatFields() {
  const std::string stat = ReadSmallFile("/proc/self/stat");
  const size_t close = stat.rfind(')');
  if (close == std::string::npos || close + 2 > stat.size()) return {};
  return absl::StrSplit(stat.substr(close + 2), ' ', absl::SkipEmpty());
}

// The system's boot time in Unix seconds (btime of /proc/stat), or -1.
int64_t BootTime() {
  std::istringstream lines(ReadSmallFile("/proc/stat"));
  std::string line;
  while (std::getline(lines, line)) {
    int64_t seconds = 0;
    if (line.rfind("btime ", 0) == 0 &&
        absl::SimpleAtoi(line.substr(6), &seconds)) {
      return seconds;
    }
  }
  return -1;
}

}  // namespace

StoreMetrics::StoreMetrics(prometheus::Registry& registry)
    : batch_size_(prometheus::BuildHistogram()
                      .Name("tasktrail_store_commit_batch_size")
                      .Help("Writes per group commit (each group is one "
                            "write and one fsync).")
                      .Register(registry)
                      .Add({},
                           prometheus::Histogram::BucketBoundaries{
                               1, 2, 4, 8, 16, 32, 64, 128, 256, 512})),
      commit_seconds_(prometheus::BuildHistogram()
                          .Name("tasktrail_store_commit_seconds")
                          .Help("Time of a group commit's write and fsync, "
                                "in seconds.")
                          .Register(registry)
                          .Add({}, prometheus::Histogram::BucketBoundaries{
                                       0.0005, 0.001, 0.0025, 0.005, 0.01,
                                       0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5})) {}

void StoreMetrics::OnCommit(size_t writes, double seconds) {
  batch_size_.Observe(static_cast<double>(writes));
  commit_seconds_.Observe(seconds);
}

std::vector<prometheus::MetricFamily> StoreMetrics::Collect() const {
  const store::RocksDbTaskStore* store = store_.load();
  if (store == nullptr) return {};
  const store::RocksDbTaskStore::Properties properties = store->properties();
  std::vector<prometheus::MetricFamily> families;
  families.push_back(Gauge("tasktrail_store_failed",
                           "1 once a write to the store failed (it refuses "
                           "writes until tasktraild restarts), else 0.",
                           store->failed() ? 1 : 0));
  families.push_back(
      Gauge("tasktrail_rocksdb_live_data_bytes",
            "Estimate of the live data in the store, in bytes "
            "(rocksdb.estimate-live-data-size, summed over column families).",
            static_cast<double>(properties.live_data_bytes)));
  families.push_back(Gauge("tasktrail_rocksdb_sst_bytes",
                           "Size of all SST files, in bytes "
                           "(rocksdb.total-sst-files-size).",
                           static_cast<double>(properties.sst_bytes)));
  families.push_back(
      Gauge("tasktrail_rocksdb_pending_compaction_bytes",
            "Bytes compaction estimates it must rewrite "
            "(rocksdb.estimate-pending-compaction-bytes).",
            static_cast<double>(properties.pending_compaction_bytes)));
  families.push_back(
      Gauge("tasktrail_rocksdb_running_compactions",
            "Compactions running now (rocksdb.num-running-compactions).",
            static_cast<double>(properties.running_compactions)));
  families.push_back(Gauge("tasktrail_rocksdb_block_cache_usage_bytes",
                           "Bytes held by the block cache, memtables included "
                           "(rocksdb.block-cache-usage).",
                           static_cast<double>(properties.block_cache_bytes)));
  return families;
}

std::vector<prometheus::MetricFamily> ProcessCollector::Collect() const {
  std::vector<prometheus::MetricFamily> families;
  const long ticks = sysconf(_SC_CLK_TCK);
  const long page = sysconf(_SC_PAGESIZE);
  const std::vector<std::string> stat = StatFields();
  // Fields of proc(5), numbered from 1: utime 14, stime 15, starttime 22,
  // vsize 23, rss 24; [0] is field 3.
  auto field = [&stat](size_t number, double* value) {
    return number - 3 < stat.size() &&
           absl::SimpleAtod(stat[number - 3], value);
  };
  double utime = 0, stime = 0, start = 0, vsize = 0, rss = 0;
  if (ticks > 0 && field(14, &utime) && field(15, &stime)) {
    families.push_back(OneValue("process_cpu_seconds_total",
                                "Total user and system CPU time spent "
                                "in seconds.",
                                prometheus::MetricType::Counter,
                                (utime + stime) / ticks));
  }
  if (field(24, &rss) && page > 0) {
    families.push_back(Gauge("process_resident_memory_bytes",
                             "Resident memory size in bytes.", rss * page));
  }
  if (field(23, &vsize)) {
    families.push_back(Gauge("process_virtual_memory_bytes",
                             "Virtual memory size in bytes.", vsize));
  }
  const int64_t boot = BootTime();
  if (ticks > 0 && boot >= 0 && field(22, &start)) {
    families.push_back(Gauge("process_start_time_seconds",
                             "Start time of the process since unix epoch in "
                             "seconds.",
                             static_cast<double>(boot) + start / ticks));
  }
  if (DIR* fds = opendir("/proc/self/fd")) {
    int open = 0;
    while (const dirent* entry = readdir(fds)) {
      if (entry->d_name[0] != '.') ++open;
    }
    closedir(fds);
    // Less the descriptor of the listing itself.
    families.push_back(Gauge("process_open_fds",
                             "Number of open file descriptors.", open - 1));
  }
  struct rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0) {
    families.push_back(Gauge(
        "process_max_fds", "Maximum number of open file descriptors.",
        limit.rlim_cur == RLIM_INFINITY ? -1
                                        : static_cast<double>(limit.rlim_cur)));
  }
  return families;
}

}  // namespace tasktrail
