#include "service/tracker/stats.h"

#include <algorithm>
#include <map>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "service/rules/queue_verdict.h"
#include "service/rules/time_util.h"
#include "store/records.h"

namespace tasktrail {
namespace {

int64_t Get(const google::protobuf::Map<std::string, int64_t>& map,
            const std::string& key) {
  auto it = map.find(key);
  return it == map.end() ? 0 : it->second;
}

// A model's counts as they are gathered from the counters.
struct ModelCounts {
  v1::ModelStats stats;
  // Normalised unclassified message -> count.
  std::map<std::string, int64_t> unclassified;
};

// Adds one counter to the model's counts by its name.
void Count(absl::string_view name, int64_t value, ModelCounts* counts) {
  v1::ModelStats* stats = &counts->stats;
  const absl::optional<store::ParsedCounterName> parsed =
      store::ParseCounterName(name);
  if (!parsed.has_value()) return;
  auto add = [value,
              &parsed](google::protobuf::Map<std::string, int64_t>* map) {
    (*map)[parsed->detail] += value;
  };
  switch (parsed->kind) {
    case store::CounterKind::kEnteredState:
      add(stats->mutable_tasks_by_state());
      break;
    case store::CounterKind::kFailureCategory:
      add(stats->mutable_failures_by_category());
      break;
    case store::CounterKind::kFailureOrigin:
      add(stats->mutable_failures_by_origin());
      break;
    case store::CounterKind::kRejectedReason:
      add(stats->mutable_rejections_by_reason());
      break;
    case store::CounterKind::kDuplicatesBlocked:
      stats->set_duplicates_blocked(stats->duplicates_blocked() + value);
      break;
    case store::CounterKind::kRejected:
      break;  // the rejections are reported by reason
    case store::CounterKind::kUnclassifiedMessage:
      counts->unclassified[parsed->detail] += value;
      break;
    case store::CounterKind::kLateResult:
      add(stats->mutable_late_results());
      break;
  }
}

// A plain sentence when the model's failures look like a provider incident.
absl::optional<std::string> IncidentHint(const v1::ModelStats& stats,
                                         absl::Duration window) {
  const auto& states = stats.tasks_by_state();
  const int64_t failed = Get(states, "FAILED");
  const int64_t finished =
      Get(states, "SUCCEEDED") + failed + Get(states, "CANCELED");
  const int64_t provider = Get(stats.failures_by_origin(), "PROVIDER");
  if (finished < kIncidentMinFinished || failed * 2 < finished ||
      provider * 10 < failed * 8) {
    return absl::nullopt;
  }
  // The provider-side categories, most frequent first.
  std::vector<std::pair<int64_t, std::string>> categories;
  for (const auto& [category, count] : stats.failures_by_category()) {
    if (category == "RATE_LIMITED" || category == "TIMEOUT" ||
        category == "UPSTREAM_UNAVAILABLE" ||
        category == "STREAM_INTERRUPTED") {
      categories.emplace_back(-count, category);
    }
  }
  std::sort(categories.begin(), categories.end());
  std::vector<std::string> names;
  for (const auto& [negative_count, category] : categories) {
    names.push_back(absl::StrCat(category, " ", -negative_count));
  }
  return absl::StrCat(stats.model(), ": ", failed, " of ", finished,
                      " finished tasks failed in the last ", HumanSpan(window),
                      ", ",
                      provider == failed ? std::string("all")
                                         : absl::StrCat(provider, " of them"),
                      " provider-side (", absl::StrJoin(names, ", "),
                      ") — likely a provider incident, not configuration");
}

}  // namespace

void AddTopUnclassified(const std::map<std::string, int64_t>& counts,
                        v1::ModelStats* stats) {
  std::vector<std::pair<int64_t, const std::string*>> ranked;
  ranked.reserve(counts.size());
  for (const auto& [message, count] : counts) {
    ranked.emplace_back(count, &message);
  }
  const size_t shown =
      std::min(ranked.size(), static_cast<size_t>(kTopUnclassifiedMessages));
  // Most frequent first; `counts` is in byte order, which breaks ties.
  std::partial_sort(ranked.begin(), ranked.begin() + shown, ranked.end(),
                    [](const auto& a, const auto& b) {
                      if (a.first != b.first) return a.first > b.first;
                      return *a.second < *b.second;
                    });
  for (size_t i = 0; i < shown; ++i) {
    v1::UnclassifiedMessage* line = stats->add_unclassified();
    line->set_message(*ranked[i].second);
    line->set_count(ranked[i].first);
  }
}

absl::StatusOr<v1::Stats> ComputeStats(const store::TaskStore& store,
                                       QueueWaits* waits,
                                       absl::string_view model,
                                       absl::Duration window, absl::Time now) {
  const int64_t first_minute = absl::ToUnixSeconds(now - window) / 60;
  const int64_t last_minute = absl::ToUnixSeconds(now) / 60;
  std::map<std::string, ModelCounts> by_model;
  absl::Status scanned = store.ScanCounters(
      first_minute, last_minute + 1,
      [&](const store::ParsedCounterKey& counter, int64_t value) {
        if (!model.empty() && counter.model != model) return;
        ModelCounts& counts = by_model[counter.model];
        counts.stats.set_model(counter.model);
        Count(counter.name, value, &counts);
      });
  if (!scanned.ok()) return scanned;

  v1::Stats stats;
  *stats.mutable_window() = ToProtoDuration(window);
  *stats.mutable_compute_time() = ToProtoTime(now);
  for (auto& [name, counts] : by_model) {
    v1::ModelStats& model_stats = counts.stats;
    AddTopUnclassified(counts.unclassified, &model_stats);
    absl::StatusOr<TypicalWait> waited = waits->Since(name, now - window);
    if (!waited.ok()) return waited.status();
    *model_stats.mutable_queue_wait_p50() = ToProtoDuration(waited->p50);
    *model_stats.mutable_queue_wait_p90() = ToProtoDuration(waited->p90);
    if (absl::optional<std::string> hint = IncidentHint(model_stats, window)) {
      stats.add_incidents(*std::move(hint));
    }
    *stats.add_models() = std::move(model_stats);
  }
  return stats;
}

}  // namespace tasktrail
