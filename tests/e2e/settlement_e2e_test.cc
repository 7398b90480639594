// Settlement and late upstream results end to end: a real tasktraild keeps
// the charge adjustments of a task (any state, once per event_id, never below
// zero) with its net, records what the provider reported after the task
// failed or was canceled here without changing its state, tells a gateway's
// own give-up from a provider failure, and `tasktrail get` and `stats` say
// all of it in support's words; on each store tasktraild serves from.
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
using ::testing::Not;

class SettlementTest : public DaemonTest {
 protected:
  void SetUp() override { StartServer("settlement_e2e"); }

  // Submits a task of sora-2 charged `charge` units; returns its id.
  std::string Submit(int64_t charge) {
    v1::SubmitTaskRequest submit;
    submit.set_account_id("acct-7");
    submit.set_model("sora-2");
    submit.set_charge_units(charge);
    submit.mutable_params()->set_prompt(
        absl::StrCat("a lighthouse at dusk ", ++submissions_));
    v1::SubmitTaskResponse submitted;
    const grpc::Status status =
        stub_->SubmitTask(DeadlineContext().get(), submit, &submitted);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return submitted.task().task_id();
  }

  grpc::Status Record(v1::RecordEventRequest request, const std::string& id,
                      v1::RecordEventResponse* response = nullptr) {
    request.set_task_id(id);
    v1::RecordEventResponse ignored;
    return stub_->RecordEvent(DeadlineContext().get(), request,
                              response == nullptr ? &ignored : response);
  }

  static v1::RecordEventRequest Adjust(int64_t delta, std::string ledger = "",
                                       std::string event_id = "") {
    v1::RecordEventRequest request;
    request.set_event_id(std::move(event_id));
    request.mutable_charge_adjusted()->set_delta_units(delta);
    request.mutable_charge_adjusted()->set_ledger_ref(std::move(ledger));
    request.mutable_charge_adjusted()->set_reason("provider billed 12 s");
    return request;
  }

  static v1::RecordEventRequest Failed(bool by_gateway, bool refunded) {
    v1::RecordEventRequest request;
    request.mutable_failed()->set_http_status(504);
    request.mutable_failed()->set_message("poll timeout after 30m");
    request.mutable_failed()->set_by_gateway(by_gateway);
    request.mutable_failed()->set_refunded(refunded);
    return request;
  }

  static v1::RecordEventRequest LateCompleted() {
    v1::RecordEventRequest request;
    request.mutable_late_result()->set_upstream_status("succeeded");
    request.mutable_late_result()->add_result_uris(
        "https://cdn.example.com/v/123.mp4");
    return request;
  }

  static v1::RecordEventRequest LateFailed() {
    v1::RecordEventRequest request;
    request.mutable_late_result()->set_http_status(500);
    request.mutable_late_result()->set_error_code("internal_error");
    return request;
  }

  static v1::RecordEventRequest Simple(v1::EventType type) {
    v1::RecordEventRequest request;
    switch (type) {
      case v1::EVENT_TYPE_QUEUED:
        request.mutable_queued()->set_upstream_task_id("up-1");
        break;
      case v1::EVENT_TYPE_STARTED:
        request.mutable_started();
        break;
      case v1::EVENT_TYPE_COMPLETED:
        request.mutable_completed()->add_result_uris(
            "https://cdn.example.com/v/1.mp4");
        break;
      case v1::EVENT_TYPE_CANCELED:
        request.mutable_canceled()->set_reason("user canceled");
        break;
      default:
        ADD_FAILURE() << "no simple event of type " << type;
    }
    return request;
  }

  v1::Task Get(const std::string& id) {
    v1::GetTaskRequest request;
    request.set_task_id(id);
    v1::Task task;
    const grpc::Status status =
        stub_->GetTask(DeadlineContext().get(), request, &task);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return task;
  }

  int submissions_ = 0;
};

INSTANTIATE_TEST_SUITE_P(Stores, SettlementTest, kBothStores,
                         BackendParamName());

