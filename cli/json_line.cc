#include "cli/json_line.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "base/json_string.h"
#include "cli/format.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/reflection.h"

namespace tasktrail::cli {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

// Appends `text` as a JSON string, escaped as protobuf 3.21 escapes it;
// false when it is not valid UTF-8.
bool AppendString(absl::string_view text, std::string* out) {
  static constexpr JsonEscapeOptions kLikeProtobuf{
      /*escape_quotes=*/true, /*like_protobuf=*/true,
      JsonEscapeOptions::InvalidUtf8::kRefuse};
  out->push_back('"');
  if (!AppendJsonEscaped(text, kLikeProtobuf, out)) return false;
  out->push_back('"');
  return true;
}

// The fraction of a second as protobuf prints it: none, or 3, 6 or 9 digits.
void AppendNanos(int32_t nanos, std::string* out) {
  if (nanos == 0) return;
  char digits[16];
  if (nanos % 1000000 == 0) {
    std::snprintf(digits, sizeof(digits), ".%03d", nanos / 1000000);
  } else if (nanos % 1000 == 0) {
    std::snprintf(digits, sizeof(digits), ".%06d", nanos / 1000);
  } else {
    std::snprintf(digits, sizeof(digits), ".%09d", nanos);
  }
  out->append(digits);
}

class Writer {
 public:
  explicit Writer(std::string* out) : out_(out) {}

  // Appends `message` as a JSON object; false when it holds something this
  // writer leaves to protobuf's printer.
  bool WriteMessage(const Message& message) {
    const Descriptor* descriptor = message.GetDescriptor();
    const Reflection* reflection = message.GetReflection();
    switch (descriptor->well_known_type()) {
      case Descriptor::WELLKNOWNTYPE_UNSPECIFIED:
        break;
      case Descriptor::WELLKNOWNTYPE_TIMESTAMP:
        return WriteTimestamp(message);
      case Descriptor::WELLKNOWNTYPE_DURATION:
        return WriteDuration(message);
      default:
        return false;
    }
    if (!reflection->GetUnknownFields(message).empty()) return false;
    out_->push_back('{');
    bool first = true;
    // protobuf 3.21 prints, in declaration order, the fields it lays out
    // before reading the message (scalars without presence, repeated
    // fields, messages other than Timestamp and Duration), and after them,
    // in the order they are serialized (by number), the others that are
    // set: a Timestamp or Duration, a scalar with presence (proto3
    // optional, a oneof member).
    std::vector<const FieldDescriptor*> appended;
    for (int i = 0; i < descriptor->field_count(); ++i) {
      const FieldDescriptor* field = descriptor->field(i);
      if (field->is_map()) return false;
      const bool message_field =
          field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE;
      if (!field->is_repeated() &&
          (message_field ? IsTimeType(field->message_type())
                         : field->has_presence())) {
        if (reflection->HasField(message, field)) appended.push_back(field);
        continue;
      }
      if (!WriteField(message, field, &first)) return false;
    }
    std::sort(appended.begin(), appended.end(),
              [](const FieldDescriptor* a, const FieldDescriptor* b) {
                return a->number() < b->number();
              });
    for (const FieldDescriptor* field : appended) {
      if (!WriteField(message, field, &first)) return false;
    }
    out_->push_back('}');
    return true;
  }

 private:
  static bool IsTimeType(const Descriptor* type) {
    return type->well_known_type() == Descriptor::WELLKNOWNTYPE_TIMESTAMP ||
           type->well_known_type() == Descriptor::WELLKNOWNTYPE_DURATION;
  }

  // Appends `field` as a member ("name":value, after a ',' unless *first),
  // unless it is a field with presence that is not set.
  bool WriteField(const Message& message, const FieldDescriptor* field,
                  bool* first) {
    const Reflection* reflection = message.GetReflection();
    if (!field->is_repeated() &&
        (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE ||
         field->has_presence()) &&
        !reflection->HasField(message, field)) {
      return true;  // a repeated field is printed also when empty, as []
    }
    if (!*first) out_->push_back(',');
    *first = false;
    out_->push_back('"');
    out_->append(field->name());
    out_->append("\":");
    if (!field->is_repeated()) return WriteValue(message, field, -1);
    out_->push_back('[');
    const int size = reflection->FieldSize(message, field);
    for (int k = 0; k < size; ++k) {
      if (k > 0) out_->push_back(',');
      if (!WriteValue(message, field, k)) return false;
    }
    out_->push_back(']');
    return true;
  }

