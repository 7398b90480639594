#include "service/server/log.h"

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"

namespace tasktrail {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// 2026-12-04T21:03:12.345678Z.
absl::Time Noon() {
  return absl::FromCivil(absl::CivilSecond(2026, 12, 4, 21, 3, 12),
                         absl::UTCTimeZone()) +
         absl::Microseconds(345678);
}

std::string Json(absl::string_view message, std::vector<LogField> fields,
                 LogLevel level = LogLevel::kInfo) {
  return FormatLogLine(LogFormat::kJson, Noon(), level, message, fields);
}

std::string Text(absl::string_view message, std::vector<LogField> fields) {
  return FormatLogLine(LogFormat::kText, Noon(), LogLevel::kWarning, message,
                       fields);
}

// The line parsed by protobuf's JSON parser as an object; fails the test
// when it is not one.
google::protobuf::Struct Parse(const std::string& line) {
  google::protobuf::Struct object;
  const auto status =
      google::protobuf::util::JsonStringToMessage(line, &object);
  EXPECT_TRUE(status.ok()) << status.ToString() << " in " << line;
  return object;
}

std::string StringField(const google::protobuf::Struct& object,
                        const std::string& key) {
  auto it = object.fields().find(key);
  if (it == object.fields().end()) return "<missing " + key + ">";
  return it->second.string_value();
}

TEST(LogJsonTest, LineIsOneObjectWithTimeLevelMessageAndTypedFields) {
  const std::string line =
      Json("catalog reloaded", {{"path", "/etc/tasktrail/catalog.json"},
                                {"models", 7},
                                {"sync", true},
                                {"writes", int64_t{-3}}});
  EXPECT_EQ(line,
            "{\"time\":\"2026-12-04T21:03:12.345678Z\",\"level\":\"info\","
            "\"message\":\"catalog reloaded\","
            "\"path\":\"/etc/tasktrail/catalog.json\",\"models\":7,"
            "\"sync\":true,\"writes\":-3}");
  const google::protobuf::Struct object = Parse(line);
  EXPECT_EQ(object.fields().at("models").number_value(), 7);
  EXPECT_TRUE(object.fields().at("sync").bool_value());
}

TEST(LogJsonTest, EscapesQuotesBackslashesAndControlCharacters) {
  const std::string value = std::string("say \"hi\" C:\\dir\nnext\r\t\b\f") +
                            '\0' + "\x01\x1b\x7f" + "\xC2\x85" + "é€😀";
  const std::string line = Json("one\nline", {{"error", value}});
  EXPECT_THAT(line, HasSubstr("\"message\":\"one\\nline\""));
  EXPECT_THAT(line,
              HasSubstr("\"error\":\"say \\\"hi\\\" C:\\\\dir\\nnext\\r\\t\\b"
                        "\\f\\u0000\\u0001\\u001b\\u007f\\u0085é€😀\""));
  EXPECT_EQ(line.find('\n'), std::string::npos);
  const google::protobuf::Struct object = Parse(line);
  EXPECT_EQ(StringField(object, "error"), value);
  EXPECT_EQ(StringField(object, "message"), "one\nline");
}

TEST(LogJsonTest, ReplacesBytesThatAreNotUtf8) {
  // A lone continuation byte, a truncated sequence, an overlong '/', a
  // surrogate and a byte that never occurs in UTF-8.
  const std::string value =
      "a\x80"
      "b\xE2\x82"
      "c\xC0\xAF"
      "d\xED\xA0\x80"
      "e\xFF";
  const std::string line = Json("bytes", {{"value", value}});
  const google::protobuf::Struct object = Parse(line);
  EXPECT_EQ(StringField(object, "value"),
            "a\uFFFDb\uFFFD\uFFFDc\uFFFD\uFFFDd\uFFFD\uFFFD\uFFFDe\uFFFD");
}

TEST(LogJsonTest, TheLinesOwnKeysAreNotRepeated) {
  const std::string line =
      Json("m", {{"message", "inner"}, {"time", "t"}, {"level", "l"}});
  const google::protobuf::Struct object = Parse(line);
  EXPECT_EQ(StringField(object, "message"), "m");
  EXPECT_EQ(StringField(object, "field_message"), "inner");
  EXPECT_EQ(StringField(object, "field_time"), "t");
  EXPECT_EQ(StringField(object, "field_level"), "l");
}

TEST(LogJsonTest, LevelsAreNamed) {
  EXPECT_EQ(StringField(Parse(Json("m", {}, LogLevel::kWarning)), "level"),
            "warning");
  EXPECT_EQ(StringField(Parse(Json("m", {}, LogLevel::kError)), "level"),
            "error");
  EXPECT_EQ(StringField(Parse(Json("m", {}, LogLevel::kCritical)), "level"),
            "critical");
}

TEST(LogTextTest, KeyValueFieldsQuotedOnlyWhenNeeded) {
  const std::string line =
      Text("catalog reload rejected", {{"path", "/tmp/c.json"},
                                       {"kept", ""},
                                       {"models", 3},
                                       {"error", "models[0].kind: \"x\" bad"}});
  EXPECT_THAT(line, HasSubstr(" warning catalog reload rejected "
                              "path=/tmp/c.json kept=\"\" models=3 "
                              "error=\"models[0].kind: \\\"x\\\" bad\""));
  // The time is local, with milliseconds and the offset.
  EXPECT_TRUE(
      absl::StartsWith(line, absl::FormatTime("%Y-%m-%dT%H:%M:%E3S%Ez ", Noon(),
                                              absl::LocalTimeZone())))
      << line;
}

TEST(LogTextTest, ControlCharactersCannotStartAnotherLine) {
  const std::string line =
      Text("request failed\n2026-01-01T00:00:00 info forged",
           {{"error", "x\ny"}, {"query", "a=b"}});
  EXPECT_EQ(line.find('\n'), std::string::npos) << line;
  EXPECT_THAT(line, HasSubstr("request failed\\n2026"));
  EXPECT_THAT(line, HasSubstr("error=\"x\\ny\""));
  EXPECT_THAT(line, HasSubstr("query=\"a=b\""));
}

TEST(LogSecretsTest, NoFormatWritesASecret) {
  const std::string bearer = "Bearer sk-proj-4fJk29Xz0qLmN8vB7cR1tY6wE3";
  const std::string key = "AIzaSyD4x9Qk2mL7pV0rT3wZ8nB6cF1hJ5gK8sA";
  for (const LogFormat format : {LogFormat::kText, LogFormat::kJson}) {
    const std::string line = FormatLogLine(
        format, Noon(), LogLevel::kError, "upstream said " + bearer,
        {{"error", "authorization: " + bearer},
         {"url", "https://x.example.com/v?key=" + key}});
    EXPECT_THAT(line, Not(HasSubstr("sk-proj-4fJk29")));
    EXPECT_THAT(line, Not(HasSubstr("AIzaSy")));
    EXPECT_THAT(line, HasSubstr("[REDACTED]"));
  }
}

TEST(LogFormatTest, ParsesTheTwoNames) {
  EXPECT_EQ(*ParseLogFormat("text"), LogFormat::kText);
  EXPECT_EQ(*ParseLogFormat("json"), LogFormat::kJson);
  const absl::StatusOr<LogFormat> bad = ParseLogFormat("JSON ");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("--log-format"));
}

}  // namespace
}  // namespace tasktrail
