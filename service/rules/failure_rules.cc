#include "service/rules/failure_rules.h"

#include <cstdlib>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
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
    } else if (rule.error_codes(i) == "*") {
      checker->Fail(absl::StrCat(path, ".error_codes[", i, "]"),
                    "is \"*\" alone (it would match every code)");
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
  if (absl::StripAsciiWhitespace(rule.vendor()) != rule.vendor()) {
    checker->Fail(path + ".vendor",
                  absl::StrCat("\"", absl::CEscape(rule.vendor()),
                               "\" has leading or trailing whitespace"));
  }
}

// Checks that every rule has an id no earlier rule has.
void CheckIds(const v1::FailureRules& document, DocumentChecker* checker) {
  absl::flat_hash_map<std::string, int> first_with_id;
  for (int i = 0; i < document.rules_size() && !checker->failed(); ++i) {
    const std::string path = absl::StrCat("rules[", i, "].id");
    const std::string& id = document.rules(i).id();
    if (id.empty()) {
      checker->Fail(path, "is empty; every rule needs an id");
      continue;
    }
    const auto [it, inserted] = first_with_id.emplace(id, i);
    if (!inserted) {
      checker->Fail(path, absl::StrCat("\"", absl::CEscape(id),
                                       "\" is already the id of rules[",
                                       it->second, "]"));
    }
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
  CheckIds(document, &checker);
  if (checker.failed()) return checker.status();

  if (document.version().empty()) {
    document.set_version(ContentVersion(document));
  }
  std::shared_ptr<FailureClassifier> classifier(new FailureClassifier());
  classifier->document_ = std::move(document);
  for (int i = 0; i < classifier->document_.rules_size(); ++i) {
    const std::string& vendor = classifier->document_.rules(i).vendor();
    Scope* scope = vendor.empty()
                       ? &classifier->generic_
                       : &classifier->by_vendor_[absl::AsciiStrToLower(vendor)];
    classifier->AddRule(i, scope);
  }
  return std::shared_ptr<const FailureClassifier>(std::move(classifier));
}

void FailureClassifier::AddRule(int index, Scope* scope) const {
  const v1::FailureRule& rule = document_.rules(index);
  for (const std::string& code : rule.error_codes()) {
    std::string lower = absl::AsciiStrToLower(code);
    if (absl::EndsWith(lower, "*")) {
      lower.pop_back();
      scope->code_prefixes.push_back({std::move(lower), index});
    } else {
      // emplace keeps the first rule naming a code.
      scope->by_code.emplace(std::move(lower), index);
    }
  }
  for (const std::string& fragment : rule.message_contains()) {
    scope->fragments.push_back({absl::AsciiStrToLower(fragment), index});
  }
  if (scope->by_status.empty()) {
    scope->by_status.assign(kMaxStatus - kMinStatus + 1, -1);
  }
  auto claim = [&](int32_t status) {
    int& slot = scope->by_status[status - kMinStatus];
    if (slot < 0) slot = index;
  };
  for (int32_t status : rule.http_statuses()) claim(status);
  if (HasRange(rule)) {
    for (int32_t s = rule.http_status_min(); s <= rule.http_status_max(); ++s) {
      claim(s);
    }
  }
}

int FailureClassifier::Match(const Scope& scope, int32_t http_status,
                             absl::string_view lower_code,
                             absl::string_view lower_message) {
  if (!lower_code.empty()) {
    int winner = -1;
    const auto it = scope.by_code.find(lower_code);
    if (it != scope.by_code.end()) winner = it->second;
    // Prefixes are stored rule by rule in file order: the first hit is the
    // earliest prefix rule, which wins over a later exact one.
    for (const Fragment& prefix : scope.code_prefixes) {
      if (winner >= 0 && prefix.rule > winner) break;
      if (absl::StartsWith(lower_code, prefix.text)) {
        winner = prefix.rule;
        break;
      }
    }
    if (winner >= 0) return winner;
  }
  if (!lower_message.empty()) {
    // Fragments are stored rule by rule in file order, so the first hit
    // belongs to the first matching rule.
    for (const Fragment& fragment : scope.fragments) {
      if (absl::StrContains(lower_message, fragment.text)) return fragment.rule;
    }
  }
  if (http_status >= kMinStatus && http_status <= kMaxStatus &&
      !scope.by_status.empty()) {
    return scope.by_status[http_status - kMinStatus];
  }
  return -1;
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

v1::Failure FailureClassifier::Classify(absl::string_view vendor,
                                        int32_t http_status,
                                        absl::string_view error_code,
                                        absl::string_view message) const {
  const std::string lower_code = absl::AsciiStrToLower(error_code);
  const std::string lower_message = absl::AsciiStrToLower(message);
  int winner = -1;
  if (!vendor.empty()) {
    const auto scope = by_vendor_.find(absl::AsciiStrToLower(vendor));
    if (scope != by_vendor_.end()) {
      winner = Match(scope->second, http_status, lower_code, lower_message);
    }
  }
  if (winner < 0) {
    winner = Match(generic_, http_status, lower_code, lower_message);
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
  failure.set_rule(rule.id());
  return failure;
}

}  // namespace tasktrail
