// Tests of ScrubSecrets, ContainsSecret and SafeKeyId: secrets in realistic
// upstream messages, notes and headers are replaced by "[REDACTED]" without
// keeping any character of the secret; text that only looks similar (model
// names, ids, URLs, paths, prose) comes back byte for byte.
//
// Vendor-format keys are written as two adjacent literals ("sk_live_" "...")
// so that secret scanners on the repository do not flag the fake keys.

#include "service/rules/scrubber.h"

#include <chrono>
#include <ostream>
#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tasktrail {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::Not;
using ::testing::StartsWith;

struct SecretCase {
  const char* text;
  // A distinctive part of the secret that must not survive.
  const char* secret;
};

void PrintTo(const SecretCase& c, std::ostream* os) {
  *os << absl::CHexEscape(c.text);
}

class SecretTest : public ::testing::TestWithParam<SecretCase> {};

TEST_P(SecretTest, IsRedacted) {
  const SecretCase& c = GetParam();
  ASSERT_THAT(c.text, HasSubstr(c.secret));  // the case itself is sound
  const std::string scrubbed = ScrubSecrets(c.text);
  EXPECT_THAT(scrubbed, Not(HasSubstr(c.secret)));
  EXPECT_THAT(scrubbed, HasSubstr("[REDACTED]"));
  EXPECT_TRUE(ContainsSecret(c.text));
}

TEST_P(SecretTest, ScrubbingTwiceIsScrubbingOnce) {
  const std::string once = ScrubSecrets(GetParam().text);
  EXPECT_EQ(ScrubSecrets(once), once);
  EXPECT_FALSE(ContainsSecret(once)) << once;
}

