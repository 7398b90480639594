#include "cli/format.h"

#include <cstddef>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "cli/format_internal.h"
#include "google/protobuf/util/json_util.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"

namespace tasktrail::cli {
namespace format_internal {
namespace {

constexpr int kLabelWidth = 11;

}  // namespace

// The number of terminal columns `s` takes, counting UTF-8 code points.
size_t DisplayWidth(absl::string_view s) {
  size_t width = 0;
  for (char c : s) {
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++width;
  }
  return width;
}

// `s` on one line (control characters as spaces), cut to at most `max` code
// points with "…" marking the cut.
std::string OneLine(absl::string_view s, size_t max) {
  std::string flat(s);
  for (char& c : flat) {
    if (static_cast<unsigned char>(c) < 0x20) c = ' ';
  }
  if (DisplayWidth(flat) <= max) return flat;
  size_t points = 0;
  size_t i = 0;
  for (; i < flat.size(); ++i) {
    bool lead = (static_cast<unsigned char>(flat[i]) & 0xC0) != 0x80;
    if (lead && ++points == max) break;
  }
  return absl::StrCat(flat.substr(0, i), "…");
}

// An enum value name without `prefix`, such as "QUEUED" from
// "TASK_STATE_QUEUED"; "<fallback>_<number>" when the name is unknown.
std::string EnumWord(const std::string& name, absl::string_view prefix,
                     absl::string_view fallback, int number) {
  if (name.empty()) return absl::StrCat(fallback, "_", number);
  return std::string(absl::StripPrefix(name, prefix));
}

// "INVALID_PARAMS" -> "invalid params".
std::string LowerWords(absl::string_view upper) {
  return absl::StrReplaceAll(absl::AsciiStrToLower(upper), {{"_", " "}});
}

bool IsSet(absl::Time t) { return t != absl::InfinitePast(); }

// Appends "label      value\n" when `value` is not empty.
void AddField(std::string* out, absl::string_view label,
              absl::string_view value) {
  if (value.empty()) return;
  absl::StrAppendFormat(out, "%-*s %s\n", kLabelWidth, label, value);
}

// Appends `value` to `parts` as "name value" when `value` is not empty.
void AddPart(std::vector<std::string>* parts, absl::string_view name,
             absl::string_view value) {
  if (value.empty()) return;
  parts->push_back(name.empty() ? std::string(value)
                                : absl::StrCat(name, " ", value));
}

}  // namespace format_internal

namespace {

using format_internal::EnumWord;
using format_internal::IsSet;
using format_internal::OneLine;
using ::tasktrail::v1::EventType;
using ::tasktrail::v1::TaskKind;
using ::tasktrail::v1::TaskState;

// Whether `text` contains the lower-case `needle`, ignoring ASCII case.
bool ContainsNoCase(absl::string_view text, absl::string_view needle) {
  return absl::StrContains(absl::AsciiStrToLower(text), needle);
}

// Whether a RESOURCE_EXHAUSTED message is about the request's size rather
// than the server's load.
bool IsTooLarge(absl::string_view message) {
  return ContainsNoCase(message, "too large") ||
         ContainsNoCase(message, "larger than max");
}

}  // namespace

// ---- Names -----------------------------------------------------------------

std::string StateName(TaskState state) {
  return EnumWord(v1::TaskState_Name(state), "TASK_STATE_", "STATE", state);
}

TaskState ParseStateName(absl::string_view name) {
  TaskState state = v1::TASK_STATE_UNSPECIFIED;
  std::string full = absl::StrCat("TASK_STATE_", absl::AsciiStrToUpper(name));
  if (!v1::TaskState_Parse(full, &state)) return v1::TASK_STATE_UNSPECIFIED;
  return state;
}

std::string EventTypeName(EventType type) {
  switch (type) {
    case v1::EVENT_TYPE_SUBMITTED:
      return "submitted";
    case v1::EVENT_TYPE_QUEUED:
      return "queued";
    case v1::EVENT_TYPE_STARTED:
      return "started";
    case v1::EVENT_TYPE_POLLED:
      return "polled";
    case v1::EVENT_TYPE_COMPLETED:
      return "completed";
    case v1::EVENT_TYPE_FAILED:
      return "failed";
    case v1::EVENT_TYPE_DOWNLOADED:
      return "downloaded";
    case v1::EVENT_TYPE_CANCELED:
      return "canceled";
    case v1::EVENT_TYPE_DUPLICATE_BLOCKED:
      return "duplicate-blocked";
    case v1::EVENT_TYPE_NOTE_ADDED:
      return "note";
    case v1::EVENT_TYPE_REFUNDED:
      return "refunded";
    case v1::EVENT_TYPE_CHARGE_ADJUSTED:
      return "charge-adjusted";
    case v1::EVENT_TYPE_LATE_UPSTREAM_RESULT:
      return "late-result";
    default:
      return absl::StrCat("event-", static_cast<int>(type));
  }
}

std::string KindName(TaskKind kind) {
  switch (kind) {
    case v1::TASK_KIND_IMAGE:
      return "image";
    case v1::TASK_KIND_VIDEO:
      return "video";
    default:
      return "unknown";
  }
}

std::string StatusCodeName(grpc::StatusCode code) {
  const int n = static_cast<int>(code);
  // gRPC and absl share the code numbering (0..16).
  if (n < 0 || n > static_cast<int>(grpc::StatusCode::UNAUTHENTICATED)) {
    return absl::StrCat("CODE_", n);
  }
  return absl::StatusCodeToString(static_cast<absl::StatusCode>(n));
}

// ---- Times and spans -------------------------------------------------------

absl::Time ToAbslTime(const google::protobuf::Timestamp& ts) {
  if (ts.seconds() == 0 && ts.nanos() == 0) return absl::InfinitePast();
  return absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
}

absl::Duration ToAbslDuration(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

std::string FormatRelative(absl::Time then, absl::Time now) {
  absl::Duration d = now - then;
  bool future = d < absl::ZeroDuration();
  int64_t s = absl::ToInt64Seconds(future ? -d : d);
  std::string span;
  if (s < 60) {
    span = absl::StrCat(s, "s");
  } else if (s < 3600) {
    span = absl::StrCat(s / 60, "m");
  } else if (s < 86400) {
    span = absl::StrCat(s / 3600, "h");
  } else {
    span = absl::StrCat(s / 86400, "d");
  }
  return future ? absl::StrCat("in ", span) : absl::StrCat(span, " ago");
}

std::string FormatSpan(absl::Duration d) {
  if (d <= absl::ZeroDuration()) return "0s";
  if (d < absl::Seconds(1)) return absl::FormatDuration(d);
  int64_t s = absl::ToInt64Seconds(d);
  auto two = [](int64_t big, const char* big_unit, int64_t small,
                const char* small_unit) {
    return small == 0 ? absl::StrCat(big, big_unit)
                      : absl::StrCat(big, big_unit, small, small_unit);
  };
  if (s >= 86400) return two(s / 86400, "d", s % 86400 / 3600, "h");
  if (s >= 3600) return two(s / 3600, "h", s % 3600 / 60, "m");
  if (s >= 60) return two(s / 60, "m", s % 60, "s");
  return absl::StrCat(s, "s");
}

std::string FormatTimeWithAge(absl::Time t, const FormatOptions& opts) {
  if (!IsSet(t)) return "-";
  return absl::StrCat(FormatRelative(t, opts.now), ", ", FormatClock(t, opts));
}

std::string FormatClock(absl::Time t, const FormatOptions& opts) {
  if (!IsSet(t)) return "-";
  const bool today =
      absl::ToCivilDay(t, opts.zone) == absl::ToCivilDay(opts.now, opts.zone);
  return absl::FormatTime(today ? "%H:%M:%S" : "%Y-%m-%d %H:%M:%S", t,
                          opts.zone);
}

// ---- Terminal safety -------------------------------------------------------

std::string EscapeControlCharacters(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c == '\n') {
      out.append("\\n");
    } else if (c == '\r') {
      out.append("\\r");
    } else if (c == '\t') {
      out.append("\\t");
    } else if (c < 0x20 || c == 0x7f) {
      absl::StrAppendFormat(&out, "\\x%02x", c);
    } else if (c == 0xc2 && i + 1 < text.size() &&
               static_cast<unsigned char>(text[i + 1]) >= 0x80 &&
               static_cast<unsigned char>(text[i + 1]) <= 0x9f) {
      absl::StrAppendFormat(&out, "\\u%04x",
                            static_cast<unsigned char>(text[i + 1]));
      ++i;
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  return out;
}

void EscapeControlCharactersIn(google::protobuf::Message* message) {
  using google::protobuf::FieldDescriptor;
  const google::protobuf::Reflection* reflection = message->GetReflection();
  std::vector<const FieldDescriptor*> fields;
  reflection->ListFields(*message, &fields);
  for (const FieldDescriptor* field : fields) {
    if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      if (field->is_repeated()) {
        for (int i = 0; i < reflection->FieldSize(*message, field); ++i) {
          EscapeControlCharactersIn(
              reflection->MutableRepeatedMessage(message, field, i));
        }
      } else {
        EscapeControlCharactersIn(reflection->MutableMessage(message, field));
      }
    } else if (field->cpp_type() == FieldDescriptor::CPPTYPE_STRING &&
               field->type() == FieldDescriptor::TYPE_STRING) {
      if (field->is_repeated()) {
        for (int i = 0; i < reflection->FieldSize(*message, field); ++i) {
          reflection->SetRepeatedString(
              message, field, i,
              EscapeControlCharacters(
                  reflection->GetRepeatedString(*message, field, i)));
        }
      } else {
        reflection->SetString(
            message, field,
            EscapeControlCharacters(reflection->GetString(*message, field)));
      }
    }
  }
}

// ---- JSON ------------------------------------------------------------------

absl::StatusOr<std::string> ToJson(const google::protobuf::Message& message,
                                   bool pretty) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = pretty;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  std::string json;
  const auto printed =
      google::protobuf::util::MessageToJsonString(message, &json, options);
  if (!printed.ok()) {
    return absl::InvalidArgumentError(std::string(printed.message()));
  }
  return absl::StrCat(absl::StripTrailingAsciiWhitespace(json), "\n");
}

