// Domain errors that carry the standard rich error model. An INVALID_ARGUMENT
// built here carries, as absl::Status payloads, a serialized
// google.rpc.BadRequest (one field violation each) and a google.rpc.ErrorInfo
// (domain "tasktrail.v1"); the gRPC edge copies them into the status details.
//
// Thread safety: all functions are pure.
#ifndef TASKTRAIL_SERVICE_RULES_ERRORS_H_
#define TASKTRAIL_SERVICE_RULES_ERRORS_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/duration.pb.h"
#include "google/protobuf/timestamp.pb.h"
#include "tasktrail/v1/tracker.pb.h"

namespace tasktrail {

inline constexpr absl::string_view kErrorDomain = "tasktrail.v1";
// ErrorInfo reasons.
inline constexpr absl::string_view kInvalidTaskParameters =
    "INVALID_TASK_PARAMETERS";
inline constexpr absl::string_view kInvalidRequest = "INVALID_REQUEST";

// Payload type URLs under which the details are attached to an absl::Status.
inline constexpr absl::string_view kBadRequestTypeUrl =
    "type.googleapis.com/google.rpc.BadRequest";
inline constexpr absl::string_view kErrorInfoTypeUrl =
    "type.googleapis.com/google.rpc.ErrorInfo";

// Builds a FieldViolation.
v1::FieldViolation Violation(absl::string_view field, absl::string_view reason,
                             absl::string_view description);

// INVALID_ARGUMENT listing every violation in its message and details.
// `error_reason` is kInvalidTaskParameters or kInvalidRequest; `model` goes to
// the ErrorInfo metadata. REQUIRES: !violations.empty().
absl::Status InvalidArgument(absl::string_view error_reason,
                             absl::string_view model,
                             const std::vector<v1::FieldViolation>& violations);

// INVALID_ARGUMENT (INVALID_REQUEST) for one malformed field.
absl::Status InvalidField(absl::string_view field, absl::string_view reason,
                          absl::string_view description);

// Checks that a required string field is set and at most `max_bytes` long;
// appends a FIELD_REQUIRED or FIELD_TOO_LONG violation otherwise.
void CheckString(absl::string_view field, absl::string_view value,
                 bool required, size_t max_bytes,
                 std::vector<v1::FieldViolation>* violations);

// The byte offset in `text` of its first control character: C0 (U+0000 to
// U+001F), DEL (U+007F) or C1 (U+0080 to U+009F, bytes C2 80 to C2 9F in
// UTF-8); absl::string_view::npos when there is none.
size_t FindControlCharacter(absl::string_view text);

// CheckString for an identifier (an id, a name, a code, a URI): within that,
// a value holding a control character (FindControlCharacter) appends a
// FIELD_CONTROL_CHARACTER violation whose description gives the code point
// and its byte offset, never the character itself. Identifiers reach
// terminals and logs as they are; free text (prompts, notes, messages,
// reasons) is checked with CheckString and may hold control characters.
void CheckIdentifier(absl::string_view field, absl::string_view value,
                     bool required, size_t max_bytes,
                     std::vector<v1::FieldViolation>* violations);

// OK when `time` is a Timestamp protobuf accepts (IsValidTimestamp in
// time_util.h); otherwise INVALID_ARGUMENT (FIELD_OUT_OF_RANGE) naming
// `field` and the valid range.
absl::Status CheckTimestampField(absl::string_view field,
                                 const google::protobuf::Timestamp& time);

// OK when `duration` is a Duration protobuf accepts (IsValidDuration in
// time_util.h); otherwise INVALID_ARGUMENT (FIELD_OUT_OF_RANGE) naming
// `field` and the valid range.
absl::Status CheckDurationField(absl::string_view field,
                                const google::protobuf::Duration& duration);

}  // namespace tasktrail

#endif  // TASKTRAIL_SERVICE_RULES_ERRORS_H_