const SecretCase kSecretCases[] = {
    // OpenAI-style keys, as upstreams echo them back.
    SecretCase{"Incorrect API key provided: sk-proj-"
               "AbC9xYz1234567890QwErTy_uIoP-asDfGhJkL. You can find your "
               "API key at https://platform.openai.com/account/api-keys.",
               "AbC9xYz1234567890QwErTy"},
    SecretCase{"upstream 401: invalid key sk-"
               "9aZbY8cX7dW6eV5fU4gT3hS2iR1jQ0kP for model gpt-image-1",
               "9aZbY8cX7dW6eV5fU4gT3hS2"},
    SecretCase{"{\"type\":\"error\",\"error\":{\"type\":"
               "\"authentication_error\",\"message\":\"invalid key "
               "sk-ant-api03-Zx9KqL2mN8vB4cX6_wE1rT5yU7iO3pA-sD0fG\"}}",
               "Zx9KqL2mN8vB4cX6"},
    SecretCase{"service account key sk-svcacct-"
               "Qw3Er5Ty7Ui9Op1As3Df5Gh7Jk9Lz was revoked",
               "Qw3Er5Ty7Ui9Op1As3Df5"},
    // Stripe-style keys.
    SecretCase{"refund failed: No such API key: sk_live_"
               "51Hx8sKLmN0pQrStUvWxYz12",
               "51Hx8sKLmN0pQrStUvWxYz12"},
    SecretCase{"billing sandbox key sk_test_"
               "4eC39HqLyjWDarjtT1zdp7dc in note",
               "4eC39HqLyjWDarjtT1zdp7dc"},
    SecretCase{"restricted key rk_live_"
               "51Abcd2EfGh3IjKl4MnOp5 lacks permission",
               "51Abcd2EfGh3IjKl4MnOp5"},
    SecretCase{"pk_live_"
               "TYooMQauvdEDq54NiTphI7jx is not a secret key",
               "TYooMQauvdEDq54NiTphI7jx"},
    SecretCase{"old key rk-"
               "a1b2c3d4e5f6g7h8i9j0 rotated",
               "a1b2c3d4e5f6g7h8i9j0"},
    // Bearer tokens and Authorization headers.
    SecretCase{"upstream rejected header Bearer "
               "eyZ0aGlzaXNhdG9rZW4x.abc123: 401",
               "eyZ0aGlzaXNhdG9rZW4x"},
    SecretCase{"curl -H 'Authorization: Bearer tk_9f8e7d6c5b4a' "
               "https://api.example.com/v1/videos",
               "tk_9f8e7d6c5b4a"},
    SecretCase{"request headers:\nAuthorization: Basic "
               "dXNlcjpodW50ZXIyLXBhc3N3b3Jk\nAccept: */*",
               "dXNlcjpodW50ZXIy"},
    SecretCase{"authorization: my-plain-shared-secret, Accept: json",
               "my-plain-shared-secret"},
    SecretCase{"Proxy-Authorization: Basic cHJveHk6c2VjcmV0", "cHJveHk6"},
    SecretCase{"retrying with X-Api-Key: 7f3k9QpL2mZx after 429",
               "7f3k9QpL2mZx"},
    SecretCase{"Cookie: session=Zq81xLm0aa; csrftoken=Qp4mWn7r", "Zq81xLm0aa"},
    // Query and form parameters.
    SecretCase{"POST https://generativelanguage.googleapis.com/v1beta/"
               "models/veo-3:predict?key=myS3cretValue returned 403",
               "myS3cretValue"},
    SecretCase{"form body: model=flux-pro&api_key=abcdef123&prompt=cat",
               "abcdef123"},
    SecretCase{"GET /v1/tasks?access_token=ya-tok-88af19&limit=10 -> 401",
               "ya-tok-88af19"},
    SecretCase{"callback https://hooks.example.com/done?token=Hk82hd91"
               "#frag",
               "Hk82hd91"},
    SecretCase{"login as admin password=hunter2 failed", "hunter2"},
    SecretCase{"download https://storage.googleapis.com/bkt/out.mp4?"
               "X-Goog-Algorithm=GOOG4-RSA-SHA256&X-Goog-Signature="
               "8c1f9a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d&X-Goog-Expires=900",
               "8c1f9a2b3c4d5e6f"},
    SecretCase{"https://acct.blob.core.windows.net/v/clip.mp4?sv=2022-11-"
               "02&sr=b&sig=Ab%2Bcd3EfGh%3D&se=2024-05-01",
               "Ab%2Bcd3EfGh"},
    SecretCase{"s3 presign ?X-Amz-Signature=fe81aa0022&X-Amz-Date=20240501",
               "fe81aa0022"},
    SecretCase{"env: OPENAI_API_KEY=hello123world was set", "hello123world"},
    SecretCase{"config API_KEY=\"p@ss w0rd with spaces\" loaded", "w0rd with"},
    // JSON-ish bodies, plain, escaped and Python-style.
    SecretCase{"upstream echoed {\"api_key\": \"Zq8wLm3nRt\", \"model\": "
               "\"veo-3\"}",
               "Zq8wLm3nRt"},
    SecretCase{"{\"token\":\"tok-0099-xyz\"}", "tok-0099-xyz"},
    SecretCase{"note: {\"password\": \"correct horse battery staple\"}",
               "horse battery"},
    SecretCase{"error: \"{\\\"apiKey\\\": \\\"k3yV4lu3Esc\\\"}\"",
               "k3yV4lu3Esc"},
    SecretCase{"kwargs {'client_secret': 'cs_Wq82kz', 'id': 7}", "cs_Wq82kz"},
    SecretCase{"truncated body {\"access_token\": \"Qm9vbGVhbk1lc3Nh",
               "Qm9vbGVhbk1lc3Nh"},
    // Long opaque tokens.
    SecretCase{"replicate: invalid token 3f9a1c7e5b2d4f6a8c0e1b3d5f7a9c2e",
               "3f9a1c7e5b2d4f6a"},
    SecretCase{"fal key 1a2b3c4d-0000-4e5f-8a9b-c0d1e2f3a4b5:"
               "0123456789abcdef0123456789ABCDEF01234567",
               "0123456789abcdef0123"},
    SecretCase{"opaque credential Xk9fQ2mLp7RzT4wNb8VcY1sHj6GdA3eKu5oPi0qW"
               "Zy rejected",
               "Xk9fQ2mLp7RzT4wNb8Vc"},
    SecretCase{"aws secret wJa1rXUtnFEMI/K7MDENG/bPxRfiCY3xAmPl9KeY+z "
               "invalid",
               "K7MDENG/bPxRfiCY"},
    SecretCase{"id_token eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
               "eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ."
               "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c expired",
               "eyJzdWIiOiIxMjM0NTY3ODkw"},
    SecretCase{"unsigned token eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1MSJ9. "
               "accepted",
               "eyJzdWIiOiJ1MSJ9"},
    // Vendor keys with distinctive prefixes.
    SecretCase{"Vertex: API key not valid. Please pass a valid API key. "
               "(AIza"
               "SyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStUvW)",
               "SyA1b2C3d4E5f6G7h8I9j0"},
    SecretCase{"oauth ya29."
               "a0AfB_byC3dE4fG5hI6jK7lM8nO9pQ expired",
               "a0AfB_byC3dE4fG5hI6jK7"},
    SecretCase{"InvalidClientTokenId: The security token included in the "
               "request is invalid (AKIA"
               "IOSFODNN7EXAMPL3)",
               "IOSFODNN7EXAMPL3"},
    SecretCase{"temporary creds ASIA"
               "Y34FZKBOKMUTVV7A expired",
               "Y34FZKBOKMUTVV7A"},
    SecretCase{"git clone failed for ghp_"
               "R2d2C3poX9wingF1ghterL0ngT0k3n0A",
               "R2d2C3poX9wingF1ghter"},
    SecretCase{"pat github_pat_"
               "11ABCDEFG0123456789_abcdefghijKLMNOPqrst",
               "11ABCDEFG0123456789_abcd"},
    SecretCase{"gitlab glpat-"
               "xY9zW8vU7tS6rQ5pO4nM",
               "xY9zW8vU7tS6rQ5"},
    SecretCase{"slack notify failed: invalid_auth for xoxb-"
               "123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
               "1234567890123-AbCdEfGhIj"},
    SecretCase{"HF hub 401 with hf_"
               "aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789",
               "aBcDeFgHiJkLmNoPqRsTuVwXyZ"},
    SecretCase{"replicate token r8_"
               "Qm2nB4vC6xZ8lK0jH1gF3dS5aP7oI9uY2tR",
               "Qm2nB4vC6xZ8lK0jH1"},
    SecretCase{"stripe webhook whsec_"
               "Abc123Def456Ghi789Jkl0 mismatch",
               "Abc123Def456Ghi789"},
    // A name glued to a key shows only once the key is gone.
    SecretCase{"3f9a1c7e5b2d4f6a8c0e1b3d5f7a9c2e-token=hunter2", "hunter2"},
};