// ---- Errors and exit statuses ----------------------------------------------

int ExitCodeFor(grpc::StatusCode code, absl::string_view message) {
  switch (code) {
    case grpc::StatusCode::OK:
      return kExitOk;
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::ALREADY_EXISTS:
    case grpc::StatusCode::OUT_OF_RANGE:
      return kExitRefused;
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return IsTooLarge(message) ? kExitRefused : kExitUnavailable;
    case grpc::StatusCode::NOT_FOUND:
      return kExitNotFound;
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return kExitUnavailable;
    case grpc::StatusCode::UNAUTHENTICATED:
    case grpc::StatusCode::PERMISSION_DENIED:
      return kExitAuth;
    default:
      return kExitOther;
  }
}

std::string FormatRpcError(grpc::StatusCode code, absl::string_view message,
                           absl::string_view server) {
  std::string msg = OneLine(message, 300);
  std::string why = msg.empty()
                        ? StatusCodeName(code)
                        : absl::StrCat(msg, " (", StatusCodeName(code), ")");
  switch (ExitCodeFor(code, message)) {
    case kExitUnavailable:
      return absl::StrCat("cannot reach tasktraild at ", server, ": ", why);
    case kExitAuth:
      return absl::StrCat("not authorized by tasktraild at ", server, ": ", why,
                          "; check --token or TASKTRAIL_TOKEN");
    case kExitNotFound:
      return ContainsNoCase(msg, "not found")
                 ? msg
                 : absl::StrCat("not found: ", why);
    case kExitRefused:
      return absl::StrCat("request refused: ", why);
    default:
      if (code == grpc::StatusCode::UNIMPLEMENTED) {
        return absl::StrCat("tasktraild at ", server,
                            " does not implement this call: ", why);
      }
      return absl::StrCat("tasktraild at ", server, " failed: ", why);
  }
}