TEST_P(SettlementTest, AdjustmentsSumOnceAndTheChargeNeverGoesBelowZero) {
  const std::string id = Submit(40);
  struct Step {
    v1::RecordEventRequest request;
    grpc::StatusCode code;
    int64_t adjusted_after;
    int64_t net_after;
  };
  const std::vector<Step> steps = {
      {Adjust(8, "L-991", "adj-1"), grpc::StatusCode::OK, 8, 48},
      // A replay of the same event_id is applied once.
      {Adjust(8, "L-991", "adj-1"), grpc::StatusCode::OK, 8, 48},
      {Adjust(-12, "L-992"), grpc::StatusCode::OK, -4, 36},
      // 40 - 4 - 37 < 0: refused, nothing changes.
      {Adjust(-37), grpc::StatusCode::INVALID_ARGUMENT, -4, 36},
      {Adjust(0), grpc::StatusCode::INVALID_ARGUMENT, -4, 36},
      {Adjust(-36), grpc::StatusCode::OK, -40, 0},
      {Adjust(30), grpc::StatusCode::OK, -10, 30},
  };
  for (size_t i = 0; i < steps.size(); ++i) {
    SCOPED_TRACE(absl::StrCat("step ", i));
    v1::RecordEventResponse response;
    const grpc::Status status = Record(steps[i].request, id, &response);
    EXPECT_EQ(status.error_code(), steps[i].code) << status.error_message();
    const v1::Task task = Get(id);
    EXPECT_EQ(task.charge_units(), 40);
    EXPECT_EQ(task.adjusted_units(), steps[i].adjusted_after);
    EXPECT_EQ(task.net_units(), steps[i].net_after);
  }
  // The refused adjustments name the field and why.
  const grpc::Status below = Record(Adjust(-31), id);
  EXPECT_THAT(ViolatedFields(below),
              ElementsAre("charge_adjusted.delta_units ADJUSTMENT_BELOW_ZERO"));
  EXPECT_THAT(below.error_message(), HasSubstr("charged 30 units"));
  EXPECT_THAT(ViolatedFields(Record(Adjust(0), id)),
              ElementsAre("charge_adjusted.delta_units FIELD_REQUIRED"));
  EXPECT_EQ(Get(id).last_ledger_ref(), "L-992");
  // Two applied adjustments and the replay's single entry: the timeline
  // holds one CHARGE_ADJUSTED entry per applied event.
  v1::GetTaskRequest with_events;
  with_events.set_task_id(id);
  with_events.set_include_events(true);
  v1::Task timeline;
  ASSERT_TRUE(
      stub_->GetTask(DeadlineContext().get(), with_events, &timeline).ok());
  int adjustments = 0;
  for (const v1::TaskEvent& event : timeline.events()) {
    if (event.type() == v1::EVENT_TYPE_CHARGE_ADJUSTED) ++adjustments;
  }
  EXPECT_EQ(adjustments, 4);
}

