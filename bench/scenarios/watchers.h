// --watchers: WatchTask streams on one hot task that keeps getting events,
// open while the workloads run, so that those are measured beside watchers
// receiving events. After the runs every stream must have received the hot
// task's last event.
//
// Thread safety: Start and Stop are called from one thread.
#ifndef TASKTRAIL_BENCH_SCENARIOS_WATCHERS_H_
#define TASKTRAIL_BENCH_SCENARIOS_WATCHERS_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench_common.h"

namespace tasktrail::bench {

// One WatchTask stream (watchers.cc).
class HotWatch;

// The hot task, its watchers (over connections of their own, at most 200
// streams each) and the writer that keeps recording polls on it.
class HotTaskWatchers {
 public:
  struct Summary {
    int watchers = 0;
    int64_t hot_events = 0;  // the hot task's last seq when the writer stopped
    uint64_t delivered = 0;  // events received over all streams
    int caught_up = 0;       // streams that received the last seq
    int ended_early = 0;     // streams that ended before being cancelled
    uint64_t write_errors = 0;  // failed writes to the hot task
  };

  explicit HotTaskWatchers(const Flags& flags);
  ~HotTaskWatchers();

  // Submits the hot task, opens the streams, waits (up to 120 s) until each
  // has its first event and starts the writer. False, with a message, when
  // that fails.
  bool Start(const std::string& nonce);

  // Stops the writer, waits (up to 60 s) until every stream has the last
  // event written, then cancels the streams.
  Summary Stop();

 private:
  // Waits until every stream has `seq` (or has ended); false on timeout.
  bool WaitForSeq(int64_t seq, std::chrono::seconds limit);

  // Records a poll on the hot task every 1/--watch-rate s until stopped.
  void Write();

  const Flags& flags_;
  std::unique_ptr<v1::TaskTracker::Stub> writer_;
  std::vector<std::unique_ptr<v1::TaskTracker::Stub>> stubs_;
  std::vector<std::unique_ptr<HotWatch>> watches_;
  std::string task_id_;
  std::thread writer_thread_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  // Written by the writer thread only; read after it was joined.
  int64_t last_seq_ = 0;
  uint64_t write_errors_ = 0;
};

// Prints the summary line of the watchers (one JSON object with --json).
void PrintSummary(const HotTaskWatchers::Summary& summary, const Flags& flags);

}  // namespace tasktrail::bench

#endif  // TASKTRAIL_BENCH_SCENARIOS_WATCHERS_H_
