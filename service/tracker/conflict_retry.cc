#include "service/tracker/conflict_retry.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace tasktrail {

ConflictRetrier::ConflictRetrier()
    : random_(std::random_device()()), thread_([this] { Run(); }) {}

ConflictRetrier::~ConflictRetrier() {
  {
    absl::MutexLock lock(&mutex_);
    stopping_ = true;
  }
  thread_.join();
}

absl::Duration ConflictRetrier::Backoff(int attempt) {
  const int doublings = std::clamp(attempt - 2, 0, 6);
  const absl::Duration base = absl::Milliseconds(2) * (1 << doublings);
  double factor;
  {
    absl::MutexLock lock(&mutex_);
    factor = std::uniform_real_distribution<double>(0.5, 1.5)(random_);
  }
  return base * factor;
}

void ConflictRetrier::Schedule(absl::Duration delay,
                               absl::AnyInvocable<void()> retry) {
  absl::MutexLock lock(&mutex_);
  due_.emplace(absl::Now() + delay, std::move(retry));
}

absl::Status ConflictRetrier::GaveUp(int attempts,
                                     const absl::Status& conflict) {
  return absl::AbortedError(
      absl::StrCat("the write conflicted with concurrent writes ", attempts,
                   " times in a row and was given up, having recorded "
                   "nothing; send it again (last conflict: ",
                   conflict.message(), ")"));
}

void ConflictRetrier::Run() {
  while (true) {
    absl::AnyInvocable<void()> retry;
    {
      absl::MutexLock lock(&mutex_);
      while (true) {
        if (!due_.empty() &&
            (stopping_ || due_.begin()->first <= absl::Now())) {
          break;
        }
        if (stopping_) return;
        if (due_.empty()) {
          mutex_.Await(absl::Condition(
              +[](ConflictRetrier* retrier)
                   ABSL_EXCLUSIVE_LOCKS_REQUIRED(retrier->mutex_) {
                     return retrier->stopping_ || !retrier->due_.empty();
                   },
              this));
        } else {
          // Wakes early for a retry due sooner or for stopping.
          const absl::Time next = due_.begin()->first;
          std::pair<ConflictRetrier*, size_t> state(this, due_.size());
          mutex_.AwaitWithDeadline(
              absl::Condition(
                  +[](std::pair<ConflictRetrier*, size_t>* state)
                       ABSL_NO_THREAD_SAFETY_ANALYSIS {
                         return state->first->stopping_ ||
                                state->first->due_.size() != state->second;
                       },
                  &state),
              next);
        }
      }
      retry = std::move(due_.begin()->second);
      due_.erase(due_.begin());
    }
    retry();
  }
}

}  // namespace tasktrail
