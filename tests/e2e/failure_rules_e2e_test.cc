// Failure rules end to end: `tasktraild --check` validates a rule file and
// exits without serving; a real tasktraild classifies a FAILED event with
// the rules of the task's vendor, and `tasktrail get` names the rule that
// decided.
#include <sys/stat.h>

#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace tasktrail::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::StartsWith;

constexpr char kTwoRules[] = R"json({
  "version": "ops-7",
  "rules": [
    {"id": "kling-risk", "vendor": "kling", "error_codes": ["1301"],
     "category": "FAILURE_CATEGORY_CONTENT_POLICY",
     "origin": "FAILURE_ORIGIN_USER_CONTENT",
     "cause": "Kling's risk control refused the prompt; rephrase it"},
    {"id": "any-5xx", "http_status_min": 500, "http_status_max": 599,
     "category": "FAILURE_CATEGORY_UPSTREAM_UNAVAILABLE",
     "origin": "FAILURE_ORIGIN_PROVIDER", "retryable": true,
     "cause": "the provider failed; retry later"}
  ]
})json";

bool Exists(const std::string& path) {
  struct stat info;
  return stat(path.c_str(), &info) == 0;
}

TEST(FailureRulesCheckE2eTest, ChecksTheBuiltInTable) {
  TempDir dir;
  const CommandResult result =
      RunCommand({DaemonPath(), "--check", "--db", dir.File("db")});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_THAT(result.out, StartsWith("ok: built-in failure rules: "));
  EXPECT_THAT(result.out, HasSubstr("vendor-scoped), version "
                                    "tasktrail-default-2\n"));
  EXPECT_FALSE(Exists(dir.File("db"))) << "--check must not open the store";
}

TEST(FailureRulesCheckE2eTest, AcceptsAGoodFileWithTheRuleCount) {
  TempDir dir;
  const std::string rules = dir.Write("rules.json", kTwoRules);
  const CommandResult result =
      RunCommand({DaemonPath(), "--failure-rules", rules, "--check", "--db",
                  dir.File("db")});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.out,
            "ok: " + rules + ": 2 rules (1 vendor-scoped), version ops-7\n");
  EXPECT_THAT(result.err, IsEmpty());
  EXPECT_FALSE(Exists(dir.File("db")));
}

