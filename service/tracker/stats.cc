#include "service/tracker/stats.h"

#include <algorithm>
#include <map>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "service/rules/incidents.h"
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

// Adds one counter to a row's counts.
void Count(const store::ParsedCounterName& parsed, int64_t value,
           ModelCounts* counts) {
  v1::ModelStats* stats = &counts->stats;
  auto add = [value,
              &parsed](google::protobuf::Map<std::string, int64_t>* map) {
    (*map)[parsed.detail] += value;
  };
  switch (parsed.kind) {
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
      counts->unclassified[parsed.detail] += value;
      break;
    case store::CounterKind::kLateResult:
      add(stats->mutable_late_results());
      break;
  }
}

// What a row's counts show to the incident rules.
FailureEvidence EvidenceOf(const v1::ModelStats& stats) {
  const auto& states = stats.tasks_by_state();
  FailureEvidence evidence;
  evidence.failed = Get(states, "FAILED");
  evidence.finished =
      Get(states, "SUCCEEDED") + evidence.failed + Get(states, "CANCELED");
  evidence.provider_failed = Get(stats.failures_by_origin(), "PROVIDER");
  for (const auto& [category, count] : stats.failures_by_category()) {
    evidence.failures_by_category.emplace_back(category, count);
  }
  return evidence;
}

// The row of a counter: the model, and the route or group when grouped so.
using RowKey = std::pair<std::string, std::string>;

// The incident sentences of the rows, in their order.
std::vector<std::string> Incidents(
    v1::StatsGroupBy group_by, const std::map<RowKey, ModelCounts>& rows,
    const std::map<std::string, ModelCounts>& model_totals,
    absl::Duration window) {
  std::vector<std::string> incidents;
  if (group_by == v1::STATS_GROUP_BY_ROUTE) {
    for (const auto& [model, totals] : model_totals) {
      std::vector<RouteEvidence> routes;
      for (auto it = rows.lower_bound({model, ""});
           it != rows.end() && it->first.first == model; ++it) {
        routes.push_back({it->first.second, EvidenceOf(it->second.stats)});
      }
      for (std::string& sentence : RouteIncidentSentences(
               model, routes, EvidenceOf(totals.stats), window)) {
        incidents.push_back(std::move(sentence));
      }
    }
    return incidents;
  }
  for (const auto& [key, counts] : rows) {
    const std::string label =
        group_by == v1::STATS_GROUP_BY_GROUP
            ? absl::StrCat("group ", key.second, " of ", key.first)
            : key.first;
    if (absl::optional<std::string> sentence =
            ProviderIncidentSentence(label, EvidenceOf(counts.stats), window)) {
      incidents.push_back(*std::move(sentence));
    }
  }
  return incidents;
}

// The sample series of a row (store::SampleSeries).
std::string SeriesOf(store::SampleKind kind, v1::StatsGroupBy group_by,
                     const RowKey& key) {
  switch (group_by) {
    case v1::STATS_GROUP_BY_ROUTE:
      return store::SampleSeries(kind, key.first, store::StatsScope::kRoute,
                                 key.second);
    case v1::STATS_GROUP_BY_GROUP:
      return store::SampleSeries(kind, key.first, store::StatsScope::kGroup,
                                 key.second);
    default:
      return store::SampleSeries(kind, key.first);
  }
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
                                       v1::StatsGroupBy group_by,
                                       absl::Duration window, absl::Time now) {
  if (group_by == v1::STATS_GROUP_BY_UNSPECIFIED) {
    group_by = v1::STATS_GROUP_BY_MODEL;
  }
  const store::StatsScope scope =
      group_by == v1::STATS_GROUP_BY_ROUTE   ? store::StatsScope::kRoute
      : group_by == v1::STATS_GROUP_BY_GROUP ? store::StatsScope::kGroup
                                             : store::StatsScope::kModel;
  const int64_t first_minute = absl::ToUnixSeconds(now - window) / 60;
  const int64_t last_minute = absl::ToUnixSeconds(now) / 60;
  std::map<RowKey, ModelCounts> rows;
  // Each model's own counts, for the provider sentence of rows by route.
  std::map<std::string, ModelCounts> model_totals;
  absl::Status scanned = store.ScanCounters(
      first_minute, last_minute + 1,
      [&](const store::ParsedCounterKey& counter, int64_t value) {
        if (!model.empty() && counter.model != model) return;
        const absl::optional<store::ParsedCounterName> parsed =
            store::ParseCounterName(counter.name);
        if (!parsed.has_value()) return;
        if (scope != store::StatsScope::kModel &&
            parsed->scope == store::StatsScope::kModel) {
          ModelCounts& totals = model_totals[counter.model];
          totals.stats.set_model(counter.model);
          Count(*parsed, value, &totals);
        }
        if (parsed->scope != scope) return;
        ModelCounts& counts = rows[{counter.model, parsed->scope_value}];
        counts.stats.set_model(counter.model);
        if (scope == store::StatsScope::kRoute) {
          counts.stats.set_route(parsed->scope_value);
        } else if (scope == store::StatsScope::kGroup) {
          counts.stats.set_group(parsed->scope_value);
        }
        Count(*parsed, value, &counts);
      });
  if (!scanned.ok()) return scanned;

  v1::Stats stats;
  *stats.mutable_window() = ToProtoDuration(window);
  *stats.mutable_compute_time() = ToProtoTime(now);
  for (std::string& sentence :
       Incidents(group_by, rows, model_totals, window)) {
    stats.add_incidents(std::move(sentence));
  }
  for (auto& [key, counts] : rows) {
    v1::ModelStats& row = counts.stats;
    AddTopUnclassified(counts.unclassified, &row);
    const struct {
      store::SampleKind kind;
      google::protobuf::Duration* p50;
      google::protobuf::Duration* p90;
    } kinds[] = {
        {store::SampleKind::kQueueWait, row.mutable_queue_wait_p50(),
         row.mutable_queue_wait_p90()},
        {store::SampleKind::kRunTime, row.mutable_run_time_p50(),
         row.mutable_run_time_p90()},
        {store::SampleKind::kEndToEnd, row.mutable_end_to_end_p50(),
         row.mutable_end_to_end_p90()},
    };
    for (const auto& kind : kinds) {
      absl::StatusOr<TypicalWait> typical =
          waits->Since(SeriesOf(kind.kind, group_by, key), now - window);
      if (!typical.ok()) return typical.status();
      *kind.p50 = ToProtoDuration(typical->p50);
      *kind.p90 = ToProtoDuration(typical->p90);
    }
    *stats.add_models() = std::move(row);
  }
  return stats;
}

}  // namespace tasktrail
