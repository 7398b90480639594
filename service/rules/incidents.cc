#include "service/rules/incidents.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "service/rules/queue_verdict.h"

namespace tasktrail {
namespace {

bool IsProviderSideCategory(absl::string_view category) {
  return category == "RATE_LIMITED" || category == "TIMEOUT" ||
         category == "UPSTREAM_UNAVAILABLE" || category == "STREAM_INTERRUPTED";
}

// "F of N finished tasks failed in the last WINDOW, all provider-side
// (CATEGORY n, ...)".
std::string FailureSummary(const FailureEvidence& evidence,
                           absl::Duration window) {
  // The provider-side categories, most frequent first.
  std::vector<std::pair<int64_t, std::string>> categories;
  for (const auto& [category, count] : evidence.failures_by_category) {
    if (IsProviderSideCategory(category)) {
      categories.emplace_back(-count, category);
    }
  }
  std::sort(categories.begin(), categories.end());
  std::vector<std::string> names;
  for (const auto& [negative_count, category] : categories) {
    names.push_back(absl::StrCat(category, " ", -negative_count));
  }
  return absl::StrCat(evidence.failed, " of ", evidence.finished,
                      " finished tasks failed in the last ", HumanSpan(window),
                      ", ",
                      evidence.provider_failed == evidence.failed
                          ? std::string("all")
                          : absl::StrCat(evidence.provider_failed, " of them"),
                      " provider-side (", absl::StrJoin(names, ", "), ")");
}

}  // namespace

bool LooksLikeProviderIncident(const FailureEvidence& evidence) {
  return evidence.finished >= kIncidentMinFinished &&
         evidence.failed * 2 >= evidence.finished &&
         evidence.provider_failed * 10 >= evidence.failed * 8;
}

bool IsHealthyRow(const FailureEvidence& evidence) {
  return evidence.finished >= kIncidentMinFinished &&
         !LooksLikeProviderIncident(evidence);
}

absl::optional<std::string> ProviderIncidentSentence(
    absl::string_view label, const FailureEvidence& evidence,
    absl::Duration window) {
  if (!LooksLikeProviderIncident(evidence)) return absl::nullopt;
  return absl::StrCat(label, ": ", FailureSummary(evidence, window),
                      " — likely a provider incident, not configuration");
}

std::vector<std::string> RouteIncidentSentences(
    absl::string_view model, const std::vector<RouteEvidence>& routes,
    const FailureEvidence& model_total, absl::Duration window) {
  std::vector<std::string> sentences;
  for (const RouteEvidence& bad : routes) {
    if (!LooksLikeProviderIncident(bad.evidence)) continue;
    std::vector<std::string> fine;
    for (const RouteEvidence& other : routes) {
      if (&other == &bad || !IsHealthyRow(other.evidence)) continue;
      fine.push_back(absl::StrCat(other.route, ": ", other.evidence.failed,
                                  " of ", other.evidence.finished, " failed"));
    }
    if (fine.empty()) continue;
    sentences.push_back(absl::StrCat(
        "route ", bad.route, " of ", model, ": ",
        FailureSummary(bad.evidence, window),
        " — other routes of the model are fine (", absl::StrJoin(fine, ", "),
        "): a route or key problem, not the provider"));
  }
  if (sentences.empty()) {
    if (absl::optional<std::string> provider =
            ProviderIncidentSentence(model, model_total, window)) {
      sentences.push_back(*std::move(provider));
    }
  }
  return sentences;
}

}  // namespace tasktrail