std::string FormatErrorDetails(const std::string& details) {
  google::rpc::Status status;
  if (details.empty() || !status.ParseFromString(details)) return "";
  std::string violations;
  std::string infos;
  for (const google::protobuf::Any& any : status.details()) {
    google::rpc::BadRequest bad;
    google::rpc::ErrorInfo info;
    if (any.UnpackTo(&bad)) {
      for (const auto& v : bad.field_violations()) {
        absl::StrAppend(&violations, "  ", v.field(), ": ", v.description());
        if (!v.reason().empty())
          absl::StrAppend(&violations, " (", v.reason(), ")");
        violations.append("\n");
      }
    } else if (any.UnpackTo(&info)) {
      absl::StrAppend(&infos, "  reason: ", info.reason());
      if (!info.domain().empty())
        absl::StrAppend(&infos, " (", info.domain(), ")");
      infos.append("\n");
    }
  }
  return violations.empty() ? infos : violations;
}

// ---- Argument parsing ------------------------------------------------------

absl::StatusOr<v1::ReferenceImage> ParseReferenceImage(absl::string_view spec) {
  std::vector<absl::string_view> parts = absl::StrSplit(spec, ',');
  std::string uri(parts[0]);
  if (parts.size() > 4) {
    size_t extra = parts.size() - 3;
    uri = absl::StrJoin(parts.begin(), parts.begin() + extra, ",");
    parts.erase(parts.begin() + 1, parts.begin() + extra);
  }
  v1::ReferenceImage image;
  if (uri.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--ref-image \"", spec, "\": the URI is missing"));
  }
  image.set_uri(uri);
  if (parts.size() > 1) image.set_mime_type(std::string(parts[1]));
  int64_t bytes = 0;
  if (parts.size() > 2 && !parts[2].empty()) {
    if (!absl::SimpleAtoi(parts[2], &bytes) || bytes < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--ref-image \"", spec, "\": BYTES must be a whole number"));
    }
  }
  image.set_size_bytes(bytes);
  if (parts.size() > 3 && !parts[3].empty()) {
    std::vector<absl::string_view> wh =
        absl::StrSplit(parts[3], absl::ByAnyChar("xX"));
    int32_t w = 0;
    int32_t h = 0;
    if (wh.size() != 2 || !absl::SimpleAtoi(wh[0], &w) ||
        !absl::SimpleAtoi(wh[1], &h) || w < 0 || h < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--ref-image \"", spec, "\": size must be WIDTHxHEIGHT"));
    }
    image.set_width(w);
    image.set_height(h);
  }
  return image;
}

absl::StatusOr<absl::Duration> ParseSpan(absl::string_view text) {
  absl::Duration span;
  int64_t days = 0;
  if (absl::EndsWith(text, "d") &&
      absl::SimpleAtoi(text.substr(0, text.size() - 1), &days) &&
      days <= 365 * 100) {
    span = absl::Hours(24) * days;
  } else if (!absl::ParseDuration(text, &span)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "\"", text, "\" is not a span of time such as 90s, 15m, ", "2h or 7d"));
  }
  if (span < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", text, "\" is a negative span of time"));
  }
  return span;
}

absl::StatusOr<absl::Time> ParseTimeOrAgo(absl::string_view text,
                                          absl::Time now) {
  absl::Time time;
  std::string error;
  if (absl::ParseTime(absl::RFC3339_full, text, &time, &error)) return time;
  absl::StatusOr<absl::Duration> ago = ParseSpan(text);
  if (ago.ok()) return now - *ago;
  return absl::InvalidArgumentError(absl::StrCat(
      "\"", text,
      "\" is neither an RFC 3339 time with an offset (such as "
      "2026-12-04T21:00:00+01:00) nor a span back from now (such as 90s, "
      "15m, 2h, 7d)"));
}

}  // namespace tasktrail::cli