TEST_P(SettlementTest, AWholeRefundRefundsTheAdjustedChargeAndNetStaysAtZero) {
  const std::string id = Submit(40);
  ASSERT_TRUE(Record(Adjust(8, "L-991"), id).ok());
  ASSERT_TRUE(Record(Failed(/*by_gateway=*/false, /*refunded=*/true), id).ok());
  v1::Task task = Get(id);
  EXPECT_TRUE(task.refunded());
  EXPECT_EQ(task.refunded_units(), 48);
  EXPECT_EQ(task.net_units(), 0);
  // After the refund, taking more would make the net negative.
  const grpc::Status below = Record(Adjust(-1), id);
  EXPECT_EQ(below.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(below.error_message(), HasSubstr("net"));

  // A partial refund is checked against the adjusted charge.
  const std::string partial = Submit(40);
  ASSERT_TRUE(Record(Adjust(8), partial).ok());
  ASSERT_TRUE(Record(Failed(false, false), partial).ok());
  v1::RecordEventRequest too_much;
  too_much.mutable_refunded()->set_units(49);
  EXPECT_THAT(ViolatedFields(Record(too_much, partial)),
              ElementsAre("refunded.units REFUND_EXCEEDS_CHARGE"));
  v1::RecordEventRequest refund;
  refund.mutable_refunded()->set_units(48);
  ASSERT_TRUE(Record(refund, partial).ok());
  EXPECT_EQ(Get(partial).net_units(), 0);
}

TEST_P(SettlementTest, AdjustmentsAreAllowedInEveryState) {
  const std::string id = Submit(10);
  ASSERT_TRUE(Record(Adjust(1), id).ok());  // SUBMITTED
  ASSERT_TRUE(Record(Simple(v1::EVENT_TYPE_QUEUED), id).ok());
  ASSERT_TRUE(Record(Adjust(1), id).ok());  // QUEUED
  ASSERT_TRUE(Record(Simple(v1::EVENT_TYPE_STARTED), id).ok());
  ASSERT_TRUE(Record(Adjust(1), id).ok());  // RUNNING
  ASSERT_TRUE(Record(Simple(v1::EVENT_TYPE_COMPLETED), id).ok());
  ASSERT_TRUE(Record(Adjust(1), id).ok());  // SUCCEEDED
  const v1::Task task = Get(id);
  EXPECT_EQ(task.state(), v1::TASK_STATE_SUCCEEDED);
  EXPECT_EQ(task.adjusted_units(), 4);
  EXPECT_EQ(task.net_units(), 14);
}

TEST_P(SettlementTest, GetShowsChargeAdjustmentsRefundAndNet) {
  const std::string id = Submit(40);
  ASSERT_TRUE(Record(Adjust(8, "L-991"), id).ok());
  const CommandResult get = server_->RunCli({"get", id, "--events"});
  ASSERT_EQ(get.exit_code, 0) << get.err;
  EXPECT_THAT(get.out, HasSubstr("charged 40 · adjusted +8 (ledger L-991) · "
                                 "refunded 0 · net 48\n"));
  EXPECT_THAT(get.out, HasSubstr("charge-adjusted"));
  EXPECT_THAT(get.out, HasSubstr("+8 units · ledger L-991"));

  // Without adjustments the line is the plain one.
  const std::string plain = Submit(40);
  const CommandResult plain_get = server_->RunCli({"get", plain});
  ASSERT_EQ(plain_get.exit_code, 0) << plain_get.err;
  EXPECT_THAT(plain_get.out, HasSubstr("charged 40 units · not refunded\n"));
  EXPECT_THAT(plain_get.out, Not(HasSubstr("net ")));
}

TEST_P(SettlementTest, LateResultsAreRecordedOnlyAfterFailedOrCanceled) {
  // In flight or succeeded: refused, naming the states it is for.
  const std::string submitted = Submit(10);
  const grpc::Status early = Record(LateCompleted(), submitted);
  EXPECT_EQ(early.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(early.error_message(),
              HasSubstr("only after FAILED or CANCELED"));
  const std::string running = Submit(10);
  ASSERT_TRUE(Record(Simple(v1::EVENT_TYPE_STARTED), running).ok());
  EXPECT_EQ(Record(LateCompleted(), running).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  const std::string succeeded = Submit(10);
  ASSERT_TRUE(Record(Simple(v1::EVENT_TYPE_COMPLETED), succeeded).ok());
  EXPECT_EQ(Record(LateFailed(), succeeded).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(Get(succeeded).late_outcome(), v1::TASK_STATE_UNSPECIFIED);

  // FAILED: accepted, the state stays, the outcome is the provider's.
  const std::string failed = Submit(10);
  ASSERT_TRUE(
      Record(Failed(/*by_gateway=*/true, /*refunded=*/false), failed).ok());
  v1::RecordEventResponse response;
  ASSERT_TRUE(Record(LateCompleted(), failed, &response).ok());
  EXPECT_TRUE(response.applied());
  v1::Task task = Get(failed);
  EXPECT_EQ(task.state(), v1::TASK_STATE_FAILED);
  EXPECT_EQ(task.late_outcome(), v1::TASK_STATE_SUCCEEDED);
  EXPECT_TRUE(task.has_late_result_time());
  EXPECT_EQ(task.result_uris_size(), 0);

  // CANCELED: a late failure.
  const std::string canceled = Submit(10);
  ASSERT_TRUE(Record(Simple(v1::EVENT_TYPE_CANCELED), canceled).ok());
  ASSERT_TRUE(Record(LateFailed(), canceled).ok());
  task = Get(canceled);
  EXPECT_EQ(task.state(), v1::TASK_STATE_CANCELED);
  EXPECT_EQ(task.late_outcome(), v1::TASK_STATE_FAILED);
}

TEST_P(SettlementTest, APlainCompletionAfterAFailureSaysToSendALateResult) {
  const std::string id = Submit(10);
  ASSERT_TRUE(Record(Failed(true, false), id).ok());
  const grpc::Status status = Record(Simple(v1::EVENT_TYPE_COMPLETED), id);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(), HasSubstr("as late_result"));
  EXPECT_EQ(Get(id).state(), v1::TASK_STATE_FAILED);
}

TEST_P(SettlementTest, ALateResultMustSayWhatTheProviderDid) {
  const std::string id = Submit(10);
  ASSERT_TRUE(Record(Failed(false, false), id).ok());
  v1::RecordEventRequest empty;
  empty.mutable_late_result()->set_upstream_status("done");
  EXPECT_THAT(ViolatedFields(Record(empty, id)),
              ElementsAre("late_result FIELD_REQUIRED"));
  v1::RecordEventRequest both = LateCompleted();
  both.mutable_late_result()->set_error_code("internal_error");
  EXPECT_THAT(ViolatedFields(Record(both, id)),
              ElementsAre("late_result LATE_RESULT_AMBIGUOUS"));
  v1::RecordEventRequest bad_status = LateFailed();
  bad_status.mutable_late_result()->set_http_status(700);
  EXPECT_THAT(ViolatedFields(Record(bad_status, id)),
              ElementsAre("late_result.http_status FIELD_OUT_OF_RANGE"));
  EXPECT_EQ(Get(id).late_outcome(), v1::TASK_STATE_UNSPECIFIED);
}

TEST_P(SettlementTest, AGatewaysOwnGiveUpIsNotBlamedOnTheProvider) {
  const std::string id = Submit(40);
  ASSERT_TRUE(Record(Failed(/*by_gateway=*/true, /*refunded=*/true), id).ok());
  const v1::Task task = Get(id);
  EXPECT_EQ(task.failure().origin(), v1::FAILURE_ORIGIN_GATEWAY);
  EXPECT_THAT(task.failure().cause(), HasSubstr("the gateway gave up"));

  // The same evidence without by_gateway is the provider's timeout.
  const std::string provider = Submit(40);
  ASSERT_TRUE(Record(Failed(false, true), provider).ok());
  EXPECT_NE(Get(provider).failure().origin(), v1::FAILURE_ORIGIN_GATEWAY);

  ASSERT_TRUE(Record(LateCompleted(), id).ok());
  const CommandResult get = server_->RunCli({"get", id, "--events"});
  ASSERT_EQ(get.exit_code, 0) << get.err;
  EXPECT_THAT(get.out, HasSubstr("origin gateway"));
  EXPECT_THAT(get.out, HasSubstr("late result provider completed "));
  EXPECT_THAT(get.out,
              HasSubstr(" after the gateway failed it · refunded 40\n"));
  EXPECT_THAT(get.out, HasSubstr("late-result "));
}

TEST_P(SettlementTest, StatsCountLateResultsByWhatTheProviderSaid) {
  for (int i = 0; i < 2; ++i) {
    const std::string id = Submit(10);
    ASSERT_TRUE(Record(Failed(true, false), id).ok());
    ASSERT_TRUE(Record(LateCompleted(), id).ok());
  }
  const std::string canceled = Submit(10);
  ASSERT_TRUE(Record(Simple(v1::EVENT_TYPE_CANCELED), canceled).ok());
  ASSERT_TRUE(Record(LateFailed(), canceled).ok());

  v1::GetStatsRequest request;
  request.set_model("sora-2");
  v1::Stats stats;
  ASSERT_TRUE(stub_->GetStats(DeadlineContext().get(), request, &stats).ok());
  ASSERT_EQ(stats.models_size(), 1);
  EXPECT_EQ(stats.models(0).late_results().at("SUCCEEDED"), 2);
  EXPECT_EQ(stats.models(0).late_results().at("FAILED"), 1);
  EXPECT_EQ(stats.models(0).failures_by_origin().at("GATEWAY"), 2);

  const CommandResult cli = server_->RunCli({"stats"});
  ASSERT_EQ(cli.exit_code, 0) << cli.err;
  EXPECT_THAT(cli.out, HasSubstr("late results"));
  EXPECT_THAT(cli.out, HasSubstr("SUCCEEDED 2"));
}

TEST_P(SettlementTest, ChargesListsTheAccountsTasksWithTotals) {
  const std::string adjusted = Submit(40);
  ASSERT_TRUE(Record(Adjust(8, "L-991"), adjusted).ok());
  const std::string refunded = Submit(20);
  ASSERT_TRUE(
      Record(Failed(/*by_gateway=*/true, /*refunded=*/true), refunded).ok());
  ASSERT_TRUE(Record(LateCompleted(), refunded).ok());
  // Another account's task is not listed.
  v1::SubmitTaskRequest other;
  other.set_account_id("acct-other");
  other.set_model("sora-2");
  other.set_charge_units(99);
  other.mutable_params()->set_prompt("someone else's");
  v1::SubmitTaskResponse other_task;
  ASSERT_TRUE(
      stub_->SubmitTask(DeadlineContext().get(), other, &other_task).ok());

  const CommandResult text =
      server_->RunCli({"charges", "--account", "acct-7", "--since", "1h"});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_THAT(text.out, HasSubstr(adjusted));
  EXPECT_THAT(text.out, HasSubstr(refunded));
  EXPECT_THAT(text.out, HasSubstr("late: provider completed"));
  EXPECT_THAT(text.out, HasSubstr("gateway"));
  EXPECT_THAT(text.out, Not(HasSubstr(other_task.task().task_id())));
  EXPECT_THAT(text.out, HasSubstr("2 tasks · charged 60 · adjusted +8 · "
                                  "refunded 20 · net 48\n"));

  // --json: one object per line, oldest first, the numbers as numbers.
  const CommandResult json = server_->RunCli(
      {"charges", "--account", "acct-7", "--since", "1h", "--json"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  const std::vector<std::string> lines =
      absl::StrSplit(json.out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 2u) << json.out;
  EXPECT_THAT(lines[0], HasSubstr(absl::StrCat("\"task_id\":\"", adjusted)));
  EXPECT_THAT(lines[0], HasSubstr("\"adjusted\":8"));
  EXPECT_THAT(lines[0], HasSubstr("\"net\":48"));
  EXPECT_THAT(lines[1], HasSubstr("\"failure_origin\":\"GATEWAY\""));
  EXPECT_THAT(lines[1], HasSubstr("\"late_outcome\":\"SUCCEEDED\""));
  EXPECT_THAT(lines[1], HasSubstr("\"net\":0"));

  // A range with nothing in it.
  const CommandResult none = server_->RunCli(
      {"charges", "--account", "acct-7", "--since", "2h", "--until", "1h"});
  ASSERT_EQ(none.exit_code, 0) << none.err;
  EXPECT_THAT(none.out, HasSubstr("no tasks"));
}

}  // namespace
}  // namespace tasktrail::testing
