// Upstream routes end to end, on each store tasktraild serves from (RocksDB
// in a temp dir; a database of the tests' PostgreSQL cluster): the route of
// the queued event is the task's (scrubbed, bounded), ListTasksRequest.route
// lists a route's tasks combined with the other filters, `tasktrail list
// --route` and `tasktrail get` show it, and GetStats and `tasktrail stats
// --by route` tell one bad route from a provider incident.
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
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

class RoutesTest : public DaemonTest {
 protected:
  void SetUp() override { StartServer("routes_e2e"); }

  // Submits a task of `model` for `account` and queues it on `route`;
  // returns its id.
  std::string SubmitOn(const std::string& route,
                       const std::string& model = "sora-2",
                       const std::string& account = "acct-3") {
    v1::SubmitTaskRequest submit;
    submit.set_account_id(account);
    submit.set_model(model);
    submit.set_charge_units(10);
    submit.mutable_params()->set_prompt(
        absl::StrCat("a lighthouse in fog ", ++submissions_));
    v1::SubmitTaskResponse submitted;
    const grpc::Status status =
        stub_->SubmitTask(DeadlineContext().get(), submit, &submitted);
    EXPECT_TRUE(status.ok()) << status.error_message();
    const std::string id = submitted.task().task_id();
    v1::RecordEventRequest queued;
    queued.mutable_queued()->set_upstream_task_id(absl::StrCat("up-", id));
    queued.mutable_queued()->set_route(route);
    EXPECT_TRUE(Record(queued, id).ok());
    return id;
  }

  grpc::Status Record(v1::RecordEventRequest request, const std::string& id) {
    request.set_task_id(id);
    v1::RecordEventResponse response;
    return stub_->RecordEvent(DeadlineContext().get(), request, &response);
  }

  void Finish(const std::string& id, bool failed) {
    v1::RecordEventRequest request;
    if (failed) {
      request.mutable_failed()->set_http_status(500);
      request.mutable_failed()->set_error_code("server_error");
      request.mutable_failed()->set_message("upstream unavailable");
    } else {
      request.mutable_completed()->add_result_uris(
          "https://cdn.example.com/v/done.mp4");
    }
    const grpc::Status status = Record(request, id);
    EXPECT_TRUE(status.ok()) << status.error_message();
  }

  // The ids ListTasks lists for `request`, oldest first, paging to the end.
  std::vector<std::string> List(v1::ListTasksRequest request) {
    request.set_oldest_first(true);
    request.set_page_size(2);  // several pages
    return ListIds(request);
  }

  static v1::ListTasksRequest OnRoute(const std::string& route) {
    v1::ListTasksRequest request;
    request.set_route(route);
    return request;
  }

  int submissions_ = 0;
};

INSTANTIATE_TEST_SUITE_P(Stores, RoutesTest, kBothStores, BackendParamName());

