// Fuzzes FailureClassifier::FromJson and Classify. The input is split with
// FuzzedDataProvider: an HTTP status (the last 4 bytes), a vendor, an error
// code and a message (backslash-terminated strings from the front), and the
// rest as a rules document. Each failure is classified by the built-in table
// and, when the document loads, by that table too. Classify must copy the
// status, code and message unchanged and always give a category, an origin and
// a cause.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "service/rules/failure_rules.h"
#include "tasktrail/v1/task.pb.h"

namespace {

void Check(bool condition) {
  if (!condition) __builtin_trap();
}

void ClassifyWith(const tasktrail::FailureClassifier& classifier,
                  const std::string& vendor, int32_t status,
                  const std::string& code, const std::string& message) {
  const tasktrail::v1::Failure failure =
      classifier.Classify(vendor, status, code, message);
  Check(failure.http_status() == status);
  Check(failure.error_code() == code);
  Check(failure.message() == message);
  Check(!failure.cause().empty());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::shared_ptr<const tasktrail::FailureClassifier> built_in =
      tasktrail::FailureClassifier::BuiltIn();
  FuzzedDataProvider provider(data, size);
  const int32_t status = provider.ConsumeIntegral<int32_t>();
  const std::string vendor = provider.ConsumeRandomLengthString(32);
  const std::string code = provider.ConsumeRandomLengthString(256);
  const std::string message = provider.ConsumeRandomLengthString(4096);
  const std::string json = provider.ConsumeRemainingBytesAsString();

  ClassifyWith(*built_in, vendor, status, code, message);

  auto rules = tasktrail::FailureClassifier::FromJson(json, "fuzz.json");
  if (!rules.ok()) {
    Check(rules.status().code() == absl::StatusCode::kInvalidArgument);
    Check(absl::StartsWith(rules.status().message(), "fuzz.json"));
    return 0;
  }
  Check(!(*rules)->version().empty());
  Check((*rules)->document().rules_size() > 0);
  ClassifyWith(**rules, vendor, status, code, message);
  return 0;
}
