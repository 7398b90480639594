// Unclassified failures: failures that no failure rule recognised, counted
// per model by their message so that an operator sees which rule to add
// next (GetStats' ModelStats.unclassified).
//
// A message is counted in a normalised form, so that messages that differ
// only in the ids, numbers and URLs they carry fold into one line:
//   1. secrets are scrubbed (ScrubSecrets), as in every stored text;
//   2. URLs (a scheme such as "https://" or "gs://" and what follows up to
//      whitespace, a quote or an angle bracket, less a trailing '.', ',',
//      ';', ':', ')', ']' or '}') become "<url>";
//   3. UUIDs (8-4-4-4-12 hex digits) become "<id>";
//   4. each word (a run of ASCII letters and digits; any other character
//      separates words) is masked: digits only -> "<n>"; letters and digits
//      mixed, 8 or more characters long, or at least 6 hex digits with at
//      least one digit (a hex id, "4f1c9a") -> "<id>"; letters only and 32
//      or more long (an opaque token) -> "<id>"; shorter or plain words
//      ("v2", "1080p", "quota") stay;
//   5. control characters become spaces, runs of whitespace one space, and
//      leading and trailing whitespace goes;
//   6. at most kMaxUnclassifiedMessageBytes bytes are kept: the text is cut
//      before the first piece (word, mask or separator) that does not fit,
//      and "…" marks the cut.
// An empty result is kNoUnclassifiedMessage. Normalising is idempotent:
// NormaliseFailureMessage(NormaliseFailureMessage(m)) ==
// NormaliseFailureMessage(m).
//
// Thread safety: pure functions; safe to call concurrently.
#ifndef TASKTRAIL_SERVICE_RULES_UNCLASSIFIED_H_
#define TASKTRAIL_SERVICE_RULES_UNCLASSIFIED_H_

#include <cstddef>
#include <string>

#include "absl/strings/string_view.h"
#include "tasktrail/v1/task.pb.h"

namespace tasktrail {

// The longest normalised message, in bytes (the "…" of a cut included).
inline constexpr size_t kMaxUnclassifiedMessageBytes = 160;

// What an unclassified failure without a message is counted as.
inline constexpr absl::string_view kNoUnclassifiedMessage = "(no message)";

// True when no failure rule decided `failure` (its `rule` is empty; its
// category and origin are then UNKNOWN).
inline bool IsUnclassified(const v1::Failure& failure) {
  return failure.rule().empty();
}

// The normalised form of an upstream failure message (see above).
std::string NormaliseFailureMessage(absl::string_view message);

}  // namespace tasktrail

#endif  // TASKTRAIL_SERVICE_RULES_UNCLASSIFIED_H_
