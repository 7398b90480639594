// AppendJsonEscaped: the JSON string escaping of the CLI's export lines
// (like protobuf's printer, refusing what is not UTF-8) and of tasktraild's
// log lines (invalid bytes replaced, quotes optionally left alone).
#include "base/json_string.h"

#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/wrappers.pb.h"
#include "gtest/gtest.h"

namespace tasktrail {
namespace {

constexpr JsonEscapeOptions kLikeProtobuf{
    /*escape_quotes=*/true, /*like_protobuf=*/true,
    JsonEscapeOptions::InvalidUtf8::kRefuse};

std::string Escaped(absl::string_view text,
                    const JsonEscapeOptions& options = {}) {
  std::string out;
  EXPECT_TRUE(AppendJsonEscaped(text, options, &out)) << text;
  return out;
}

// `cp` encoded as UTF-8. REQUIRES: a code point, not a surrogate.
std::string Utf8(uint32_t cp) {
  std::string out;
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xc0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xe0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else {
    out.push_back(static_cast<char>(0xf0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  }
  return out;
}

TEST(JsonStringTest, ControlCharactersAreEscaped) {
  EXPECT_EQ(Escaped("a\nb\tc\rd\be\ff"), "a\\nb\\tc\\rd\\be\\ff");
  EXPECT_EQ(Escaped(std::string("\x01\x1f\x7f", 3)), "\\u0001\\u001f\\u007f");
  EXPECT_EQ(Escaped(std::string("\0", 1)), "\\u0000");
  // The C1 controls, in every mode.
  EXPECT_EQ(Escaped("\xC2\x85"), "\\u0085");
  EXPECT_EQ(Escaped("\xC2\x9F", kLikeProtobuf), "\\u009f");
}

TEST(JsonStringTest, QuotesAreEscapedUnlessAskedNotTo) {
  EXPECT_EQ(Escaped("say \"hi\" \\o/"), "say \\\"hi\\\" \\\\o/");
  JsonEscapeOptions bare;
  bare.escape_quotes = false;
  EXPECT_EQ(Escaped("say \"hi\" \\o/\n", bare), "say \"hi\" \\o/\\n");
}

TEST(JsonStringTest, OtherTextIsKeptAsUtf8) {
  const std::string text = "caf\xC3\xA9 \xE6\xBC\xA2 \xF0\x9F\x98\x80 <b>";
  EXPECT_EQ(Escaped(text), text);
  // Only like protobuf are the angle brackets and format characters
  // escaped.
  EXPECT_EQ(Escaped("<b>\xE2\x80\x8B", kLikeProtobuf),
            "\\u003cb\\u003e\\u200b");
  EXPECT_EQ(Escaped("\xE2\x80\x8B"), "\xE2\x80\x8B");
  EXPECT_EQ(Escaped("\xF3\xA0\x80\x81", kLikeProtobuf), "\\udb40\\udc01");
}

TEST(JsonStringTest, InvalidUtf8IsReplacedOrRefused) {
  const std::string replacement = "\xEF\xBF\xBD";
  for (const std::string& bad : {
           std::string("\xFF"),              // never UTF-8
           std::string("\xC0\xAF"),          // overlong
           std::string("\xED\xA0\x80"),      // a surrogate
           std::string("\xE2\x82"),          // truncated
           std::string("\xF4\x90\x80\x80"),  // past U+10FFFF
       }) {
    std::string replaced;
    EXPECT_TRUE(AppendJsonEscaped(absl::StrCat("a", bad, "b"), {}, &replaced));
    EXPECT_EQ(replaced.front(), 'a');
    EXPECT_EQ(replaced.back(), 'b');
    EXPECT_NE(replaced.find(replacement), std::string::npos) << replaced;
    EXPECT_EQ(replaced.find(bad), std::string::npos) << replaced;

    std::string refused;
    EXPECT_FALSE(AppendJsonEscaped(absl::StrCat("a", bad, "b"), kLikeProtobuf,
                                   &refused));
  }
  std::string one_byte;
  EXPECT_TRUE(
      AppendJsonEscaped("a\xFF"
                        "b",
                        {}, &one_byte));
  EXPECT_EQ(one_byte, "a" + replacement + "b");
}

// Like protobuf, the escaping is protobuf's own JSON printer's, code point
// by code point.
TEST(JsonStringTest, LikeProtobufMatchesProtobufsPrinter) {
  int compared = 0;
  for (uint32_t cp = 0; cp <= 0x10ffff; ++cp) {
    if (cp >= 0xd800 && cp <= 0xdfff) continue;
    // Every code point of the first planes, then a sample of the rest with
    // the format characters protobuf escapes up there.
    if (cp > 0x3000 && cp % 97 != 0 && !(cp >= 0xfe00 && cp <= 0xffff) &&
        !(cp >= 0x1d170 && cp <= 0x1d17f) &&
        !(cp >= 0xe0000 && cp <= 0xe0080)) {
      continue;
    }
    google::protobuf::StringValue value;
    value.set_value(absl::StrCat("x", Utf8(cp), "y"));
    std::string expected;
    ASSERT_TRUE(
        google::protobuf::util::MessageToJsonString(value, &expected).ok());
    std::string escaped = "\"";
    ASSERT_TRUE(AppendJsonEscaped(value.value(), kLikeProtobuf, &escaped));
    escaped.push_back('"');
    ASSERT_EQ(escaped, expected) << "U+" << std::hex << cp;
    ++compared;
  }
  EXPECT_GT(compared, 20000);
}

}  // namespace
}  // namespace tasktrail