TEST_P(RoutesTest, ListByRouteCombinesWithTheOtherFilters) {
  const std::string a1 = SubmitOn("kling-cn-1");
  const std::string b1 = SubmitOn("kling-cn-2");
  const std::string a2 = SubmitOn("kling-cn-1", "veo-3");
  const std::string a3 = SubmitOn("kling-cn-1", "sora-2", "acct-4");
  const std::string none = SubmitOn("");
  Finish(a1, /*failed=*/true);
  Finish(b1, /*failed=*/false);

  EXPECT_THAT(List(OnRoute("kling-cn-1")), ElementsAre(a1, a2, a3));
  EXPECT_THAT(List(OnRoute("kling-cn-2")), ElementsAre(b1));
  EXPECT_THAT(List(OnRoute("kling-cn")), IsEmpty());

  v1::ListTasksRequest with_model = OnRoute("kling-cn-1");
  with_model.set_model("veo-3");
  EXPECT_THAT(List(with_model), ElementsAre(a2));
  v1::ListTasksRequest with_account = OnRoute("kling-cn-1");
  with_account.set_account_id("acct-4");
  EXPECT_THAT(List(with_account), ElementsAre(a3));
  v1::ListTasksRequest with_state = OnRoute("kling-cn-1");
  with_state.set_state(v1::TASK_STATE_FAILED);
  EXPECT_THAT(List(with_state), ElementsAre(a1));
  v1::ListTasksRequest unfinished = OnRoute("kling-cn-1");
  unfinished.set_unfinished(true);
  EXPECT_THAT(List(unfinished), ElementsAre(a2, a3));
  v1::ListTasksRequest owed = OnRoute("kling-cn-1");
  owed.set_owed(true);
  EXPECT_THAT(List(owed), ElementsAre(a1));
  // The task queued on no route is in no route's list.
  v1::ListTasksRequest everything;
  EXPECT_THAT(List(everything), ElementsAre(a1, b1, a2, a3, none));

  // A page token is bound to its route.
  v1::ListTasksRequest first = OnRoute("kling-cn-1");
  first.set_page_size(1);
  v1::ListTasksResponse page;
  ASSERT_TRUE(stub_->ListTasks(DeadlineContext().get(), first, &page).ok());
  ASSERT_FALSE(page.next_page_token().empty());
  v1::ListTasksRequest other = OnRoute("kling-cn-2");
  other.set_page_token(page.next_page_token());
  const grpc::Status refused =
      stub_->ListTasks(DeadlineContext().get(), other, &page);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(refused.error_message(), HasSubstr("page_token"));
}

TEST_P(RoutesTest, TheRouteIsBoundedCheckedAndScrubbed) {
  v1::SubmitTaskRequest submit;
  submit.set_account_id("acct-3");
  submit.set_model("sora-2");
  submit.mutable_params()->set_prompt("a quiet street");
  v1::SubmitTaskResponse submitted;
  ASSERT_TRUE(
      stub_->SubmitTask(DeadlineContext().get(), submit, &submitted).ok());
  const std::string id = submitted.task().task_id();

  for (const std::string& bad :
       {std::string(129, 'r'), std::string("key\n7")}) {
    v1::RecordEventRequest queued;
    queued.mutable_queued()->set_route(bad);
    const grpc::Status status = Record(queued, id);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(status.error_message(), HasSubstr("queued.route"));
  }
  v1::ListTasksRequest bad_filter = OnRoute(std::string(129, 'r'));
  v1::ListTasksResponse listed;
  const grpc::Status refused =
      stub_->ListTasks(DeadlineContext().get(), bad_filter, &listed);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(refused.error_message(), HasSubstr("route"));
  // Nothing of the refused events was kept: the task is still submitted.
  v1::GetTaskRequest get;
  get.set_task_id(id);
  v1::Task task;
  ASSERT_TRUE(stub_->GetTask(DeadlineContext().get(), get, &task).ok());
  EXPECT_EQ(task.state(), v1::TASK_STATE_SUBMITTED);
  EXPECT_EQ(task.route(), "");

  // A key sent by mistake is never stored: neither in the task, nor in its
  // timeline, nor in the index.
  const std::string key =
      std::string("sk-proj-") + "Zq8Lm3Vt0Yx6Pw2Rk9Nd4Hs7Jc1Gb5Fe";
  v1::RecordEventRequest queued;
  queued.mutable_queued()->set_route(key);
  ASSERT_TRUE(Record(queued, id).ok());
  get.set_include_events(true);
  ASSERT_TRUE(stub_->GetTask(DeadlineContext().get(), get, &task).ok());
  EXPECT_THAT(task.DebugString(), Not(HasSubstr("Zq8Lm3Vt0Yx6")));
  EXPECT_THAT(task.route(), HasSubstr("[REDACTED]"));
  EXPECT_THAT(List(OnRoute(key)), IsEmpty());
  EXPECT_THAT(List(OnRoute(task.route())), ElementsAre(id));
}

