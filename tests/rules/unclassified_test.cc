// The normalised form of unclassified failure messages: ids, numbers and
// URLs masked, secrets scrubbed, whitespace folded, bounded length, and
// idempotence.
#include "service/rules/unclassified.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tasktrail {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(NormaliseFailureMessageTest, MasksIdsNumbersAndUrls) {
  struct Case {
    const char* name;
    const char* message;
    const char* normalised;
  };
  const Case cases[] = {
      {"plain prose stays", "The sampler wandered off",
       "The sampler wandered off"},
      {"uuid", "job 550e8400-e29b-41d4-a716-446655440000 failed",
       "job <id> failed"},
      {"uuid glued to a word by a dash",
       "task-550e8400-e29b-41d4-a716-446655440000", "task-<id>"},
      {"upper-case uuid", "job 550E8400-E29B-41D4-A716-446655440000 failed",
       "job <id> failed"},
      {"numbers", "worker 12 ran out of memory after 3500 ms",
       "worker <n> ran out of memory after <n> ms"},
      {"decimal number", "used 3.75 GiB", "used <n>.<n> GiB"},
      {"hex id", "request 4f1c9a failed", "request <id> failed"},
      {"long mixed token", "ticket req_8fK2mZ9q", "ticket req_<id>"},
      {"ulid", "trace 01ARZ3NDEKTSV4RRFFQ69G5FAV lost", "trace <id> lost"},
      {"long letters-only token",
       "nonce AbCdEfGhIjKlMnOpQrStUvWxYzAbCdEfGh expired",
       "nonce <id> expired"},
      {"short mixed words stay", "1080p output in v2 with h264",
       "1080p output in v2 with h264"},
      {"url with a query", "see https://storage.example.com/a/b.mp4?x=1 now",
       "see <url> now"},
      {"url ends before trailing punctuation",
       "fetch failed (gs://bucket/object.png).", "fetch failed (<url>)."},
      {"several urls in quotes",
       "\"http://a.example/x\" then 'ftp://b.example/y'",
       "\"<url>\" then '<url>'"},
      {"a host without a scheme stays",
       "Quota exceeded for aiplatform.googleapis.com/generate_video_requests",
       "Quota exceeded for aiplatform.googleapis.com/generate_video_requests"},
      {"whitespace and control characters fold", "  line one\n\tline\x01two   ",
       "line one line two"},
      {"non-ASCII text stays", "échec du rendu n° 7", "échec du rendu n° <n>"},
      {"empty", "", "(no message)"},
      {"blank", " \n\t ", "(no message)"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(NormaliseFailureMessage(c.message), c.normalised) << c.name;
  }
}

TEST(NormaliseFailureMessageTest, MessagesThatDifferOnlyInIdsFold) {
  EXPECT_EQ(NormaliseFailureMessage(
                "render 7f3a9c21 of job 9b1d2e44-aaaa-4bbb-8ccc-0123456789ab "
                "failed at step 12"),
            NormaliseFailureMessage(
                "render 00aa11bb of job 11111111-2222-4333-8444-555555555555 "
                "failed at step 480"));
}

TEST(NormaliseFailureMessageTest, SecretsAreScrubbed) {
  const struct {
    const char* message;
    const char* secret;
  } cases[] = {
      {"Incorrect API key provided: "
       "sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
       "sk-proj"},
      {"upstream said: Authorization: Bearer abcDEF123456789xyz", "abcDEF"},
      {"callback failed: https://hooks.example.com/cb?token=hunter2secret",
       "hunter2"},
      {"password=correcthorsebattery rejected", "correcthorse"},
  };
  for (const auto& c : cases) {
    const std::string normalised = NormaliseFailureMessage(c.message);
    EXPECT_THAT(normalised, Not(HasSubstr(c.secret))) << c.message;
  }
  EXPECT_THAT(NormaliseFailureMessage("password=correcthorsebattery rejected"),
              HasSubstr("[REDACTED]"));
}

TEST(NormaliseFailureMessageTest, IsIdempotent) {
  const char* const messages[] = {
      "job <id> failed after <n> retries at <url>",
      "(no message)",
      "Incorrect API key provided: sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz01234",
      "render 7f3a9c21 failed; see https://x.example/y?sig=abc. Retry 3",
      "key=[REDACTED] was refused",
      "échec n° 7 — 550e8400-e29b-41d4-a716-446655440000",
  };
  for (const char* message : messages) {
    const std::string once = NormaliseFailureMessage(message);
    EXPECT_EQ(NormaliseFailureMessage(once), once) << message;
  }
  // Already masked text is left as it is.
  EXPECT_EQ(
      NormaliseFailureMessage("job <id> failed after <n> retries at <url>"),
      "job <id> failed after <n> retries at <url>");
}

TEST(NormaliseFailureMessageTest, LongMessagesAreCutAtAPieceWithAMark) {
  std::string message;
  for (int i = 0; i < 100; ++i) message += "overflowing ";
  const std::string normalised = NormaliseFailureMessage(message);
  EXPECT_LE(normalised.size(), kMaxUnclassifiedMessageBytes);
  EXPECT_GT(normalised.size(), kMaxUnclassifiedMessageBytes - 20);
  EXPECT_THAT(normalised, ::testing::EndsWith("overflowing…"));
  EXPECT_EQ(NormaliseFailureMessage(normalised), normalised);

  // Multi-byte characters are never split.
  std::string accents;
  for (int i = 0; i < 200; ++i) accents += "é";
  const std::string cut = NormaliseFailureMessage(accents);
  EXPECT_LE(cut.size(), kMaxUnclassifiedMessageBytes);
  EXPECT_EQ(cut.size() % 2, 1u);  // 2-byte characters and the 3-byte mark
  EXPECT_EQ(NormaliseFailureMessage(cut), cut);
}

TEST(IsUnclassifiedTest, NoRuleDecided) {
  v1::Failure failure;
  failure.set_category(v1::FAILURE_CATEGORY_UNKNOWN);
  EXPECT_TRUE(IsUnclassified(failure));
  failure.set_rule("generic-server-status");
  EXPECT_FALSE(IsUnclassified(failure));
}

}  // namespace
}  // namespace tasktrail
