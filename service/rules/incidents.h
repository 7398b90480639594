// Incident sentences of GetStats: from the counts of a stats row (a model,
// or a route or group of a model) over a window, whether its failures look
// like a provider incident, and for the routes of one model, whether one bad
// route among healthy ones is a route or key problem instead.
//
// A row looks like a provider incident (LooksLikeProviderIncident) when, in
// the window, it has at least kIncidentMinFinished finished tasks, at least
// half of them failed, and at least 80 % of those failures are
// provider-side. A row is healthy (IsHealthyRow) when it has at least
// kIncidentMinFinished finished tasks and does not look like one.
//
// Thread safety: pure functions.
#ifndef TASKTRAIL_SERVICE_RULES_INCIDENTS_H_
#define TASKTRAIL_SERVICE_RULES_INCIDENTS_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"

namespace tasktrail {

inline constexpr int64_t kIncidentMinFinished = 5;

// What one stats row shows over the window.
struct FailureEvidence {
  int64_t finished = 0;         // SUCCEEDED + FAILED + CANCELED
  int64_t failed = 0;           // FAILED
  int64_t provider_failed = 0;  // FAILED with origin PROVIDER
  // Failures by category name (e.g. "TIMEOUT"), any order.
  std::vector<std::pair<std::string, int64_t>> failures_by_category;
};

bool LooksLikeProviderIncident(const FailureEvidence& evidence);
bool IsHealthyRow(const FailureEvidence& evidence);

// "`label`: F of N finished tasks failed in the last WINDOW, all (or P of
// them) provider-side (CATEGORY n, ...) — likely a provider incident, not
// configuration", when the row looks like a provider incident; else
// nullopt. `label` names the row: the model, or for a group "group G of
// MODEL".
absl::optional<std::string> ProviderIncidentSentence(
    absl::string_view label, const FailureEvidence& evidence,
    absl::Duration window);

// One route of a model and what it showed.
struct RouteEvidence {
  std::string route;
  FailureEvidence evidence;
};

// The incident sentences of one model grouped by route. Each route that
// looks like a provider incident while at least one other route of the
// model is healthy gets "route R of MODEL: F of N finished tasks failed in
// the last WINDOW, ... provider-side (...) — other routes of the model are
// fine (R2: 0 of 12 failed, ...): a route or key problem, not the
// provider". When no route is healthy, the model's own row (`model_total`,
// every task of the model whatever its route) gives the provider sentence
// of ProviderIncidentSentence, if it looks like a provider incident. Routes
// are taken in the order given.
std::vector<std::string> RouteIncidentSentences(
    absl::string_view model, const std::vector<RouteEvidence>& routes,
    const FailureEvidence& model_total, absl::Duration window);

}  // namespace tasktrail

#endif  // TASKTRAIL_SERVICE_RULES_INCIDENTS_H_
