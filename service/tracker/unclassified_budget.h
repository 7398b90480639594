// UnclassifiedBudget: bounds how many distinct unclassified failure messages
// are counted per model and minute, so that a flood of messages that
// normalisation cannot fold (each naming something new) costs a bounded
// number of counters (store/records.h, CounterKind::kUnclassifiedMessage)
// and a bounded GetStats.
//
// The first kMaxUnclassifiedPerMinute distinct messages of a model in a
// minute are counted under their own text; later distinct ones in the same
// minute are counted together under kOtherUnclassifiedMessages, which GetStats
// ranks like any message. The budget lives in memory: after a restart a
// minute already partly counted may take up to that many distinct messages
// again. Only the minutes within one of the latest one asked about are kept.
//
// Thread safety: safe to call concurrently.
#ifndef TASKTRAIL_SERVICE_TRACKER_UNCLASSIFIED_BUDGET_H_
#define TASKTRAIL_SERVICE_TRACKER_UNCLASSIFIED_BUDGET_H_

#include <cstdint>
#include <map>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace tasktrail {

// Distinct unclassified messages counted per model and minute.
inline constexpr int kMaxUnclassifiedPerMinute = 10;

// What the messages beyond that are counted as.
inline constexpr absl::string_view kOtherUnclassifiedMessages =
    "(other messages)";

class UnclassifiedBudget {
 public:
  explicit UnclassifiedBudget(int max_per_minute = kMaxUnclassifiedPerMinute)
      : max_per_minute_(max_per_minute) {}

  UnclassifiedBudget(const UnclassifiedBudget&) = delete;
  UnclassifiedBudget& operator=(const UnclassifiedBudget&) = delete;

  // The text to count the normalised `message` under for `model` in
  // `unix_minute`: `message` itself when it was admitted in that minute
  // before or fewer than max_per_minute messages were, else
  // kOtherUnclassifiedMessages.
  std::string Admit(int64_t unix_minute, absl::string_view model,
                    absl::string_view message);

 private:
  const int max_per_minute_;
  absl::Mutex mutex_;
  // Minute -> model -> the messages admitted.
  std::map<int64_t,
           absl::flat_hash_map<std::string, absl::flat_hash_set<std::string>>>
      admitted_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace tasktrail

#endif  // TASKTRAIL_SERVICE_TRACKER_UNCLASSIFIED_BUDGET_H_