  // Appends the value of `field` (element `index` of a repeated field, or
  // the singular value when index < 0).
  bool WriteValue(const Message& message, const FieldDescriptor* field,
                  int index) {
    const Reflection* r = message.GetReflection();
    const bool repeated = index >= 0;
    switch (field->cpp_type()) {
      case FieldDescriptor::CPPTYPE_INT32:
        absl::StrAppend(out_, repeated
                                  ? r->GetRepeatedInt32(message, field, index)
                                  : r->GetInt32(message, field));
        return true;
      case FieldDescriptor::CPPTYPE_UINT32:
        absl::StrAppend(out_, repeated
                                  ? r->GetRepeatedUInt32(message, field, index)
                                  : r->GetUInt32(message, field));
        return true;
      case FieldDescriptor::CPPTYPE_INT64:
        absl::StrAppend(out_, "\"",
                        repeated ? r->GetRepeatedInt64(message, field, index)
                                 : r->GetInt64(message, field),
                        "\"");
        return true;
      case FieldDescriptor::CPPTYPE_UINT64:
        absl::StrAppend(out_, "\"",
                        repeated ? r->GetRepeatedUInt64(message, field, index)
                                 : r->GetUInt64(message, field),
                        "\"");
        return true;
      case FieldDescriptor::CPPTYPE_BOOL:
        out_->append((repeated ? r->GetRepeatedBool(message, field, index)
                               : r->GetBool(message, field))
                         ? "true"
                         : "false");
        return true;
      case FieldDescriptor::CPPTYPE_ENUM: {
        const int number = repeated
                               ? r->GetRepeatedEnumValue(message, field, index)
                               : r->GetEnumValue(message, field);
        const auto* value = field->enum_type()->FindValueByNumber(number);
        if (value == nullptr) {
          absl::StrAppend(out_, number);
        } else {
          absl::StrAppend(out_, "\"", value->name(), "\"");
        }
        return true;
      }
      case FieldDescriptor::CPPTYPE_STRING: {
        std::string scratch;
        const std::string& text =
            repeated
                ? r->GetRepeatedStringReference(message, field, index, &scratch)
                : r->GetStringReference(message, field, &scratch);
        if (field->type() == FieldDescriptor::TYPE_BYTES) {
          absl::StrAppend(out_, "\"", absl::Base64Escape(text), "\"");
          return true;
        }
        return AppendString(text, out_);
      }
      case FieldDescriptor::CPPTYPE_MESSAGE:
        if (field->type() == FieldDescriptor::TYPE_GROUP) return false;
        return WriteMessage(repeated
                                ? r->GetRepeatedMessage(message, field, index)
                                : r->GetMessage(message, field));
      default:  // float, double
        return false;
    }
  }

  // seconds (field 1) and nanos (field 2) of a Timestamp or Duration.
  static void SecondsAndNanos(const Message& message, int64_t* seconds,
                              int32_t* nanos) {
    const Descriptor* d = message.GetDescriptor();
    const Reflection* r = message.GetReflection();
    *seconds = r->GetInt64(message, d->FindFieldByNumber(1));
    *nanos = r->GetInt32(message, d->FindFieldByNumber(2));
  }

  // As protobuf: RFC 3339 in UTC, the fraction in 0, 3, 6 or 9 digits;
  // outside 0001-01-01 .. 9999-12-31 or nanos outside [0, 1e9) is left to
  // protobuf (which refuses it).
  bool WriteTimestamp(const Message& message) {
    int64_t seconds = 0;
    int32_t nanos = 0;
    SecondsAndNanos(message, &seconds, &nanos);
    constexpr int64_t kMinSeconds = -62135596800;  // 0001-01-01T00:00:00Z
    constexpr int64_t kMaxSeconds = 253402300799;  // 9999-12-31T23:59:59Z
    if (seconds < kMinSeconds || seconds > kMaxSeconds || nanos < 0 ||
        nanos > 999999999) {
      return false;
    }
    out_->push_back('"');
    out_->append(absl::FormatTime("%Y-%m-%dT%H:%M:%S",
                                  absl::FromUnixSeconds(seconds),
                                  absl::UTCTimeZone()));
    AppendNanos(nanos, out_);
    out_->append("Z\"");
    return true;
  }

  // As protobuf: seconds, the fraction in 0, 3, 6 or 9 digits and "s",
  // negative with one leading '-'; out of protobuf's range, or seconds and
  // nanos of different signs, is left to protobuf.
  bool WriteDuration(const Message& message) {
    int64_t seconds = 0;
    int32_t nanos = 0;
    SecondsAndNanos(message, &seconds, &nanos);
    constexpr int64_t kMaxSeconds = 315576000000;
    if (seconds < -kMaxSeconds || seconds > kMaxSeconds ||
        nanos <= -1000000000 || nanos >= 1000000000 ||
        (seconds < 0 && nanos > 0) || (seconds > 0 && nanos < 0)) {
      return false;
    }
    out_->push_back('"');
    if (seconds < 0 || nanos < 0) {
      out_->push_back('-');
      seconds = -seconds;
      nanos = -nanos;
    }
    absl::StrAppend(out_, seconds);
    AppendNanos(nanos, out_);
    out_->append("s\"");
    return true;
  }

  std::string* const out_;
};

}  // namespace

absl::Status JsonLineWriter::AppendLine(const Message& message,
                                        std::string* out) {
  const size_t size = out->size();
  if (Writer(out).WriteMessage(message)) {
    out->push_back('\n');
    return absl::OkStatus();
  }
  out->resize(size);
  ++lines_left_to_protobuf_;
  absl::StatusOr<std::string> line = ToJson(message, /*pretty=*/false);
  if (!line.ok()) return line.status();
  out->append(*line);
  return absl::OkStatus();
}

}  // namespace tasktrail::cli