TEST(FailureRulesCheckE2eTest, RefusesABadFileNamingTheField) {
  TempDir dir;
  struct Bad {
    const char* json;
    const char* field;
  };
  const std::vector<Bad> cases = {
      // The second rule has no id.
      {R"({"rules": [{"id": "a", "error_codes": ["x"],)"
       R"( "category": "FAILURE_CATEGORY_AUTH",)"
       R"( "origin": "FAILURE_ORIGIN_CONFIGURATION", "cause": "c"},)"
       R"( {"error_codes": ["y"], "category": "FAILURE_CATEGORY_AUTH",)"
       R"( "origin": "FAILURE_ORIGIN_CONFIGURATION", "cause": "c"}]})",
       ": rules[1].id: is empty"},
      // Two rules share an id.
      {R"({"rules": [{"id": "a", "error_codes": ["x"],)"
       R"( "category": "FAILURE_CATEGORY_AUTH",)"
       R"( "origin": "FAILURE_ORIGIN_CONFIGURATION", "cause": "c"},)"
       R"( {"id": "a", "error_codes": ["y"], "category": "FAILURE_CATEGORY_AUTH",)"
       R"( "origin": "FAILURE_ORIGIN_CONFIGURATION", "cause": "c"}]})",
       ": rules[1].id: \"a\" is already the id of rules[0]"},
      {R"({"rules": [{"id": "a", "http_statuses": [700],)"
       R"( "category": "FAILURE_CATEGORY_AUTH",)"
       R"( "origin": "FAILURE_ORIGIN_CONFIGURATION", "cause": "c"}]})",
       ": rules[0].http_statuses[0]: 700 is outside 100..599"},
  };
  for (const Bad& bad : cases) {
    const std::string rules = dir.Write("bad.json", bad.json);
    const CommandResult result =
        RunCommand({DaemonPath(), "--failure-rules", rules, "--check", "--db",
                    dir.File("db")});
    EXPECT_EQ(result.exit_code, 1) << bad.field;
    EXPECT_THAT(result.err, StartsWith(rules + bad.field)) << result.err;
    EXPECT_THAT(result.out, IsEmpty());
  }
  const CommandResult missing = RunCommand(
      {DaemonPath(), "--failure-rules", dir.File("none.json"), "--check"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_THAT(missing.err, HasSubstr(dir.File("none.json")));
  EXPECT_FALSE(Exists(dir.File("db")));
}

// Submits a task of `model` and fails it with the given evidence; returns
// its id.
std::string FailTask(v1::TaskTracker::Stub* stub, const std::string& model,
                     int status, const std::string& code,
                     const std::string& message) {
  std::string task_id;
  const grpc::Status failed =
      SubmitAndFail(stub, model, status, code, message, &task_id);
  EXPECT_TRUE(failed.ok()) << failed.error_message();
  return task_id;
}

TEST(FailureRulesServeE2eTest, GetNamesTheVendorRuleThatDecided) {
  TempDir db;
  ServerProcess server(db.path());
  std::string error;
  ASSERT_TRUE(server.Start(&error)) << error;
  std::unique_ptr<v1::TaskTracker::Stub> stub = server.NewStub();

  // Google's per-minute quota: a rate limit, not a balance.
  const std::string veo = FailTask(
      stub.get(), "veo-3", 429, "RESOURCE_EXHAUSTED",
      "Quota exceeded for aiplatform.googleapis.com/generate_video_requests");
  const CommandResult get = server.RunCli({"get", veo}, {"TZ=UTC"});
  ASSERT_EQ(get.exit_code, 0) << get.err;
  EXPECT_THAT(get.out, HasSubstr("rate limited"));
  EXPECT_THAT(get.out, HasSubstr("· rule google-resource-exhausted"));
  EXPECT_THAT(get.out, HasSubstr("yes — a retry may succeed"));

  const CommandResult json = server.RunCli({"get", veo, "--json"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  EXPECT_THAT(json.out, HasSubstr("\"rule\": \"google-resource-exhausted\""));

  // The same words for OpenAI are a balance.
  const std::string sora =
      FailTask(stub.get(), "sora-2", 429, "insufficient_quota",
               "You exceeded your current quota, please check your plan and "
               "billing details.");
  const CommandResult sora_get = server.RunCli({"get", sora}, {"TZ=UTC"});
  ASSERT_EQ(sora_get.exit_code, 0) << sora_get.err;
  EXPECT_THAT(sora_get.out, HasSubstr("· rule openai-insufficient-quota"));
  EXPECT_THAT(sora_get.out, HasSubstr("no — retrying unchanged"));
}

TEST(FailureRulesServeE2eTest, AnOperatorFileScopesRulesByTheModelsVendor) {
  TempDir dir;
  const std::string rules = dir.Write("rules.json", kTwoRules);
  ServerProcess server(dir.File("db"), {"--failure-rules", rules});
  std::string error;
  ASSERT_TRUE(server.Start(&error)) << error;
  std::unique_ptr<v1::TaskTracker::Stub> stub = server.NewStub();

  const std::string kling = FailTask(stub.get(), "kling-v2-1", 400, "1301",
                                     "content security policy");
  const std::string runway =
      FailTask(stub.get(), "sora-2", 400, "1301", "content security policy");
  const std::string down = FailTask(stub.get(), "sora-2", 502, "1301", "");

  const CommandResult kling_get = server.RunCli({"get", kling}, {"TZ=UTC"});
  ASSERT_EQ(kling_get.exit_code, 0) << kling_get.err;
  EXPECT_THAT(kling_get.out, HasSubstr("content policy"));
  EXPECT_THAT(kling_get.out, HasSubstr("· rule kling-risk"));
  // Kling's code means nothing for OpenAI: no rule decides.
  const CommandResult runway_get = server.RunCli({"get", runway}, {"TZ=UTC"});
  ASSERT_EQ(runway_get.exit_code, 0) << runway_get.err;
  EXPECT_THAT(runway_get.out, HasSubstr("does not recognise"));
  EXPECT_THAT(runway_get.out, Not(HasSubstr("· rule ")));
  const CommandResult down_get = server.RunCli({"get", down}, {"TZ=UTC"});
  ASSERT_EQ(down_get.exit_code, 0) << down_get.err;
  EXPECT_THAT(down_get.out, HasSubstr("· rule any-5xx"));
}

}  // namespace
}  // namespace tasktrail::testing
