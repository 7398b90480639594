// Retention and erasure through the real server: the sweeper purges what is
// due and `tasktrail get` says the task may have been purged (BatchGetTasks
// and `get` of several ids say which missing ids may have been), PurgeTask is
// admin-only and leaves its audit entry, ends the task's WatchTask streams
// with NOT_FOUND, a purged request_id makes a new
// task, and a daemon killed with SIGKILL while purging leaves whole tasks;
// on each store tasktraild serves from.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/support/daemon_fixture.h"
#include "tests/support/test_support.h"

namespace tasktrail::testing {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;

constexpr char kBackendToken[] = "backend-token-retention";
constexpr char kSupportToken[] = "support-token-retention";
constexpr char kAdminToken[] = "admin-token-retention";

// Submits a task (with `request_id`, if any) and, when `finish`, records
// its completion. Returns the task id; empty (with a test failure) when a
// call fails.
std::string SubmitTask(v1::TaskTracker::Stub* stub, const std::string& token,
                       const std::string& prompt, bool finish,
                       const std::string& request_id = "") {
  v1::SubmitTaskRequest submit;
  submit.set_account_id("acct-r");
  submit.set_model("veo-3");
  submit.set_request_id(request_id);
  submit.mutable_params()->set_prompt(prompt);
  v1::SubmitTaskResponse submitted;
  grpc::Status status =
      stub->SubmitTask(AuthContext(token).get(), submit, &submitted);
  EXPECT_TRUE(status.ok()) << status.error_message();
  if (!status.ok()) return "";
  if (finish) {
    v1::RecordEventRequest completed;
    completed.set_task_id(submitted.task().task_id());
    completed.mutable_completed()->add_result_uris(
        "https://cdn.example.com/out.mp4");
    v1::RecordEventResponse recorded;
    status = stub->RecordEvent(AuthContext(token).get(), completed, &recorded);
    EXPECT_TRUE(status.ok()) << status.error_message();
  }
  return submitted.task().task_id();
}

grpc::Status GetTask(v1::TaskTracker::Stub* stub, const std::string& id,
                     v1::Task* task, const std::string& token = "") {
  v1::GetTaskRequest request;
  request.set_task_id(id);
  request.set_include_events(true);
  return stub->GetTask(AuthContext(token).get(), request, task);
}

// Polls until GetTask of `id` answers NOT_FOUND (up to 120 s).
bool AwaitPurged(v1::TaskTracker::Stub* stub, const std::string& id) {
  const absl::Time deadline = absl::Now() + absl::Seconds(120);
  while (absl::Now() < deadline) {
    v1::Task task;
    if (GetTask(stub, id, &task).error_code() == grpc::StatusCode::NOT_FOUND) {
      return true;
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  return false;
}

// The flags of a server whose finished tasks are due 2 s after they finish,
// looked for every 100 ms.
std::vector<std::string> ShortRetention() {
  return {"--task-retention",           "2s",   "--unfinished-retention", "1h",
          "--retention-sweep-interval", "100ms"};
}

class RetentionE2ETest : public DaemonTest {
 protected:
  void SetUp() override { StartServer("retention_e2e", ShortRetention()); }
};

INSTANTIATE_TEST_SUITE_P(Stores, RetentionE2ETest, kBothStores,
                         BackendParamName());

TEST_P(RetentionE2ETest, DueTasksArePurgedAndGetSaysTheyMayHaveBeen) {
  const std::string finished = SubmitTask(stub_.get(), "", "a red fox", true);
  const std::string unfinished =
      SubmitTask(stub_.get(), "", "a grey owl", false);
  ASSERT_TRUE(AwaitPurged(stub_.get(), finished));
  EXPECT_TRUE(server_->WaitForLog("retention sweep"));
  EXPECT_THAT(server_->Log(), HasSubstr("purged=1"));

  v1::Task task;
  const grpc::Status gone = GetTask(stub_.get(), finished, &task);
  EXPECT_EQ(gone.error_message(),
            absl::StrCat("task ", finished,
                         " not found; finished tasks are kept 2s"));
  EXPECT_TRUE(GetTask(stub_.get(), unfinished, &task).ok());

  const CommandResult cli = server_->RunCli({"get", finished});
  EXPECT_NE(cli.exit_code, 0);
  EXPECT_THAT(cli.err, HasSubstr(absl::StrCat(
                           "task ", finished,
                           " not found; finished tasks are kept 2s")));
}

TEST_P(RetentionE2ETest, BatchGetSaysWhichMissingIdsMayHaveBeenPurged) {
  const std::string purged = SubmitTask(stub_.get(), "", "a red fox", true);
  const std::string kept = SubmitTask(stub_.get(), "", "a grey owl", false);
  ASSERT_TRUE(AwaitPurged(stub_.get(), purged));
  // A task id of the year 10889: no task by it can have been purged yet.
  const std::string future_id(26, 'Z');
  const std::string future = "7" + future_id.substr(1);

  v1::BatchGetTasksRequest request;
  for (const std::string& id :
       {purged, kept, std::string("no-such-job"), future}) {
    request.add_ids(id);
  }
  v1::BatchGetTasksResponse response;
  const grpc::Status status =
      stub_->BatchGetTasks(AuthContext("").get(), request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.tasks_size(), 1);
  EXPECT_EQ(response.tasks(0).task_id(), kept);
  ASSERT_EQ(response.missing_ids_size(), 3);
  ASSERT_EQ(response.missing_size(), 3);
  EXPECT_EQ(response.missing(0).id(), purged);
  EXPECT_TRUE(response.missing(0).maybe_purged());
  EXPECT_EQ(
      response.missing(0).message(),
      absl::StrCat("task ", purged, " not found; finished tasks are kept 2s"));
  EXPECT_EQ(response.missing(1).id(), "no-such-job");
  EXPECT_FALSE(response.missing(1).maybe_purged());
  EXPECT_EQ(response.missing(1).message(), "task no-such-job not found");
  EXPECT_EQ(response.missing(2).id(), future);
  EXPECT_FALSE(response.missing(2).maybe_purged());

  const CommandResult cli =
      server_->RunCli({"get", purged, kept, "no-such-job"});
  EXPECT_EQ(cli.exit_code, 0) << cli.err;
  EXPECT_THAT(cli.out, HasSubstr(kept));
  EXPECT_THAT(cli.out, HasSubstr("not found: no-such-job\n"));
  EXPECT_THAT(cli.out,
              HasSubstr(absl::StrCat("task ", purged,
                                     " not found; finished tasks are kept 2s "
                                     "(it may have been purged)\n")));
}

class ErasureE2ETest : public DaemonTest {
 protected:
  void SetUp() override {
    StartServer("erasure_e2e",
                {"--auth-file",
                 files_.Write("auth", AuthFileText(kBackendToken, kSupportToken,
                                                   kAdminToken))});
  }

  grpc::Status Purge(const std::string& token, const std::string& id,
                     const std::string& reason) {
    v1::PurgeTaskRequest request;
    request.set_task_id(id);
    request.set_reason(reason);
    v1::PurgeTaskResponse response;
    return stub_->PurgeTask(AuthContext(token).get(), request, &response);
  }

  CommandResult Cli(const std::string& token,
                    const std::vector<std::string>& args) {
    return server_->RunCli(args, {"TASKTRAIL_TOKEN=" + token});
  }

  TempDir files_;
};

INSTANTIATE_TEST_SUITE_P(Stores, ErasureE2ETest, kBothStores,
                         BackendParamName());

TEST_P(ErasureE2ETest, OnlyAnAdminPurgesAndTheAuditEntryStays) {
  const std::string id =
      SubmitTask(stub_.get(), kBackendToken, "my face", true, "req-erase");
  ASSERT_FALSE(id.empty());
  EXPECT_EQ(Purge(kBackendToken, id, "erasure").error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Purge(kSupportToken, id, "erasure").error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  const grpc::Status no_reason = Purge(kAdminToken, id, "");
  EXPECT_EQ(no_reason.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(ViolatedFields(no_reason), Contains("reason FIELD_REQUIRED"));
  v1::Task task;
  ASSERT_TRUE(GetTask(stub_.get(), id, &task, kBackendToken).ok());

  const CommandResult purged =
      Cli(kAdminToken, {"purge", id, "--reason", "erasure request 7"});
  EXPECT_EQ(purged.exit_code, 0) << purged.err;
  EXPECT_THAT(purged.out, HasSubstr(absl::StrCat("purged task ", id)));
  EXPECT_EQ(GetTask(stub_.get(), id, &task, kBackendToken).error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Purge(kAdminToken, id, "again").error_code(),
            grpc::StatusCode::NOT_FOUND);

  const CommandResult audit = Cli(kAdminToken, {"audit", id});
  EXPECT_EQ(audit.exit_code, 0) << audit.err;
  EXPECT_THAT(audit.out, HasSubstr("PurgeTask"));
  EXPECT_THAT(audit.out, HasSubstr("erasure request 7"));
  EXPECT_THAT(audit.out, HasSubstr("root"));
  // The support read before the purge went with the task.
  EXPECT_THAT(audit.out, ::testing::Not(HasSubstr("GetTask")));

  const std::string again =
      SubmitTask(stub_.get(), kBackendToken, "my face", false, "req-erase");
  EXPECT_FALSE(again.empty());
  EXPECT_NE(again, id);
}

TEST_P(ErasureE2ETest, PurgingAWatchedTaskEndsItsStreamsWithNotFound) {
  const std::string id =
      SubmitTask(stub_.get(), kBackendToken, "a watched task", false);
  ASSERT_FALSE(id.empty());
  // Two watchers: one live (it was sent the whole stored timeline), one
  // that asked to start past it (it ends NOT_FOUND whether the purge found
  // it waiting or came before its stream opened).
  std::unique_ptr<grpc::ClientContext> live_context =
      AuthContext(kSupportToken);
  std::unique_ptr<grpc::ClientContext> ahead_context =
      AuthContext(kSupportToken);
  v1::WatchTaskRequest request;
  request.set_task_id(id);
  auto live = stub_->WatchTask(live_context.get(), request);
  request.set_after_seq(5);
  auto ahead = stub_->WatchTask(ahead_context.get(), request);
  v1::TaskEvent event;
  ASSERT_TRUE(live->Read(&event));
  EXPECT_EQ(event.seq(), 1);

  ASSERT_TRUE(Purge(kAdminToken, id, "erasure request").ok());
  EXPECT_FALSE(live->Read(&event)) << "got seq " << event.seq();
  for (grpc::ClientReader<v1::TaskEvent>* stream : {live.get(), ahead.get()}) {
    const grpc::Status end = stream->Finish();
    EXPECT_EQ(end.error_code(), grpc::StatusCode::NOT_FOUND)
        << end.error_message();
    // As GetTask answers for it.
    EXPECT_EQ(end.error_message(), absl::StrCat("task ", id, " not found"));
  }
  v1::Task task;
  EXPECT_EQ(GetTask(stub_.get(), id, &task, kBackendToken).error_message(),
            absl::StrCat("task ", id, " not found"));
}

TEST_P(ErasureE2ETest, PurgeWithoutReasonIsRefusedByTheCli) {
  const CommandResult refused = Cli(kAdminToken, {"purge", "x"});
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_THAT(refused.err, HasSubstr("--reason"));
}

using RetentionCrashTest = ::testing::TestWithParam<Backend>;

INSTANTIATE_TEST_SUITE_P(Stores, RetentionCrashTest, kBothStores,
                         BackendParamName());

TEST_P(RetentionCrashTest, KilledWhilePurgingLeavesWholeTasks) {
  DaemonStore store;
  const absl::Status opened = store.Open(GetParam(), "retention_crash");
  ASSERT_TRUE(opened.ok()) << opened;
  std::vector<std::string> ids;
  {
    std::unique_ptr<ServerProcess> writer =
        store.NewServer({"--task-retention", "0"});
    std::string error;
    ASSERT_TRUE(writer->Start(&error)) << error;
    auto stub = writer->NewStub();
    for (int i = 0; i < 300; ++i) {
      ids.push_back(
          SubmitTask(stub.get(), "", absl::StrCat("frame ", i), true));
      ASSERT_FALSE(ids.back().empty());
    }
    EXPECT_EQ(writer->Stop(), 0);
  }
  absl::SleepFor(absl::Seconds(1));  // every task is now past a 1s retention
  {
    std::unique_ptr<ServerProcess> purger = store.NewServer(
        {"--task-retention", "1s", "--retention-sweep-interval", "10ms"});
    std::string error;
    ASSERT_TRUE(purger->Start(&error)) << error;
    auto stub = purger->NewStub();
    ASSERT_TRUE(AwaitPurged(stub.get(), ids.front()));
    purger->Kill();
  }
  std::unique_ptr<ServerProcess> reader =
      store.NewServer({"--task-retention", "0"});
  std::string error;
  ASSERT_TRUE(reader->Start(&error)) << error;
  auto stub = reader->NewStub();
  int purged = 0;
  for (const std::string& id : ids) {
    v1::Task task;
    const grpc::Status status = GetTask(stub.get(), id, &task);
    if (status.error_code() == grpc::StatusCode::NOT_FOUND) {
      ++purged;
      // Nothing of it is left to list either.
      v1::ListAuditRequest request;
      request.set_task_id(id);
      v1::ListAuditResponse audit;
      EXPECT_EQ(
          stub->ListAudit(AuthContext("").get(), request, &audit).error_code(),
          grpc::StatusCode::NOT_FOUND);
      continue;
    }
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(task.state(), v1::TASK_STATE_SUCCEEDED) << id;
    EXPECT_EQ(task.events_size(), 2) << id;  // submitted, completed
  }
  EXPECT_GE(purged, 1);
}

}  // namespace
}  // namespace tasktrail::testing
