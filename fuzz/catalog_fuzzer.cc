// Fuzzes Catalog::FromJson with any bytes as the catalog document (a file an
// operator edits by hand). A document is either refused with INVALID_ARGUMENT
// naming the origin, or loads into a catalog whose every model can be found,
// suggested and validated against.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "service/rules/catalog.h"
#include "service/rules/validator.h"
#include "tasktrail/v1/tracker.pb.h"

namespace {

void Check(bool condition) {
  if (!condition) __builtin_trap();
}

constexpr absl::string_view kOrigin = "fuzz.json";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view json(reinterpret_cast<const char*>(data), size);
  auto catalog = tasktrail::Catalog::FromJson(json, kOrigin);
  if (!catalog.ok()) {
    Check(catalog.status().code() == absl::StatusCode::kInvalidArgument);
    Check(absl::StartsWith(catalog.status().message(), kOrigin));
    return 0;
  }
  const tasktrail::Catalog& loaded = **catalog;
  Check(!loaded.version().empty());
  Check(loaded.document().catalog_version() == loaded.version());
  const tasktrail::v1::TaskParams empty;
  for (const auto& model : loaded.document().models()) {
    Check(loaded.Find(model.name()) != nullptr);
    (void)loaded.Suggest(model.name());
    (void)loaded.Suggest(model.name() + " ");
    for (auto check :
         {tasktrail::GroupCheck::kIfGiven, tasktrail::GroupCheck::kAlways}) {
      const tasktrail::ValidationResult result =
          tasktrail::ValidateTask(loaded, model.name(), "", check, empty);
      Check(result.model != nullptr);
    }
  }
  (void)loaded.Suggest(json.substr(0, 64));
  return 0;
}
