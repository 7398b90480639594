#include "service/tracker/retention_sweeper.h"

#include <utility>

namespace tasktrail {

RetentionSweeper::RetentionSweeper(Tracker* tracker, Options options)
    : tracker_(tracker), options_(std::move(options)) {}

RetentionSweeper::~RetentionSweeper() { Stop(); }

void RetentionSweeper::Start() {
  if (thread_.joinable()) return;
  thread_ = std::thread([this] { Run(); });
}

void RetentionSweeper::Stop() {
  {
    absl::MutexLock lock(&mutex_);
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

bool RetentionSweeper::stopping() const {
  absl::MutexLock lock(&mutex_);
  return stop_;
}

absl::StatusOr<int64_t> RetentionSweeper::SweepNow() {
  absl::MutexLock sweeping(&sweep_mutex_);
  const int batch_size = std::max(options_.batch_size, 1);
  int64_t purged = 0;
  while (!stopping()) {
    absl::StatusOr<int> batch = tracker_->PurgeDueTasks(batch_size);
    if (!batch.ok()) return batch.status();
    purged += *batch;
    // A short batch: nothing more is due (or what is left is busy and
    // waits for the next sweep).
    if (*batch < batch_size) break;
    absl::MutexLock lock(&mutex_);
    mutex_.AwaitWithTimeout(absl::Condition(&stop_), options_.pause);
  }
  return purged;
}

void RetentionSweeper::Run() {
  while (!stopping()) {
    absl::StatusOr<int64_t> purged = SweepNow();
    if (options_.on_sweep != nullptr) {
      options_.on_sweep(purged.ok() ? *purged : 0, purged.status());
    }
    absl::MutexLock lock(&mutex_);
    mutex_.AwaitWithTimeout(absl::Condition(&stop_), options_.interval);
  }
}

}  // namespace tasktrail
