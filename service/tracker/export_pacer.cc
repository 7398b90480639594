#include "service/tracker/export_pacer.h"

#include <algorithm>
#include <cstdint>

namespace tasktrail {

ExportPacer::ExportPacer(const Clock* clock, Options options)
    : clock_(clock), options_(options) {}

double ExportPacer::RateNow(absl::Time now) {
  const uint64_t calls = foreground_calls_.load(std::memory_order_relaxed);
  if (calls != calls_seen_) {
    calls_seen_ = calls;
    busy_until_ = now + options_.quiet_after;
  }
  return now < busy_until_ ? options_.busy_tasks_per_second
                           : options_.idle_tasks_per_second;
}

bool ExportPacer::Busy() {
  absl::MutexLock lock(&mutex_);
  const absl::Time now = clock_->Now();
  RateNow(now);
  return now < busy_until_;
}

absl::Duration ExportPacer::WaitBeforeRead() {
  absl::MutexLock lock(&mutex_);
  const absl::Time now = clock_->Now();
  if (RateNow(now) <= 0) {
    paid_until_ = now;  // no debt carries over into a limited rate
    return absl::ZeroDuration();
  }
  return std::max(paid_until_ - now, absl::ZeroDuration());
}

void ExportPacer::Charge(int64_t tasks) {
  absl::MutexLock lock(&mutex_);
  const absl::Time now = clock_->Now();
  const double rate = RateNow(now);
  if (rate <= 0 || tasks <= 0) return;
  paid_until_ = std::max(paid_until_, now) +
                absl::Nanoseconds(static_cast<int64_t>(
                    static_cast<double>(tasks) * 1e9 / rate));
}

}  // namespace tasktrail
