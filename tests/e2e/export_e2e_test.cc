// ExportTasks and `tasktrail export` through the real daemon: every NDJSON
// line parses back into the task GetTask returns (with its whole timeline),
// tasks come oldest first within the creation-time bounds, the account
// filter, resuming after a task id, admin only, audited, and the codes of
// bad requests; on each store tasktraild serves from.
#include <algorithm>
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/support/daemon_fixture.h"
#include "tests/support/test_support.h"

namespace tasktrail::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

constexpr char kBackendToken[] = "backend-token-export-1";
constexpr char kSupportToken[] = "support-token-export-2";
constexpr char kAdminToken[] = "admin-token-export-3";

// The tasks an ExportTasks stream sends, and how it ends.
struct Exported {
  std::vector<v1::Task> tasks;
  grpc::Status status;
};

Exported Export(v1::TaskTracker::Stub* stub, const std::string& token,
                const v1::ExportTasksRequest& request) {
  Exported exported;
  std::unique_ptr<grpc::ClientContext> context = AuthContext(token);
  auto reader = stub->ExportTasks(context.get(), request);
  v1::Task task;
  while (reader->Read(&task)) exported.tasks.push_back(task);
  exported.status = reader->Finish();
  return exported;
}

google::protobuf::Timestamp ToTimestamp(absl::Time time) {
  google::protobuf::Timestamp timestamp;
  timestamp.set_seconds(absl::ToUnixSeconds(time));
  timestamp.set_nanos(static_cast<int32_t>(absl::ToInt64Nanoseconds(
      time - absl::FromUnixSeconds(absl::ToUnixSeconds(time)))));
  return timestamp;
}

absl::Time FromTimestamp(const google::protobuf::Timestamp& timestamp) {
  return absl::FromUnixSeconds(timestamp.seconds()) +
         absl::Nanoseconds(timestamp.nanos());
}

class ExportE2eTest : public DaemonTest {
 protected:
  void SetUp() override {
    StartServer("export_e2e",
                {"--auth-file",
                 files_.Write("auth", AuthFileText(kBackendToken, kSupportToken,
                                                   kAdminToken))});
  }

