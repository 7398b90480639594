// The tasktrail CLI, run as a program against a real tasktraild.
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace tasktrail::testing {
namespace {

using ::testing::ContainsRegex;
using ::testing::HasSubstr;
using ::testing::Not;

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<ServerProcess>(db_.path());
    std::string error;
    ASSERT_TRUE(server_->Start(&error)) << error;
    stub_ = server_->NewStub();
  }

  CommandResult Cli(const std::vector<std::string>& args) {
    return server_->RunCli(args, {"TZ=UTC"});
  }

  std::string SubmitFailedTask() { return SubmitFailedTaskFor("acct-42"); }

  std::string SubmitFailedTaskFor(const std::string& account) {
    v1::SubmitTaskRequest submit;
    submit.set_account_id(account);
    submit.set_model("kling-v2-1");
    submit.set_charge_units(40);
    submit.mutable_params()->set_prompt("a lighthouse at dusk");
    v1::SubmitTaskResponse submitted;
    grpc::ClientContext c1;
    EXPECT_TRUE(stub_->SubmitTask(&c1, submit, &submitted).ok());
    const std::string id = submitted.task().task_id();
    v1::RecordEventRequest queued;
    queued.set_task_id(id);
    queued.mutable_queued()->set_upstream_task_id("kl-123456");
    v1::RecordEventResponse response;
    grpc::ClientContext c2;
    EXPECT_TRUE(stub_->RecordEvent(&c2, queued, &response).ok());
    v1::RecordEventRequest failed;
    failed.set_task_id(id);
    failed.mutable_failed()->set_http_status(503);
    failed.mutable_failed()->set_message("upstream overloaded");
    failed.mutable_failed()->set_refunded(true);
    grpc::ClientContext c3;
    EXPECT_TRUE(stub_->RecordEvent(&c3, failed, &response).ok());
    return id;
  }

  TempDir db_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<v1::TaskTracker::Stub> stub_;
};

TEST_F(CliTest, GetShowsTaskChargeAndTimelineOnOneScreen) {
  const std::string id = SubmitFailedTask();
  CommandResult result = Cli({"get", id});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_THAT(result.out, HasSubstr(id));
  EXPECT_THAT(result.out, HasSubstr("acct-42"));
  EXPECT_THAT(result.out, HasSubstr("kling-v2-1"));
  EXPECT_THAT(result.out, HasSubstr("FAILED"));
  EXPECT_THAT(result.out, HasSubstr("kl-123456"));
  EXPECT_THAT(result.out, HasSubstr("charged 40 units"));
  EXPECT_THAT(result.out, HasSubstr("refunded"));
  EXPECT_THAT(result.out, HasSubstr("upstream overloaded"));
  EXPECT_THAT(result.out, HasSubstr("ago"));
  for (const char* event : {"submitted", "queued", "failed"}) {
    EXPECT_THAT(result.out, HasSubstr(event));
  }
  // One screen: the whole answer fits in a terminal.
  EXPECT_LT(std::count(result.out.begin(), result.out.end(), '\n'), 50);
}

