// Fuzzes ValidateTask against the built-in catalog. The input is a
// v1::ValidateTaskRequest (model, group, params): proto3 JSON when it starts
// with '{' (the seed corpus is written that way), else the binary wire
// format. Both group checks are run. Invariants: the model spec is returned
// exactly when the catalog has the model, every violation names a field, a
// reason and a sentence, and valid parameters stay valid once normalised
// (validating `effective` again finds nothing and changes nothing).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/strings/string_view.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "service/rules/catalog.h"
#include "service/rules/validator.h"
#include "tasktrail/v1/tracker.pb.h"

namespace {

void Check(bool condition) {
  if (!condition) __builtin_trap();
}

void Validate(const tasktrail::Catalog& catalog,
              const tasktrail::v1::ValidateTaskRequest& request,
              tasktrail::GroupCheck check) {
  const tasktrail::ValidationResult result = tasktrail::ValidateTask(
      catalog, request.model(), request.group(), check, request.params());
  Check((result.model != nullptr) ==
        (catalog.Find(request.model()) != nullptr));
  for (const auto& violation : result.violations) {
    Check(!violation.field().empty());
    Check(!violation.reason().empty());
    Check(!violation.description().empty());
  }
  if (result.violations.empty()) {
    Check(result.model != nullptr);
    const tasktrail::ValidationResult again = tasktrail::ValidateTask(
        catalog, request.model(), request.group(), check, result.effective);
    Check(again.violations.empty());
    Check(google::protobuf::util::MessageDifferencer::Equals(again.effective,
                                                             result.effective));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::shared_ptr<const tasktrail::Catalog> catalog =
      tasktrail::Catalog::BuiltIn();
  tasktrail::v1::ValidateTaskRequest request;
  if (size > 0 && data[0] == '{') {
    const std::string json(reinterpret_cast<const char*>(data), size);
    google::protobuf::util::JsonParseOptions options;
    options.ignore_unknown_fields = true;
    if (!google::protobuf::util::JsonStringToMessage(json, &request, options)
             .ok()) {
      return 0;
    }
  } else if (!request.ParseFromArray(data, static_cast<int>(size))) {
    return 0;
  }
  Validate(*catalog, request, tasktrail::GroupCheck::kIfGiven);
  Validate(*catalog, request, tasktrail::GroupCheck::kAlways);
  return 0;
}
