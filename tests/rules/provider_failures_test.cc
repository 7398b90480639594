// The built-in failure rules against real provider errors: each row is an
// error response as a provider's public documentation or SDK shows it (the
// row names the page), with the verdict support must give. The rows include
// the pairs that are easy to confuse on purpose: a 429 for an exhausted
// balance and a 429 for a rate limit, a 400 safety refusal and a 400
// parameter error, a task that "failed" with HTTP 200 and a moderation text,
// and a provider's internal failure beside a bad input. The checks over the
// default file: every vendor-scoped rule names its public source and a
// catalog vendor, and every one of them decides at least one row here.

#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/rules/catalog.h"
#include "service/rules/failure_rules.h"
#include "tests/rules/failure_verdicts.h"

namespace tasktrail {
namespace {

constexpr bool kRetry = true;
constexpr bool kFinal = false;

// Where the rows come from.
constexpr char kOpenAiErrors[] =
    "https://platform.openai.com/docs/guides/error-codes";
constexpr char kOpenAiImages[] =
    "https://platform.openai.com/docs/guides/image-generation";
constexpr char kOpenAiVideos[] =
    "https://platform.openai.com/docs/guides/video-generation";
constexpr char kOpenAiImagesApi[] =
    "https://platform.openai.com/docs/api-reference/images/create";
constexpr char kOpenAiRateLimits[] =
    "https://platform.openai.com/docs/guides/rate-limits";
constexpr char kGoogle429[] =
    "https://cloud.google.com/vertex-ai/generative-ai/docs/error-code-429";
constexpr char kGeminiTroubleshooting[] =
    "https://ai.google.dev/gemini-api/docs/troubleshooting";
constexpr char kGoogleApiErrors[] =
    "https://cloud.google.com/apis/design/errors";
constexpr char kVeoSafety[] =
    "https://cloud.google.com/vertex-ai/generative-ai/docs/video/"
    "responsible-ai-and-usage-guidelines";
constexpr char kKlingErrors[] =
    "https://app.klingai.com/global/dev/document-api/apiReference/commonInfo";
constexpr char kKlingTask[] =
    "https://app.klingai.com/global/dev/document-api/apiReference/model/"
    "imageToVideo";
constexpr char kRunwayTaskFailures[] =
    "https://docs.dev.runwayml.com/errors/task-failures/";
constexpr char kRunwayHttpErrors[] =
    "https://docs.dev.runwayml.com/errors/errors/";
constexpr char kGoContext[] = "https://pkg.go.dev/context#pkg-variables";
constexpr char kGoHttpClient[] = "https://pkg.go.dev/net/http#Client";
constexpr char kGoIo[] = "https://pkg.go.dev/io#pkg-variables";
constexpr char kGoOs[] = "https://pkg.go.dev/os#pkg-variables";
constexpr char kGoHttp2[] = "https://pkg.go.dev/golang.org/x/net/http2";
constexpr char kErrno[] = "https://man7.org/linux/man-pages/man3/errno.3.html";

// One provider error response and the verdict support expects for it.
struct Row {
  const char* model;  // a catalog model of the provider
  int32_t status;
  const char* code;
  const char* message;
  v1::FailureCategory category;
  v1::FailureOrigin origin;
  bool retryable;
  const char* source;  // the public page the response is copied from
};

const std::vector<Row>& Rows() {
  static const auto* const kRows = new std::vector<Row>{
      // OpenAI: the same 429 is a balance or a rate limit; the code tells.
      {"sora-2", 429, "insufficient_quota",
       "You exceeded your current quota, please check your plan and billing "
       "details. For more information on this error, read the docs: "
       "https://platform.openai.com/docs/guides/error-codes/api-errors.",
       kQuota, kConfig, kFinal, kOpenAiErrors},
      {"sora-2", 429, "rate_limit_exceeded", "Rate limit reached for requests",
       kRate, kProvider, kRetry, kOpenAiErrors},
      {"dall-e-3", 429, "",
       "Rate limit reached for images per minute. Limit: 5/1min. Current: "
       "6/1min.",
       kRate, kProvider, kRetry, kOpenAiRateLimits},
      {"gpt-image-1", 429, "",
       "You exceeded your current quota, please check your plan and billing "
       "details.",
       kQuota, kConfig, kFinal, kOpenAiErrors},
      {"dall-e-3", 400, "billing_hard_limit_reached",
       "Billing hard limit has been reached", kQuota, kConfig, kFinal,
       kOpenAiImages},
      // A 400 refusal by the safety system, and a 400 bad parameter.
      {"gpt-image-1", 400, "moderation_blocked",
       "Your request was rejected by the safety system. If you believe this "
       "is an error, contact us at help.openai.com and include the request "
       "ID req_abc123.",
       kContent, kUser, kFinal, kOpenAiImages},
      {"dall-e-3", 400, "content_policy_violation",
       "Your request was rejected as a result of our safety system. Your "
       "prompt may contain text that is not allowed by our safety system.",
       kContent, kUser, kFinal, kOpenAiImages},
      {"gpt-image-1", 400, "invalid_value",
       "Invalid value: '1000x1000'. Supported values are: '1024x1024', "
       "'1024x1536', '1536x1024', and 'auto'.",
       kParams, kConfig, kFinal, kOpenAiImagesApi},
      // A video job that "failed" with HTTP 200 and a moderation text.
      {"sora-2-pro", 200, "",
       "Your request was blocked by our moderation system.", kContent, kUser,
       kFinal, kOpenAiVideos},
      {"sora-2", 401, "invalid_api_key",
       "Incorrect API key provided: sk-abc1***wxyz. You can find your API key "
       "at https://platform.openai.com/account/api-keys.",
       kAuth, kConfig, kFinal, kOpenAiErrors},
      {"sora-2", 403, "unsupported_country_region_territory",
       "Country, region, or territory not supported", kAuth, kConfig, kFinal,
       kOpenAiErrors},
      {"gpt-image-1", 403, "",
       "Your organization must be verified to use the model `gpt-image-1`. "
       "Please go to: https://platform.openai.com/settings/organization/"
       "general and click on Verify Organization.",
       kAuth, kConfig, kFinal, kOpenAiImages},
      {"sora-2", 404, "model_not_found",
       "The model `sora-3` does not exist or you do not have access to it.",
       kModel, kConfig, kFinal, kOpenAiErrors},
      // Internal failure on OpenAI's side, beside the bad inputs above.
      {"dall-e-3", 500, "",
       "The server had an error while processing your request. Sorry about "
       "that!",
       kUnavailable, kProvider, kRetry, kOpenAiErrors},
      {"sora-2", 500, "server_error", "", kUnavailable, kProvider, kRetry,
       kOpenAiErrors},
      {"dall-e-3", 503, "",
       "The engine is currently overloaded, please try again later.",
       kUnavailable, kProvider, kRetry, kOpenAiErrors},

      // Google: RESOURCE_EXHAUSTED is the per-minute quota (wait), even with
      // the words "quota" and "billing" in it; disabled billing is the
      // balance side.
      {"veo-3", 429, "RESOURCE_EXHAUSTED",
       "Quota exceeded for aiplatform.googleapis.com/"
       "generate_video_requests_per_minute_per_project_per_base_model with "
       "base model: veo-3.0-generate-preview. Please submit a quota increase "
       "request. https://cloud.google.com/vertex-ai/docs/generative-ai/"
       "quotas-genai.",
       kRate, kProvider, kRetry, kGoogle429},
      {"veo-3", 429, "RESOURCE_EXHAUSTED",
       "You exceeded your current quota, please check your plan and billing "
       "details.",
       kRate, kProvider, kRetry, kGeminiTroubleshooting},
      {"veo-3", 429, "",
       "Quota exceeded for aiplatform.googleapis.com/"
       "generate_video_requests_per_minute_per_project_per_base_model",
       kRate, kProvider, kRetry, kGoogle429},
      {"veo-3", 403, "PERMISSION_DENIED",
       "This API method requires billing to be enabled. Please enable billing "
       "on project #123456789 by visiting https://console.developers.google."
       "com/billing/enable?project=123456789 then retry.",
       kQuota, kConfig, kFinal, kGoogleApiErrors},
      {"veo-3", 403, "PERMISSION_DENIED", "The caller does not have permission",
       kAuth, kConfig, kFinal, kGeminiTroubleshooting},
      // A 400 safety refusal and a 400 invalid argument.
      {"veo-3", 400, "INVALID_ARGUMENT",
       "The prompt could not be submitted. This prompt contains sensitive "
       "words that violate Google's Responsible AI practices. Try rephrasing "
       "the prompt. If you think this was an error, send feedback. Support "
       "codes: 29310472",
       kContent, kUser, kFinal, kVeoSafety},
      {"veo-3", 400, "INVALID_ARGUMENT",
       "Request contains an invalid argument.", kParams, kConfig, kFinal,
       kGeminiTroubleshooting},
      // A finished operation whose videos were all filtered: HTTP 200.
      {"veo-3", 200, "",
       "Unable to generate videos because the input image violates Vertex "
       "AI's usage guidelines. Support codes: 39322892",
       kContent, kUser, kFinal, kVeoSafety},
      {"veo-3", 400, "INVALID_ARGUMENT",
       "API key not valid. Please pass a valid API key.", kAuth, kConfig,
       kFinal, kGeminiTroubleshooting},
      {"veo-3", 400, "FAILED_PRECONDITION",
       "User location is not supported for the API use.", kAuth, kConfig,
       kFinal, kGeminiTroubleshooting},
      {"veo-3", 401, "UNAUTHENTICATED",
       "Request had invalid authentication credentials. Expected OAuth 2 "
       "access token, login cookie or other valid authentication credential.",
       kAuth, kConfig, kFinal, kGoogleApiErrors},
      {"veo-3", 404, "NOT_FOUND",
       "models/veo-3.0-generate-preview is not found for API version v1beta, "
       "or is not supported for predictLongRunning.",
       kModel, kConfig, kFinal, kGeminiTroubleshooting},
      {"veo-3", 500, "INTERNAL", "Internal error encountered.", kUnavailable,
       kProvider, kRetry, kGeminiTroubleshooting},
      {"veo-3", 503, "UNAVAILABLE",
       "The model is overloaded. Please try again later.", kUnavailable,
       kProvider, kRetry, kGeminiTroubleshooting},
      {"veo-3", 504, "DEADLINE_EXCEEDED",
       "Deadline expired before operation could complete.", kTimeout, kProvider,
       kRetry, kGeminiTroubleshooting},

      // Kling: both 429s, told apart by the service code.
      {"kling-v2-1", 429, "1102", "Resource pack depleted or expired", kQuota,
       kConfig, kFinal, kKlingErrors},
      {"kling-v2-1", 429, "1101", "Account in arrears (postpaid scenario)",
       kQuota, kConfig, kFinal, kKlingErrors},
      {"kling-v2-1", 429, "1302", "API request too fast, exceeding rate limit",
       kRate, kProvider, kRetry, kKlingErrors},
      {"kling-v2-1", 429, "1303",
       "Concurrency or QPS exceeds prepaid resource package limit", kRate,
       kProvider, kRetry, kKlingErrors},
      {"kling-v2-1", 429, "1304", "Trigger platform IP whitelisting policy",
       kAuth, kConfig, kFinal, kKlingErrors},
      {"kling-v2-1", 401, "1004", "Authorization has expired", kAuth, kConfig,
       kFinal, kKlingErrors},
      {"kling-v2-1", 429, "1100", "Account exception", kAuth, kConfig, kFinal,
       kKlingErrors},
      {"kling-v2-1", 403, "1103",
       "Unauthorized access to requested resource, such as API/model", kModel,
       kConfig, kFinal, kKlingErrors},
      // A 400 risk-control refusal and a 400 parameter error.
      {"kling-v2-1", 400, "1301",
       "Trigger the content security policy of the platform", kContent, kUser,
       kFinal, kKlingErrors},
      {"kling-v2-1", 400, "1201",
       "Invalid request parameters, such as key or value errors", kParams,
       kConfig, kFinal, kKlingErrors},
      {"kling-v2-1", 404, "1203",
       "Requested resource does not exist, such as model", kModel, kConfig,
       kFinal, kKlingErrors},
      // A task that "failed" with HTTP 200: task_status_msg says why.
      {"kling-v2-1", 200, "",
       "triggering the content risk control of the platform", kContent, kUser,
       kFinal, kKlingTask},
      {"kling-v2-1", 500, "5000", "Server internal error", kUnavailable,
       kProvider, kRetry, kKlingErrors},
      {"kling-v2-1", 503, "5001",
       "Server temporarily unavailable, usually due to maintenance",
       kUnavailable, kProvider, kRetry, kKlingErrors},
      {"kling-v2-1", 504, "5002",
       "Server internal timeout, usually due to backlog", kTimeout, kProvider,
       kRetry, kKlingErrors},

      // Runway: failure codes of a task that failed (HTTP 200 on the poll).
      {"gen4_turbo", 200, "SAFETY.INPUT.TEXT", "", kContent, kUser, kFinal,
       kRunwayTaskFailures},
      {"gen4_turbo", 200, "SAFETY.INPUT.IMAGE", "", kContent, kUser, kFinal,
       kRunwayTaskFailures},
      {"gen4_turbo", 200, "SAFETY.OUTPUT.VIDEO", "", kContent, kUser, kFinal,
       kRunwayTaskFailures},
      // Runway's internal rejection of its output, beside a bad input asset.
      {"gen4_turbo", 200, "INTERNAL.BAD_OUTPUT.CODE01", "", kUnavailable,
       kProvider, kRetry, kRunwayTaskFailures},
      {"gen4_turbo", 200, "ASSET.INVALID", "", kParams, kUser, kFinal,
       kRunwayTaskFailures},
      {"gen4_turbo", 200, "INTERNAL", "", kUnavailable, kProvider, kRetry,
       kRunwayTaskFailures},
      {"gen4_turbo", 200, "THROTTLED", "", kRate, kProvider, kRetry,
       kRunwayTaskFailures},
      // HTTP errors: a 400 for missing credits, and a 400 bad input.
      {"gen4_turbo", 400, "",
       "You do not have enough credits to run this task.", kQuota, kConfig,
       kFinal, kRunwayHttpErrors},
      {"gen4_turbo", 400, "",
       "There is a problem with one of the inputs for the request.", kParams,
       kConfig, kFinal, kRunwayHttpErrors},
      {"gen4_turbo", 401, "", "The provided API key is not valid.", kAuth,
       kConfig, kFinal, kRunwayHttpErrors},
      {"gen4_turbo", 429, "", "", kRate, kProvider, kRetry, kRunwayHttpErrors},
      {"gen4_turbo", 502, "", "", kUnavailable, kProvider, kRetry,
       kRunwayHttpErrors},
      {"gen4_turbo", 504, "", "", kUnavailable, kProvider, kRetry,
       kRunwayHttpErrors},

      // The gateway's own conditions (Go's error texts, no HTTP status).
      {"veo-3", 0, "", "context deadline exceeded", kTimeout, kProvider, kRetry,
       kGoContext},
      {"sora-2", 0, "",
       "Post \"https://api.openai.com/v1/videos/video_123\": context deadline "
       "exceeded (Client.Timeout exceeded while awaiting headers)",
       kTimeout, kProvider, kRetry, kGoHttpClient},
      {"kling-v2-1", 0, "",
       "read tcp 10.0.0.5:43122->104.18.6.192:443: read: connection reset by "
       "peer",
       kStream, kProvider, kRetry, kErrno},
      {"gen4_turbo", 0, "", "unexpected EOF", kStream, kProvider, kRetry,
       kGoIo},
      {"veo-3", 0, "", "dial tcp 142.250.1.95:443: connect: connection refused",
       kUnavailable, kProvider, kRetry, kErrno},
      {"sora-2", 0, "",
       "read tcp 10.0.0.5:52110->162.159.140.245:443: i/o timeout", kTimeout,
       kProvider, kRetry, kGoOs},
      {"dall-e-3", 0, "",
       "http2: server sent GOAWAY and closed the connection; "
       "LastStreamID=1999, ErrCode=NO_ERROR, debug=\"\"",
       kStream, kProvider, kRetry, kGoHttp2},
  };
  return *kRows;
}

std::string VendorOf(absl::string_view model) {
  const CompiledModel* spec = Catalog::BuiltIn()->Find(model);
  return spec == nullptr ? "" : spec->spec.vendor();
}

std::string Describe(const Row& row) {
  return absl::StrCat(row.model, " status=", row.status, " code=\"", row.code,
                      "\" message=\"", row.message, "\" (", row.source, ")");
}

TEST(ProviderFailuresTest, EveryDocumentedResponseIsClassifiedAsExpected) {
  const FailureClassifier& rules = *FailureClassifier::BuiltIn();
  for (const Row& row : Rows()) {
    const v1::Failure failure =
        rules.Classify(VendorOf(row.model), row.status, row.code, row.message);
    EXPECT_EQ(v1::FailureCategory_Name(failure.category()),
              v1::FailureCategory_Name(row.category))
        << Describe(row) << " rule=" << failure.rule();
    EXPECT_EQ(v1::FailureOrigin_Name(failure.origin()),
              v1::FailureOrigin_Name(row.origin))
        << Describe(row) << " rule=" << failure.rule();
    EXPECT_EQ(failure.retryable(), row.retryable)
        << Describe(row) << " rule=" << failure.rule();
    EXPECT_FALSE(failure.rule().empty()) << Describe(row);
  }
}

// At least 6 rows per catalog vendor, and 6 of the gateway's own conditions;
// every row cites a public page.
TEST(ProviderFailuresTest, TheTableCoversEveryVendorAndTheGateway) {
  std::map<std::string, int> rows_per_vendor;
  int gateway_rows = 0;
  for (const Row& row : Rows()) {
    const std::string vendor = VendorOf(row.model);
    ASSERT_FALSE(vendor.empty()) << row.model << " is not in the catalog";
    if (row.status == 0) {
      ++gateway_rows;
    } else {
      ++rows_per_vendor[vendor];
    }
    EXPECT_TRUE(absl::StartsWith(row.source, "https://")) << Describe(row);
  }
  EXPECT_GE(Rows().size(), 50u);
  EXPECT_GE(gateway_rows, 6);
  for (const v1::ModelSpec& model : Catalog::BuiltIn()->document().models()) {
    EXPECT_GE(rows_per_vendor[model.vendor()], 6) << model.vendor();
  }
}

// The same text means different things at different providers: OpenAI's
// "exceeded your current quota" is a balance, Google's is its rate limit;
// without a known model only the generic rules speak.
TEST(ProviderFailuresTest, TheVendorDecidesWhatTheSameWordsMean) {
  const FailureClassifier& rules = *FailureClassifier::BuiltIn();
  const char kQuotaText[] =
      "You exceeded your current quota, please check your plan and billing "
      "details.";
  EXPECT_EQ(rules.Classify("openai", 429, "", kQuotaText).category(), kQuota);
  EXPECT_EQ(rules.Classify("google", 429, "RESOURCE_EXHAUSTED", kQuotaText)
                .category(),
            kRate);
  EXPECT_EQ(
      rules.Classify("", 429, "RESOURCE_EXHAUSTED", kQuotaText).category(),
      kQuota);
  EXPECT_EQ(rules.Classify("", 429, "RESOURCE_EXHAUSTED", kQuotaText).rule(),
            "generic-quota-message");
}

TEST(ProviderFailuresTest, EveryVendorRuleDecidesARow) {
  const FailureClassifier& rules = *FailureClassifier::BuiltIn();
  std::set<std::string> used;
  for (const Row& row : Rows()) {
    used.insert(
        rules.Classify(VendorOf(row.model), row.status, row.code, row.message)
            .rule());
  }
  for (const v1::FailureRule& rule : rules.document().rules()) {
    if (rule.vendor().empty()) continue;
    EXPECT_EQ(used.count(rule.id()), 1u)
        << "no documented response is decided by " << rule.id();
  }
}

// The default file: every vendor-scoped rule cites a public page and names a
// vendor of the built-in catalog (a rule for another vendor would never
// apply); every rule has an id (the loader checks they are unique).
TEST(ProviderFailuresTest, DefaultVendorRulesNameTheirSourceAndACatalogVendor) {
  std::set<std::string> vendors;
  for (const v1::ModelSpec& model : Catalog::BuiltIn()->document().models()) {
    vendors.insert(model.vendor());
  }
  int scoped = 0;
  for (const v1::FailureRule& rule :
       FailureClassifier::BuiltIn()->document().rules()) {
    EXPECT_FALSE(rule.id().empty());
    if (rule.vendor().empty()) continue;
    ++scoped;
    EXPECT_TRUE(absl::StartsWith(rule.source(), "https://"))
        << rule.id() << " source=\"" << rule.source() << "\"";
    EXPECT_EQ(vendors.count(rule.vendor()), 1u)
        << rule.id() << " vendor=" << rule.vendor();
    EXPECT_TRUE(absl::StartsWith(rule.id(), rule.vendor() + "-")) << rule.id();
  }
  EXPECT_GE(scoped, 30);
}

}  // namespace
}  // namespace tasktrail
