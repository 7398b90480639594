// FailureClassifier: turns an upstream failure (HTTP status, error code,
// message) into a category, an origin, a retry verdict and a cause in plain
// words, following a rule table loaded from the proto3 JSON of
// v1::FailureRules (the file `tasktraild --failure-rules` reads; the built-in
// table is service/rules/default_failure_rules.json compiled into the binary).
// A table given on the command line replaces the built-in one; it is not merged
// with it.
//
// Scopes: a rule with a `vendor` applies only to tasks of that vendor (the
// catalog vendor of the task's model, compared case-insensitively); a rule
// without one is generic. The vendor's rules are consulted first, then the
// generic ones, so a provider's documented vocabulary wins and the generic
// rules catch what no provider rule names.
//
// Precedence inside a scope: a rule matching the error code
// (case-insensitive, exact, or a prefix when the rule's code ends in "*")
// wins over a rule matching the message (case-insensitive substring), which
// wins over a rule matching the HTTP status (exact or inclusive range); within
// one kind the first matching rule in file order wins. Case folding is ASCII
// only; non-ASCII fragments match byte for byte.
//
// Thread safety: a FailureClassifier is immutable once built and safe to
// share between threads.
#ifndef TASKTRAIL_SERVICE_RULES_FAILURE_RULES_H_
#define TASKTRAIL_SERVICE_RULES_FAILURE_RULES_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "tasktrail/v1/failure_rules.pb.h"
#include "tasktrail/v1/task.pb.h"

namespace tasktrail {

// The cause of a failure the gateway reported as its own (FailedDetail.
// by_gateway): its origin is FAILURE_ORIGIN_GATEWAY whatever a rule says.
inline constexpr char kGatewayGaveUpCause[] =
    "the gateway gave up on the task itself (its poller's timeout or a local "
    "error), not the provider; the provider may still finish it: record what "
    "it reports then as late_result";

// The cause given when no rule matches.
inline constexpr char kUnrecognisedFailureCause[] =
    "the upstream failed for a reason tasktrail does not recognise; see the "
    "raw message";

class FailureClassifier {
 public:
  // Parses and checks a rules document. Errors: INVALID_ARGUMENT whose
  // message starts with `origin` and names the offending rule's path (for
  // example "rules[3].http_statuses[0]: 700 is outside 100..599") when the
  // JSON is not a FailureRules document, the table has no rules, or a rule
  // has an empty id or one an earlier rule has, no evidence, more than one kind
  // of evidence (error codes, message fragments, HTTP statuses and/or range),
  // an UNSPECIFIED category or origin, an empty cause, a range with min > max
  // or a bound outside 100..599, a status outside 100..599, an empty string in
  // error_codes or message_contains, an error code that is "*" alone, or a
  // vendor with leading or trailing whitespace.
  static absl::StatusOr<std::shared_ptr<const FailureClassifier>> FromJson(
      absl::string_view json, absl::string_view origin);

  // Reads and parses a rules file; errors as FromJson (with the path as
  // origin), or as ReadOperatorFile (a file that is missing, not a regular
  // file or over 4 MiB).
  static absl::StatusOr<std::shared_ptr<const FailureClassifier>> FromFile(
      const std::string& path);

  // The table compiled into the binary
  // (service/rules/default_failure_rules.json). Aborts if that table is broken:
  // the tests load it, so that is a build defect.
  static std::shared_ptr<const FailureClassifier> BuiltIn();

  // Classifies an upstream failure of a task whose model belongs to
  // `vendor` (empty when the catalog does not know the model: only the
  // generic rules apply). `http_status` 0 means none; statuses outside
  // 100..599 match no status rule. Fills category, origin, retryable, cause
  // and rule (the winning rule's id) from the winning rule, or UNKNOWN /
  // UNKNOWN / false / kUnrecognisedFailureCause / "" when none matches, and
  // copies `http_status`, `error_code` and `message` into the result
  // unchanged.
  v1::Failure Classify(absl::string_view vendor, int32_t http_status,
                       absl::string_view error_code,
                       absl::string_view message) const;

  // The document's `version`, or "sha256:" and 16 hex digits of its content
  // (deterministic serialization of the parsed document, so formatting does
  // not change it).
  const std::string& version() const { return document_.version(); }

  // The document, with `version` filled in.
  const v1::FailureRules& document() const { return document_; }

 private:
  // Lowest and highest HTTP status a rule may name.
  static constexpr int32_t kMinStatus = 100;
  static constexpr int32_t kMaxStatus = 599;

  // A lower-cased message fragment or error code prefix, and the index of
  // its rule.
  struct Fragment {
    std::string text;
    int rule;
  };

  // The lookup tables of the rules of one scope (a vendor, or generic).
  struct Scope {
    // Lower-cased exact error code -> index of the first rule naming it.
    absl::flat_hash_map<std::string, int> by_code;
    // Error code prefixes (a code "SAFETY.*" without its "*"), in file order.
    std::vector<Fragment> code_prefixes;
    // Message fragments, in file order.
    std::vector<Fragment> fragments;
    // status - kMinStatus -> index of the first rule matching it, or -1.
    std::vector<int> by_status;
  };

  FailureClassifier() = default;

  // Adds rule `index` of `document_` to `scope`.
  void AddRule(int index, Scope* scope) const;

  // The index of the rule of `scope` that decides, or -1. `lower_code` and
  // `lower_message` are lower-cased.
  static int Match(const Scope& scope, int32_t http_status,
                   absl::string_view lower_code,
                   absl::string_view lower_message);

  v1::FailureRules document_;
  Scope generic_;
  // Lower-cased vendor -> the rules scoped to it.
  absl::flat_hash_map<std::string, Scope> by_vendor_;
};

}  // namespace tasktrail

#endif  // TASKTRAIL_SERVICE_RULES_FAILURE_RULES_H_
