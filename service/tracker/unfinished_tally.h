// UnfinishedTally: the unfinished tasks (SUBMITTED, QUEUED, RUNNING) kept in
// memory, so that gauges of them cost little to read: counts per model and
// state, and the tasks POLLING_STALLED now (QUEUED or RUNNING with no
// upstream event for longer than `stale_after`, the rule of
// IsPollingStalled).
//
// Filled from the store once (Load, a pass over the unfinished index) and
// then told of every durable write of a task (Update, through the Tracker's
// observer), so that it is right after a restart and stays right.
//
// Cost: Update is O(log n) under a mutex; Count is O(models x states +
// stalled tasks), not O(unfinished tasks). Memory: roughly 200 bytes per
// unfinished task.
//
// Thread safety: thread-safe.
#ifndef TASKTRAIL_SERVICE_TRACKER_UNFINISHED_TALLY_H_
#define TASKTRAIL_SERVICE_TRACKER_UNFINISHED_TALLY_H_

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/node_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "service/tracker/tracker.h"

namespace tasktrail {

class UnfinishedTally {
 public:
  explicit UnfinishedTally(absl::Duration stale_after)
      : stale_after_(stale_after) {}

  UnfinishedTally(const UnfinishedTally&) = delete;
  UnfinishedTally& operator=(const UnfinishedTally&) = delete;

  // Adds every unfinished task of the store (Tracker::VisitUnfinished).
  // REQUIRES: no write runs meanwhile (call it before serving). Errors as
  // VisitUnfinished's.
  absl::Status Load(const Tracker& tracker);

  // Records `task` as it is after a durable write: kept while unfinished,
  // dropped once finished.
  void Update(absl::string_view task_id, absl::string_view model,
              v1::TaskState state, absl::Time last_upstream_event);

  // The counts at `now` (UnfinishedCounts's maps).
  UnfinishedCounts Count(absl::Time now) const;

 private:
  struct Entry {
    int model = 0;  // index into models_
    v1::TaskState state = v1::TASK_STATE_UNSPECIFIED;
    absl::Time last_upstream_event;
  };

  int ModelIndex(absl::string_view model) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  void Remove(const std::string* task_id, const Entry& entry)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  const absl::Duration stale_after_;
  mutable absl::Mutex mutex_;
  std::vector<std::string> models_ ABSL_GUARDED_BY(mutex_);
  absl::flat_hash_map<std::string, int> model_index_ ABSL_GUARDED_BY(mutex_);
  // Keys are stable: upstream_side_ points at them.
  absl::node_hash_map<std::string, Entry> tasks_ ABSL_GUARDED_BY(mutex_);
  // Tasks per (model index, state).
  std::map<std::pair<int, v1::TaskState>, int64_t> counts_
      ABSL_GUARDED_BY(mutex_);
  // QUEUED and RUNNING tasks by last upstream event, oldest first.
  std::set<std::pair<absl::Time, const std::string*>> upstream_side_
      ABSL_GUARDED_BY(mutex_);
};

}  // namespace tasktrail

#endif  // TASKTRAIL_SERVICE_TRACKER_UNFINISHED_TALLY_H_
