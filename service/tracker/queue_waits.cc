#include "service/tracker/queue_waits.h"

#include <algorithm>
#include <cmath>
#include <utility>

namespace tasktrail {

absl::StatusOr<QueueWaits::ModelSamples*> QueueWaits::Load(
    absl::string_view model) {
  auto it = models_.find(model);
  if (it != models_.end()) return &it->second;
  ModelSamples loaded;
  absl::Status scanned =
      store_->ScanQueueSamples(model, [&](store::QueueSample sample) {
        loaded.samples.push_back(Sample{sample.exit_unix_micros,
                                        std::move(sample.task_id),
                                        sample.wait_micros});
        if (loaded.samples.size() > kMaxSamples) loaded.samples.pop_front();
      });
  if (!scanned.ok()) return scanned;
  return &(models_[model] = std::move(loaded));
}

absl::StatusOr<std::vector<store::RawMutation>> QueueWaits::SampleMutations(
    absl::string_view model, absl::Time exit_time, absl::string_view task_id,
    absl::Duration wait) {
  absl::MutexLock lock(&mutex_);
  absl::StatusOr<ModelSamples*> samples = Load(model);
  if (!samples.ok()) return samples.status();
  std::vector<store::RawMutation> mutations;
  mutations.push_back(store::RawMutation::PutQueueSample(
      model, absl::ToUnixMicros(exit_time), task_id,
      absl::ToInt64Microseconds(wait)));
  if ((*samples)->samples.size() >= kMaxSamples) {
    const Sample& oldest = (*samples)->samples.front();
    mutations.push_back(store::RawMutation::DeleteQueueSample(
        model, oldest.exit_micros, oldest.task_id));
  }
  return mutations;
}

void QueueWaits::Add(absl::string_view model, absl::Time exit_time,
                     absl::string_view task_id, absl::Duration wait) {
  absl::MutexLock lock(&mutex_);
  absl::StatusOr<ModelSamples*> samples = Load(model);
  if (!samples.ok()) return;  // reloaded from the store on the next read
  (*samples)->samples.push_back(Sample{absl::ToUnixMicros(exit_time),
                                       std::string(task_id),
                                       absl::ToInt64Microseconds(wait)});
  while ((*samples)->samples.size() > kMaxSamples) {
    (*samples)->samples.pop_front();
  }
  (*samples)->typical.reset();
}

absl::StatusOr<TypicalWait> QueueWaits::Typical(absl::string_view model) {
  absl::MutexLock lock(&mutex_);
  absl::StatusOr<ModelSamples*> samples = Load(model);
  if (!samples.ok()) return samples.status();
  if (!(*samples)->typical.has_value()) {
    std::vector<int64_t> waits;
    waits.reserve((*samples)->samples.size());
    for (const Sample& sample : (*samples)->samples) {
      waits.push_back(sample.wait_micros);
    }
    (*samples)->typical = Percentiles(std::move(waits));
  }
  return *(*samples)->typical;
}

absl::StatusOr<TypicalWait> QueueWaits::Since(absl::string_view model,
                                              absl::Time since) {
  absl::MutexLock lock(&mutex_);
  absl::StatusOr<ModelSamples*> samples = Load(model);
  if (!samples.ok()) return samples.status();
  const int64_t since_micros = absl::ToUnixMicros(since);
  std::vector<int64_t> waits;
  for (const Sample& sample : (*samples)->samples) {
    if (sample.exit_micros >= since_micros) waits.push_back(sample.wait_micros);
  }
  return Percentiles(std::move(waits));
}

}  // namespace tasktrail
