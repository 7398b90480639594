// ClassifyFailure and `tasktrail classify` end to end: a real tasktraild
// classifies an upstream error with the rules of the model's vendor (or the
// generic ones), names the rule that decided, refuses bad input naming the
// field, and lets every role that may read a task call it; `tasktrail stats`
// lists the failures no rule recognised, folded by their normalised message.
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace tasktrail::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

constexpr char kVeoQuota[] =
    "Quota exceeded for aiplatform.googleapis.com/generate_video_requests";

class ClassifyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    ASSERT_TRUE(server_.Start(&error)) << error;
    stub_ = server_.NewStub();
  }

  grpc::Status Classify(const std::string& model, int status,
                        const std::string& code, const std::string& message,
                        v1::Failure* failure) {
    v1::ClassifyFailureRequest request;
    request.set_model(model);
    request.set_http_status(status);
    request.set_error_code(code);
    request.set_message(message);
    return stub_->ClassifyFailure(DeadlineContext().get(), request, failure);
  }

  TempDir db_;
  ServerProcess server_{db_.path()};
  std::unique_ptr<v1::TaskTracker::Stub> stub_;
};

TEST_F(ClassifyTest, GooglesPerMinuteQuotaIsARetryableRateLimit) {
  v1::Failure failure;
  const grpc::Status status =
      Classify("veo-3", 429, "RESOURCE_EXHAUSTED", kVeoQuota, &failure);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(failure.category(), v1::FAILURE_CATEGORY_RATE_LIMITED);
  EXPECT_EQ(failure.origin(), v1::FAILURE_ORIGIN_PROVIDER);
  EXPECT_TRUE(failure.retryable());
  EXPECT_EQ(failure.rule(), "google-resource-exhausted");
  EXPECT_EQ(failure.http_status(), 429);
  EXPECT_EQ(failure.error_code(), "RESOURCE_EXHAUSTED");
  EXPECT_EQ(failure.message(), kVeoQuota);
  EXPECT_THAT(failure.cause(), HasSubstr("not a balance"));

  // The same evidence on an OpenAI model is not Google's: the generic rules
  // decide, and they read RESOURCE_EXHAUSTED differently or not at all.
  v1::Failure generic;
  ASSERT_TRUE(
      Classify("sora-2", 429, "RESOURCE_EXHAUSTED", kVeoQuota, &generic).ok());
  EXPECT_NE(generic.rule(), "google-resource-exhausted");
}

TEST_F(ClassifyTest, TheCliPrintsCategoryOriginCauseRetryAndRule) {
  const CommandResult veo =
      server_.RunCli({"classify", "--model", "veo-3", "--http", "429", "--code",
                      "RESOURCE_EXHAUSTED", "--message", kVeoQuota});
  ASSERT_EQ(veo.exit_code, 0) << veo.err;
  EXPECT_THAT(veo.out, HasSubstr("model       veo-3\n"));
  EXPECT_THAT(veo.out, HasSubstr("failure     rate limited · origin provider · "
                                 "HTTP 429 · code RESOURCE_EXHAUSTED\n"));
  EXPECT_THAT(veo.out, HasSubstr("cause       Google's per-minute request"));
  EXPECT_THAT(veo.out, HasSubstr("retryable   yes — a retry may succeed\n"));
  EXPECT_THAT(veo.out, HasSubstr("rule        google-resource-exhausted\n"));

  // A generic rule: a Runway model's bare 503 is a capacity error.
  const CommandResult runway = server_.RunCli(
      {"classify", "--model", "gen4_turbo", "--http", "503", "--json"});
  ASSERT_EQ(runway.exit_code, 0) << runway.err;
  EXPECT_THAT(runway.out, HasSubstr("\"rule\": \"generic-server-status\""));
  EXPECT_THAT(runway.out,
              HasSubstr("\"category\": \"FAILURE_CATEGORY_UPSTREAM_UNAVAILABLE"
                        "\""));
  EXPECT_THAT(runway.out, HasSubstr("\"origin\": \"FAILURE_ORIGIN_PROVIDER\""));
  EXPECT_THAT(runway.out, HasSubstr("\"retryable\": true"));

  // No rule: said so, and still a success.
  const CommandResult none =
      server_.RunCli({"classify", "--model", "kling-v2-1", "--message",
                      "the sampler wandered off"});
  ASSERT_EQ(none.exit_code, 0) << none.err;
  EXPECT_THAT(none.out, HasSubstr("failure     unknown · origin unknown\n"));
  EXPECT_THAT(none.out, HasSubstr("rule        none matched"));
}

TEST_F(ClassifyTest, SecretsAreScrubbedBeforeTheAnswer) {
  v1::Failure failure;
  ASSERT_TRUE(Classify("sora-2", 401, "invalid_api_key",
                       "Incorrect API key provided: "
                       "sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
                       &failure)
                  .ok());
  EXPECT_THAT(failure.message(), HasSubstr("[REDACTED]"));
  EXPECT_THAT(failure.message(), Not(HasSubstr("sk-proj-")));
  EXPECT_EQ(failure.category(), v1::FAILURE_CATEGORY_AUTH);
}

