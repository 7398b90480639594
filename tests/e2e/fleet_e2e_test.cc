// Support at fleet scale through the real tasktraild and tasktrail: `stuck`,
// `list --since/--until`, a sparse filter paged by the CLI past the server's
// per-call work bound, and page tokens refused with other filters.
#include <algorithm>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace tasktrail::testing {
namespace {

using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

absl::Time TimeOf(const google::protobuf::Timestamp& ts) {
  return absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
}

// The ids of a `--json` answer of list or stuck, in order.
std::vector<std::string> JsonIds(const std::string& json) {
  v1::ListTasksResponse response;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(json, &response).ok())
      << json;
  std::vector<std::string> ids;
  for (const v1::Task& task : response.tasks()) ids.push_back(task.task_id());
  return ids;
}

class FleetE2eTest : public ::testing::Test {
 protected:
  void StartServer(std::vector<std::string> extra_args = {}) {
    server_ = std::make_unique<ServerProcess>(db_.path(), extra_args);
    std::string error;
    ASSERT_TRUE(server_->Start(&error)) << error;
    stub_ = server_->NewStub();
  }

  CommandResult Cli(const std::vector<std::string>& args) {
    return server_->RunCli(args, {"TZ=UTC"});
  }

  v1::Task Submit(v1::TaskTracker::Stub& stub, const std::string& account,
                  const std::string& model, const std::string& prompt) {
    v1::SubmitTaskRequest submit;
    submit.set_account_id(account);
    submit.set_model(model);
    submit.mutable_params()->set_prompt(prompt);
    v1::SubmitTaskResponse submitted;
    grpc::Status status =
        stub.SubmitTask(DeadlineContext().get(), submit, &submitted);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return submitted.task();
  }

  v1::Task Record(v1::RecordEventRequest event, const std::string& id) {
    event.set_task_id(id);
    v1::RecordEventResponse response;
    grpc::Status status =
        stub_->RecordEvent(DeadlineContext().get(), event, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.task();
  }

  TempDir db_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<v1::TaskTracker::Stub> stub_;
};

// A few hundred tasks in mixed states, accounts and models.
class FleetMixE2eTest : public FleetE2eTest {
 protected:
  static constexpr int kTasks = 300;

  void SetUp() override {
    StartServer();
    const char* models[] = {"veo-3", "sora-2", "kling-v2-1"};
    for (int i = 0; i < kTasks; ++i) {
      v1::Task task = Submit(*stub_, absl::StrCat("acct-", i % 7),
                             models[i % 3], absl::StrCat("fleet task ", i));
      v1::RecordEventRequest queued;
      queued.mutable_queued()->set_upstream_task_id(absl::StrCat("up-", i));
      v1::RecordEventRequest started;
      started.mutable_started()->set_progress_percent(1);
      v1::RecordEventRequest failed;
      failed.mutable_failed()->set_http_status(503);
      v1::RecordEventRequest completed;
      completed.mutable_completed()->add_result_uris(
          "https://cdn.example.com/r.mp4");
      switch (i % 6) {
        case 0:  // SUBMITTED
          break;
        case 1:
          task = Record(queued, task.task_id());
          break;
        case 2:
          Record(queued, task.task_id());
          task = Record(started, task.task_id());
          break;
        case 3:
          task = Record(failed, task.task_id());
          break;
        case 4:
          Record(queued, task.task_id());
          task = Record(completed, task.task_id());
          break;
        case 5:
          Record(queued, task.task_id());
          task = Record(failed, task.task_id());
          break;
      }
      tasks_.push_back(task);
    }
  }

