// Validation of a task's model, group and parameters against the catalog,
// before anything is sent upstream. Every problem is reported at once, each
// as a FieldViolation with a field path (`params.aspect_ratio`,
// `params.reference_images[1].size_bytes`), a reason from the API vocabulary
// and a sentence that names the allowed values.
//
// Thread safety: pure; safe to call concurrently.
#ifndef TASKTRAIL_SERVICE_RULES_VALIDATOR_H_
#define TASKTRAIL_SERVICE_RULES_VALIDATOR_H_

#include <vector>

#include "absl/strings/string_view.h"
#include "service/rules/catalog.h"
#include "tasktrail/v1/tracker.pb.h"

namespace tasktrail {

// Whether an empty group is checked against a model's allowed groups.
enum class GroupCheck {
  kIfGiven,  // ValidateTask: an empty group is not checked
  kAlways,   // SubmitTask: an empty group fails a group-restricted model
};

struct ValidationResult {
  std::vector<v1::FieldViolation> violations;
  // The model's spec; nullptr when the model is unknown.
  const CompiledModel* model = nullptr;
  // The parameters with the model's defaults applied and shapes written the
  // catalog's way ("16 : 9" -> "16:9", "1080P" -> "1080p"). Meaningful only
  // when `violations` is empty.
  v1::TaskParams effective;
};

// The MODEL_UNKNOWN violation on `model` for a name the catalog does not
// have: the closest catalog names ("did you mean"), or, when the name only
// differs by spaces or invisible characters, the name the catalog has.
// REQUIRES: catalog.Find(model) == nullptr.
v1::FieldViolation UnknownModelViolation(const Catalog& catalog,
                                         absl::string_view model);

ValidationResult ValidateTask(const Catalog& catalog, absl::string_view model,
                              absl::string_view group, GroupCheck group_check,
                              const v1::TaskParams& params);

}  // namespace tasktrail

#endif  // TASKTRAIL_SERVICE_RULES_VALIDATOR_H_
