// --exporters: ExportTasks streams (each on its own connection) over the
// whole store, timelines included, while the workloads run, each starting
// again from the first task when it reaches the end.
//
// Thread safety: Start and Stop are called from one thread.
#ifndef TASKTRAIL_BENCH_SCENARIOS_EXPORTERS_H_
#define TASKTRAIL_BENCH_SCENARIOS_EXPORTERS_H_

#include <atomic>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include "bench/bench_common.h"

namespace tasktrail::bench {

class Exporters {
 public:
  struct Summary {
    int streams = 0;
    double seconds = 0;       // from Start to Stop
    uint64_t tasks = 0;       // received over all streams
    uint64_t bytes = 0;       // of the tasks received, serialized
    uint64_t passes = 0;      // streams that reached the end of the store
    double pass_seconds = 0;  // the mean time of those
    uint64_t pass_tasks = 0;  // tasks in the last whole pass
    uint64_t errors = 0;      // streams that ended neither OK nor cancelled
  };

  explicit Exporters(const Flags& flags) : flags_(flags) {}
  ~Exporters() { Stop(); }

  void Start();

  // Cancels the streams and waits for them.
  Summary Stop();

 private:
  // One stream after the other on connection `index` until stopped.
  void Export(int index);

  const Flags& flags_;
  SteadyClock::time_point start_;
  std::vector<std::thread> threads_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> tasks_{0};
  std::atomic<uint64_t> bytes_{0};
  std::mutex mutex_;
  std::vector<grpc::ClientContext*> contexts_;  // guarded by mutex_
  uint64_t passes_ = 0;                         // guarded by mutex_
  double pass_seconds_ = 0;                     // guarded by mutex_
  uint64_t pass_tasks_ = 0;                     // guarded by mutex_
  uint64_t errors_ = 0;                         // guarded by mutex_
};

// Prints the summary line of the exports (one JSON object with --json):
// tasks exported per second over the runs and the time of each whole pass.
void PrintSummary(const Exporters::Summary& summary, const Flags& flags);

}  // namespace tasktrail::bench

#endif  // TASKTRAIL_BENCH_SCENARIOS_EXPORTERS_H_
