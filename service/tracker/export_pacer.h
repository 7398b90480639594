// ExportPacer: how fast exports may read, so that an export yields to the
// calls the gateway and support staff are waiting for. One pacer is shared
// by every export of a server: its budget is the server's, not a stream's.
//
// It is a token bucket whose rate depends on whether foreground calls are
// being served: the service calls ForegroundCall() for every call it admits
// (other than exports), and while one was seen within `quiet_after`, the
// exports together read at most `busy_tasks_per_second`; once the server
// has been quiet that long, at most `idle_tasks_per_second` (0: as fast as
// the reader goes).
//
// Thread safety: ForegroundCall() may be called from any thread (one
// relaxed atomic increment). WaitBeforeRead and Charge are safe to call
// concurrently, though the service calls them from its one export thread.
#ifndef TASKTRAIL_SERVICE_TRACKER_EXPORT_PACER_H_
#define TASKTRAIL_SERVICE_TRACKER_EXPORT_PACER_H_

#include <atomic>
#include <cstdint>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "service/rules/clock.h"

namespace tasktrail {

class ExportPacer {
 public:
  struct Options {
    // Tasks per second all exports together read while foreground calls are
    // being served; 0: no limit. Its cost to the foreground calls is
    // measured in docs/PERFORMANCE.md ("Export").
    double busy_tasks_per_second = 2000;
    // Tasks per second once no foreground call has been seen for
    // `quiet_after`; 0: no limit.
    double idle_tasks_per_second = 0;
    // How long after the last foreground call the server counts as busy.
    absl::Duration quiet_after = absl::Milliseconds(500);
  };

  // REQUIRES: `clock` outlives the pacer; rates >= 0; quiet_after >= 0.
  ExportPacer(const Clock* clock, Options options);

  ExportPacer(const ExportPacer&) = delete;
  ExportPacer& operator=(const ExportPacer&) = delete;

  // Counts one foreground call: the server is busy from now until
  // `quiet_after` has passed without another.
  void ForegroundCall() {
    foreground_calls_.fetch_add(1, std::memory_order_relaxed);
  }

  // How long an export must wait before it reads its next page: zero while
  // the tasks charged so far are within the rate in force.
  absl::Duration WaitBeforeRead();

  // Charges `tasks` just read to the budget of the rate in force.
  void Charge(int64_t tasks);

  // True while a foreground call was seen within `quiet_after`.
  bool Busy();

 private:
  // The rate in force (0: none), updating busy_until_.
  double RateNow(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  const Clock* const clock_;
  const Options options_;
  std::atomic<uint64_t> foreground_calls_{0};
  absl::Mutex mutex_;
  uint64_t calls_seen_ ABSL_GUARDED_BY(mutex_) = 0;
  absl::Time busy_until_ ABSL_GUARDED_BY(mutex_) = absl::InfinitePast();
  // When the tasks charged so far will have been paid for at the rate in
  // force; not before now.
  absl::Time paid_until_ ABSL_GUARDED_BY(mutex_) = absl::InfinitePast();
};

}  // namespace tasktrail

#endif  // TASKTRAIL_SERVICE_TRACKER_EXPORT_PACER_H_
