// RetentionSweeper: the background thread that purges the tasks whose
// retention has passed (Tracker::PurgeDueTasks), every sweep interval.
//
// A sweep purges in small batches until no task is due; between batches it
// pauses, so that foreground writes (which share the store's commit thread)
// are never queued behind a long run of purges, and a task whose lock a
// foreground write holds is left for the next sweep. Time comes from the
// Tracker's clock (injectable); the interval is waited on the wall clock.
//
// Thread safety: SweepNow may be called from any thread, also while the
// background thread runs (sweeps then take turns).
#ifndef TASKTRAIL_SERVICE_TRACKER_RETENTION_SWEEPER_H_
#define TASKTRAIL_SERVICE_TRACKER_RETENTION_SWEEPER_H_

#include <cstdint>
#include <functional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "service/tracker/tracker.h"

namespace tasktrail {

class RetentionSweeper {
 public:
  struct Options {
    // Time between the end of one sweep and the start of the next.
    absl::Duration interval = absl::Minutes(1);
    // Tasks purged per batch.
    int batch_size = 100;
    // Pause between two batches of one sweep.
    absl::Duration pause = absl::Milliseconds(5);
    // Called after each sweep of the background thread with how many tasks
    // it purged and its error (OK when it swept everything due). nullptr:
    // nobody.
    std::function<void(int64_t purged, const absl::Status& status)> on_sweep;
  };

  // REQUIRES: `tracker` outlives the sweeper. Does not start the thread.
  RetentionSweeper(Tracker* tracker, Options options);
  // Stops the thread, if started.
  ~RetentionSweeper();
  RetentionSweeper(const RetentionSweeper&) = delete;
  RetentionSweeper& operator=(const RetentionSweeper&) = delete;

  // Starts the background thread: a sweep at once, then one per interval.
  void Start();
  // Stops the background thread, ending a sweep in progress after its
  // current batch. Idempotent.
  void Stop();

  // One sweep now, on the calling thread: purges every task due at the
  // tracker's clock's now, in batches. Returns how many tasks it purged
  // (those skipped because a write held their lock are left due); the
  // store's error when a purge fails (tasks purged before it stay purged).
  absl::StatusOr<int64_t> SweepNow();

 private:
  void Run();
  // True once Stop was called.
  bool stopping() const;

  Tracker* const tracker_;
  const Options options_;
  mutable absl::Mutex mutex_;
  bool stop_ ABSL_GUARDED_BY(mutex_) = false;
  // One sweep at a time.
  absl::Mutex sweep_mutex_;
  std::thread thread_;
};

}  // namespace tasktrail

#endif  // TASKTRAIL_SERVICE_TRACKER_RETENTION_SWEEPER_H_
