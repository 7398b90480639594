// What the API refuses and what it records, through the real server with an
// auth file: every read that returns task content to a support or admin
// principal is audited (ListTasks per returned task, AddNote, admin writes).
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
using ::testing::Not;

constexpr char kBackendToken[] = "backend-token-8d41e7";
constexpr char kSupportToken[] = "support-token-2a9f03";
constexpr char kAdminToken[] = "admin-token-77c1b5";

std::string Sha256Hex(const std::string& text) {
  CommandResult result = RunCommand(
      {"/bin/sh", "-c",
       "printf '%s' \"$0\" | openssl dgst -sha256 -r | cut -d' ' -f1", text});
  std::string digest = result.out;
  while (!digest.empty() && (digest.back() == '\n' || digest.back() == ' ')) {
    digest.pop_back();
  }
  return digest;
}

class ApiChecksTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auth_file_ = files_.Write(
        "auth", "backend gateway-1 " + Sha256Hex(kBackendToken) +
                    "\nsupport alice " + Sha256Hex(kSupportToken) +
                    "\nadmin root " + Sha256Hex(kAdminToken) + "\n");
    server_ = std::make_unique<ServerProcess>(
        db_.path(), std::vector<std::string>{"--auth-file", auth_file_});
    std::string error;
    ASSERT_TRUE(server_->Start(&error)) << error;
    stub_ = server_->NewStub();
  }

  static std::unique_ptr<grpc::ClientContext> As(const std::string& token) {
    std::unique_ptr<grpc::ClientContext> context = DeadlineContext();
    context->AddMetadata("authorization", "Bearer " + token);
    return context;
  }

  static v1::SubmitTaskRequest Request(const std::string& prompt) {
    v1::SubmitTaskRequest request;
    request.set_account_id("acct-1");
    request.set_model("veo-3");
    request.mutable_params()->set_prompt(prompt);
    return request;
  }

  grpc::Status Submit(const v1::SubmitTaskRequest& request,
                      const std::string& token = kBackendToken,
                      v1::SubmitTaskResponse* out = nullptr) {
    v1::SubmitTaskResponse response;
    return stub_->SubmitTask(As(token).get(), request,
                             out != nullptr ? out : &response);
  }

  std::string SubmitId(const std::string& prompt) {
    v1::SubmitTaskResponse response;
    grpc::Status status = Submit(Request(prompt), kBackendToken, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.task().task_id();
  }

  grpc::Status Record(const v1::RecordEventRequest& request,
                      const std::string& token = kBackendToken) {
    v1::RecordEventResponse response;
    return stub_->RecordEvent(As(token).get(), request, &response);
  }

  // The rpc of each audit entry of `task_id`, newest first, with who read.
  std::vector<std::string> Audit(const std::string& task_id) {
    v1::ListAuditRequest request;
    request.set_task_id(task_id);
    v1::ListAuditResponse response;
    grpc::Status status =
        stub_->ListAudit(As(kAdminToken).get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    std::vector<std::string> entries;
    for (const v1::AuditEntry& entry : response.entries()) {
      entries.push_back(entry.rpc() + " " + entry.principal() + " " +
                        entry.role());
    }
    return entries;
  }

  CommandResult Cli(const std::string& token,
                    const std::vector<std::string>& args) {
    return server_->RunCli(args, {"TASKTRAIL_TOKEN=" + token});
  }

  TempDir db_;
  TempDir files_;
  std::string auth_file_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<v1::TaskTracker::Stub> stub_;
};

// --- Item 3: every read of task content by support or admin is audited.

TEST_F(ApiChecksTest, ListTasksAsSupportLeavesOneAuditEntryPerReturnedTask) {
  const std::string first = SubmitId("a lighthouse in a storm");
  const std::string second = SubmitId("a fox in the snow");

  // The gateway's own reads are not audited.
  v1::ListTasksRequest list;
  list.set_account_id("acct-1");
  v1::ListTasksResponse listed;
  ASSERT_TRUE(stub_->ListTasks(As(kBackendToken).get(), list, &listed).ok());
  EXPECT_THAT(Audit(first), ::testing::IsEmpty());

  CommandResult support = Cli(kSupportToken, {"list", "--account", "acct-1"});
  ASSERT_EQ(support.exit_code, 0) << support.err;
  EXPECT_THAT(support.out, HasSubstr(first));
  EXPECT_THAT(Audit(first), ElementsAre("ListTasks alice support"));
  EXPECT_THAT(Audit(second), ElementsAre("ListTasks alice support"));

  // A task the listing did not return is not marked as read.
  list.set_page_size(1);
  ASSERT_TRUE(stub_->ListTasks(As(kAdminToken).get(), list, &listed).ok());
  ASSERT_EQ(listed.tasks_size(), 1);
  EXPECT_EQ(listed.tasks(0).task_id(), second);  // newest first
  EXPECT_THAT(Audit(second),
              ElementsAre("ListTasks root admin", "ListTasks alice support"));
  EXPECT_THAT(Audit(first), ElementsAre("ListTasks alice support"));

  CommandResult audit = Cli(kAdminToken, {"audit", first});
  ASSERT_EQ(audit.exit_code, 0) << audit.err;
  EXPECT_THAT(audit.out, HasSubstr("ListTasks"));
  EXPECT_THAT(audit.out, HasSubstr("alice"));
}

TEST_F(ApiChecksTest, AddNoteIsAudited) {
  const std::string id = SubmitId("a lighthouse in a storm");
  CommandResult note =
      Cli(kSupportToken, {"note", id, "customer asked twice, charged once"});
  ASSERT_EQ(note.exit_code, 0) << note.err;
  EXPECT_THAT(Audit(id), ElementsAre("AddNote alice support"));

  CommandResult audit = Cli(kAdminToken, {"audit", id});
  ASSERT_EQ(audit.exit_code, 0) << audit.err;
  EXPECT_THAT(audit.out, HasSubstr("AddNote"));

  // A refused note returned nothing and leaves no entry.
  v1::AddNoteRequest empty;
  empty.set_task_id(id);
  v1::Task task;
  EXPECT_EQ(stub_->AddNote(As(kSupportToken).get(), empty, &task).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(Audit(id), ElementsAre("AddNote alice support"));
}

TEST_F(ApiChecksTest, AdminWritesReturnTheTaskAndAreAuditedBackendOnesAreNot) {
  v1::SubmitTaskResponse submitted;
  ASSERT_TRUE(
      Submit(Request("a fox in the snow"), kAdminToken, &submitted).ok());
  const std::string id = submitted.task().task_id();
  v1::RecordEventRequest queued;
  queued.set_task_id(id);
  queued.mutable_queued()->set_upstream_task_id("up-1");
  ASSERT_TRUE(Record(queued, kBackendToken).ok());
  v1::RecordEventRequest started;
  started.set_task_id(id);
  started.mutable_started()->set_progress_percent(5);
  ASSERT_TRUE(Record(started, kAdminToken).ok());
  EXPECT_THAT(Audit(id),
              ElementsAre("RecordEvent root admin", "SubmitTask root admin"));
}

}  // namespace
}  // namespace tasktrail::testing
