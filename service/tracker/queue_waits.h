// QueueWaits: each model's recent queue waits (QUEUED -> STARTED or
// finished), the evidence behind "is that a normal wait?".
//
// Samples are durable: the tracker writes each one (SampleMutations) in the
// WriteBatch of the transition that ends the wait, together with the delete
// of the sample that falls out of the newest kMaxSamples. An in-memory copy
// per model is loaded from the store on first use (one prefix scan of at most
// about kMaxSamples keys; no scan of tasks) and updated after each write.
//
// Thread safety: all methods are safe to call concurrently.
#ifndef TASKTRAIL_SERVICE_TRACKER_QUEUE_WAITS_H_
#define TASKTRAIL_SERVICE_TRACKER_QUEUE_WAITS_H_

#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "service/rules/typical_wait.h"
#include "store/task_store.h"

namespace tasktrail {

class QueueWaits {
 public:
  static constexpr size_t kMaxSamples = store::kQueueSamplesKept;

  // REQUIRES: `store` outlives this object.
  explicit QueueWaits(store::TaskStore* store) : store_(store) {}

  // The mutations that record one sample (and drop the oldest one when the
  // model already has kMaxSamples). Loads the model's samples if needed.
  absl::StatusOr<std::vector<store::RawMutation>> SampleMutations(
      absl::string_view model, absl::Time exit_time, absl::string_view task_id,
      absl::Duration wait);

  // Records a sample in memory; call after its mutations were written.
  void Add(absl::string_view model, absl::Time exit_time,
           absl::string_view task_id, absl::Duration wait);

  // p50/p90 over the model's newest (at most kMaxSamples) samples.
  absl::StatusOr<TypicalWait> Typical(absl::string_view model);

  // p50/p90 over the model's samples that left the queue at or after `since`.
  absl::StatusOr<TypicalWait> Since(absl::string_view model, absl::Time since);

 private:
  struct Sample {
    int64_t exit_micros = 0;
    std::string task_id;
    int64_t wait_micros = 0;
  };
  struct ModelSamples {
    std::deque<Sample> samples;           // oldest first
    absl::optional<TypicalWait> typical;  // cached; reset by Add
  };

  // Returns the model's samples, loading them from the store first if needed.
  absl::StatusOr<ModelSamples*> Load(absl::string_view model)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  store::TaskStore* const store_;
  absl::Mutex mutex_;
  absl::flat_hash_map<std::string, ModelSamples> models_
      ABSL_GUARDED_BY(mutex_);
};

}  // namespace tasktrail

#endif  // TASKTRAIL_SERVICE_TRACKER_QUEUE_WAITS_H_
