#include "store/records.h"

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

}  // namespace

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
      return ParsedCounterName{
          prefixed.kind, std::string(name.substr(prefixed.prefix.size()))};
    }
  }
  if (name == kRejected) return ParsedCounterName{CounterKind::kRejected, ""};
  if (name == kDuplicatesBlocked) {
    return ParsedCounterName{CounterKind::kDuplicatesBlocked, ""};
  }
  return absl::nullopt;
}

}  // namespace tasktrail::store
