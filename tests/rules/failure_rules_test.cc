// Tests of failure classification: every rule of the built-in table (each
// error code, message fragment and HTTP status) gives the expected category,
// origin and retry verdict; error code beats message beats HTTP status; no
// match is UNKNOWN; matching ignores case and does not fire on near-misses;
// the raw evidence is kept; broken rule files are refused naming the file and
// the rule; a custom table replaces the built-in one; versions identify
// content.

#include "service/rules/failure_rules.h"

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/rules/failure_verdicts.h"
#include "tests/support/temp_dir.h"

namespace tasktrail {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::Not;
using ::testing::StartsWith;

// One upstream failure and the verdict support expects for it.
struct Case {
  int32_t status;
  const char* code;
  const char* message;
  v1::FailureCategory category;
  v1::FailureOrigin origin;
  bool retryable;
};

std::string Describe(const Case& c) {
  return absl::StrCat("status=", c.status, " code=\"", c.code, "\" message=\"",
                      c.message, "\"");
}

void ExpectVerdict(const FailureClassifier& classifier, const Case& c) {
  const v1::Failure failure =
      classifier.Classify("", c.status, c.code, c.message);
  EXPECT_EQ(v1::FailureCategory_Name(failure.category()),
            v1::FailureCategory_Name(c.category))
      << Describe(c);
  EXPECT_EQ(v1::FailureOrigin_Name(failure.origin()),
            v1::FailureOrigin_Name(c.origin))
      << Describe(c);
  EXPECT_EQ(failure.retryable(), c.retryable) << Describe(c);
  EXPECT_FALSE(failure.cause().empty()) << Describe(c);
}

// One case per error code of the built-in table.
const std::vector<Case>& CodeCases() {
  static const auto* const kCases = new std::vector<Case>{
      {0, "insufficient_quota", "", kQuota, kConfig, false},
      {0, "billing_hard_limit_reached", "", kQuota, kConfig, false},
      {0, "quota_exceeded", "", kQuota, kConfig, false},
      {0, "insufficient_balance", "", kQuota, kConfig, false},
      {0, "invalid_api_key", "", kAuth, kConfig, false},
      {0, "authentication_error", "", kAuth, kConfig, false},
      {0, "unauthorized", "", kAuth, kConfig, false},
      {0, "unauthenticated", "", kAuth, kConfig, false},
      {0, "permission_denied", "", kAuth, kConfig, false},
      {0, "invalid_token", "", kAuth, kConfig, false},
      {0, "model_not_found", "", kModel, kConfig, false},
      {0, "model_not_available", "", kModel, kConfig, false},
      {0, "content_policy_violation", "", kContent, kUser, false},
      {0, "moderation_blocked", "", kContent, kUser, false},
      {0, "safety_violation", "", kContent, kUser, false},
      {0, "content_filter", "", kContent, kUser, false},
      {0, "rate_limit_exceeded", "", kRate, kProvider, true},
      {0, "rate_limited", "", kRate, kProvider, true},
      {0, "rate_limit_error", "", kRate, kProvider, true},
      {0, "too_many_requests", "", kRate, kProvider, true},
      {0, "image_too_large", "", kParams, kConfig, false},
      {0, "invalid_request_error", "", kParams, kConfig, false},
      {0, "invalid_parameter", "", kParams, kConfig, false},
      {0, "invalid_image", "", kParams, kConfig, false},
      {0, "invalid_size", "", kParams, kConfig, false},
      {0, "server_error", "", kUnavailable, kProvider, true},
      {0, "service_unavailable", "", kUnavailable, kProvider, true},
      {0, "overloaded", "", kUnavailable, kProvider, true},
      {0, "overloaded_error", "", kUnavailable, kProvider, true},
      {0, "engine_overloaded", "", kUnavailable, kProvider, true},
      {0, "timeout", "", kTimeout, kProvider, true},
      {0, "deadline_exceeded", "", kTimeout, kProvider, true},
  };
  return *kCases;
}

// One case per message fragment of the built-in table, phrased as vendors
// phrase them, with no code and no status.
const std::vector<Case>& MessageCases() {
  static const auto* const kCases = new std::vector<Case>{
      // Credentials.
      {0, "", "Invalid API key provided", kAuth, kConfig, false},
      {0, "", "Incorrect API key provided: sk-ab***cd.", kAuth, kConfig, false},
      {0, "", "error: invalid_api_key", kAuth, kConfig, false},
      {0, "", "API key not valid. Please pass a valid API key.", kAuth, kConfig,
       false},
      {0, "", "invalid x-api-key", kAuth, kConfig, false},
      {0, "", "Missing API key in the Authorization header", kAuth, kConfig,
       false},
      {0, "", "401 Unauthorized", kAuth, kConfig, false},
      {0, "", "Request is unauthenticated", kAuth, kConfig, false},
      {0, "", "Authentication failed for this token", kAuth, kConfig, false},
      {0, "", "Permission denied on resource project", kAuth, kConfig, false},
      // Balance and quota.
      {0, "",
       "You exceeded your current quota, please check your plan and billing "
       "details.",
       kQuota, kConfig, false},
      {0, "", "insufficient quota for this account", kQuota, kConfig, false},
      {0, "", "code=insufficient_quota", kQuota, kConfig, false},
      {0, "", "Quota exceeded for this project", kQuota, kConfig, false},
      {0, "", "Insufficient balance", kQuota, kConfig, false},
      {0, "", "error insufficient_balance", kQuota, kConfig, false},
      {0, "", "Your balance is insufficient", kQuota, kConfig, false},
      {0, "", "not enough balance to run this job", kQuota, kConfig, false},
      {0, "", "Account balance exhausted", kQuota, kConfig, false},
      {0, "",
       "Your credit balance is too low to access the API. Please go to Plans "
       "& Billing to upgrade or purchase credits.",
       kQuota, kConfig, false},
      {0, "", "Billing hard limit has been reached", kQuota, kConfig, false},
      // Content rules.
      {0, "", "Your request was rejected: content policy", kContent, kUser,
       false},
      {0, "", "content_policy_violation", kContent, kUser, false},
      {0, "",
       "The response was filtered due to the prompt triggering the content "
       "management policy.",
       kContent, kUser, false},
      {0, "", "This request has been blocked by our content filters.", kContent,
       kUser, false},
      {0, "", "finish_reason: content_filter", kContent, kUser, false},
      {0, "", "Image failed moderation", kContent, kUser, false},
      {0, "", "Your request was rejected as a result of our safety system.",
       kContent, kUser, false},
      {0, "", "Blocked by the safety filter", kContent, kUser, false},
      {0, "", "This prompt violates our usage policies", kContent, kUser,
       false},
      {0, "", "NSFW content detected", kContent, kUser, false},
      {0, "", "The image contains inappropriate content", kContent, kUser,
       false},
      // Model names.
      {0, "", "Model not found: kling-v9", kModel, kConfig, false},
      {0, "", "model_not_found", kModel, kConfig, false},
      {0, "", "The requested model does not exist", kModel, kConfig, false},
      {0, "",
       "The model `veo3` does not exist or you do not have access to it.",
       kModel, kConfig, false},
      {0, "", "Unknown model 'sora-3'", kModel, kConfig, false},
      {0, "", "no such model", kModel, kConfig, false},
      // Throttling.
      {0, "", "Rate limit reached for requests", kRate, kProvider, true},
      {0, "", "error: rate_limit", kRate, kProvider, true},
      {0, "", "Too Many Requests", kRate, kProvider, true},
      // Time.
      {0, "", "upstream request timed out", kTimeout, kProvider, true},
      {0, "", "gateway timeout", kTimeout, kProvider, true},
      {0, "", "context deadline exceeded", kTimeout, kProvider, true},
      // Broken connections.
      {0, "", "stream interrupted", kStream, kProvider, true},
      {0, "", "the stream was interrupted by the server", kStream, kProvider,
       true},
      {0, "", "read: connection reset by peer", kStream, kProvider, true},
      {0, "", "write: broken pipe", kStream, kProvider, true},
      {0, "", "unexpected EOF", kStream, kProvider, true},
      {0, "", "EOF occurred in violation of protocol", kStream, kProvider,
       true},
      {0, "", "unexpected end of JSON input", kStream, kProvider, true},
      {0, "", "connection closed before message completed", kStream, kProvider,
       true},
      {0, "", "Premature close", kStream, kProvider, true},
      {0, "", "http2: server sent GOAWAY and closed the connection", kStream,
       kProvider, true},
      // The provider cannot be reached.
      {0, "", "dial tcp 10.1.2.3:443: connect: connection refused",
       kUnavailable, kProvider, true},
      {0, "", "connect: no route to host", kUnavailable, kProvider, true},
      // Capacity.
      {0, "", "No capacity available for this model", kUnavailable, kProvider,
       true},
      {0, "", "The engine is currently overloaded", kUnavailable, kProvider,
       true},
      {0, "", "Service temporarily unavailable", kUnavailable, kProvider, true},
      {0, "", "503 Service Unavailable", kUnavailable, kProvider, true},
      {0, "", "Please try again later", kUnavailable, kProvider, true},
      {0, "", "server busy", kUnavailable, kProvider, true},
      {0, "", "The server is busy", kUnavailable, kProvider, true},
      {0, "", "We are experiencing high demand", kUnavailable, kProvider, true},
      {0, "", "502 Bad Gateway", kUnavailable, kProvider, true},
      // Sizes.
      {0, "", "Image too large", kParams, kConfig, false},
      {0, "", "The reference image is too large", kParams, kConfig, false},
      {0, "", "file too large", kParams, kConfig, false},
      {0, "", "file size 12 MB, the model allows 10 MB", kParams, kConfig,
       false},
      {0, "", "Payload Too Large", kParams, kConfig, false},
      // Other parameters.
      {0, "", "prompt exceeds the maximum length of 2500", kParams, kConfig,
       false},
      {0, "", "Unsupported resolution 4k", kParams, kConfig, false},
      {0, "", "invalid resolution", kParams, kConfig, false},
      {0, "", "resolution not supported", kParams, kConfig, false},
      {0, "", "1080p resolution is not supported", kParams, kConfig, false},
      {0, "", "aspect ratio 21:9 is not accepted", kParams, kConfig, false},
      {0, "", "bad aspect_ratio", kParams, kConfig, false},
      {0, "", "Invalid duration", kParams, kConfig, false},
      {0, "", "unsupported duration 7s", kParams, kConfig, false},
      {0, "", "duration must be 5 or 10", kParams, kConfig, false},
      {0, "", "duration is not supported", kParams, kConfig, false},
      {0, "", "duration not supported", kParams, kConfig, false},
      {0, "", "Invalid parameter: seed", kParams, kConfig, false},
      {0, "", "invalid_parameter", kParams, kConfig, false},
  };
  return *kCases;
}

// One case per HTTP status of the built-in table (and the ends and middle of
// the 5xx range), with no code and no message.
const std::vector<Case>& StatusCases() {
  static const auto* const kCases = new std::vector<Case>{
      {400, "", "", kParams, kConfig, false},
      {401, "", "", kAuth, kConfig, false},
      {402, "", "", kQuota, kConfig, false},
      {403, "", "", kAuth, kConfig, false},
      {404, "", "", kModel, kConfig, false},
      {408, "", "", kTimeout, kProvider, true},
      {413, "", "", kParams, kConfig, false},
      {422, "", "", kParams, kConfig, false},
      {429, "", "", kRate, kProvider, true},
      {500, "", "", kUnavailable, kProvider, true},
      {502, "", "", kUnavailable, kProvider, true},
      {503, "", "", kUnavailable, kProvider, true},
      {504, "", "", kTimeout, kProvider, true},
      {599, "", "", kUnavailable, kProvider, true},
  };
  return *kCases;
}

TEST(FailureRulesTest, BuiltInLoadsOnceWithItsVersion) {
  const std::shared_ptr<const FailureClassifier> classifier =
      FailureClassifier::BuiltIn();
  ASSERT_NE(classifier, nullptr);
  EXPECT_EQ(classifier, FailureClassifier::BuiltIn());
  EXPECT_EQ(classifier->version(), "tasktrail-default-2");
  EXPECT_GT(classifier->document().rules_size(), 20);
}

TEST(FailureRulesTest, EveryBuiltInErrorCode) {
  for (const Case& c : CodeCases()) {
    ExpectVerdict(*FailureClassifier::BuiltIn(), c);
  }
}

TEST(FailureRulesTest, EveryBuiltInMessageFragment) {
  for (const Case& c : MessageCases()) {
    ExpectVerdict(*FailureClassifier::BuiltIn(), c);
  }
}

TEST(FailureRulesTest, EveryBuiltInHttpStatus) {
  for (const Case& c : StatusCases()) {
    ExpectVerdict(*FailureClassifier::BuiltIn(), c);
  }
}

// Keeps the tables above honest: a generic rule added to the built-in table
// without a test case fails here (provider_failures_test.cc covers the
// vendor-scoped ones).
TEST(FailureRulesTest, TablesCoverEveryBuiltInGenericRule) {
  std::set<std::string> codes;
  for (const Case& c : CodeCases()) codes.insert(c.code);
  std::set<int32_t> statuses;
  for (const Case& c : StatusCases()) statuses.insert(c.status);
  for (const v1::FailureRule& rule :
       FailureClassifier::BuiltIn()->document().rules()) {
    if (!rule.vendor().empty()) continue;
    for (const std::string& code : rule.error_codes()) {
      EXPECT_EQ(codes.count(code), 1u) << "no case for code " << code;
    }
    for (const std::string& fragment : rule.message_contains()) {
      bool covered = false;
      for (const Case& c : MessageCases()) {
        covered = covered || absl::StrContains(absl::AsciiStrToLower(c.message),
                                               absl::AsciiStrToLower(fragment));
      }
      EXPECT_TRUE(covered) << "no case for fragment " << fragment;
    }
    for (int32_t status : rule.http_statuses()) {
      EXPECT_EQ(statuses.count(status), 1u) << "no case for status " << status;
    }
    if (rule.http_status_min() != 0) {
      EXPECT_EQ(statuses.count(rule.http_status_min()), 1u);
      EXPECT_EQ(statuses.count(rule.http_status_max()), 1u);
    }
  }
}

// Support pastes causes to users: plain sentences that say whether retrying
// helps, never a stack trace.
TEST(FailureRulesTest, BuiltInCausesArePlainAndSayWhetherToRetry) {
  for (const v1::FailureRule& rule :
       FailureClassifier::BuiltIn()->document().rules()) {
    EXPECT_THAT(rule.cause(), HasSubstr("retry"));
    EXPECT_THAT(rule.cause(), Not(HasSubstr("\n")));
    EXPECT_THAT(rule.cause(), Not(HasSubstr("::")));
    EXPECT_THAT(rule.cause(), Not(HasSubstr("Exception")));
  }
}

TEST(FailureRulesTest, CausesForTheCommonSupportCases) {
  const auto& classifier = *FailureClassifier::BuiltIn();
  EXPECT_THAT(classifier.Classify("", 402, "", "").cause(),
              HasSubstr("balance boundary was reached"));
  EXPECT_THAT(classifier.Classify("", 401, "", "").cause(),
              HasSubstr("whitespace"));
  EXPECT_THAT(classifier.Classify("", 400, "", "content policy").cause(),
              HasSubstr("retrying unchanged will fail again"));
  EXPECT_THAT(classifier.Classify("", 503, "", "").cause(),
              HasSubstr("temporary capacity error"));
}

TEST(FailureRulesTest, ErrorCodeBeatsMessageAndStatus) {
  ExpectVerdict(
      *FailureClassifier::BuiltIn(),
      {503, "insufficient_quota", "server overloaded", kQuota, kConfig, false});
  ExpectVerdict(
      *FailureClassifier::BuiltIn(),
      {200, "rate_limited", "content policy", kRate, kProvider, true});
}

TEST(FailureRulesTest, MessageBeatsStatus) {
  const std::vector<Case> cases = {
      // Vendors send quota exhaustion as 429 ...
      {429, "", "You exceeded your current quota", kQuota, kConfig, false},
      // ... and content refusals as 400 or even 200.
      {400, "", "Rejected by content policy", kContent, kUser, false},
      {200, "", "blocked by moderation", kContent, kUser, false},
      {500, "", "invalid api key", kAuth, kConfig, false},
      {401, "", "connection reset by peer", kStream, kProvider, true},
  };
  for (const Case& c : cases) ExpectVerdict(*FailureClassifier::BuiltIn(), c);
}

TEST(FailureRulesTest, UnrecognisedCodeFallsThroughToMessageThenStatus) {
  ExpectVerdict(
      *FailureClassifier::BuiltIn(),
      {429, "some_vendor_code", "too many requests", kRate, kProvider, true});
  ExpectVerdict(*FailureClassifier::BuiltIn(),
                {502, "some_vendor_code", "something odd", kUnavailable,
                 kProvider, true});
}

TEST(FailureRulesTest, NoMatchIsUnknownAndNotRetryable) {
  const std::vector<Case> cases = {
      {0, "", "", kUnknown, kNobody, false},
      {418, "", "", kUnknown, kNobody, false},
      {200, "", "", kUnknown, kNobody, false},
      {0, "weird_code", "something odd happened", kUnknown, kNobody, false},
      {600, "", "", kUnknown, kNobody, false},
      {-1, "", "", kUnknown, kNobody, false},
      {99, "", "", kUnknown, kNobody, false},
  };
  for (const Case& c : cases) {
    ExpectVerdict(*FailureClassifier::BuiltIn(), c);
    EXPECT_EQ(FailureClassifier::BuiltIn()
                  ->Classify("", c.status, c.code, c.message)
                  .cause(),
              "the upstream failed for a reason tasktrail does not recognise; "
              "see the raw message");
  }
}

TEST(FailureRulesTest, MatchingIgnoresCase) {
  const std::vector<Case> cases = {
      {0, "INSUFFICIENT_QUOTA", "", kQuota, kConfig, false},
      {0, "Model_Not_Found", "", kModel, kConfig, false},
      {0, "", "CONTENT POLICY", kContent, kUser, false},
      {0, "", "Rate Limit Reached", kRate, kProvider, true},
      {0, "", "UNEXPECTED eof", kStream, kProvider, true},
  };
  for (const Case& c : cases) ExpectVerdict(*FailureClassifier::BuiltIn(), c);
}

// Messages that contain a generic fragment's letters but mean something else
// must not be classified by it.
TEST(FailureRulesTest, NearMissesDoNotMatch) {
  const std::vector<Case> cases = {
      {0, "", "the prompt or parts thereof", kUnknown, kNobody, false},
      {0, "", "geofence check passed", kUnknown, kNobody, false},
      {0, "", "unexpected endpoint /v2/videos", kUnknown, kNobody, false},
      {0, "", "DNS resolution failed for api.vendor.example", kUnknown, kNobody,
       false},
      {0, "", "request duration 31s", kUnknown, kNobody, false},
      {0, "", "file does not exist", kUnknown, kNobody, false},
      {0, "", "request violates the JSON schema", kUnknown, kNobody, false},
      {0, "", "inappropriate value for field seed", kUnknown, kNobody, false},
      {0, "", "the api key header was present", kUnknown, kNobody, false},
      // A load balancer is not a balance: the 5xx decides.
      {502, "", "load balancer error", kUnavailable, kProvider, true},
      // Error codes match exactly, not as substrings.
      {0, "insufficient_quota_warning", "", kUnknown, kNobody, false},
      {0, "quota", "", kUnknown, kNobody, false},
      {0, " timeout", "", kUnknown, kNobody, false},
  };
  for (const Case& c : cases) ExpectVerdict(*FailureClassifier::BuiltIn(), c);
}

TEST(FailureRulesTest, KeepsTheRawEvidence) {
  const v1::Failure failure = FailureClassifier::BuiltIn()->Classify(
      "", 429, "Rate_Limited", "  Slow Down, please  ");
  EXPECT_EQ(failure.http_status(), 429);
  EXPECT_EQ(failure.error_code(), "Rate_Limited");
  EXPECT_EQ(failure.message(), "  Slow Down, please  ");
  EXPECT_EQ(failure.category(), kRate);

  const v1::Failure unknown =
      FailureClassifier::BuiltIn()->Classify("", 777, "Odd", "Odd Thing");
  EXPECT_EQ(unknown.http_status(), 777);
  EXPECT_EQ(unknown.error_code(), "Odd");
  EXPECT_EQ(unknown.message(), "Odd Thing");
  EXPECT_EQ(unknown.category(), kUnknown);
}

// A table of two rules, for the checks below: rule 0 is valid, rule 1 is
// `rule`.
std::string TwoRules(const std::string& rule) {
  return absl::StrCat(
      R"({"rules": [{"id": "ok", "error_codes": ["ok"],)"
      R"( "category": "FAILURE_CATEGORY_AUTH",)"
      R"( "origin": "FAILURE_ORIGIN_CONFIGURATION", "cause": "c"}, )",
      rule, "]}");
}

constexpr char kTail[] =
    R"("id": "tail", "category": "FAILURE_CATEGORY_TIMEOUT",)"
    R"( "origin": "FAILURE_ORIGIN_PROVIDER", "cause": "c")";

struct BadCase {
  const char* name;
  std::string json;
  const char* path;
  const char* problem;
};

TEST(FailureRulesTest, RefusesBrokenTablesNamingTheRule) {
  const std::string tail = kTail;
  const std::vector<BadCase> cases = {
      {"no evidence", TwoRules("{" + tail + "}"), "rules[1]: ", "no evidence"},
      {"codes and messages",
       TwoRules(R"({"error_codes": ["a"], "message_contains": ["b"], )" + tail +
                "}"),
       "rules[1]: ", "mixes kinds"},
      {"messages and statuses",
       TwoRules(R"({"message_contains": ["b"], "http_statuses": [500], )" +
                tail + "}"),
       "rules[1]: ", "mixes kinds"},
      {"codes and range",
       TwoRules(R"({"error_codes": ["a"], "http_status_min": 500,)"
                R"( "http_status_max": 599, )" +
                tail + "}"),
       "rules[1]: ", "mixes kinds"},
      {"no category",
       TwoRules(R"({"error_codes": ["a"], "origin": "FAILURE_ORIGIN_PROVIDER",)"
                R"( "cause": "c"})"),
       "rules[1].category", "unspecified"},
      {"unspecified category",
       TwoRules(R"({"error_codes": ["a"],)"
                R"( "category": "FAILURE_CATEGORY_UNSPECIFIED",)"
                R"( "origin": "FAILURE_ORIGIN_PROVIDER", "cause": "c"})"),
       "rules[1].category", "unspecified"},
      {"no origin",
       TwoRules(R"({"error_codes": ["a"], "category": "FAILURE_CATEGORY_AUTH",)"
                R"( "cause": "c"})"),
       "rules[1].origin", "unspecified"},
      {"empty cause",
       TwoRules(R"({"error_codes": ["a"], "category": "FAILURE_CATEGORY_AUTH",)"
                R"( "origin": "FAILURE_ORIGIN_PROVIDER", "cause": ""})"),
       "rules[1].cause", "empty"},
      {"range min above max",
       TwoRules(R"({"http_status_min": 599, "http_status_max": 500, )" + tail +
                "}"),
       "rules[1].http_status_min", "above max"},
      {"range min too low",
       TwoRules(R"({"http_status_min": 99, "http_status_max": 500, )" + tail +
                "}"),
       "rules[1].http_status_min", "outside 100..599"},
      {"range max too high",
       TwoRules(R"({"http_status_min": 500, "http_status_max": 600, )" + tail +
                "}"),
       "rules[1].http_status_max", "outside 100..599"},
      {"range with only a max",
       TwoRules(R"({"http_status_max": 599, )" + tail + "}"),
       "rules[1].http_status_min", "outside 100..599"},
      {"status too high",
       TwoRules(R"({"http_statuses": [500, 600], )" + tail + "}"),
       "rules[1].http_statuses[1]", "600 is outside 100..599"},
      {"status too low", TwoRules(R"({"http_statuses": [42], )" + tail + "}"),
       "rules[1].http_statuses[0]", "outside 100..599"},
      {"empty error code",
       TwoRules(R"({"error_codes": ["a", ""], )" + tail + "}"),
       "rules[1].error_codes[1]", "empty"},
      {"empty fragment",
       TwoRules(R"({"message_contains": [""], )" + tail + "}"),
       "rules[1].message_contains[0]", "empty"},
      {"no rules", R"({"version": "v"})", "rules", "empty"},
      {"not json", "{rules: nope", "", "not a failure rules document"},
      {"unknown field", R"({"rulez": []})", "", "not a failure rules document"},
      {"unknown category",
       TwoRules(R"({"error_codes": ["a"], "category": "FAILURE_CATEGORY_OOPS",)"
                R"( "origin": "FAILURE_ORIGIN_PROVIDER", "cause": "c"})"),
       "", "not a failure rules document"},
      {"no id",
       TwoRules(R"({"error_codes": ["a"], "category": "FAILURE_CATEGORY_AUTH",)"
                R"( "origin": "FAILURE_ORIGIN_PROVIDER", "cause": "c"})"),
       "rules[1].id", "is empty"},
      {"repeated id",
       TwoRules(R"({"id": "ok", "error_codes": ["a"], )"
                R"("category": "FAILURE_CATEGORY_AUTH",)"
                R"( "origin": "FAILURE_ORIGIN_PROVIDER", "cause": "c"})"),
       "rules[1].id", "\"ok\" is already the id of rules[0]"},
      {"star alone", TwoRules(R"({"error_codes": ["*"], )" + tail + "}"),
       "rules[1].error_codes[0]", "alone"},
      {"vendor with spaces",
       TwoRules(R"({"vendor": "google ", "error_codes": ["a"], )" + tail + "}"),
       "rules[1].vendor", "whitespace"},
  };
  for (const BadCase& c : cases) {
    const auto classifier = FailureClassifier::FromJson(c.json, "rules.json");
    ASSERT_FALSE(classifier.ok()) << c.name;
    EXPECT_EQ(classifier.status().code(), absl::StatusCode::kInvalidArgument)
        << c.name;
    EXPECT_THAT(std::string(classifier.status().message()),
                StartsWith("rules.json: "))
        << c.name;
    EXPECT_THAT(std::string(classifier.status().message()), HasSubstr(c.path))
        << c.name;
    EXPECT_THAT(std::string(classifier.status().message()),
                HasSubstr(c.problem))
        << c.name;
  }
}

TEST(FailureRulesTest, StatusesAndARangeInOneRuleAreOneKind) {
  const auto classifier = FailureClassifier::FromJson(
      TwoRules(R"({"http_statuses": [408], "http_status_min": 520,)"
               R"( "http_status_max": 529, )" +
               std::string(kTail) + "}"),
      "rules.json");
  ASSERT_TRUE(classifier.ok()) << classifier.status();
  EXPECT_EQ((*classifier)->Classify("", 408, "", "").category(), kTimeout);
  EXPECT_EQ((*classifier)->Classify("", 524, "", "").category(), kTimeout);
  EXPECT_EQ((*classifier)->Classify("", 530, "", "").category(), kUnknown);
}

constexpr char kCustomRules[] = R"json({
  "version": "acme-3",
  "rules": [
    {"id": "gpu-melted", "error_codes": ["GPU_Melted"],
     "category": "FAILURE_CATEGORY_UPSTREAM_UNAVAILABLE",
     "origin": "FAILURE_ORIGIN_PROVIDER", "retryable": true,
     "cause": "the vendor's GPU pool failed; retrying later should work"},
    {"id": "gpu-melted-again", "error_codes": ["gpu_melted"],
     "category": "FAILURE_CATEGORY_AUTH",
     "origin": "FAILURE_ORIGIN_CONFIGURATION",
     "cause": "second rule for the same code; never used"},
    {"id": "teapot", "message_contains": ["Teapot"],
     "category": "FAILURE_CATEGORY_INVALID_PARAMS",
     "origin": "FAILURE_ORIGIN_CONFIGURATION",
     "cause": "the vendor is a teapot; retrying unchanged will fail again"},
    {"id": "stout", "message_contains": ["short and stout"],
     "category": "FAILURE_CATEGORY_CONTENT_POLICY",
     "origin": "FAILURE_ORIGIN_USER_CONTENT",
     "cause": "later fragment rule"},
    {"id": "any-4xx", "http_status_min": 400, "http_status_max": 499,
     "category": "FAILURE_CATEGORY_INVALID_PARAMS",
     "origin": "FAILURE_ORIGIN_CONFIGURATION",
     "cause": "any 4xx; retrying unchanged will fail again"},
    {"id": "teapot-status", "http_statuses": [418],
     "category": "FAILURE_CATEGORY_RATE_LIMITED",
     "origin": "FAILURE_ORIGIN_PROVIDER", "retryable": true,
     "cause": "comes after the range; never used"}
  ]
})json";

