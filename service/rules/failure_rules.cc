#include "service/rules/failure_rules.h"

#include <cstdlib>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/util/json_util.h"
#include "service/rules/digests.h"
#include "service/rules/operator_file.h"

namespace tasktrail {

extern const char kDefaultFailureRulesJson[];

namespace {

bool IsHttpStatus(int32_t status) { return status >= 100 && status <= 599; }

bool HasRange(const v1::FailureRule& rule) {
  return rule.http_status_min() != 0 || rule.http_status_max() != 0;
}

void CheckRule(const v1::FailureRule& rule, const std::string& path,
               DocumentChecker* checker) {
  const bool has_codes = rule.error_codes_size() > 0;
  const bool has_fragments = rule.message_contains_size() > 0;
  const bool has_statuses = rule.http_statuses_size() > 0 || HasRange(rule);
  const int kinds = int{has_codes} + int{has_fragments} + int{has_statuses};
  if (kinds == 0) {
    checker->Fail(path,
                  "has no evidence; give error_codes, message_contains, "
                  "http_statuses or http_status_min/http_status_max");
  } else if (kinds > 1) {
    checker->Fail(path,
                  "mixes kinds of evidence; a rule matches on error_codes, "
                  "or message_contains, or HTTP statuses, not several");
  }
  for (int i = 0; i < rule.error_codes_size(); ++i) {
    if (rule.error_codes(i).empty()) {
      checker->Fail(absl::StrCat(path, ".error_codes[", i, "]"), "is empty");
    }
  }
  for (int i = 0; i < rule.message_contains_size(); ++i) {
    if (rule.message_contains(i).empty()) {
      checker->Fail(absl::StrCat(path, ".message_contains[", i, "]"),
                    "is empty (it would match every message)");
    }
  }
  for (int i = 0; i < rule.http_statuses_size(); ++i) {
    if (!IsHttpStatus(rule.http_statuses(i))) {
      checker->Fail(
          absl::StrCat(path, ".http_statuses[", i, "]"),
          absl::StrCat(rule.http_statuses(i), " is outside 100..599"));
    }
  }
  if (HasRange(rule)) {
    if (!IsHttpStatus(rule.http_status_min())) {
      checker->Fail(
          path + ".http_status_min",
          absl::StrCat(rule.http_status_min(), " is outside 100..599"));
    }
    if (!IsHttpStatus(rule.http_status_max())) {
      checker->Fail(
          path + ".http_status_max",
          absl::StrCat(rule.http_status_max(), " is outside 100..599"));
    }
    if (rule.http_status_min() > rule.http_status_max()) {
      checker->Fail(path + ".http_status_min",
                    absl::StrCat("min ", rule.http_status_min(),
                                 " is above max ", rule.http_status_max()));
    }
  }
  if (rule.category() == v1::FAILURE_CATEGORY_UNSPECIFIED) {
    checker->Fail(path + ".category", "is unspecified");
  }
  if (rule.origin() == v1::FAILURE_ORIGIN_UNSPECIFIED) {
    checker->Fail(path + ".origin", "is unspecified");
  }
  if (rule.cause().empty()) {
    checker->Fail(path + ".cause", "is empty");
  }
}

}  // namespace

absl::StatusOr<std::shared_ptr<const FailureClassifier>>
FailureClassifier::FromJson(absl::string_view json, absl::string_view origin) {
  v1::FailureRules document;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  const auto parsed = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), &document,
      options);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        origin,
        ": not a failure rules document: ", std::string(parsed.message())));
  }
  DocumentChecker checker(origin);
  if (document.rules_size() == 0) checker.Fail("rules", "is empty");
  for (int i = 0; i < document.rules_size() && !checker.failed(); ++i) {
    CheckRule(document.rules(i), absl::StrCat("rules[", i, "]"), &checker);
  }
  if (checker.failed()) return checker.status();

  std::shared_ptr<FailureClassifier> classifier(new FailureClassifier());
  classifier->by_status_.assign(kMaxStatus - kMinStatus + 1, -1);
  for (int i = 0; i < document.rules_size(); ++i) {
    const v1::FailureRule& rule = document.rules(i);
    for (const std::string& code : rule.error_codes()) {
      // emplace keeps the first rule naming a code.
      classifier->by_code_.emplace(absl::AsciiStrToLower(code), i);
    }
    for (const std::string& fragment : rule.message_contains()) {
      classifier->fragments_.push_back({absl::AsciiStrToLower(fragment), i});
    }
    auto claim = [&](int32_t status) {
      int& slot = classifier->by_status_[status - kMinStatus];
      if (slot < 0) slot = i;
    };
    for (int32_t status : rule.http_statuses()) claim(status);
    if (HasRange(rule)) {
      for (int32_t s = rule.http_status_min(); s <= rule.http_status_max();
           ++s) {
        claim(s);
      }
    }
  }
  if (document.version().empty()) {
    document.set_version(ContentVersion(document));
  }
  classifier->document_ = std::move(document);
  return std::shared_ptr<const FailureClassifier>(std::move(classifier));
}

absl::StatusOr<std::shared_ptr<const FailureClassifier>>
FailureClassifier::FromFile(const std::string& path) {
  absl::StatusOr<std::string> text = ReadOperatorFile(path, "failure rules");
  if (!text.ok()) return text.status();
  return FromJson(*text, path);
}

std::shared_ptr<const FailureClassifier> FailureClassifier::BuiltIn() {
  static const auto* const kBuiltIn = [] {
    absl::StatusOr<std::shared_ptr<const FailureClassifier>> classifier =
        FromJson(kDefaultFailureRulesJson, "built-in failure rules");
    // The built-in table is checked by the tests; a broken one is a build
    // defect, not a runtime condition.
    if (!classifier.ok()) abort();
    return new std::shared_ptr<const FailureClassifier>(*std::move(classifier));
  }();
  return *kBuiltIn;
}

v1::Failure FailureClassifier::Classify(int32_t http_status,
                                        absl::string_view error_code,
                                        absl::string_view message) const {
  int winner = -1;
  if (!error_code.empty() && !by_code_.empty()) {
    const auto it = by_code_.find(absl::AsciiStrToLower(error_code));
    if (it != by_code_.end()) winner = it->second;
  }
  if (winner < 0 && !message.empty() && !fragments_.empty()) {
    const std::string lower = absl::AsciiStrToLower(message);
    // Fragments are stored rule by rule in file order, so the first hit
    // belongs to the first matching rule.
    for (const Fragment& fragment : fragments_) {
      if (absl::StrContains(lower, fragment.text)) {
        winner = fragment.rule;
        break;
      }
    }
  }
  if (winner < 0 && http_status >= kMinStatus && http_status <= kMaxStatus) {
    winner = by_status_[http_status - kMinStatus];
  }

  v1::Failure failure;
  failure.set_http_status(http_status);
  failure.set_error_code(std::string(error_code));
  failure.set_message(std::string(message));
  if (winner < 0) {
    failure.set_category(v1::FAILURE_CATEGORY_UNKNOWN);
    failure.set_origin(v1::FAILURE_ORIGIN_UNKNOWN);
    failure.set_retryable(false);
    failure.set_cause(kUnrecognisedFailureCause);
    return failure;
  }
  const v1::FailureRule& rule = document_.rules(winner);
  failure.set_category(rule.category());
  failure.set_origin(rule.origin());
  failure.set_retryable(rule.retryable());
  failure.set_cause(rule.cause());
  return failure;
}

}  // namespace tasktrail