INSTANTIATE_TEST_SUITE_P(Shapes, SecretTest, ::testing::ValuesIn(kSecretCases));

TEST(ScrubSecretsTest, AllShapesInOneTextAreRedactedWhateverTheSeparator) {
  for (const char* separator : {" ", "\n", "&", ", ", "\"", "|", "\t"}) {
    std::string text;
    for (const SecretCase& c : kSecretCases) {
      absl::StrAppend(&text, c.text, separator);
    }
    const std::string scrubbed = ScrubSecrets(text);
    for (const SecretCase& c : kSecretCases) {
      EXPECT_THAT(scrubbed, Not(HasSubstr(c.secret)))
          << "separator \"" << absl::CHexEscape(separator) << "\"";
    }
    EXPECT_EQ(ScrubSecrets(scrubbed), scrubbed);
  }
}

struct ExactCase {
  const char* text;
  const char* scrubbed;
};

void PrintTo(const ExactCase& c, std::ostream* os) {
  *os << absl::CHexEscape(c.text);
}

class ExactTest : public ::testing::TestWithParam<ExactCase> {};

// Labels a reader needs stay; no character of the secret does.
TEST_P(ExactTest, KeepsLabelsAndDropsTheWholeSecret) {
  EXPECT_EQ(ScrubSecrets(GetParam().text), GetParam().scrubbed);
}