TEST_F(ClassifyTest, BadInputIsInvalidArgumentNamingTheField) {
  v1::Failure failure;
  grpc::Status status = Classify("", 500, "", "", &failure);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(ViolatedFields(status), ElementsAre("model FIELD_REQUIRED"));

  status = Classify("veo3", 500, "", "", &failure);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(ViolatedFields(status), ElementsAre("model MODEL_UNKNOWN"));
  EXPECT_THAT(status.error_message(), HasSubstr("did you mean veo-3"));

  status = Classify("veo-3", 700, "", "", &failure);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(ViolatedFields(status),
              ElementsAre("http_status FIELD_OUT_OF_RANGE"));

  status = Classify("veo-3", 0, std::string(200, 'c'), "", &failure);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(ViolatedFields(status), ElementsAre("error_code FIELD_TOO_LONG"));

  status = Classify("veo-3", 0, "", std::string(5000, 'm'), &failure);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(ViolatedFields(status), ElementsAre("message FIELD_TOO_LONG"));

  // The CLI: refused requests exit 1 with the server's words.
  const CommandResult unknown =
      server_.RunCli({"classify", "--model", "veo3", "--http", "429"});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_THAT(unknown.err, HasSubstr("did you mean veo-3"));
  EXPECT_THAT(unknown.out, IsEmpty());
  const CommandResult bad_status =
      server_.RunCli({"classify", "--model", "veo-3", "--http", "42"});
  EXPECT_EQ(bad_status.exit_code, 1);
  EXPECT_THAT(bad_status.err, HasSubstr("http_status"));
  const CommandResult no_model = server_.RunCli({"classify", "--http", "500"});
  EXPECT_EQ(no_model.exit_code, 2);
}

// Fails a task of `model` with `message` alone (no status, no code).
void FailTask(v1::TaskTracker::Stub* stub, const std::string& model,
              const std::string& message) {
  std::string task_id;
  const grpc::Status failed =
      SubmitAndFail(stub, model, 0, "", message, &task_id);
  ASSERT_TRUE(failed.ok()) << failed.error_message();
}

TEST_F(ClassifyTest, StatsListTheUnclassifiedMessagesToWriteRulesFor) {
  const std::string first =
      "render node 550e8400-e29b-41d4-a716-446655440000 lost its sampler";
  const std::string second =
      "render node 9b1d2e44-aaaa-4bbb-8ccc-0123456789ab lost its sampler";
  // Precondition: no rule recognises them (classify says so).
  v1::Failure failure;
  ASSERT_TRUE(Classify("kling-v2-1", 0, "", first, &failure).ok());
  ASSERT_EQ(failure.rule(), "");
  FailTask(stub_.get(), "kling-v2-1", first);
  FailTask(stub_.get(), "kling-v2-1", second);
  FailTask(stub_.get(), "kling-v2-1", "palette underflow in frame 12");
  // Recognised failures are not listed.
  FailTask(stub_.get(), "kling-v2-1", "upstream request timed out");

  const CommandResult stats =
      server_.RunCli({"stats", "--window", "1h"}, {"TZ=UTC"});
  ASSERT_EQ(stats.exit_code, 0) << stats.err;
  EXPECT_THAT(stats.out, HasSubstr("\nkling-v2-1\n"));
  EXPECT_THAT(stats.out, HasSubstr("  unclassified\n"
                                   "    2 × render node <id> lost its sampler\n"
                                   "    1 × palette underflow in frame <n>\n"));
  EXPECT_THAT(stats.out, Not(HasSubstr("timed out")));

  const CommandResult json =
      server_.RunCli({"stats", "--window", "1h", "--json"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  EXPECT_THAT(json.out, HasSubstr("\"unclassified\": ["));
  // JSON escapes the mask's angle brackets.
  EXPECT_THAT(json.out, HasSubstr("\"message\": \"render node \\u003cid\\u003e "
                                  "lost its sampler\""));

  // Counted durably: the same after a restart.
  ASSERT_EQ(server_.Stop(), 0);
  std::string error;
  ASSERT_TRUE(server_.Start(&error)) << error;
  const CommandResult again =
      server_.RunCli({"stats", "--window", "1h"}, {"TZ=UTC"});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_THAT(again.out,
              HasSubstr("    2 × render node <id> lost its sampler\n"));
}

TEST(ClassifyAccessTest, EveryRoleThatMayReadATaskMayClassify) {
  TempDir db;
  TempDir files;
  const std::string auth = files.Write(
      "auth",
      AuthFileText("backend-tok-1a2b", "support-tok-3c4d", "admin-tok-5e6f"));
  ServerProcess server(db.path(), {"--auth-file", auth});
  std::string error;
  ASSERT_TRUE(server.Start(&error)) << error;
  std::unique_ptr<v1::TaskTracker::Stub> stub = server.NewStub();
  v1::ClassifyFailureRequest request;
  request.set_model("veo-3");
  request.set_http_status(503);
  auto as = [&](const std::string& token) {
    v1::Failure failure;
    return stub->ClassifyFailure(AuthContext(token).get(), request, &failure);
  };
  EXPECT_EQ(as("").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(as("not-a-token").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  for (const std::string token :
       {"backend-tok-1a2b", "support-tok-3c4d", "admin-tok-5e6f"}) {
    SCOPED_TRACE(token);
    const grpc::Status status = as(token);
    EXPECT_TRUE(status.ok()) << status.error_message();
    // GetTask is allowed to the same roles: NOT_FOUND, not PERMISSION_DENIED.
    v1::GetTaskRequest get;
    get.set_task_id("01ARZ3NDEKTSV4RRFFQ69G5FAV");
    v1::Task task;
    EXPECT_EQ(stub->GetTask(AuthContext(token).get(), get, &task).error_code(),
              grpc::StatusCode::NOT_FOUND);
  }
  const CommandResult cli =
      server.RunCli({"classify", "--model", "veo-3", "--http", "503"},
                    {"TASKTRAIL_TOKEN=support-tok-3c4d"});
  EXPECT_EQ(cli.exit_code, 0) << cli.err;
  const CommandResult anonymous =
      server.RunCli({"classify", "--model", "veo-3", "--http", "503"});
  EXPECT_EQ(anonymous.exit_code, 5);
}

}  // namespace
}  // namespace tasktrail::testing
