// The escaping of text inside a JSON string, shared by the CLI's JSON lines
// (export, which must match protobuf's JSON printer byte for byte) and
// tasktraild's log lines (text and JSON).
//
// Thread safety: pure functions.
#ifndef TASKTRAIL_BASE_JSON_STRING_H_
#define TASKTRAIL_BASE_JSON_STRING_H_

#include <string>

#include "absl/strings/string_view.h"

namespace tasktrail {

struct JsonEscapeOptions {
  // Escape '"' and '\'. Off only for text that is not between quotes (a
  // text log line's message).
  bool escape_quotes = true;

  // Escape as protobuf 3.21's JSON printer does: also '<' and '>', and the
  // Unicode format characters it escapes (U+00AD, U+200B to U+200F, U+FEFF,
  // ...; above U+FFFF as a surrogate pair).
  bool like_protobuf = false;

  // Bytes that are not UTF-8: each replaced by U+FFFD, or the text refused.
  enum class InvalidUtf8 { kReplace, kRefuse };
  InvalidUtf8 invalid_utf8 = InvalidUtf8::kReplace;
};

// Appends `text` to `*out` as the inside of a JSON string (without the
// quotes): the control characters as \b, \f, \n, \r, \t, else \u00XX (DEL
// and the C1 controls U+0080 to U+009F too), '"' and '\' as \" and \\ (with
// escape_quotes), and the rest as it is, UTF-8. Returns false, with part of
// `text` appended, when `text` is not UTF-8 and options.invalid_utf8 is
// kRefuse; true otherwise.
bool AppendJsonEscaped(absl::string_view text, const JsonEscapeOptions& options,
                       std::string* out);

}  // namespace tasktrail

#endif  // TASKTRAIL_BASE_JSON_STRING_H_
