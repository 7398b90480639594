// ConflictRetrier: where the Tracker starts a write over when its commit was
// ABORTED (store/task_store.h: what the write was prepared from changed, as
// when another replica on the same PostgreSQL database wrote first). The
// retries run on one thread of their own, after a jittered exponential
// backoff, so that a store's commit thread never blocks on the reads and
// locks of a retry.
//
// Thread safety: all methods are safe to call concurrently.
#ifndef TASKTRAIL_SERVICE_TRACKER_CONFLICT_RETRY_H_
#define TASKTRAIL_SERVICE_TRACKER_CONFLICT_RETRY_H_

#include <cstdint>
#include <map>
#include <random>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace tasktrail {

class ConflictRetrier {
 public:
  // How often a write is tried in all before its conflict is answered.
  static constexpr int kMaxAttempts = 8;

  ConflictRetrier();
  // Runs the retries still waiting at once (without their backoff), so that
  // every write is answered, then stops.
  ~ConflictRetrier();
  ConflictRetrier(const ConflictRetrier&) = delete;
  ConflictRetrier& operator=(const ConflictRetrier&) = delete;

  // The wait before attempt `attempt` (2, 3, ...): 2 ms doubling per attempt
  // up to 128 ms, each scaled by a random factor in [0.5, 1.5) so that
  // writers that collided do not collide again in step.
  absl::Duration Backoff(int attempt);

  // Runs `retry` on the retry thread once `delay` has passed.
  void Schedule(absl::Duration delay, absl::AnyInvocable<void()> retry);

  // The answer once `attempts` attempts all ended in `conflict`: ABORTED,
  // saying so and that the call may be sent again.
  static absl::Status GaveUp(int attempts, const absl::Status& conflict);

 private:
  void Run();

  absl::Mutex mutex_;
  // Retries by the time they are due (ties keep their order).
  std::multimap<absl::Time, absl::AnyInvocable<void()>> due_
      ABSL_GUARDED_BY(mutex_);
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  std::minstd_rand random_ ABSL_GUARDED_BY(mutex_);
  // Last: started once the members above exist.
  std::thread thread_;
};

}  // namespace tasktrail

#endif  // TASKTRAIL_SERVICE_TRACKER_CONFLICT_RETRY_H_