  // Submits a task of `account` and returns it.
  v1::Task Submit(const std::string& account, int n) {
    v1::SubmitTaskRequest request;
    request.set_account_id(account);
    request.set_model("veo-3");
    request.set_request_id(absl::StrCat("req-", account, "-", n));
    request.mutable_params()->set_prompt(
        absl::StrCat("a lighthouse at dusk, take ", n));
    v1::SubmitTaskResponse response;
    const grpc::Status status =
        stub_->SubmitTask(AuthContext(kBackendToken).get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.task();
  }

  // Queues, starts and completes `task_id` upstream.
  void Complete(const std::string& task_id) {
    v1::RecordEventRequest queued;
    queued.set_task_id(task_id);
    queued.mutable_queued()->set_upstream_task_id("up-" + task_id);
    v1::RecordEventRequest started;
    started.set_task_id(task_id);
    started.mutable_started()->set_progress_percent(5);
    v1::RecordEventRequest completed;
    completed.set_task_id(task_id);
    completed.mutable_completed()->add_result_uris("https://cdn.example.com/" +
                                                   task_id + ".mp4");
    for (const v1::RecordEventRequest* event :
         {&queued, &started, &completed}) {
      v1::RecordEventResponse response;
      const grpc::Status status = stub_->RecordEvent(
          AuthContext(kBackendToken).get(), *event, &response);
      ASSERT_TRUE(status.ok()) << status.error_message();
    }
  }

  // Adds `count` support notes to `task_id`.
  void AddNotes(const std::string& task_id, int count) {
    for (int i = 0; i < count; ++i) {
      v1::AddNoteRequest note;
      note.set_task_id(task_id);
      note.set_text(absl::StrCat("customer asked, call ", i));
      v1::Task task;
      const grpc::Status status =
          stub_->AddNote(AuthContext(kSupportToken).get(), note, &task);
      ASSERT_TRUE(status.ok()) << status.error_message();
    }
  }

  v1::Task Get(const std::string& task_id) {
    v1::GetTaskRequest request;
    request.set_task_id(task_id);
    request.set_include_events(true);
    v1::Task task;
    const grpc::Status status =
        stub_->GetTask(AuthContext(kAdminToken).get(), request, &task);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return task;
  }

  // Waits until the clock is past the millisecond of `task`'s creation, so
  // that the next task is created in a later millisecond.
  static void PassMillisecondOf(const v1::Task& task) {
    const absl::Time next = absl::FromUnixMillis(
        absl::ToUnixMillis(FromTimestamp(task.create_time())) + 1);
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (absl::Now() < next && absl::Now() < deadline) {
      absl::SleepFor(absl::Microseconds(200));
    }
  }

  TempDir files_;
};

INSTANTIATE_TEST_SUITE_P(Stores, ExportE2eTest, kBothStores,
                         BackendParamName());

TEST_P(ExportE2eTest, EveryLineOfTheCliParsesBackIntoTheTaskGetTaskReturns) {
  std::vector<std::string> ids;
  for (int i = 0; i < 6; ++i) {
    const v1::Task task = Submit(i % 2 == 0 ? "acct-a" : "acct-b", i);
    ids.push_back(task.task_id());
  }
  Complete(ids[1]);
  Complete(ids[4]);
  // A timeline longer than GetTask reads by point lookups (64 entries).
  AddNotes(ids[2], 70);

  const CommandResult result =
      server_->RunCli({"--token", kAdminToken, "export", "--since", "1h"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  // stderr is not a terminal: no progress line.
  EXPECT_EQ(result.err, "");
  ASSERT_FALSE(result.out.empty());
  ASSERT_EQ(result.out.back(), '\n');
  const std::vector<std::string> lines =
      absl::StrSplit(result.out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), ids.size());
  std::vector<std::string> exported;
  for (const std::string& line : lines) {
    v1::Task task;
    const auto parsed =
        google::protobuf::util::JsonStringToMessage(line, &task);
    ASSERT_TRUE(parsed.ok()) << parsed.message() << "\n" << line;
    exported.push_back(task.task_id());
    const v1::Task stored = Get(task.task_id());
    EXPECT_TRUE(
        google::protobuf::util::MessageDifferencer::Equals(task, stored))
        << "exported:\n"
        << task.DebugString() << "\nGetTask:\n"
        << stored.DebugString();
    EXPECT_EQ(task.events_size(), task.last_event_seq());
  }
  // Creation order: the order of submission.
  EXPECT_THAT(exported, ElementsAreArray(ids));
  EXPECT_GT(Get(ids[2]).events_size(), 70);

  // --no-events leaves the timelines out.
  const CommandResult bare = server_->RunCli(
      {"--token", kAdminToken, "export", "--since", "1h", "--no-events"});
  ASSERT_EQ(bare.exit_code, 0) << bare.err;
  for (absl::string_view line :
       absl::StrSplit(bare.out, '\n', absl::SkipEmpty())) {
    v1::Task task;
    ASSERT_TRUE(
        google::protobuf::util::JsonStringToMessage(std::string(line), &task)
            .ok());
    EXPECT_EQ(task.events_size(), 0);
  }
}

TEST_P(ExportE2eTest, TasksComeOldestFirstWithinTheCreationTimeBounds) {
  // Three groups, each created in later milliseconds than the one before.
  std::vector<std::vector<v1::Task>> groups(3);
  for (int g = 0; g < 3; ++g) {
    for (int i = 0; i < 4; ++i) {
      groups[g].push_back(Submit("acct-a", g * 10 + i));
    }
    PassMillisecondOf(groups[g].back());
  }
  const absl::Time second_begins =
      FromTimestamp(groups[1].front().create_time());
  const absl::Time third_begins =
      FromTimestamp(groups[2].front().create_time());

  v1::ExportTasksRequest request;
  *request.mutable_create_time_after() = ToTimestamp(second_begins);
  *request.mutable_create_time_before() = ToTimestamp(third_begins);
  const Exported middle = Export(stub_.get(), kAdminToken, request);
  ASSERT_TRUE(middle.status.ok()) << middle.status.error_message();
  EXPECT_THAT(TaskIds(middle.tasks), ElementsAreArray(TaskIds(groups[1])));

  // Unbounded: every task, in task id order.
  const Exported all =
      Export(stub_.get(), kAdminToken, v1::ExportTasksRequest());
  ASSERT_TRUE(all.status.ok()) << all.status.error_message();
  std::vector<std::string> ids = TaskIds(all.tasks);
  ASSERT_EQ(ids.size(), 12u);
  EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));
  EXPECT_EQ(ids.front(), groups[0].front().task_id());
  EXPECT_EQ(ids.back(), groups[2].back().task_id());

