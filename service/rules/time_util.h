// Conversions between absl time types and protobuf well-known types, and
// the text form of retention spans.
//
// Thread safety: all functions are pure.
#ifndef TASKTRAIL_SERVICE_RULES_TIME_UTIL_H_
#define TASKTRAIL_SERVICE_RULES_TIME_UTIL_H_

#include <cstdint>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "google/protobuf/duration.pb.h"
#include "google/protobuf/timestamp.pb.h"

namespace tasktrail {

inline google::protobuf::Timestamp ToProtoTime(absl::Time time) {
  google::protobuf::Timestamp proto;
  const int64_t nanos = absl::ToUnixNanos(time);
  int64_t seconds = nanos / 1000000000;
  int64_t remainder = nanos % 1000000000;
  if (remainder < 0) {
    remainder += 1000000000;
    --seconds;
  }
  proto.set_seconds(seconds);
  proto.set_nanos(static_cast<int32_t>(remainder));
  return proto;
}

// A Timestamp's or a Duration's two fields, as absl types.
inline absl::Time TimeFromParts(int64_t seconds, int32_t nanos) {
  return absl::FromUnixSeconds(seconds) + absl::Nanoseconds(nanos);
}
inline absl::Duration DurationFromParts(int64_t seconds, int32_t nanos) {
  return absl::Seconds(seconds) + absl::Nanoseconds(nanos);
}

inline absl::Time FromProtoTime(const google::protobuf::Timestamp& proto) {
  return TimeFromParts(proto.seconds(), proto.nanos());
}

// A Timestamp that protobuf considers valid (years 1 to 9999, nanos in
// [0, 1e9)).
inline bool IsValidTimestamp(const google::protobuf::Timestamp& time) {
  return time.nanos() >= 0 && time.nanos() <= 999999999 &&
         time.seconds() >= -62135596800 && time.seconds() <= 253402300799;
}

// A Duration that protobuf considers valid: seconds within +-315,576,000,000
// (about 10,000 years), nanos within +-999,999,999 and of the same sign as
// seconds when both are non-zero.
inline bool IsValidDuration(const google::protobuf::Duration& duration) {
  constexpr int64_t kMaxSeconds = 315576000000;
  const int64_t seconds = duration.seconds();
  const int32_t nanos = duration.nanos();
  if (seconds < -kMaxSeconds || seconds > kMaxSeconds) return false;
  if (nanos < -999999999 || nanos > 999999999) return false;
  return !((seconds < 0 && nanos > 0) || (seconds > 0 && nanos < 0));
}

// True when the timestamp is set to something other than the epoch.
inline bool IsSet(const google::protobuf::Timestamp& proto) {
  return proto.seconds() != 0 || proto.nanos() != 0;
}

inline google::protobuf::Duration ToProtoDuration(absl::Duration duration) {
  google::protobuf::Duration proto;
  const int64_t nanos = absl::ToInt64Nanoseconds(duration);
  proto.set_seconds(nanos / 1000000000);
  proto.set_nanos(static_cast<int32_t>(nanos % 1000000000));
  return proto;
}

inline absl::Duration FromProtoDuration(
    const google::protobuf::Duration& proto) {
  return DurationFromParts(proto.seconds(), proto.nanos());
}

// Parses a retention span: whole days as "90d", or what absl::ParseDuration
// takes ("36h", "90s", "0"). False for anything else or a negative span.
inline bool ParseRetention(absl::string_view text, absl::Duration* span) {
  int64_t days = 0;
  if (absl::ConsumeSuffix(&text, "d")) {
    if (!absl::SimpleAtoi(text, &days) || days < 0 || days > 1000000) {
      return false;
    }
    *span = absl::Hours(24) * days;
    return true;
  }
  absl::Duration parsed;
  if (!absl::ParseDuration(text, &parsed) || parsed < absl::ZeroDuration()) {
    return false;
  }
  *span = parsed;
  return true;
}

// A retention span as ParseRetention reads it: "90d" for whole days,
// absl::FormatDuration's form ("36h", "1m30s") otherwise.
inline std::string FormatRetention(absl::Duration span) {
  absl::Duration rest;
  const int64_t days = absl::IDivDuration(span, absl::Hours(24), &rest);
  if (days > 0 && rest == absl::ZeroDuration()) return absl::StrCat(days, "d");
  return absl::FormatDuration(span);
}

}  // namespace tasktrail

#endif  // TASKTRAIL_SERVICE_RULES_TIME_UTIL_H_