INSTANTIATE_TEST_SUITE_P(
    Labels, ExactTest,
    ::testing::Values(
        ExactCase{"Bearer abcd1234efgh5678", "Bearer [REDACTED]"},
        ExactCase{"Authorization: Basic dXNlcjpwYXNz",
                  "Authorization: Basic [REDACTED]"},
        ExactCase{"AUTHORIZATION: Bearer abcd1234efgh5678\r\nHost: x",
                  "AUTHORIZATION: Bearer [REDACTED]\r\nHost: x"},
        ExactCase{"curl -H 'Authorization: Bearer tk_9f8e7d6c5b4a' "
                  "https://api.example.com/v1/videos",
                  "curl -H 'Authorization: Bearer [REDACTED]' "
                  "https://api.example.com/v1/videos"},
        ExactCase{"Authorization: hunter2, Accept: */*",
                  "Authorization: [REDACTED], Accept: */*"},
        ExactCase{"Incorrect API key provided: sk-proj-"
                  "AbC9xYz1234567890QwErTy. You can find your API key at "
                  "https://platform.openai.com/account/api-keys.",
                  "Incorrect API key provided: [REDACTED]. You can find your "
                  "API key at https://platform.openai.com/account/api-keys."},
        ExactCase{"https://x.example.com/a.png?KEY=abc123&w=1024",
                  "https://x.example.com/a.png?KEY=[REDACTED]&w=1024"},
        ExactCase{"?key=a1&sig=b2&x-goog-signature=c3#top",
                  "?key=[REDACTED]&sig=[REDACTED]&x-goog-signature=[REDACTED]"
                  "#top"},
        ExactCase{"{\"api_key\": \"abc\", \"model\": \"flux\"}",
                  "{\"api_key\": \"[REDACTED]\", \"model\": \"flux\"}"},
        ExactCase{"{\\\"token\\\":\\\"t0k\\\"}",
                  "{\\\"token\\\":\\\"[REDACTED]\\\"}"},
        ExactCase{"sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d"
                  "6c15b0f00a08 mismatch",
                  "sha256:[REDACTED] mismatch"},
        ExactCase{"jwt=eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1MSJ9. ok",
                  "jwt=[REDACTED] ok"},
        ExactCase{"password=abc, then retried",
                  "password=[REDACTED], then retried"},
        // The rest of a word glued to a vendor key goes with it.
        ExactCase{"clone with ghp_"
                  "R2d2C3poX9wingF1ghterL0ngT0k3n-v2 failed",
                  "clone with [REDACTED] failed"},
        ExactCase{"key=[REDACTED]&token=fresh1",
                  "key=[REDACTED]&token=[REDACTED]"}));

TEST(ScrubSecretsTest, RedactsEverySecretInOneText) {
  const std::string text =
      "attempt 1: 401 Incorrect API key provided: sk-"
      "9aZbY8cX7dW6eV5fU4gT3hS2iR1jQ0kP\n"
      "attempt 2: Authorization: Bearer tk_9f8e7d6c5b4a\n"
      "attempt 3: GET https://cdn.example.com/v.mp4?w=1&token=Hk82hd91&h=2\n"
      "attempt 4: {\"password\": \"hunter2\"} via AKIA"
      "IOSFODNN7EXAMPL3\n";
  const std::string scrubbed = ScrubSecrets(text);
  for (const char* secret : {"9aZbY8cX7dW6eV5fU4gT3hS2", "tk_9f8e7d6c5b4a",
                             "Hk82hd91", "hunter2", "IOSFODNN7EXAMPL3"}) {
    EXPECT_THAT(scrubbed, Not(HasSubstr(secret)));
  }
  EXPECT_EQ(scrubbed,
            "attempt 1: 401 Incorrect API key provided: [REDACTED]\n"
            "attempt 2: Authorization: Bearer [REDACTED]\n"
            "attempt 3: GET https://cdn.example.com/v.mp4?w=1&token=[REDACTED]"
            "&h=2\n"
            "attempt 4: {\"password\": \"[REDACTED]\"} via [REDACTED]\n");
  EXPECT_EQ(ScrubSecrets(scrubbed), scrubbed);
}

