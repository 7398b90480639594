// tasktraild's log: one line per event worth an operator's attention, made
// of a message and key/value fields, written to stderr (through spdlog) in
// one of two formats:
//
//   text (the default): TIME LEVEL MESSAGE key=value key="a value" ...
//     TIME is local time with milliseconds and offset
//     (2026-12-04T21:03:12.345+01:00). A value is written bare when it is
//     non-empty and has no space, quote, '=', backslash or control
//     character; otherwise in double quotes, escaped as in JSON.
//   json: {"time":"2026-12-04T20:03:12.345678Z","level":"info",
//          "message":"...","key":"value","count":3,...}
//     one object per line: time is RFC 3339 in UTC with microseconds; the
//     fields follow in order, integers and booleans as JSON numbers and
//     literals, everything else as strings.
//
// Levels are named debug, info, warning, error and critical. Either format
// keeps an event on one line: control characters (C0, DEL, C1) in the
// message or a value are escaped (\n, \t, \u001b, ...), and bytes that are
// not UTF-8 become U+FFFD. No secret reaches the log: the message and every
// value pass through ScrubSecrets (service/rules/scrubber.h) first.
//
// Field keys are short snake_case names chosen by the code (never client
// input). The keys time, level and message belong to the line itself: a
// field that uses one is written as field_time, field_level or
// field_message, so a JSON line never repeats a key.
//
// Thread safety: Log may be called concurrently from any thread, and so may
// SetLogFormat (a line is written whole in one format).
#ifndef TASKTRAIL_SERVICE_SERVER_LOG_H_
#define TASKTRAIL_SERVICE_SERVER_LOG_H_

#include <initializer_list>
#include <string>
#include <type_traits>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"

namespace tasktrail {

enum class LogFormat { kText, kJson };

enum class LogLevel { kDebug, kInfo, kWarning, kError, kCritical };

// "debug", "info", "warning", "error" or "critical".
absl::string_view LogLevelName(LogLevel level);

// "text" or "json"; INVALID_ARGUMENT naming both for anything else.
absl::StatusOr<LogFormat> ParseLogFormat(absl::string_view name);

// One key/value field of a log line. Integers and booleans are written as
// JSON numbers and literals; strings as JSON strings.
class LogField {
 public:
  LogField(absl::string_view key, absl::string_view value)
      : key_(key), value_(value) {}
  LogField(absl::string_view key, const std::string& value)
      : key_(key), value_(value) {}
  LogField(absl::string_view key, const char* value)
      : key_(key), value_(value == nullptr ? "" : value) {}
  template <typename Integer,
            std::enable_if_t<std::is_integral_v<Integer>, int> = 0>
  LogField(absl::string_view key, Integer value) : key_(key), literal_(true) {
    if constexpr (std::is_same_v<Integer, bool>) {
      value_ = value ? "true" : "false";
    } else {
      value_ = absl::StrCat(value);
    }
  }

  absl::string_view key() const { return key_; }
  const std::string& value() const { return value_; }
  // True for a number or boolean (written without quotes in JSON).
  bool literal() const { return literal_; }

 private:
  absl::string_view key_;
  std::string value_;
  bool literal_ = false;
};

// The line (without its newline) for an event at `time`, in `format`.
std::string FormatLogLine(LogFormat format, absl::Time time, LogLevel level,
                          absl::string_view message,
                          absl::Span<const LogField> fields);

// Sets the format of the lines Log writes from now on (text until called).
void SetLogFormat(LogFormat format);

// Writes one line to stderr at the current time. Debug lines are dropped.
void Log(LogLevel level, absl::string_view message,
         std::initializer_list<LogField> fields = {});

}  // namespace tasktrail

#endif  // TASKTRAIL_SERVICE_SERVER_LOG_H_