  // An empty range is an empty stream.
  v1::ExportTasksRequest empty;
  *empty.mutable_create_time_after() = ToTimestamp(second_begins);
  *empty.mutable_create_time_before() = ToTimestamp(second_begins);
  const Exported none = Export(stub_.get(), kAdminToken, empty);
  ASSERT_TRUE(none.status.ok()) << none.status.error_message();
  EXPECT_TRUE(none.tasks.empty());
}

TEST_P(ExportE2eTest, TheAccountFilterExportsOnlyThatAccountsTasks) {
  std::vector<std::string> of_b;
  for (int i = 0; i < 9; ++i) {
    const std::string account = i % 3 == 1 ? "acct-b" : "acct-a";
    const v1::Task task = Submit(account, i);
    if (account == "acct-b") of_b.push_back(task.task_id());
  }
  v1::ExportTasksRequest request;
  request.set_account_id("acct-b");
  request.set_include_events(true);
  const Exported exported = Export(stub_.get(), kAdminToken, request);
  ASSERT_TRUE(exported.status.ok()) << exported.status.error_message();
  EXPECT_THAT(TaskIds(exported.tasks), ElementsAreArray(of_b));
  for (const v1::Task& task : exported.tasks) {
    EXPECT_EQ(task.account_id(), "acct-b");
    EXPECT_EQ(task.events_size(), 1);  // SUBMITTED
  }

  const CommandResult cli = server_->RunCli(
      {"--token", kAdminToken, "export", "--account", "acct-c"});
  EXPECT_EQ(cli.exit_code, 0) << cli.err;
  EXPECT_EQ(cli.out, "");
}

TEST_P(ExportE2eTest, ResumingAfterATaskIdExportsExactlyTheRest) {
  // More than one page of the server's read-ahead (128 tasks).
  std::vector<std::string> ids;
  for (int i = 0; i < 300; ++i) ids.push_back(Submit("acct-a", i).task_id());

  for (const size_t cut : {size_t{0}, size_t{127}, size_t{128}, size_t{299}}) {
    SCOPED_TRACE(cut);
    v1::ExportTasksRequest request;
    request.set_after_task_id(ids[cut]);
    const Exported rest = Export(stub_.get(), kAdminToken, request);
    ASSERT_TRUE(rest.status.ok()) << rest.status.error_message();
    EXPECT_THAT(TaskIds(rest.tasks),
                ElementsAreArray(ids.begin() + cut + 1, ids.end()));
  }

  const CommandResult cli = server_->RunCli(
      {"--token", kAdminToken, "export", "--no-events", "--after", ids[149]});
  ASSERT_EQ(cli.exit_code, 0) << cli.err;
  std::vector<std::string> resumed;
  for (absl::string_view line :
       absl::StrSplit(cli.out, '\n', absl::SkipEmpty())) {
    v1::Task task;
    ASSERT_TRUE(
        google::protobuf::util::JsonStringToMessage(std::string(line), &task)
            .ok());
    resumed.push_back(task.task_id());
  }
  EXPECT_THAT(resumed, ElementsAreArray(ids.begin() + 150, ids.end()));
}

TEST_P(ExportE2eTest, AnExportWhileCallsArriveDeliversEveryTaskOnce) {
  // While calls arrive, the export is paced and read in small pages: the
  // stream must still carry every task once, in order.
  std::vector<std::string> ids;
  for (int i = 0; i < 200; ++i) ids.push_back(Submit("acct-a", i).task_id());
  std::atomic<bool> exporting{true};
  std::atomic<int> calls{0};
  absl::Notification busy;
  std::thread caller([&] {
    while (exporting.load()) {
      v1::GetTaskRequest request;
      request.set_task_id(ids[calls.load() % ids.size()]);
      v1::Task task;
      const grpc::Status status =
          stub_->GetTask(AuthContext(kSupportToken).get(), request, &task);
      if (!status.ok()) {
        ADD_FAILURE() << status.error_message();
        break;
      }
      if (calls.fetch_add(1) == 0) busy.Notify();
    }
    if (!busy.HasBeenNotified()) busy.Notify();
  });
  // The server counts as busy once a call has been admitted.
  busy.WaitForNotification();
  const Exported exported =
      Export(stub_.get(), kAdminToken, v1::ExportTasksRequest());
  exporting.store(false);
  caller.join();
  ASSERT_TRUE(exported.status.ok()) << exported.status.error_message();
  EXPECT_THAT(TaskIds(exported.tasks), ElementsAreArray(ids));
  EXPECT_GT(calls.load(), 0);
}

