#include "service/rules/errors.h"

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "google/rpc/error_details.pb.h"
#include "service/rules/time_util.h"

namespace tasktrail {

v1::FieldViolation Violation(absl::string_view field, absl::string_view reason,
                             absl::string_view description) {
  v1::FieldViolation violation;
  violation.set_field(std::string(field));
  violation.set_reason(std::string(reason));
  violation.set_description(std::string(description));
  return violation;
}

absl::Status InvalidArgument(
    absl::string_view error_reason, absl::string_view model,
    const std::vector<v1::FieldViolation>& violations) {
  google::rpc::BadRequest bad_request;
  std::vector<std::string> lines;
  for (const v1::FieldViolation& violation : violations) {
    auto* out = bad_request.add_field_violations();
    out->set_field(violation.field());
    out->set_description(violation.description());
    out->set_reason(violation.reason());
    lines.push_back(
        absl::StrCat(violation.field(), ": ", violation.description()));
  }
  google::rpc::ErrorInfo info;
  info.set_reason(std::string(error_reason));
  info.set_domain(std::string(kErrorDomain));
  (*info.mutable_metadata())["model"] = std::string(model);
  (*info.mutable_metadata())["violations"] = absl::StrCat(violations.size());

  const std::string message =
      violations.size() == 1
          ? lines.front()
          : absl::StrCat(violations.size(),
                         " problems: ", absl::StrJoin(lines, "; "));
  absl::Status status = absl::InvalidArgumentError(message);
  status.SetPayload(kBadRequestTypeUrl,
                    absl::Cord(bad_request.SerializeAsString()));
  status.SetPayload(kErrorInfoTypeUrl, absl::Cord(info.SerializeAsString()));
  return status;
}

absl::Status InvalidField(absl::string_view field, absl::string_view reason,
                          absl::string_view description) {
  return InvalidArgument(kInvalidRequest, "",
                         {Violation(field, reason, description)});
}

void CheckString(absl::string_view field, absl::string_view value,
                 bool required, size_t max_bytes,
                 std::vector<v1::FieldViolation>* violations) {
  if (value.empty()) {
    if (required) {
      violations->push_back(Violation(field, "FIELD_REQUIRED",
                                      absl::StrCat(field, " is required")));
    }
    return;
  }
  if (value.size() > max_bytes) {
    violations->push_back(
        Violation(field, "FIELD_TOO_LONG",
                  absl::StrCat(field, " is ", value.size(), " bytes; at most ",
                               max_bytes, " are allowed")));
  }
}

size_t FindControlCharacter(absl::string_view text) {
  for (size_t i = 0; i < text.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c == 0x7f) return i;
    if (c == 0xc2 && i + 1 < text.size()) {
      const unsigned char next = static_cast<unsigned char>(text[i + 1]);
      if (next >= 0x80 && next <= 0x9f) return i;
    }
  }
  return absl::string_view::npos;
}

void CheckIdentifier(absl::string_view field, absl::string_view value,
                     bool required, size_t max_bytes,
                     std::vector<v1::FieldViolation>* violations) {
  const size_t before = violations->size();
  CheckString(field, value, required, max_bytes, violations);
  if (violations->size() != before) return;
  const size_t at = FindControlCharacter(value);
  if (at == absl::string_view::npos) return;
  const unsigned char c = static_cast<unsigned char>(value[at]);
  const unsigned code_point =
      c == 0xc2 ? static_cast<unsigned char>(value[at + 1]) : c;
  violations->push_back(Violation(
      field, "FIELD_CONTROL_CHARACTER",
      absl::StrCat(field, " contains the control character ",
                   absl::StrFormat("U+%04X", code_point), " at byte ", at,
                   "; identifiers must not contain control characters (U+0000 "
                   "to U+001F, U+007F, U+0080 to U+009F)")));
}

absl::Status CheckTimestampField(absl::string_view field,
                                 const google::protobuf::Timestamp& time) {
  if (IsValidTimestamp(time)) return absl::OkStatus();
  return InvalidField(
      field, "FIELD_OUT_OF_RANGE",
      absl::StrCat(field, " is not a valid Timestamp (seconds ", time.seconds(),
                   ", nanos ", time.nanos(),
                   "): it must lie between 0001-01-01T00:00:00Z and "
                   "9999-12-31T23:59:59.999999999Z, with nanos from 0 to "
                   "999,999,999"));
}

absl::Status CheckDurationField(absl::string_view field,
                                const google::protobuf::Duration& duration) {
  if (IsValidDuration(duration)) return absl::OkStatus();
  return InvalidField(
      field, "FIELD_OUT_OF_RANGE",
      absl::StrCat(field, " is not a valid Duration (seconds ",
                   duration.seconds(), ", nanos ", duration.nanos(),
                   "): seconds must lie within +-315,576,000,000 and nanos "
                   "within +-999,999,999, with the sign of seconds"));
}

}  // namespace tasktrail
