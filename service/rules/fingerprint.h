// Canonical forms of a submission, for duplicate detection.
//
// A submission is reduced to a fixed list of parts (model, endpoint and each
// parameter) written canonically: prompts with whitespace collapsed and
// trimmed, ratios reduced ("1280:720" -> "16:9"), resolutions lower-cased
// without spaces, reference images by URI and size, optional values marked
// unset. From the parts come:
//  - the content fingerprint (SHA-256 over the account and every part): two
//    submissions with the same fingerprint are the same user intent;
//  - the request shape (8 bytes of SHA-256 per part, in order): kept with a
//    request_id so that a reuse with other parameters can name the fields
//    that differ.
// The part order is an on-disk format: append new parts, never reorder.
//
// Thread safety: all functions are pure.
#ifndef TASKTRAIL_SERVICE_RULES_FINGERPRINT_H_
#define TASKTRAIL_SERVICE_RULES_FINGERPRINT_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "tasktrail/v1/task.pb.h"

namespace tasktrail {

struct CanonicalPart {
  absl::string_view field;  // "model", "params.prompt", ...
  std::string text;
};

std::vector<CanonicalPart> CanonicalParts(absl::string_view model,
                                          absl::string_view endpoint,
                                          const v1::TaskParams& params);

// 32 bytes.
std::string ContentFingerprint(absl::string_view account_id,
                               const std::vector<CanonicalPart>& parts);

// 8 bytes per part.
std::string RequestShape(const std::vector<CanonicalPart>& parts);

// The fields whose parts differ between two shapes (a part missing from the
// shorter shape counts as differing).
std::vector<std::string> DifferingFields(absl::string_view shape_a,
                                         absl::string_view shape_b);

// Collapses runs of ASCII whitespace to one space and trims both ends.
std::string CollapseWhitespace(absl::string_view text);

}  // namespace tasktrail

#endif  // TASKTRAIL_SERVICE_RULES_FINGERPRINT_H_