TEST_P(RoutesTest, TheCliListsARouteAndGetShowsIt) {
  const std::string on_route = SubmitOn("key-alias-7");
  SubmitOn("key-alias-8");

  const CommandResult listed =
      server_->RunCli({"list", "--route", "key-alias-7"});
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_THAT(listed.out, HasSubstr(on_route));
  EXPECT_EQ(listed.out.find("key-alias-8"), std::string::npos);
  const CommandResult json =
      server_->RunCli({"list", "--route", "key-alias-8", "--json"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  EXPECT_THAT(json.out, Not(HasSubstr(on_route)));
  EXPECT_THAT(json.out, HasSubstr("key-alias-8"));

  const CommandResult got = server_->RunCli({"get", on_route});
  ASSERT_EQ(got.exit_code, 0) << got.err;
  EXPECT_THAT(got.out, HasSubstr("route key-alias-7"));
}

TEST_P(RoutesTest, StatsByRouteTellOneBadRouteFromTheProvider) {
  for (int i = 0; i < 6; ++i) Finish(SubmitOn("key-bad"), /*failed=*/true);
  for (int i = 0; i < 6; ++i) Finish(SubmitOn("key-good"), /*failed=*/false);

  v1::GetStatsRequest request;
  request.set_group_by(v1::STATS_GROUP_BY_ROUTE);
  v1::Stats stats;
  grpc::Status status =
      stub_->GetStats(DeadlineContext().get(), request, &stats);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(stats.models_size(), 2);
  EXPECT_EQ(stats.models(0).model(), "sora-2");
  EXPECT_EQ(stats.models(0).route(), "key-bad");
  EXPECT_EQ(stats.models(0).tasks_by_state().at("FAILED"), 6);
  EXPECT_EQ(stats.models(1).route(), "key-good");
  EXPECT_EQ(stats.models(1).tasks_by_state().at("SUCCEEDED"), 6);
  ASSERT_EQ(stats.incidents_size(), 1);
  EXPECT_THAT(stats.incidents(0),
              HasSubstr("route key-bad of sora-2: 6 of 6 finished tasks"));
  EXPECT_THAT(stats.incidents(0),
              HasSubstr("other routes of the model are fine (key-good: 0 of "
                        "6 failed): a route or key problem, not the "
                        "provider"));

  const CommandResult by_route = server_->RunCli({"stats", "--by", "route"});
  ASSERT_EQ(by_route.exit_code, 0) << by_route.err;
  EXPECT_THAT(by_route.out, HasSubstr("ROUTE"));
  EXPECT_THAT(by_route.out, HasSubstr("RUN P50"));
  EXPECT_THAT(by_route.out, HasSubstr("E2E P90"));
  EXPECT_THAT(by_route.out, HasSubstr("sora-2 route key-bad"));
  EXPECT_THAT(by_route.out,
              HasSubstr("a route or key problem, not the provider"));
  const CommandResult by_model = server_->RunCli({"stats"});
  ASSERT_EQ(by_model.exit_code, 0) << by_model.err;
  EXPECT_THAT(by_model.out, Not(HasSubstr("ROUTE")));
  const CommandResult bad = server_->RunCli({"stats", "--by", "region"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_THAT(bad.err, HasSubstr("--by"));

  // Every route of the model failing is the provider.
  for (int i = 0; i < 12; ++i) Finish(SubmitOn("key-good"), /*failed=*/true);
  ASSERT_TRUE(stub_->GetStats(DeadlineContext().get(), request, &stats).ok());
  ASSERT_EQ(stats.incidents_size(), 1);
  EXPECT_THAT(stats.incidents(0), HasSubstr("sora-2: 18 of 24 finished"));
  EXPECT_THAT(stats.incidents(0), HasSubstr("likely a provider incident"));
}

}  // namespace
}  // namespace tasktrail::testing