TEST(FailureRulesTest, CustomTableReplacesTheBuiltIn) {
  const auto custom = FailureClassifier::FromJson(kCustomRules, "custom");
  ASSERT_TRUE(custom.ok()) << custom.status();
  const FailureClassifier& classifier = **custom;
  EXPECT_EQ(classifier.version(), "acme-3");

  // A rule the built-in table lacks.
  ExpectVerdict(*FailureClassifier::BuiltIn(),
                {0, "gpu_melted", "", kUnknown, kNobody, false});
  ExpectVerdict(classifier,
                {0, "gpu_melted", "", kUnavailable, kProvider, true});
  EXPECT_EQ(classifier.Classify("", 0, "GPU_MELTED", "").cause(),
            "the vendor's GPU pool failed; retrying later should work");

  // The built-in rules are gone, not merged: only this table's 4xx range
  // applies.
  ExpectVerdict(classifier,
                {0, "insufficient_quota", "", kUnknown, kNobody, false});
  ExpectVerdict(classifier, {429, "", "exceeded your current quota", kParams,
                             kConfig, false});
  ExpectVerdict(classifier, {503, "", "", kUnknown, kNobody, false});
}

TEST(FailureRulesTest, FirstRuleInFileOrderWinsWithinAKind) {
  const auto custom = FailureClassifier::FromJson(kCustomRules, "custom");
  ASSERT_TRUE(custom.ok()) << custom.status();
  const FailureClassifier& classifier = **custom;
  // Two rules name the same code (in different case): the first wins.
  EXPECT_EQ(classifier.Classify("", 0, "gpu_melted", "").category(),
            kUnavailable);
  // Both fragment rules match: the first wins.
  EXPECT_EQ(
      classifier.Classify("", 0, "", "I'm a little teapot, short and stout")
          .category(),
      kParams);
  EXPECT_EQ(classifier.Classify("", 0, "", "short and stout").category(),
            kContent);
  // The range comes before the exact 418: the range wins.
  EXPECT_EQ(classifier.Classify("", 418, "", "").category(), kParams);
}

