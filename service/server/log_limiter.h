// A log line that input from outside can trigger (a malformed request makes
// libprotobuf log one) must not let a client flood the log: LogLimiter lets
// through at most one line per interval and counts the lines it holds back,
// so that the next line let through can say how many were suppressed.
//
// Thread safety: Allow may be called concurrently.
#ifndef TASKTRAIL_SERVICE_SERVER_LOG_LIMITER_H_
#define TASKTRAIL_SERVICE_SERVER_LOG_LIMITER_H_

#include <cstdint>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace tasktrail {

class LogLimiter {
 public:
  explicit LogLimiter(absl::Duration interval) : interval_(interval) {}

  // True when a line may be written at `now`; `*suppressed` then receives
  // how many lines were held back since the previous line let through.
  bool Allow(absl::Time now, int64_t* suppressed) {
    absl::MutexLock lock(&mutex_);
    if (now < next_) {
      ++suppressed_;
      return false;
    }
    next_ = now + interval_;
    *suppressed = suppressed_;
    suppressed_ = 0;
    return true;
  }

 private:
  const absl::Duration interval_;
  absl::Mutex mutex_;
  absl::Time next_ ABSL_GUARDED_BY(mutex_) = absl::InfinitePast();
  int64_t suppressed_ ABSL_GUARDED_BY(mutex_) = 0;
};

}  // namespace tasktrail

#endif  // TASKTRAIL_SERVICE_SERVER_LOG_LIMITER_H_