// A time reads as its age and its clock in the shown zone (--utc here, the
// local zone Asia/Kolkata being 5:30 ahead): "0s ago, 20:03:12". The date
// comes with the clock only when the time is not today (just after
// midnight, the creation may be yesterday's).
TEST_F(CliTest, GetShowsTimesAsAgeAndClockInTheShownZone) {
  const std::string id = SubmitFailedTask();
  v1::GetTaskRequest request;
  request.set_task_id(id);
  v1::Task task;
  ASSERT_TRUE(stub_->GetTask(DeadlineContext().get(), request, &task).ok());
  const absl::Time created =
      absl::FromUnixSeconds(task.create_time().seconds());
  CommandResult result =
      server_->RunCli({"--utc", "get", id}, {"TZ=Asia/Kolkata"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const std::string utc_clock =
      absl::FormatTime("%H:%M:%S", created, absl::UTCTimeZone());
  EXPECT_THAT(
      result.out,
      ContainsRegex("created +[0-9]+s ago, ([0-9]{4}-[0-9]{2}-[0-9]{2} )?" +
                    utc_clock + "\n"));
}

TEST_F(CliTest, GetSaysHowManyDuplicatesWereBlocked) {
  v1::SubmitTaskRequest submit;
  submit.set_account_id("acct-7");
  submit.set_model("veo-3");
  submit.set_request_id("click");
  submit.set_charge_units(40);
  submit.mutable_params()->set_prompt("fireworks over a harbour");
  std::string id;
  for (int click = 0; click < 3; ++click) {
    v1::SubmitTaskResponse response;
    grpc::ClientContext context;
    ASSERT_TRUE(stub_->SubmitTask(&context, submit, &response).ok());
    id = response.task().task_id();
  }
  CommandResult result = Cli({"get", id});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_THAT(result.out, HasSubstr("blocked 2 duplicate submissions (last "));
  EXPECT_THAT(result.out, HasSubstr("charged 40 units"));
}

TEST_F(CliTest, GetExplainsTheFailureInPlainWords) {
  const std::string id = SubmitFailedTask();
  CommandResult result = Cli({"get", id});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_THAT(result.out, HasSubstr("temporary capacity error"));
  EXPECT_THAT(result.out, HasSubstr("provider"));
}

TEST_F(CliTest, QueuedAnswersWithAVerdictAndExitsZero) {
  v1::SubmitTaskRequest submit;
  submit.set_account_id("acct-9");
  submit.set_model("veo-3");
  submit.mutable_params()->set_prompt("a queue of penguins");
  v1::SubmitTaskResponse submitted;
  grpc::ClientContext c1;
  ASSERT_TRUE(stub_->SubmitTask(&c1, submit, &submitted).ok());
  v1::RecordEventRequest queued;
  queued.set_task_id(submitted.task().task_id());
  queued.mutable_queued()->set_queue_position(14);
  v1::RecordEventResponse response;
  grpc::ClientContext c2;
  ASSERT_TRUE(stub_->RecordEvent(&c2, queued, &response).ok());

  CommandResult result = Cli({"queued", submitted.task().task_id()});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_THAT(result.out, HasSubstr("position 14"));
  EXPECT_THAT(result.out, HasSubstr("Do not resubmit"));
  CommandResult json = Cli({"queued", submitted.task().task_id(), "--json"});
  ASSERT_EQ(json.exit_code, 0);
  EXPECT_THAT(json.out, HasSubstr("\"QUEUE_VERDICT_QUEUED_NORMAL\""));
  EXPECT_EQ(Cli({"queued", "01ARZ3NDEKTSV4RRFFQ69G5FAV"}).exit_code, 3);
}

TEST_F(CliTest, StatsNamesAProviderIncident) {
  for (int i = 0; i < 6; ++i) SubmitFailedTaskFor("acct-" + std::to_string(i));
  CommandResult result = Cli({"stats", "--window", "15m"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_THAT(result.out,
              HasSubstr("kling-v2-1: 6 of 6 finished tasks failed"));
  EXPECT_THAT(result.out, HasSubstr("likely a provider incident"));
  EXPECT_EQ(Cli({"stats", "--window", "48h"}).exit_code, 1);
}

TEST_F(CliTest, GetAcceptsTheUpstreamTaskId) {
  const std::string id = SubmitFailedTask();
  CommandResult result = Cli({"get", "kl-123456"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_THAT(result.out, HasSubstr(id));
}

TEST_F(CliTest, GetJsonUsesProtoFieldNamesAndPrintsDefaults) {
  const std::string id = SubmitFailedTask();
  CommandResult result = Cli({"get", id, "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_THAT(result.out, HasSubstr("\"task_id\""));
  EXPECT_THAT(result.out, Not(HasSubstr("\"taskId\"")));
  EXPECT_THAT(result.out, HasSubstr("\"download_count\""));  // default 0
  v1::Task parsed;
  ASSERT_TRUE(
      google::protobuf::util::JsonStringToMessage(result.out, &parsed).ok());
  EXPECT_EQ(parsed.task_id(), id);
  EXPECT_EQ(parsed.events_size(), 3);
}

TEST_F(CliTest, ExitStatusesFollowTheContract) {
  EXPECT_EQ(Cli({"get", "01ARZ3NDEKTSV4RRFFQ69G5FAV"}).exit_code, 3);
  EXPECT_EQ(Cli({"--help"}).exit_code, 0);
  EXPECT_EQ(Cli({"list", "--state", "sleeping"}).exit_code, 2);
  EXPECT_EQ(Cli({"get"}).exit_code, 2);

  const std::string id = SubmitFailedTask();
  // A note is a write the server accepts after a failure.
  CommandResult note =
      Cli({"note", id, "user asked twice", "--final-cause",
           "remote service returned a temporary capacity error"});
  EXPECT_EQ(note.exit_code, 0) << note.err;
  CommandResult shown = Cli({"get", id});
  EXPECT_THAT(shown.out,
              HasSubstr("remote service returned a temporary capacity error"));

  // Server gone: exit 4, naming the address tried.
  const std::string address = server_->address();
  server_->Stop();
  CommandResult unreachable =
      RunCommand({CliPath(), "--server", address, "--timeout", "2", "get", id});
  EXPECT_EQ(unreachable.exit_code, 4);
  EXPECT_THAT(unreachable.err, HasSubstr(address));
}

TEST_F(CliTest, ListShowsNewestFirstAndPages) {
  const std::string first = SubmitFailedTask();
  const std::string second = SubmitFailedTask();
  CommandResult page = Cli({"list", "--account", "acct-42", "--limit", "1"});
  ASSERT_EQ(page.exit_code, 0) << page.err;
  EXPECT_THAT(page.out, HasSubstr(second));
  EXPECT_THAT(page.out, Not(HasSubstr(first)));
  const size_t token_at = page.out.find("--page-token ");
  ASSERT_NE(token_at, std::string::npos) << page.out;
  std::string token = page.out.substr(token_at + 13);
  token = token.substr(0, token.find_first_of(" \n"));
  CommandResult next = Cli(
      {"list", "--account", "acct-42", "--limit", "1", "--page-token", token});
  ASSERT_EQ(next.exit_code, 0) << next.err;
  EXPECT_THAT(next.out, HasSubstr(first));

  CommandResult empty = Cli({"list", "--account", "nobody"});
  EXPECT_EQ(empty.exit_code, 0);
}

TEST_F(CliTest, WatchOfAFinishedTaskPrintsItsTimelineAndExitsZero) {
  const std::string id = SubmitFailedTask();
  CommandResult watch = Cli({"watch", id});
  EXPECT_EQ(watch.exit_code, 0) << watch.err;
  EXPECT_THAT(watch.out, HasSubstr("failed"));
}

}  // namespace
}  // namespace tasktrail::testing