TEST(FailureRulesTest, VersionIsExplicitOrTheContentHash) {
  const std::string rule =
      R"({"id": "a", "error_codes": ["a"], "category": "FAILURE_CATEGORY_AUTH",)"
      R"( "origin": "FAILURE_ORIGIN_CONFIGURATION", "cause": "c"})";
  const std::string second =
      R"({"id": "b", "error_codes": ["b"], "category": "FAILURE_CATEGORY_AUTH",)"
      R"( "origin": "FAILURE_ORIGIN_CONFIGURATION", "cause": "c"})";
  const auto a = FailureClassifier::FromJson(
      absl::StrCat(R"({"rules": [)", rule, "]}"), "a");
  const auto reformatted = FailureClassifier::FromJson(
      absl::StrCat("{\n  \"rules\" : [\n", rule, "\n]\n}\n"), "b");
  const auto other = FailureClassifier::FromJson(
      absl::StrCat(R"({"rules": [)", rule, ", ", second, "]}"), "c");
  const auto named = FailureClassifier::FromJson(
      absl::StrCat(R"({"version": "2025-06", "rules": [)", rule, "]}"), "d");
  ASSERT_TRUE(a.ok() && reformatted.ok() && other.ok() && named.ok());
  EXPECT_THAT((*a)->version(), MatchesRegex("sha256:[0-9a-f]{16}"));
  EXPECT_EQ((*a)->version(), (*reformatted)->version());
  EXPECT_NE((*a)->version(), (*other)->version());
  EXPECT_EQ((*named)->version(), "2025-06");
  EXPECT_EQ((*a)->document().version(), (*a)->version());
}