  std::vector<v1::Task> tasks_;  // in creation order
};

TEST_F(FleetMixE2eTest, StuckListsEveryUnfinishedTaskOldestFirstWithTotals) {
  std::vector<std::string> unfinished;
  std::vector<std::string> unfinished_acct3_veo;
  std::map<std::string, int> verdicts;
  for (int i = 0; i < kTasks; ++i) {
    if (i % 6 > 2) continue;
    unfinished.push_back(tasks_[i].task_id());
    if (tasks_[i].account_id() == "acct-3" && tasks_[i].model() == "veo-3") {
      unfinished_acct3_veo.push_back(tasks_[i].task_id());
    }
    // The verdicts GetQueueStatus gives (the queued ones are judged
    // against the waits of the tasks that already left the queue).
    v1::GetQueueStatusRequest get;
    get.set_task_id(tasks_[i].task_id());
    v1::QueueStatus status;
    ASSERT_TRUE(
        stub_->GetQueueStatus(DeadlineContext().get(), get, &status).ok());
    ++verdicts[v1::QueueVerdict_Name(status.verdict())];
  }
  // Most urgent first.
  std::vector<std::string> totals;
  for (const char* verdict :
       {"QUEUE_VERDICT_POLLING_STALLED",
        "QUEUE_VERDICT_QUEUED_LONGER_THAN_USUAL",
        "QUEUE_VERDICT_WAITING_FOR_UPSTREAM", "QUEUE_VERDICT_QUEUED_NORMAL",
        "QUEUE_VERDICT_RUNNING"}) {
    if (verdicts.count(verdict) > 0) {
      totals.push_back(absl::StrCat(verdicts[verdict], " ",
                                    std::string(verdict).substr(14)));
    }
  }
  ASSERT_EQ(verdicts["QUEUE_VERDICT_WAITING_FOR_UPSTREAM"], 50);
  ASSERT_EQ(verdicts["QUEUE_VERDICT_RUNNING"], 50);
  ASSERT_EQ(unfinished.size(), 150u);

  CommandResult json = Cli({"stuck", "--json"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  EXPECT_THAT(JsonIds(json.out), ElementsAreArray(unfinished));

  CommandResult table = Cli({"stuck", "--limit", "5"});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  for (int i = 0; i < 5; ++i) EXPECT_THAT(table.out, HasSubstr(unfinished[i]));
  EXPECT_THAT(table.out, Not(HasSubstr(unfinished[5])));
  EXPECT_THAT(table.out, HasSubstr("VERDICT"));
  EXPECT_THAT(table.out, HasSubstr("… and 145 more"));
  EXPECT_THAT(table.out, HasSubstr(absl::StrCat(
                             "\n", absl::StrJoin(totals, " · "), "\n")));

  CommandResult filtered =
      Cli({"stuck", "--account", "acct-3", "--model", "veo-3", "--json"});
  ASSERT_EQ(filtered.exit_code, 0) << filtered.err;
  ASSERT_FALSE(unfinished_acct3_veo.empty());
  EXPECT_THAT(JsonIds(filtered.out), ElementsAreArray(unfinished_acct3_veo));

  // Nothing has waited an hour yet; everything has waited 0s.
  CommandResult old = Cli({"stuck", "--older-than", "1h"});
  ASSERT_EQ(old.exit_code, 0) << old.err;
  EXPECT_EQ(old.out, "no stuck tasks\n");
  CommandResult all = Cli({"stuck", "--older-than", "0s", "--json"});
  ASSERT_EQ(all.exit_code, 0) << all.err;
  EXPECT_THAT(JsonIds(all.out), ElementsAreArray(unfinished));

  CommandResult bad = Cli({"stuck", "--older-than", "soon"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_THAT(bad.err, HasSubstr("--older-than"));
}

TEST_F(FleetMixE2eTest, ListSinceAndUntilSelectTheCreationTimeRange) {
  // [task 100, task 200), as RFC 3339 times with an offset of +01:00.
  const absl::TimeZone plus_one = absl::FixedTimeZone(3600);
  const std::string since = absl::FormatTime(
      absl::RFC3339_full, TimeOf(tasks_[100].create_time()), plus_one);
  const std::string until = absl::FormatTime(
      absl::RFC3339_full, TimeOf(tasks_[200].create_time()), plus_one);
  std::vector<std::string> expected;
  for (int i = 199; i >= 100; --i) expected.push_back(tasks_[i].task_id());

  CommandResult range = Cli({"list", "--since", since, "--until", until,
                             "--limit", "1000", "--json"});
  ASSERT_EQ(range.exit_code, 0) << range.err;
  EXPECT_THAT(JsonIds(range.out), ElementsAreArray(expected));

  // Paged by the CLI: 30 at a time, oldest first, with a state filter.
  std::vector<std::string> failed_oldest_first;
  for (int i = 100; i < 200; ++i) {
    if (tasks_[i].state() == v1::TASK_STATE_FAILED) {
      failed_oldest_first.push_back(tasks_[i].task_id());
    }
  }
  CommandResult failed =
      Cli({"list", "--since", since, "--until", until, "--state", "failed",
           "--oldest-first", "--limit", "1000", "--json"});
  ASSERT_EQ(failed.exit_code, 0) << failed.err;
  EXPECT_THAT(JsonIds(failed.out), ElementsAreArray(failed_oldest_first));

  // Spans back from now.
  CommandResult recent =
      Cli({"list", "--since", "1h", "--limit", "1000", "--json"});
  ASSERT_EQ(recent.exit_code, 0) << recent.err;
  EXPECT_EQ(JsonIds(recent.out).size(), static_cast<size_t>(kTasks));
  CommandResult old = Cli({"list", "--until", "1h"});
  ASSERT_EQ(old.exit_code, 0) << old.err;
  EXPECT_EQ(old.out, "no tasks\n");

  // The human table shows each task's creation time.
  CommandResult table =
      Cli({"list", "--since", since, "--until", until, "--limit", "3"});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_THAT(table.out, HasSubstr(absl::FormatTime(
                             "%H:%M:%S", TimeOf(tasks_[199].create_time()),
                             absl::UTCTimeZone())));
  EXPECT_THAT(table.out, HasSubstr("next page: --page-token "));

  CommandResult reversed = Cli({"list", "--since", until, "--until", since});
  EXPECT_EQ(reversed.exit_code, 2);
  CommandResult bad = Cli({"list", "--since", "yesterday"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_THAT(bad.err, HasSubstr("RFC 3339"));

  // Unfinished, newest first, through the CLI.
  std::vector<std::string> unfinished;
  for (int i = kTasks - 1; i >= 0; --i) {
    if (i % 6 <= 2) unfinished.push_back(tasks_[i].task_id());
  }
  CommandResult in_flight =
      Cli({"list", "--unfinished", "--limit", "1000", "--json"});
  ASSERT_EQ(in_flight.exit_code, 0) << in_flight.err;
  EXPECT_THAT(JsonIds(in_flight.out), ElementsAreArray(unfinished));
}

// More tasks than the server visits in one call (10,000) lie between the
// newest and the few that match: the server answers empty pages with a
// token, and the CLI pages on to the matching rows.
TEST_F(FleetE2eTest, ASparseFilterIsPagedByTheCliToTheMatchingRows) {
  StartServer({"--sync=false"});
  std::vector<std::string> rare;
  for (int i = 0; i < 3; ++i) {
    rare.insert(rare.begin(),
                Submit(*stub_, "acct-bulk", "veo-3", absl::StrCat("rare ", i))
                    .task_id());
  }
  constexpr int kThreads = 4;
  constexpr int kPerThread = 2550;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([this, t] {
      std::unique_ptr<v1::TaskTracker::Stub> stub = server_->NewStub();
      for (int i = 0; i < kPerThread; ++i) {
        Submit(*stub, "acct-bulk", "sora-2", absl::StrCat("bulk ", t, "-", i));
      }
    });
  }
  for (std::thread& thread : threads) thread.join();

  // The server alone: the first page is empty but carries a token.
  v1::ListTasksRequest request;
  request.set_account_id("acct-bulk");
  request.set_model("veo-3");
  v1::ListTasksResponse first;
  ASSERT_TRUE(stub_->ListTasks(DeadlineContext().get(), request, &first).ok());
  EXPECT_THAT(first.tasks(), IsEmpty());
  EXPECT_EQ(first.scanned_count(), 10000);
  ASSERT_FALSE(first.next_page_token().empty());

  CommandResult listed =
      Cli({"list", "--account", "acct-bulk", "--model", "veo-3", "--json"});
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_THAT(JsonIds(listed.out), ElementsAreArray(rare));
  CommandResult table =
      Cli({"list", "--account", "acct-bulk", "--model", "veo-3"});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_THAT(table.out, Not(HasSubstr("no tasks")));
  for (const std::string& id : rare) EXPECT_THAT(table.out, HasSubstr(id));

  // The token of that first page, reused with other filters, is refused.
  CommandResult reused =
      Cli({"list", "--account", "acct-bulk", "--model", "sora-2",
           "--page-token", first.next_page_token()});
  EXPECT_EQ(reused.exit_code, 1) << reused.out;
  EXPECT_THAT(reused.err, HasSubstr("page_token"));
  EXPECT_THAT(reused.err, HasSubstr("other filters"));
  // With its own filters it goes on.
  CommandResult resumed =
      Cli({"list", "--account", "acct-bulk", "--model", "veo-3", "--page-token",
           first.next_page_token(), "--json"});
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_THAT(JsonIds(resumed.out), ElementsAreArray(rare));
}

}  // namespace
}  // namespace tasktrail::testing
