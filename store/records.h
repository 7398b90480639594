// The records the service keeps beside tasks, as the store lays them down:
// the names of the per-minute counters (the last part of a CounterKey) and
// their parsing, and how long queue-wait samples are kept. Their keys are
// built in keys.h; the named operations that read and write them are
// TaskStore's (GetDedupRecord, ScanCounters, ScanQueueSamples, WriteAudit,
// ScanAudit, and the RawMutation builders).
//
// Thread safety: all functions are pure.
#ifndef TASKTRAIL_STORE_RECORDS_H_
#define TASKTRAIL_STORE_RECORDS_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/types/optional.h"

namespace tasktrail::store {

// What a counter counts. The names below are on-disk strings: never rename.
enum class CounterKind {
  kEnteredState,       // "state:" + TaskState name without its prefix
  kFailureCategory,    // "failure_category:" + category without its prefix
  kFailureOrigin,      // "failure_origin:" + origin without its prefix
  kRejectedReason,     // "rejected:" + the violation's reason
  kRejected,           // "rejected": rejected submissions
  kDuplicatesBlocked,  // "duplicates_blocked": blocked duplicate submissions
  // "unclassified:" + a failure message no failure rule recognised, in its
  // normalised form (service/rules/unclassified.h)
  kUnclassifiedMessage,
  // "late_result:" + what a late upstream result said ("SUCCEEDED" or
  // "FAILED")
  kLateResult,
};

// The name of a counter of `kind`; `detail` completes the six kinds that
// have one (ignored by kRejected and kDuplicatesBlocked).
std::string CounterName(CounterKind kind, absl::string_view detail = "");

// A counter name parsed back; nullopt for a name CounterName never builds.
struct ParsedCounterName {
  CounterKind kind = CounterKind::kRejected;
  std::string detail;
};
absl::optional<ParsedCounterName> ParseCounterName(absl::string_view name);

// Queue-wait samples: the newest kQueueSamplesKept per model are kept (the
// writer drops the oldest as it adds one); compaction drops any older than
// kQueueSampleRetentionMinutes that a race may have left behind.
inline constexpr size_t kQueueSamplesKept = 1000;
inline constexpr int64_t kQueueSampleRetentionMinutes = 30 * 24 * 60;

}  // namespace tasktrail::store

#endif  // TASKTRAIL_STORE_RECORDS_H_