constexpr char kScopedRules[] = R"json({
  "rules": [
    {"id": "acme-busy", "vendor": "Acme", "error_codes": ["BUSY"],
     "category": "FAILURE_CATEGORY_RATE_LIMITED",
     "origin": "FAILURE_ORIGIN_PROVIDER", "retryable": true, "cause": "c"},
    {"id": "acme-safety", "vendor": "acme", "error_codes": ["SAFETY.*"],
     "category": "FAILURE_CATEGORY_CONTENT_POLICY",
     "origin": "FAILURE_ORIGIN_USER_CONTENT", "cause": "c"},
    {"id": "acme-safety-output", "vendor": "acme",
     "error_codes": ["SAFETY.OUTPUT.VIDEO"],
     "category": "FAILURE_CATEGORY_UPSTREAM_UNAVAILABLE",
     "origin": "FAILURE_ORIGIN_PROVIDER", "cause": "shadowed by the prefix"},
    {"id": "acme-quota-text", "vendor": "acme",
     "message_contains": ["quota exceeded for"],
     "category": "FAILURE_CATEGORY_RATE_LIMITED",
     "origin": "FAILURE_ORIGIN_PROVIDER", "retryable": true, "cause": "c"},
    {"id": "acme-402", "vendor": "acme", "http_statuses": [402],
     "category": "FAILURE_CATEGORY_TIMEOUT",
     "origin": "FAILURE_ORIGIN_PROVIDER", "cause": "c"},
    {"id": "other-busy", "vendor": "other", "error_codes": ["busy"],
     "category": "FAILURE_CATEGORY_AUTH",
     "origin": "FAILURE_ORIGIN_CONFIGURATION", "cause": "c"},
    {"id": "any-busy", "error_codes": ["busy"],
     "category": "FAILURE_CATEGORY_UPSTREAM_UNAVAILABLE",
     "origin": "FAILURE_ORIGIN_PROVIDER", "retryable": true, "cause": "c"},
    {"id": "any-quota", "error_codes": ["quota"],
     "category": "FAILURE_CATEGORY_QUOTA",
     "origin": "FAILURE_ORIGIN_CONFIGURATION", "cause": "c"},
    {"id": "any-quota-text", "message_contains": ["quota exceeded"],
     "category": "FAILURE_CATEGORY_QUOTA",
     "origin": "FAILURE_ORIGIN_CONFIGURATION", "cause": "c"},
    {"id": "any-5xx", "http_status_min": 500, "http_status_max": 599,
     "category": "FAILURE_CATEGORY_UPSTREAM_UNAVAILABLE",
     "origin": "FAILURE_ORIGIN_PROVIDER", "retryable": true, "cause": "c"}
  ]
})json";