TEST_P(ExportE2eTest, OnlyAdminMayExportAndEachExportedTaskIsAudited) {
  const std::string task_id = Submit("acct-a", 1).task_id();
  for (const char* token : {kBackendToken, kSupportToken}) {
    SCOPED_TRACE(token);
    const Exported refused =
        Export(stub_.get(), token, v1::ExportTasksRequest());
    EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
    EXPECT_THAT(refused.status.error_message(), HasSubstr("ExportTasks"));
    EXPECT_TRUE(refused.tasks.empty());
    const CommandResult cli = server_->RunCli({"--token", token, "export"});
    EXPECT_EQ(cli.exit_code, 5) << cli.err;
    EXPECT_EQ(cli.out, "");
  }
  const Exported unauthenticated =
      Export(stub_.get(), "not-a-token", v1::ExportTasksRequest());
  EXPECT_EQ(unauthenticated.status.error_code(),
            grpc::StatusCode::UNAUTHENTICATED);

  const CommandResult cli = server_->RunCli({"--token", kAdminToken, "export"});
  ASSERT_EQ(cli.exit_code, 0) << cli.err;
  v1::ListAuditRequest audit;
  audit.set_task_id(task_id);
  v1::ListAuditResponse entries;
  ASSERT_TRUE(
      stub_->ListAudit(AuthContext(kAdminToken).get(), audit, &entries).ok());
  ASSERT_EQ(entries.entries_size(), 1);
  EXPECT_EQ(entries.entries(0).rpc(), "ExportTasks");
  EXPECT_EQ(entries.entries(0).principal(), "root");
  EXPECT_EQ(entries.entries(0).role(), "admin");
  const CommandResult shown =
      server_->RunCli({"--token", kAdminToken, "audit", task_id});
  EXPECT_EQ(shown.exit_code, 0) << shown.err;
  EXPECT_THAT(shown.out, HasSubstr("ExportTasks"));
}

TEST_P(ExportE2eTest, BadRequestsAreInvalidArgumentNamingTheField) {
  Submit("acct-a", 1);
  const absl::Time now = absl::Now();
  v1::ExportTasksRequest reversed;
  *reversed.mutable_create_time_after() = ToTimestamp(now);
  *reversed.mutable_create_time_before() = ToTimestamp(now - absl::Hours(1));
  const Exported backwards = Export(stub_.get(), kAdminToken, reversed);
  EXPECT_EQ(backwards.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(ViolatedFields(backwards.status),
              ElementsAre("create_time_before FIELD_OUT_OF_RANGE"));

  v1::ExportTasksRequest malformed;
  malformed.set_after_task_id("not-a-task-id");
  const Exported bad_id = Export(stub_.get(), kAdminToken, malformed);
  EXPECT_EQ(bad_id.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(ViolatedFields(bad_id.status),
              ElementsAre("after_task_id FIELD_INVALID"));
  EXPECT_TRUE(bad_id.tasks.empty());

  v1::ExportTasksRequest out_of_range;
  out_of_range.mutable_create_time_after()->set_seconds(-62135596801);
  const Exported too_early = Export(stub_.get(), kAdminToken, out_of_range);
  EXPECT_EQ(too_early.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(too_early.status.error_message(), HasSubstr("create_time_after"));

  const CommandResult cli = server_->RunCli(
      {"--token", kAdminToken, "export", "--after", "not-a-task-id"});
  EXPECT_EQ(cli.exit_code, 1) << cli.err;
  EXPECT_THAT(cli.err, HasSubstr("after_task_id"));
  EXPECT_EQ(cli.out, "");

  const CommandResult usage = server_->RunCli(
      {"--token", kAdminToken, "export", "--since", "1h", "--until", "2h"});
  EXPECT_EQ(usage.exit_code, 2) << usage.err;
}

}  // namespace
}  // namespace tasktrail::testing
