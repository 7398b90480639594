// Task ids: 26 characters of Crockford base32 (a ULID): 48 bits of
// milliseconds since the Unix epoch, then 80 bits that are random for the
// first id of a millisecond and incremented for later ones. Ids are opaque,
// URL-safe and sort (as strings) by creation time, also within a millisecond
// of one process.
//
// Thread safety: TaskIdGenerator::Next is safe to call concurrently.
#ifndef TASKTRAIL_SERVICE_RULES_TASK_ID_H_
#define TASKTRAIL_SERVICE_RULES_TASK_ID_H_

#include <cstdint>
#include <random>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace tasktrail {

inline constexpr size_t kTaskIdLength = 26;

class TaskIdGenerator {
 public:
  // `seed` fixes the random part, for tests; 0 seeds from the OS.
  explicit TaskIdGenerator(uint64_t seed = 0);

  // Returns a new id for a task created at `now`. Ids from one generator are
  // strictly increasing even if `now` goes backwards.
  std::string Next(absl::Time now);

 private:
  absl::Mutex mutex_;
  std::mt19937_64 random_ ABSL_GUARDED_BY(mutex_);
  uint64_t last_millis_ ABSL_GUARDED_BY(mutex_) = 0;
  // The 80-bit random part: high 16 bits and low 64 bits.
  uint16_t last_high_ ABSL_GUARDED_BY(mutex_) = 0;
  uint64_t last_low_ ABSL_GUARDED_BY(mutex_) = 0;
};

// True when `id` has the shape of a task id (26 Crockford base32 characters).
bool LooksLikeTaskId(absl::string_view id);

// The creation time encoded in a task id. REQUIRES: LooksLikeTaskId(id).
absl::Time TaskIdTime(absl::string_view id);

// The smallest task id whose creation time (TaskIdTime) is the millisecond
// of `t` (rounded down; clamped to the 48-bit range of ids): every id made at
// or after `t` by a TaskIdGenerator is >= it, every id of an earlier
// millisecond is below it. Not itself a generated id.
std::string TaskIdFloor(absl::Time t);

}  // namespace tasktrail

#endif  // TASKTRAIL_SERVICE_RULES_TASK_ID_H_