// kScopedRules, loaded.
class ScopedRulesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto loaded = FailureClassifier::FromJson(kScopedRules, "scoped");
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    rules_ = *std::move(loaded);
  }

  // The id of the rule that decides `status`, `code` and `message` for
  // `vendor`.
  std::string RuleFor(absl::string_view vendor, int32_t status,
                      absl::string_view code, absl::string_view message) const {
    return rules_->Classify(vendor, status, code, message).rule();
  }

  std::shared_ptr<const FailureClassifier> rules_;
};

TEST_F(ScopedRulesTest, VendorRulesComeFirstThenGenericOnes) {
  // The vendor's own code rule; vendors compare case-insensitively.
  EXPECT_EQ(RuleFor("acme", 0, "busy", ""), "acme-busy");
  EXPECT_EQ(RuleFor("ACME", 0, "Busy", ""), "acme-busy");
  // Another vendor's rule never applies; an unknown or empty vendor gets the
  // generic rules only.
  EXPECT_EQ(RuleFor("other", 0, "busy", ""), "other-busy");
  EXPECT_EQ(RuleFor("nobody", 0, "busy", ""), "any-busy");
  EXPECT_EQ(RuleFor("", 0, "busy", ""), "any-busy");
  // A vendor message rule beats a generic code rule ...
  EXPECT_EQ(RuleFor("acme", 429, "quota", "Quota exceeded for x/min"),
            "acme-quota-text");
  EXPECT_EQ(RuleFor("", 429, "quota", "Quota exceeded for x/min"), "any-quota");
  // ... and a vendor status rule beats a generic message rule.
  EXPECT_EQ(RuleFor("acme", 402, "", "quota exceeded"), "acme-402");
  // Inside the scope: code, then message, then status.
  EXPECT_EQ(RuleFor("acme", 402, "busy", "quota exceeded for"), "acme-busy");
  EXPECT_EQ(RuleFor("acme", 402, "", "quota exceeded for"), "acme-quota-text");
  // What the vendor's rules do not name falls through to the generic ones.
  EXPECT_EQ(RuleFor("acme", 503, "odd", "odd"), "any-5xx");
  EXPECT_EQ(RuleFor("acme", 0, "odd", "odd"), "");
  const v1::Failure none = rules_->Classify("acme", 0, "odd", "odd");
  EXPECT_EQ(none.category(), kUnknown);
  EXPECT_EQ(none.rule(), "");
}

