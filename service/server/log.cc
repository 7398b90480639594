#include "service/server/log.h"

#include <atomic>
#include <cstdint>
#include <memory>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "base/json_string.h"
#include "service/rules/scrubber.h"
#include "spdlog/sinks/stdout_sinks.h"
#include "spdlog/spdlog.h"

namespace tasktrail {
namespace {

// Appends `text` with every control character escaped as JSON escapes it
// and each byte that is not UTF-8 replaced by U+FFFD (AppendJsonEscaped);
// with `escape_quotes`, '"' and '\' are escaped as well (a JSON string, or
// a quoted text value).
void AppendEscaped(absl::string_view text, bool escape_quotes,
                   std::string* out) {
  JsonEscapeOptions options;
  options.escape_quotes = escape_quotes;
  AppendJsonEscaped(text, options, out);
}

// True when a text-format value can be written without quotes.
bool IsBare(absl::string_view value) {
  if (value.empty()) return false;
  for (const char c : value) {
    if (c <= ' ' || c > '~' || c == '"' || c == '=' || c == '\\') return false;
  }
  return true;
}

// The key a field is written under: the line's own keys are not repeated.
std::string FieldKey(absl::string_view key) {
  if (key == "time" || key == "level" || key == "message") {
    return absl::StrCat("field_", key);
  }
  return std::string(key);
}

std::string TextLine(absl::Time time, LogLevel level, absl::string_view message,
                     absl::Span<const LogField> fields) {
  std::string line = absl::StrCat(
      absl::FormatTime("%Y-%m-%dT%H:%M:%E3S%Ez", time, absl::LocalTimeZone()),
      " ", LogLevelName(level), " ");
  AppendEscaped(ScrubSecrets(message), /*escape_quotes=*/false, &line);
  for (const LogField& field : fields) {
    line.push_back(' ');
    AppendEscaped(FieldKey(field.key()), /*escape_quotes=*/true, &line);
    line.push_back('=');
    const std::string value =
        field.literal() ? field.value() : ScrubSecrets(field.value());
    if (IsBare(value)) {
      line.append(value);
    } else {
      line.push_back('"');
      AppendEscaped(value, /*escape_quotes=*/true, &line);
      line.push_back('"');
    }
  }
  return line;
}

// Appends `text` as a JSON string, quotes included.
void AppendJsonString(absl::string_view text, std::string* out) {
  out->push_back('"');
  AppendEscaped(text, /*escape_quotes=*/true, out);
  out->push_back('"');
}

std::string JsonLine(absl::Time time, LogLevel level, absl::string_view message,
                     absl::Span<const LogField> fields) {
  std::string line = absl::StrCat(
      "{\"time\":\"",
      absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", time, absl::UTCTimeZone()),
      "\",\"level\":\"", LogLevelName(level), "\",\"message\":");
  AppendJsonString(ScrubSecrets(message), &line);
  for (const LogField& field : fields) {
    line.push_back(',');
    AppendJsonString(FieldKey(field.key()), &line);
    line.push_back(':');
    if (field.literal()) {
      line.append(field.value());
    } else {
      AppendJsonString(ScrubSecrets(field.value()), &line);
    }
  }
  line.push_back('}');
  return line;
}

spdlog::level::level_enum SpdlogLevel(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return spdlog::level::debug;
    case LogLevel::kInfo:
      return spdlog::level::info;
    case LogLevel::kWarning:
      return spdlog::level::warn;
    case LogLevel::kError:
      return spdlog::level::err;
    case LogLevel::kCritical:
      return spdlog::level::critical;
  }
  return spdlog::level::info;
}

std::atomic<LogFormat> log_format{LogFormat::kText};

// spdlog writes each line whole (under its sink's mutex) and flushes it;
// the line is formatted here, so its pattern is the line alone.
spdlog::logger& Logger() {
  static spdlog::logger* const logger = [] {
    auto* created = new spdlog::logger(
        "tasktraild", std::make_shared<spdlog::sinks::stderr_sink_mt>());
    created->set_pattern("%v");
    created->set_level(spdlog::level::info);
    return created;
  }();
  return *logger;
}

}  // namespace

absl::string_view LogLevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarning:
      return "warning";
    case LogLevel::kError:
      return "error";
    case LogLevel::kCritical:
      return "critical";
  }
  return "info";
}

absl::StatusOr<LogFormat> ParseLogFormat(absl::string_view name) {
  if (name == "text") return LogFormat::kText;
  if (name == "json") return LogFormat::kJson;
  return absl::InvalidArgumentError(
      absl::StrCat("--log-format: expected text or json, got ", name));
}

std::string FormatLogLine(LogFormat format, absl::Time time, LogLevel level,
                          absl::string_view message,
                          absl::Span<const LogField> fields) {
  return format == LogFormat::kJson ? JsonLine(time, level, message, fields)
                                    : TextLine(time, level, message, fields);
}

void SetLogFormat(LogFormat format) { log_format.store(format); }

void Log(LogLevel level, absl::string_view message,
         std::initializer_list<LogField> fields) {
  spdlog::logger& logger = Logger();
  const spdlog::level::level_enum spdlog_level = SpdlogLevel(level);
  if (!logger.should_log(spdlog_level)) return;
  logger.log(spdlog_level, "{}",
             FormatLogLine(log_format.load(), absl::Now(), level, message,
                           absl::MakeConstSpan(fields.begin(), fields.size())));
}

}  // namespace tasktrail
