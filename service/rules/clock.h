// Clock: the source of "now" for the domain, injectable so that tests can
// control time.
//
// Thread safety: implementations are safe to call concurrently.
#ifndef TASKTRAIL_SERVICE_RULES_CLOCK_H_
#define TASKTRAIL_SERVICE_RULES_CLOCK_H_

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace tasktrail {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
};

// The wall clock.
class SystemClock final : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
  // A process-wide instance.
  static const SystemClock* Get() {
    static const SystemClock* const kClock = new SystemClock();
    return kClock;
  }
};

// A clock that only moves when told to. For tests.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(absl::Time start) : now_(start) {}
  absl::Time Now() const override {
    absl::MutexLock lock(&mutex_);
    return now_;
  }
  void Advance(absl::Duration step) {
    absl::MutexLock lock(&mutex_);
    now_ += step;
  }
  void Set(absl::Time now) {
    absl::MutexLock lock(&mutex_);
    now_ = now;
  }

 private:
  mutable absl::Mutex mutex_;
  absl::Time now_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace tasktrail

#endif  // TASKTRAIL_SERVICE_RULES_CLOCK_H_