class NearMissTest : public ::testing::TestWithParam<const char*> {};

TEST_P(NearMissTest, IsLeftAloneByteForByte) {
  EXPECT_EQ(ScrubSecrets(GetParam()), GetParam());
  EXPECT_FALSE(ContainsSecret(GetParam()));
}

INSTANTIATE_TEST_SUITE_P(
    LookAlikes, NearMissTest,
    ::testing::Values(
        "", "the skeleton key was lost", "task-1234 failed",
        "model sk-2 is not a key", "risk-assessment-model-v2 retired",
        "kling-v2-1", "gpt-image-1", "veo-3.0-generate-preview",
        "stable-diffusion-xl-1024-v1-0", "01M8FHYRQQD207RHB9YJKZZYNM",
        "request 550e8400-e29b-41d4-a716-446655440000 and "
        "550E8400-E29B-41D4-A716-446655440000",
        "https://cdn.example.com/a/b.png?w=1024&h=768",
        "HTTP/1.1 503 Service Unavailable",
        "429 Too Many Requests: rate limit reached for requests",
        "0x7f at commit 3b1f0c9 (9f2c8a7b6e5d)",
        "1048576 bytes, balance -12.50 USD at 1714550400123", "keyboard=1",
        "monkey=banana", "sort_key=created_at&page_token=Cg0x",
        "idempotency_key=req-77", "/var/lib/tasktrail/data/000123.sst",
        "/mnt/Data/Videos2024/ClientUploads/RawFootage/"
        "Summer_Campaign_2024_Final_Cut_Version3_HD.mp4",
        "C:\\Users\\JohnSmith\\Videos\\Export2024\\final.mp4",
        "IMG_20240501_143022_HDR_Portrait_Mode_Edited.jpg",
        "gs://my-bucket/projects/My-Project-123/locations/us-central1/"
        "publishers/Google/models/Veo-3/outputs/clip.mp4",
        "Bearer authentication failed", "Bearer token expired",
        "Missing Authorization header", "the api key you provided is invalid",
        "token expired; request a new one",
        "reference image is 12 MB, model allows 10 MB",
        "copied credential contained whitespace",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, "
        "like Gecko) Chrome/124.0.0.0 Safari/537.36",
        "python-requests/2.31.0", "curl/8.5.0",
        // Already scrubbed text is not scrubbed again.
        "[REDACTED]", "key=[REDACTED]&w=1", "Bearer [REDACTED]",
        "Authorization: Basic [REDACTED]", "Cookie: [REDACTED] [REDACTED]",
        "Authorization: [REDACTED], Accept: */*", "{\"token\": \"[REDACTED]\"}",
        "fp:3b1f0c9d2a11\xE2\x80\xA6x9Qz"));

TEST(ScrubSecretsTest, PathologicalInputStaysFast) {
  // Inputs built to make a careless scanner quadratic.
  const std::string bodies[] = {
      [] {
        std::string s;
        for (int i = 0; i < 50000; ++i) s += "key=";
        return s;
      }(),
      [] {
        std::string s;
        for (int i = 0; i < 50000; ++i) s += "cookie:";
        return s;
      }(),
      [] {
        std::string s;
        for (int i = 0; i < 50000; ++i) s += "\"token\": \"";
        return s;
      }(),
      [] {
        std::string s;
        for (int i = 0; i < 50000; ++i) s += "eyJhbGciOiJI.";
        return s;
      }(),
      std::string(200000, 'a') + "=",
  };
  const auto start = std::chrono::steady_clock::now();
  for (const std::string& body : bodies) ScrubSecrets(body);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
}