TEST_F(ScopedRulesTest, ACodeEndingInStarMatchesByPrefixInFileOrder) {
  EXPECT_EQ(RuleFor("acme", 200, "SAFETY.INPUT.TEXT", ""), "acme-safety");
  EXPECT_EQ(RuleFor("acme", 200, "safety.input.image", ""), "acme-safety");
  // The prefix rule comes first in the file: it wins over the exact code.
  EXPECT_EQ(RuleFor("acme", 200, "SAFETY.OUTPUT.VIDEO", ""), "acme-safety");
  EXPECT_EQ(RuleFor("acme", 0, "SAFETY", ""), "");
  EXPECT_EQ(RuleFor("acme", 0, "UNSAFETY.INPUT", ""), "");
}

TEST(FailureRulesTest, ATableOfVendorRulesAloneLeavesOthersUnknown) {
  const auto loaded = FailureClassifier::FromJson(
      R"({"rules": [{"id": "v", "vendor": "acme", "http_statuses": [500],)"
      R"( "category": "FAILURE_CATEGORY_TIMEOUT",)"
      R"( "origin": "FAILURE_ORIGIN_PROVIDER", "cause": "c"}]})",
      "vendor-only");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ((*loaded)->Classify("acme", 500, "", "").rule(), "v");
  EXPECT_EQ((*loaded)->Classify("other", 500, "", "").category(), kUnknown);
  EXPECT_EQ((*loaded)->Classify("", 500, "x", "y").category(), kUnknown);
}

