// Backups through the real daemon and CLI: `tasktrail backup` (admin only)
// while submissions go on, `tasktrail backup --list`, and `tasktraild
// --restore-from` into a new directory that a second daemon then serves
// with every task acknowledged before the backup was asked for.
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace tasktrail::testing {
namespace {

using ::testing::HasSubstr;

constexpr char kBackendToken[] = "backend-token-backup-1";
constexpr char kSupportToken[] = "support-token-backup-2";
constexpr char kAdminToken[] = "admin-token-backup-3";

class BackupE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auth_file_ = files_.Write(
        "auth", AuthFileText(kBackendToken, kSupportToken, kAdminToken));
  }

  std::unique_ptr<ServerProcess> StartServer(
      const std::string& db_dir, std::vector<std::string> extra = {}) {
    extra.push_back("--auth-file");
    extra.push_back(auth_file_);
    auto server = std::make_unique<ServerProcess>(db_dir, std::move(extra));
    std::string error;
    EXPECT_TRUE(server->Start(&error)) << error;
    return server;
  }

  static grpc::Status Submit(v1::TaskTracker::Stub* stub, int n,
                             std::string* task_id) {
    v1::SubmitTaskRequest request;
    request.set_account_id("acct-backup");
    request.set_model("veo-3");
    request.set_request_id(absl::StrCat("req-", n));
    request.mutable_params()->set_prompt(
        absl::StrCat("a lighthouse, take ", n));
    v1::SubmitTaskResponse response;
    grpc::Status status =
        stub->SubmitTask(AuthContext(kBackendToken).get(), request, &response);
    *task_id = response.task().task_id();
    return status;
  }

  TempDir files_;
  std::string auth_file_;
};

TEST_F(BackupE2eTest, ABackupTakenUnderLoadRestoresEveryAcknowledgedTask) {
  TempDir data;
  const std::string backup_dir = files_.File("backups");
  std::unique_ptr<ServerProcess> server = StartServer(
      data.File("db"), {"--backup-dir", backup_dir, "--backup-keep", "3"});
  ASSERT_TRUE(server->running());
  std::unique_ptr<v1::TaskTracker::Stub> stub = server->NewStub();

  std::mutex mutex;
  std::condition_variable progress;
  std::vector<std::string> acknowledged;
  std::atomic<bool> stop{false};
  std::atomic<int> next{0};
  std::vector<std::thread> writers;
  for (int w = 0; w < 4; ++w) {
    writers.emplace_back([&] {
      while (!stop.load()) {
        std::string task_id;
        if (!Submit(stub.get(), next.fetch_add(1), &task_id).ok()) continue;
        std::lock_guard<std::mutex> lock(mutex);
        acknowledged.push_back(task_id);
        progress.notify_all();
      }
    });
  }
  std::vector<std::string> before_call;
  {
    std::unique_lock<std::mutex> lock(mutex);
    progress.wait(lock, [&] { return acknowledged.size() >= 100; });
    before_call = acknowledged;
  }
  // Support may not take backups; the admin may, while writes go on.
  const CommandResult refused = server->RunCli(
      {"backup"}, {absl::StrCat("TASKTRAIL_TOKEN=", kSupportToken)});
  EXPECT_EQ(refused.exit_code, 5) << refused.err;
  EXPECT_THAT(refused.err, HasSubstr("CreateBackup"));
  const CommandResult taken = server->RunCli(
      {"backup"}, {absl::StrCat("TASKTRAIL_TOKEN=", kAdminToken)});
  stop = true;
  for (std::thread& writer : writers) writer.join();
  ASSERT_EQ(taken.exit_code, 0) << taken.err;
  EXPECT_THAT(taken.out, HasSubstr("backup taken"));

  const CommandResult listed =
      server->RunCli({"backup", "--list", "--json"},
                     {absl::StrCat("TASKTRAIL_TOKEN=", kAdminToken)});
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_THAT(listed.out, HasSubstr("\"backup_id\": \"1\""));
  EXPECT_EQ(server->Stop(), 0);

  // Restoring into the live directory is refused; into a new one it works.
  const CommandResult into_live = RunCommand(
      {DaemonPath(), "--restore-from", backup_dir, "--db", data.File("db")});
  EXPECT_EQ(into_live.exit_code, 1);
  EXPECT_THAT(into_live.err, HasSubstr("not empty"));
  const std::string restored_dir = data.File("restored");
  const CommandResult restored = RunCommand(
      {DaemonPath(), "--restore-from", backup_dir, "--db", restored_dir});
  ASSERT_EQ(restored.exit_code, 0) << restored.err;
  EXPECT_THAT(restored.out, HasSubstr("restored backup 1"));

  std::unique_ptr<ServerProcess> copy = StartServer(restored_dir);
  ASSERT_TRUE(copy->running());
  std::unique_ptr<v1::TaskTracker::Stub> copy_stub = copy->NewStub();
  for (const std::string& task_id : before_call) {
    v1::GetTaskRequest request;
    request.set_task_id(task_id);
    v1::Task task;
    EXPECT_TRUE(
        copy_stub->GetTask(AuthContext(kAdminToken).get(), request, &task).ok())
        << task_id << " was acknowledged before the backup and is missing";
  }
  // A resubmission of a backed-up request_id still finds its task.
  std::string again;
  ASSERT_TRUE(Submit(copy_stub.get(), 0, &again).ok());
  EXPECT_NE(std::find(before_call.begin(), before_call.end(), again),
            before_call.end());
}

TEST_F(BackupE2eTest, WithoutABackupDirectoryABackupIsRefusedNamingTheFlag) {
  TempDir data;
  std::unique_ptr<ServerProcess> server = StartServer(data.File("db"));
  ASSERT_TRUE(server->running());
  std::unique_ptr<v1::TaskTracker::Stub> stub = server->NewStub();
  v1::Backup backup;
  const grpc::Status status = stub->CreateBackup(
      AuthContext(kAdminToken).get(), v1::CreateBackupRequest(), &backup);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(), HasSubstr("--backup-dir"));
  const CommandResult listed = server->RunCli(
      {"backup", "--list"}, {absl::StrCat("TASKTRAIL_TOKEN=", kAdminToken)});
  EXPECT_EQ(listed.exit_code, 1) << listed.out;
  EXPECT_THAT(listed.err, HasSubstr("--backup-dir"));
}

TEST_F(BackupE2eTest, RestoreNeedsADirectoryAndBackupsToRestore) {
  TempDir data;
  const CommandResult no_db =
      RunCommand({DaemonPath(), "--restore-from", files_.File("backups")});
  EXPECT_EQ(no_db.exit_code, 2);
  EXPECT_THAT(no_db.err, HasSubstr("--db"));
  const CommandResult nothing =
      RunCommand({DaemonPath(), "--restore-from", files_.File("backups"),
                  "--db", data.File("restored")});
  EXPECT_EQ(nothing.exit_code, 1);
  EXPECT_THAT(nothing.err, HasSubstr("no backups"));
  EXPECT_FALSE(std::filesystem::exists(data.File("restored/CURRENT")));
}

}  // namespace
}  // namespace tasktrail::testing
