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

// What one row of stats counts (GetStatsRequest.group_by): a model, one
// route of a model, or one group of a model.
enum class StatsScope { kModel, kRoute, kGroup };

// The name of a counter of a route's or group's row: "route" or "group",
// then the route or group, then `name`, joined by '\x1f' (on-disk; routes
// and groups hold no control characters, so the parts never mix). The
// model's own counters (kModel) are named `name` alone, as before rows by
// route and group existed.
std::string ScopedCounterName(StatsScope scope, absl::string_view value,
                              absl::string_view name);

// A counter name parsed back; nullopt for a name CounterName (or
// ScopedCounterName) never builds.
struct ParsedCounterName {
  CounterKind kind = CounterKind::kRejected;
  std::string detail;
  StatsScope scope = StatsScope::kModel;
  std::string scope_value;  // the route or group; empty for kModel
};
absl::optional<ParsedCounterName> ParseCounterName(absl::string_view name);

// What a kept duration sample measures.
enum class SampleKind {
  kQueueWait,  // QUEUED to STARTED or the finish
  kRunTime,    // STARTED to the finish
  kEndToEnd,   // submitted to the finish
};

// The series a duration sample is kept in: the `model` part of its
// QueueSampleKey, and what TaskStore::ScanQueueSamples reads. A model's
// queue waits are kept under the model's name (as before other series
// existed); every other series under '\x1f', the kind's letter ('q', 'r',
// 'e'), the scope's letter ('m', 'r', 'g'), '\x1f', the route or group,
// '\x1f', the model (none of which holds a control character).
// Each series keeps its newest kQueueSamplesKept samples.
std::string SampleSeries(SampleKind kind, absl::string_view model,
                         StatsScope scope = StatsScope::kModel,
                         absl::string_view value = "");

// Queue-wait samples: the newest kQueueSamplesKept per model are kept (the
// writer drops the oldest as it adds one); compaction drops any older than
// kQueueSampleRetentionMinutes that a race may have left behind.
inline constexpr size_t kQueueSamplesKept = 1000;
inline constexpr int64_t kQueueSampleRetentionMinutes = 30 * 24 * 60;

}  // namespace tasktrail::store

#endif  // TASKTRAIL_STORE_RECORDS_H_