// --- SafeKeyId ---

class IdentifierTest : public ::testing::TestWithParam<const char*> {};

TEST_P(IdentifierTest, IsKeptAsIs) {
  EXPECT_EQ(SafeKeyId(GetParam()), GetParam());
}

INSTANTIATE_TEST_SUITE_P(KeyIds, IdentifierTest,
                         ::testing::Values("", "key_9f2c", "prod-backend-3",
                                           "550e8400-e29b-41d4-a716-"
                                           "446655440000",
                                           "01M8FHYRQQD207RHB9YJKZZYNM",
                                           "team.video:render-worker-12",
                                           "key_Hu6bvD8ZvE3Xc",
                                           "fp:3b1f0c9d2a11\xE2\x80\xA6x9Qz",
                                           "fp:92020ef40080"));

constexpr char kEllipsis[] = "\xE2\x80\xA6";

TEST(SafeKeyIdTest, FullSecretBecomesFingerprintAndLastFour) {
  // printf %s sk-proj-Zt8QmW3xKp9LrV2nYc6HbJ4sDf7GaE1u | sha256sum
  //   -> f6f897fbd2d9...
  EXPECT_EQ(SafeKeyId("sk-proj-Zt8QmW3xKp9LrV2nYc6HbJ4sDf7GaE1u"),
            absl::StrCat("fp:f6f897fbd2d9", kEllipsis, "aE1u"));
}

TEST(SafeKeyIdTest, IsDeterministicAndKeepsNothingButTheTail) {
  for (const char* id :
       {"sk-proj-Zt8QmW3xKp9LrV2nYc6HbJ4sDf7GaE1u",
        "a8F3kLm9Qx2ZpR7tBn4WcV6yHd1JsE5u", "Q2hV9xLp3TzR8mWk4NbY7cJd",
        "3f9a1c7e5b2d4f6a8c0e1b3d5f7a9c2e",
        "AKIA"
        "IOSFODNN7EXAMPL3",
        "key with spaces and a secret X9Zq"}) {
    const std::string safe = SafeKeyId(id);
    EXPECT_EQ(SafeKeyId(id), safe);
    EXPECT_THAT(safe, MatchesRegex("fp:[0-9a-f]{12}\xE2\x80\xA6...."));
    const std::string id_string = id;
    EXPECT_THAT(safe,
                ::testing::EndsWith(id_string.substr(id_string.size() - 4)));
    // No 5 characters in a row of the secret survive.
    for (size_t i = 0; i + 5 <= id_string.size(); ++i) {
      EXPECT_THAT(safe, Not(HasSubstr(id_string.substr(i, 5))));
    }
    EXPECT_FALSE(ContainsSecret(safe)) << safe;
    EXPECT_EQ(SafeKeyId(safe), safe);
  }
}

TEST(SafeKeyIdTest, DifferentSecretsWithTheSameTailDiffer) {
  EXPECT_NE(SafeKeyId("a8F3kLm9Qx2ZpR7tBn4WcV6yHd1JsE5u"),
            SafeKeyId("b8F3kLm9Qx2ZpR7tBn4WcV6yHd1JsE5u"));
}

TEST(SafeKeyIdTest, ShortSecretKeepsNoTail) {
  // Not an identifier (a space), and too short for 4 characters to be safe.
  EXPECT_THAT(SafeKeyId("hunter2 pass"), MatchesRegex("fp:[0-9a-f]{12}"));
  // Last 4 bytes that are not printable ASCII are left out too.
  EXPECT_THAT(SafeKeyId("my secret key number \xC3\xA9\xC3\xA9"),
              MatchesRegex("fp:[0-9a-f]{12}"));
}

TEST(SafeKeyIdTest, OverlongIdentifierIsFingerprinted) {
  const std::string id(65, 'a');
  EXPECT_THAT(SafeKeyId(id), StartsWith("fp:"));
}

}  // namespace
}  // namespace tasktrail