TEST(FailureRulesTest, TheDecidingRuleIsNamed) {
  const auto& classifier = *FailureClassifier::BuiltIn();
  EXPECT_EQ(classifier.Classify("", 402, "", "").rule(),
            "generic-payment-status");
  EXPECT_EQ(classifier.Classify("", 0, "insufficient_quota", "").rule(),
            "generic-quota-code");
  EXPECT_EQ(classifier.Classify("", 0, "", "").rule(), "");
}

class FailureRulesFileTest : public ::testing::Test {
 protected:
  testing::TempDir dir_{"failure-rules-test"};
};

TEST_F(FailureRulesFileTest, LoadsAFileAndNamesItInErrors) {
  const std::string good = dir_.Write("rules.json", kCustomRules);
  const auto loaded = FailureClassifier::FromFile(good);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ((*loaded)->version(), "acme-3");
  EXPECT_EQ((*loaded)->Classify("", 0, "gpu_melted", "").category(),
            kUnavailable);

  const std::string bad = dir_.Write(
      "bad.json",
      TwoRules(R"({"http_statuses": [700], )" + std::string(kTail) + "}"));
  const auto refused = FailureClassifier::FromFile(bad);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused.status().message()),
              StartsWith(bad + ": rules[1].http_statuses[0]"));

  const auto missing = FailureClassifier::FromFile(dir_.File("missing.json"));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.status().message()),
              HasSubstr("missing.json"));
}

}  // namespace
}  // namespace tasktrail
