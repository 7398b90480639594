// The list to refund end to end: a real tasktraild keeps the owed index
// (ListTasksRequest.owed) exact across every transition, adjustment, late
// result and refund of charged tasks, and `tasktrail owed` prints it with the
// total owed, filtered by age and model, as rows or NDJSON; on each store
// tasktraild serves from.
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/support/daemon_fixture.h"
#include "tests/support/test_support.h"

namespace tasktrail::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

class OwedTest : public DaemonTest {
 protected:
  void SetUp() override { StartServer("owed_e2e"); }

  // Submits a task of `model` (sora-2 is an OpenAI model: its failure codes
  // classify) charged `charge` units and queues it; returns its id.
  std::string Submit(int64_t charge, const std::string& model = "sora-2") {
    v1::SubmitTaskRequest submit;
    submit.set_account_id("acct-9");
    submit.set_model(model);
    submit.set_charge_units(charge);
    submit.mutable_params()->set_prompt(
        absl::StrCat("a harbour at dawn ", ++submissions_));
    v1::SubmitTaskResponse submitted;
    const grpc::Status status =
        stub_->SubmitTask(DeadlineContext().get(), submit, &submitted);
    EXPECT_TRUE(status.ok()) << status.error_message();
    const std::string id = submitted.task().task_id();
    v1::RecordEventRequest queued;
    queued.mutable_queued()->set_upstream_task_id(absl::StrCat("up-", id));
    Record(queued, id);
    return id;
  }

