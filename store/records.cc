#include "store/records.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace tasktrail::store {
namespace {

constexpr absl::string_view kEnteredStatePrefix = "state:";
constexpr absl::string_view kFailureCategoryPrefix = "failure_category:";
constexpr absl::string_view kFailureOriginPrefix = "failure_origin:";
constexpr absl::string_view kRejectedPrefix = "rejected:";
constexpr absl::string_view kUnclassifiedPrefix = "unclassified:";
constexpr absl::string_view kLateResultPrefix = "late_result:";
constexpr absl::string_view kRejected = "rejected";
constexpr absl::string_view kDuplicatesBlocked = "duplicates_blocked";
constexpr char kScopeSeparator = '\x1f';
constexpr absl::string_view kRouteScope = "route";
constexpr absl::string_view kGroupScope = "group";

// A counter name without a scope, parsed.
absl::optional<ParsedCounterName> ParseModelCounterName(
    absl::string_view name) {
  struct Prefixed {
    absl::string_view prefix;
    CounterKind kind;
  };
  static constexpr Prefixed kPrefixed[] = {
      {kEnteredStatePrefix, CounterKind::kEnteredState},
      {kFailureCategoryPrefix, CounterKind::kFailureCategory},
      {kFailureOriginPrefix, CounterKind::kFailureOrigin},
      {kRejectedPrefix, CounterKind::kRejectedReason},
      {kUnclassifiedPrefix, CounterKind::kUnclassifiedMessage},
      {kLateResultPrefix, CounterKind::kLateResult},
  };
  for (const Prefixed& prefixed : kPrefixed) {
    if (absl::StartsWith(name, prefixed.prefix)) {
      ParsedCounterName parsed;
      parsed.kind = prefixed.kind;
      parsed.detail = std::string(name.substr(prefixed.prefix.size()));
      return parsed;
    }
  }
  ParsedCounterName parsed;
  if (name == kRejected) {
    parsed.kind = CounterKind::kRejected;
    return parsed;
  }
  if (name == kDuplicatesBlocked) {
    parsed.kind = CounterKind::kDuplicatesBlocked;
    return parsed;
  }
  return absl::nullopt;
}

}  // namespace

std::string ScopedCounterName(StatsScope scope, absl::string_view value,
                              absl::string_view name) {
  switch (scope) {
    case StatsScope::kModel:
      break;
    case StatsScope::kRoute:
      return absl::StrCat(kRouteScope, std::string(1, kScopeSeparator), value,
                          std::string(1, kScopeSeparator), name);
    case StatsScope::kGroup:
      return absl::StrCat(kGroupScope, std::string(1, kScopeSeparator), value,
                          std::string(1, kScopeSeparator), name);
  }
  return std::string(name);
}

std::string SampleSeries(SampleKind kind, absl::string_view model,
                         StatsScope scope, absl::string_view value) {
  if (kind == SampleKind::kQueueWait && scope == StatsScope::kModel) {
    return std::string(model);
  }
  std::string series(1, kScopeSeparator);
  series.push_back(kind == SampleKind::kQueueWait ? 'q'
                   : kind == SampleKind::kRunTime ? 'r'
                                                  : 'e');
  series.push_back(scope == StatsScope::kModel   ? 'm'
                   : scope == StatsScope::kRoute ? 'r'
                                                 : 'g');
  series.push_back(kScopeSeparator);
  absl::StrAppend(&series, value, std::string(1, kScopeSeparator), model);
  return series;
}

std::string CounterName(CounterKind kind, absl::string_view detail) {
  switch (kind) {
    case CounterKind::kEnteredState:
      return absl::StrCat(kEnteredStatePrefix, detail);
    case CounterKind::kFailureCategory:
      return absl::StrCat(kFailureCategoryPrefix, detail);
    case CounterKind::kFailureOrigin:
      return absl::StrCat(kFailureOriginPrefix, detail);
    case CounterKind::kRejectedReason:
      return absl::StrCat(kRejectedPrefix, detail);
    case CounterKind::kRejected:
      return std::string(kRejected);
    case CounterKind::kDuplicatesBlocked:
      return std::string(kDuplicatesBlocked);
    case CounterKind::kUnclassifiedMessage:
      return absl::StrCat(kUnclassifiedPrefix, detail);
    case CounterKind::kLateResult:
      return absl::StrCat(kLateResultPrefix, detail);
  }
  return "";
}

absl::optional<ParsedCounterName> ParseCounterName(absl::string_view name) {
  StatsScope scope = StatsScope::kModel;
  std::string scope_value;
  for (const auto& [prefix, prefix_scope] :
       {std::make_pair(kRouteScope, StatsScope::kRoute),
        std::make_pair(kGroupScope, StatsScope::kGroup)}) {
    if (name.size() > prefix.size() && absl::StartsWith(name, prefix) &&
        name[prefix.size()] == kScopeSeparator) {
      const absl::string_view rest = name.substr(prefix.size() + 1);
      const size_t end = rest.find(kScopeSeparator);
      if (end == absl::string_view::npos) return absl::nullopt;
      scope = prefix_scope;
      scope_value = std::string(rest.substr(0, end));
      name = rest.substr(end + 1);
      break;
    }
  }
  absl::optional<ParsedCounterName> parsed = ParseModelCounterName(name);
  if (parsed.has_value()) {
    parsed->scope = scope;
    parsed->scope_value = std::move(scope_value);
  }
  return parsed;
}

}  // namespace tasktrail::store