  void Record(v1::RecordEventRequest request, const std::string& id) {
    request.set_task_id(id);
    v1::RecordEventResponse response;
    const grpc::Status status =
        stub_->RecordEvent(DeadlineContext().get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
  }

  static v1::RecordEventRequest Failed(const std::string& error_code,
                                       bool by_gateway = false) {
    v1::RecordEventRequest request;
    request.mutable_failed()->set_http_status(500);
    request.mutable_failed()->set_error_code(error_code);
    request.mutable_failed()->set_message("generation failed");
    request.mutable_failed()->set_by_gateway(by_gateway);
    return request;
  }

  static v1::RecordEventRequest Canceled() {
    v1::RecordEventRequest request;
    request.mutable_canceled()->set_reason("user canceled");
    return request;
  }

  static v1::RecordEventRequest Adjust(int64_t delta) {
    v1::RecordEventRequest request;
    request.mutable_charge_adjusted()->set_delta_units(delta);
    request.mutable_charge_adjusted()->set_reason("settled by policy");
    return request;
  }

  static v1::RecordEventRequest Refund() {
    v1::RecordEventRequest request;
    request.mutable_refunded()->set_reason("owed list");
    return request;
  }

  static v1::RecordEventRequest LateCompleted() {
    v1::RecordEventRequest request;
    request.mutable_late_result()->set_upstream_status("succeeded");
    request.mutable_late_result()->add_result_uris(
        "https://cdn.example.com/v/late.mp4");
    return request;
  }

  // The ids ListTasks lists with `owed`, paging to the end.
  std::vector<std::string> Owed(v1::ListTasksRequest request = {}) {
    request.set_owed(true);
    request.set_oldest_first(true);
    return ListIds(request);
  }

  int submissions_ = 0;
};

INSTANTIATE_TEST_SUITE_P(Stores, OwedTest, kBothStores, BackendParamName());

TEST_P(OwedTest, TheIndexFollowsEveryTransitionAdjustmentLateResultAndRefund) {
  const std::string provider = Submit(40);
  const std::string configuration = Submit(30);
  const std::string canceled = Submit(20);
  const std::string gateway = Submit(10);
  const std::string succeeded = Submit(5);
  const std::string free = Submit(0);
  EXPECT_THAT(Owed(), IsEmpty());  // nothing finished yet

  Record(Failed("server_error"), provider);
  EXPECT_THAT(Owed(), ElementsAre(provider));
  Record(Failed("invalid_api_key"), configuration);  // the gateway's setup
  Record(Failed("server_error"), free);              // nothing was charged
  v1::RecordEventRequest completed;
  completed.mutable_completed()->add_result_uris(
      "https://cdn.example.com/v/ok.mp4");
  Record(completed, succeeded);
  EXPECT_THAT(Owed(), ElementsAre(provider));
  Record(Canceled(), canceled);
  Record(Failed("", /*by_gateway=*/true), gateway);
  EXPECT_THAT(Owed(), ElementsAre(provider, canceled, gateway));

  // The provider finished it after all: still owed, the user got nothing.
  Record(LateCompleted(), provider);
  EXPECT_THAT(Owed(), ElementsAre(provider, canceled, gateway));
  // Settled down to nothing, and up again.
  Record(Adjust(-15), canceled);
  EXPECT_THAT(Owed(), ElementsAre(provider, canceled, gateway));
  Record(Adjust(-5), canceled);
  EXPECT_THAT(Owed(), ElementsAre(provider, gateway));
  Record(Adjust(5), canceled);
  EXPECT_THAT(Owed(), ElementsAre(provider, canceled, gateway));

  // Each refund takes its task off the list until it is empty.
  Record(Refund(), provider);
  EXPECT_THAT(Owed(), ElementsAre(canceled, gateway));
  Record(Refund(), canceled);
  Record(Refund(), gateway);
  EXPECT_THAT(Owed(), IsEmpty());

  // The index survives a restart.
  const std::string after = Submit(15);
  Record(Failed("server_error"), after);
  RestartServer();
  EXPECT_THAT(Owed(), ElementsAre(after));
}

TEST_P(OwedTest, FiltersByAgeAndModelAndPagesThroughEveryOwedTask) {
  std::vector<std::string> sora;
  for (int i = 0; i < 5; ++i) {
    sora.push_back(Submit(10 + i));
    Record(Failed("server_error"), sora.back());
  }
  const std::string veo = Submit(7, "veo-3");
  Record(Canceled(), veo);

  v1::ListTasksRequest paged;
  paged.set_page_size(2);
  std::vector<std::string> all = sora;
  all.push_back(veo);
  EXPECT_EQ(Owed(paged), all);

  v1::ListTasksRequest by_model;
  by_model.set_model("veo-3");
  EXPECT_THAT(Owed(by_model), ElementsAre(veo));

  // Finished just now: none is an hour old, every one is zero seconds old.
  v1::ListTasksRequest old;
  old.mutable_owed_for()->set_seconds(3600);
  EXPECT_THAT(Owed(old), IsEmpty());
  v1::ListTasksRequest any_age;
  any_age.mutable_owed_for()->set_seconds(0);
  EXPECT_EQ(Owed(any_age), all);

  // An owed task is finished: asking for unfinished ones too lists none.
  v1::ListTasksRequest unfinished;
  unfinished.set_unfinished(true);
  EXPECT_THAT(Owed(unfinished), IsEmpty());
}

TEST_P(OwedTest, ANegativeAgeIsRefusedNamingOwedFor) {
  v1::ListTasksRequest request;
  request.mutable_owed_for()->set_seconds(-60);
  v1::ListTasksResponse response;
  const grpc::Status status =
      stub_->ListTasks(DeadlineContext().get(), request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("owed_for"));
}

TEST_P(OwedTest, TheCliPrintsTheListToRefundWithItsTotal) {
  CommandResult empty = server_->RunCli({"owed"});
  ASSERT_EQ(empty.exit_code, 0) << empty.err;
  EXPECT_THAT(empty.out, HasSubstr("nothing owed"));

  const std::string provider = Submit(40);
  Record(Failed("server_error"), provider);
  const std::string gateway = Submit(12, "veo-3");
  Record(Failed("", /*by_gateway=*/true), gateway);
  const std::string refunded = Submit(9);
  Record(Failed("server_error"), refunded);
  Record(Refund(), refunded);

  CommandResult listed = server_->RunCli({"owed"});
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_THAT(listed.out, HasSubstr(provider));
  EXPECT_THAT(listed.out, HasSubstr(gateway));
  EXPECT_THAT(listed.out, Not(HasSubstr(refunded)));
  EXPECT_THAT(listed.out, HasSubstr("acct-9"));
  EXPECT_THAT(listed.out, HasSubstr("provider"));
  EXPECT_THAT(listed.out, HasSubstr("gateway"));
  EXPECT_THAT(listed.out, HasSubstr("2 tasks owed · 52 units"));

  CommandResult by_model = server_->RunCli({"owed", "--model", "veo-3"});
  ASSERT_EQ(by_model.exit_code, 0) << by_model.err;
  EXPECT_THAT(by_model.out, Not(HasSubstr(provider)));
  EXPECT_THAT(by_model.out, HasSubstr("1 task owed · 12 units"));

  CommandResult old = server_->RunCli({"owed", "--older-than", "10m"});
  ASSERT_EQ(old.exit_code, 0) << old.err;
  EXPECT_THAT(old.out, HasSubstr("nothing owed"));

  CommandResult json = server_->RunCli({"owed", "--json"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  const std::vector<std::string> lines =
      absl::StrSplit(json.out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 2u) << json.out;
  EXPECT_THAT(lines[0], HasSubstr(absl::StrCat("\"task_id\":\"", provider)));
  EXPECT_THAT(lines[0], HasSubstr("\"owed_units\":40"));
  EXPECT_THAT(lines[0], HasSubstr("\"failure_origin\":\"PROVIDER\""));
  EXPECT_THAT(lines[1], HasSubstr("\"failure_origin\":\"GATEWAY\""));

  CommandResult bad = server_->RunCli({"owed", "--older-than", "soon"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_THAT(bad.err, HasSubstr("--older-than"));
}

}  // namespace
}  // namespace tasktrail::testing
