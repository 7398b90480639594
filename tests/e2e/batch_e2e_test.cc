// Many ids at once and upstream ids everywhere, through the real server with
// access control on: BatchGetTasks (order, duplicates, missing ids, limits,
// roles and audit, the size bound of timelines, queue statuses), ListAudit
// paging, and the CLI's multi-id `get` and `queued`, `watch`, `note`, `audit`
// by upstream id.
#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace tasktrail::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kBackendToken[] = "backend-token-batch-1";
constexpr char kSupportToken[] = "support-token-batch-2";
constexpr char kAdminToken[] = "admin-token-batch-3";

class BatchE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string auth = files_.Write(
        "auth", AuthFileText(kBackendToken, kSupportToken, kAdminToken));
    server_ = std::make_unique<ServerProcess>(
        db_.path(), std::vector<std::string>{"--auth-file", auth});
    std::string error;
    ASSERT_TRUE(server_->Start(&error)) << error;
    stub_ = server_->NewStub();
  }

  std::string Submit(const std::string& prompt) {
    v1::SubmitTaskRequest request;
    request.set_account_id("acct-5");
    request.set_model("kling-v2-1");
    request.set_charge_units(40);
    request.set_force_new(true);
    request.mutable_params()->set_prompt(prompt);
    v1::SubmitTaskResponse response;
    grpc::Status status =
        stub_->SubmitTask(AuthContext(kBackendToken).get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.task().task_id();
  }

  void Record(const v1::RecordEventRequest& request) {
    v1::RecordEventResponse response;
    grpc::Status status = stub_->RecordEvent(AuthContext(kBackendToken).get(),
                                             request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
  }

  void Queue(const std::string& task_id, const std::string& upstream_id) {
    v1::RecordEventRequest request;
    request.set_task_id(task_id);
    request.mutable_queued()->set_upstream_task_id(upstream_id);
    request.mutable_queued()->set_queue_position(3);
    Record(request);
  }

  void Fail(const std::string& task_id) {
    v1::RecordEventRequest request;
    request.set_task_id(task_id);
    request.mutable_failed()->set_http_status(503);
    request.mutable_failed()->set_message("upstream overloaded");
    Record(request);
  }

  grpc::Status BatchGet(const std::string& token,
                        const std::vector<std::string>& ids,
                        v1::BatchGetTasksResponse* response,
                        bool include_events = false) {
    v1::BatchGetTasksRequest request;
    for (const std::string& id : ids) request.add_ids(id);
    request.set_include_events(include_events);
    return stub_->BatchGetTasks(AuthContext(token).get(), request, response);
  }

  // "RPC principal" of each audit entry of `task_id`, newest first.
  std::vector<std::string> Audit(const std::string& task_id) {
    v1::ListAuditRequest request;
    request.set_task_id(task_id);
    v1::ListAuditResponse response;
    grpc::Status status =
        stub_->ListAudit(AuthContext(kAdminToken).get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    std::vector<std::string> entries;
    for (const v1::AuditEntry& entry : response.entries()) {
      entries.push_back(entry.rpc() + " " + entry.principal());
    }
    return entries;
  }

  CommandResult Cli(const std::string& token,
                    const std::vector<std::string>& args) {
    return server_->RunCli(args, {"TZ=UTC", "TASKTRAIL_TOKEN=" + token});
  }

  static std::vector<std::string> TaskIds(
      const v1::BatchGetTasksResponse& response) {
    std::vector<std::string> ids;
    for (const v1::Task& task : response.tasks()) ids.push_back(task.task_id());
    return ids;
  }

  TempDir db_;
  TempDir files_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<v1::TaskTracker::Stub> stub_;
};

TEST_F(BatchE2eTest, AnswersTaskAndUpstreamIdsInOrderWithDuplicatesAndMissing) {
  const std::string failed = Submit("a lighthouse at dusk");
  Queue(failed, "kl-1001");
  Fail(failed);
  const std::string queued = Submit("a fox in the snow");
  Queue(queued, "kl-1002");
  const std::string missing_task_id = "01ARZ3NDEKTSV4RRFFQ69G5FAV";

  v1::BatchGetTasksResponse response;
  grpc::Status status = BatchGet(
      kSupportToken,
      {"kl-1002", failed, missing_task_id, "kl-1001", "vendor-gone", failed},
      &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_THAT(TaskIds(response), ElementsAre(queued, failed, failed, failed));
  EXPECT_THAT(response.missing_ids(),
              ElementsAre(missing_task_id, "vendor-gone"));
  EXPECT_EQ(response.tasks(0).state(), v1::TASK_STATE_QUEUED);
  EXPECT_EQ(response.tasks(1).state(), v1::TASK_STATE_FAILED);

  // Each task read by support is audited once, as GetTask reads are; the
  // gateway's own reads are not.
  ASSERT_TRUE(BatchGet(kBackendToken, {failed}, &response).ok());
  EXPECT_THAT(Audit(failed), ElementsAre("BatchGetTasks alice"));
  EXPECT_THAT(Audit(queued), ElementsAre("BatchGetTasks alice"));
}

TEST_F(BatchE2eTest, QueueStatusesComeWithTheTasksWhenAsked) {
  const std::string failed = Submit("a lighthouse at dusk");
  Queue(failed, "kl-4001");
  Fail(failed);
  const std::string queued = Submit("a fox in the snow");
  Queue(queued, "kl-4002");
  const std::string submitted = Submit("a heron at dawn");

  v1::BatchGetTasksRequest request;
  for (const std::string& id : {submitted, std::string("kl-4002"), failed,
                                std::string("gone"), submitted}) {
    request.add_ids(id);
  }
  v1::BatchGetTasksResponse plain;
  grpc::Status status =
      stub_->BatchGetTasks(AuthContext(kSupportToken).get(), request, &plain);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(plain.queue_statuses_size(), 0);

  request.set_include_queue_status(true);
  v1::BatchGetTasksResponse with;
  status =
      stub_->BatchGetTasks(AuthContext(kSupportToken).get(), request, &with);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_THAT(TaskIds(with), ElementsAre(submitted, queued, failed, submitted));
  ASSERT_EQ(with.queue_statuses_size(), with.tasks_size());
  for (int i = 0; i < with.tasks_size(); ++i) {
    SCOPED_TRACE(with.tasks(i).task_id());
    const v1::QueueStatus& batched = with.queue_statuses(i);
    v1::GetQueueStatusRequest one;
    one.set_task_id(with.tasks(i).task_id());
    v1::QueueStatus alone;
    ASSERT_TRUE(
        stub_->GetQueueStatus(AuthContext(kSupportToken).get(), one, &alone)
            .ok());
    EXPECT_EQ(batched.task_id(), alone.task_id());
    EXPECT_EQ(batched.state(), alone.state());
    EXPECT_EQ(batched.verdict(), alone.verdict());
    EXPECT_EQ(batched.queue_position(), alone.queue_position());
    EXPECT_EQ(batched.resubmit_advised(), alone.resubmit_advised());
  }
  EXPECT_EQ(with.queue_statuses(0).verdict(),
            v1::QUEUE_VERDICT_WAITING_FOR_UPSTREAM);
  EXPECT_EQ(with.queue_statuses(1).verdict(), v1::QUEUE_VERDICT_QUEUED_NORMAL);
  EXPECT_EQ(with.queue_statuses(2).verdict(), v1::QUEUE_VERDICT_FINISHED);
  EXPECT_TRUE(with.queue_statuses(2).resubmit_advised());  // a 503 is retryable
}

TEST_F(BatchE2eTest, RefusesTooManyIdsAndMalformedIdsAndChecksTokens) {
  const std::string task = Submit("a red kite");
  std::vector<std::string> ids(101, task);
  v1::BatchGetTasksResponse response;
  grpc::Status too_many = BatchGet(kSupportToken, ids, &response);
  EXPECT_EQ(too_many.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(ViolatedFields(too_many), ElementsAre("ids FIELD_OUT_OF_RANGE"));
  ids.pop_back();
  grpc::Status hundred = BatchGet(kSupportToken, ids, &response);
  ASSERT_TRUE(hundred.ok()) << hundred.error_message();
  EXPECT_EQ(response.tasks_size(), 100);

  grpc::Status malformed =
      BatchGet(kSupportToken, {task, "", "x\ty", task}, &response);
  EXPECT_EQ(malformed.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(
      ViolatedFields(malformed),
      ElementsAre("ids[1] FIELD_REQUIRED", "ids[2] FIELD_CONTROL_CHARACTER"));
  EXPECT_EQ(BatchGet(kSupportToken, {}, &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  EXPECT_EQ(BatchGet("", {task}, &response).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  for (const char* token : {kBackendToken, kSupportToken, kAdminToken}) {
    EXPECT_TRUE(BatchGet(token, {task}, &response).ok()) << token;
  }
}

TEST_F(BatchE2eTest, TimelinesShareTheBudgetSoTheAnswerFitsFourMebibytes) {
  // Four tasks with 100 notes of about 8 KiB each: 3.2 MiB of timelines.
  std::string text;
  while (text.size() < 4000) text += "the user asked again about the video ";
  text.resize(4000);
  std::vector<std::string> ids;
  for (int t = 0; t < 4; ++t) {
    ids.push_back(Submit("waves on a shore, take " + std::to_string(t)));
    for (int n = 0; n < 100; ++n) {
      v1::AddNoteRequest note;
      note.set_task_id(ids.back());
      note.set_text(text);
      note.set_final_cause(text);
      v1::Task task;
      grpc::Status status =
          stub_->AddNote(AuthContext(kSupportToken).get(), note, &task);
      ASSERT_TRUE(status.ok()) << status.error_message();
    }
  }
  std::vector<std::string> asked = ids;
  asked.insert(asked.end(), ids.begin(), ids.end());
  asked.insert(asked.end(), ids.begin(), ids.end());
  v1::BatchGetTasksResponse response;
  // The stub's channel keeps gRPC's default 4 MiB receive limit.
  grpc::Status status = BatchGet(kSupportToken, asked, &response, true);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.tasks_size(), 12);
  EXPECT_LT(response.ByteSizeLong(), size_t{4} << 20);
  for (const v1::Task& task : response.tasks()) {
    SCOPED_TRACE(task.task_id());
    EXPECT_GT(task.omitted_event_count(), 0);
    ASSERT_GT(task.events_size(), 1);
    EXPECT_EQ(task.events(0).type(), v1::EVENT_TYPE_SUBMITTED);
    EXPECT_EQ(task.events(task.events_size() - 1).seq(), 101);
    EXPECT_EQ(task.events_size() + task.omitted_event_count(), 101);
  }
}

TEST_F(BatchE2eTest, ListAuditPagesAndRefusesATokenOfAnotherTask) {
  const std::string task = Submit("a lighthouse at dusk");
  const std::string other = Submit("a fox in the snow");
  v1::GetTaskRequest get;
  get.set_task_id(task);
  for (int i = 0; i < 5; ++i) {
    v1::Task read;
    ASSERT_TRUE(
        stub_->GetTask(AuthContext(kSupportToken).get(), get, &read).ok());
  }
  v1::ListAuditRequest request;
  request.set_task_id(task);
  request.set_page_size(2);
  int entries = 0;
  int pages = 0;
  std::string first_token;
  do {
    v1::ListAuditResponse page;
    ASSERT_TRUE(
        stub_->ListAudit(AuthContext(kAdminToken).get(), request, &page).ok());
    ++pages;
    entries += page.entries_size();
    if (first_token.empty()) first_token = page.next_page_token();
    request.set_page_token(page.next_page_token());
  } while (!request.page_token().empty() && pages < 10);
  EXPECT_EQ(entries, 5);
  EXPECT_EQ(pages, 3);

  request.set_task_id(other);
  request.set_page_token(first_token);
  v1::ListAuditResponse refused;
  grpc::Status status =
      stub_->ListAudit(AuthContext(kAdminToken).get(), request, &refused);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(ViolatedFields(status),
              ElementsAre("page_token PAGE_TOKEN_INVALID"));

  // The CLI pages up to --limit and says when older entries remain.
  CommandResult three = Cli(kAdminToken, {"audit", task, "--limit", "3"});
  ASSERT_EQ(three.exit_code, 0) << three.err;
  EXPECT_EQ(std::count(three.out.begin(), three.out.end(), '\n'), 1 + 3 + 1)
      << three.out;
  EXPECT_THAT(three.out, HasSubstr("older ones exist"));
  CommandResult all = Cli(kAdminToken, {"audit", task});
  ASSERT_EQ(all.exit_code, 0) << all.err;
  EXPECT_EQ(std::count(all.out.begin(), all.out.end(), '\n'), 1 + 5) << all.out;
}

TEST_F(BatchE2eTest, CliGetOfSeveralIdsPrintsOneRowEachAndTheMissingIds) {
  const std::string failed = Submit("a lighthouse at dusk");
  Queue(failed, "kl-2001");
  Fail(failed);
  const std::string queued = Submit("a fox in the snow");
  Queue(queued, "kl-2002");

  CommandResult rows =
      Cli(kSupportToken, {"get", failed, "kl-2002", "no-such-job"});
  ASSERT_EQ(rows.exit_code, 0) << rows.err;
  const size_t failed_row = rows.out.find(failed);
  const size_t queued_row = rows.out.find(queued);
  ASSERT_NE(failed_row, std::string::npos) << rows.out;
  ASSERT_NE(queued_row, std::string::npos) << rows.out;
  EXPECT_LT(failed_row, queued_row);
  EXPECT_THAT(rows.out, HasSubstr("temporary capacity error"));  // the cause
  EXPECT_THAT(rows.out, HasSubstr("queued normal"));             // the verdict
  EXPECT_THAT(rows.out, HasSubstr("charged 40 units"));
  EXPECT_THAT(rows.out, HasSubstr("not found: no-such-job"));
  // One row per task, not the one-screen report.
  EXPECT_THAT(rows.out, Not(HasSubstr("upstream overloaded")));
  // One call gave the rows and the verdict: one BatchGetTasks read, no
  // GetQueueStatus.
  EXPECT_THAT(Audit(queued), ElementsAre("BatchGetTasks alice"));

  CommandResult none = Cli(kSupportToken, {"get", "gone-1", "gone-2"});
  EXPECT_EQ(none.exit_code, 3);
  EXPECT_THAT(none.out, HasSubstr("not found: gone-1, gone-2"));

  CommandResult json = Cli(kSupportToken, {"get", queued, "gone-3", "--json"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  v1::BatchGetTasksResponse parsed;
  ASSERT_TRUE(
      google::protobuf::util::JsonStringToMessage(json.out, &parsed).ok())
      << json.out;
  EXPECT_THAT(TaskIds(parsed), ElementsAre(queued));
  EXPECT_THAT(parsed.missing_ids(), ElementsAre("gone-3"));

  // One id: the one-screen report, as before.
  CommandResult one = Cli(kSupportToken, {"get", "kl-2001"});
  ASSERT_EQ(one.exit_code, 0) << one.err;
  EXPECT_THAT(one.out, HasSubstr("upstream overloaded"));
}

TEST_F(BatchE2eTest, CommandsTakeAnUpstreamIdAndListAnAmbiguousOne) {
  const std::string task = Submit("a lighthouse at dusk");
  Queue(task, "kl-3001");
  const std::string twin_a = Submit("a red kite");
  Queue(twin_a, "kl-dup");
  const std::string twin_b = Submit("a blue kite");
  Queue(twin_b, "kl-dup");

  CommandResult queued = Cli(kSupportToken, {"queued", "kl-3001"});
  ASSERT_EQ(queued.exit_code, 0) << queued.err;
  EXPECT_THAT(queued.out, HasSubstr(task));
  EXPECT_THAT(queued.out, HasSubstr("position 3"));

  CommandResult note =
      Cli(kSupportToken, {"note", "kl-3001", "user asked where it is"});
  ASSERT_EQ(note.exit_code, 0) << note.err;
  EXPECT_THAT(note.out, HasSubstr(task));

  Fail(task);  // so that watch ends
  CommandResult watch = Cli(kSupportToken, {"watch", "kl-3001"});
  ASSERT_EQ(watch.exit_code, 0) << watch.err;
  EXPECT_THAT(watch.out, HasSubstr("user asked where it is"));
  EXPECT_THAT(watch.out, HasSubstr("failed"));

  CommandResult audit = Cli(kAdminToken, {"audit", "kl-3001"});
  ASSERT_EQ(audit.exit_code, 0) << audit.err;
  EXPECT_THAT(audit.out, HasSubstr("GetQueueStatus"));
  EXPECT_THAT(audit.out, HasSubstr("AddNote"));
  EXPECT_THAT(audit.out, HasSubstr("WatchTask"));

  for (const char* command : {"queued", "watch", "audit", "get"}) {
    SCOPED_TRACE(command);
    CommandResult ambiguous = Cli(kAdminToken, {command, "kl-dup"});
    EXPECT_EQ(ambiguous.exit_code, 2);
    EXPECT_THAT(ambiguous.err, HasSubstr("matches 2 tasks"));
    EXPECT_THAT(ambiguous.err, HasSubstr(twin_a));
    EXPECT_THAT(ambiguous.err, HasSubstr(twin_b));
    EXPECT_EQ(ambiguous.out, "");
  }
  CommandResult ambiguous_note =
      Cli(kSupportToken, {"note", "kl-dup", "which one?"});
  EXPECT_EQ(ambiguous_note.exit_code, 2);
  // Nothing was written to either task.
  v1::BatchGetTasksResponse twins;
  ASSERT_TRUE(BatchGet(kBackendToken, {"kl-dup"}, &twins).ok());
  for (const v1::Task& twin : twins.tasks()) EXPECT_EQ(twin.note_count(), 0);

  for (const char* command : {"queued", "watch", "audit", "get"}) {
    SCOPED_TRACE(command);
    EXPECT_EQ(Cli(kAdminToken, {command, "kl-nowhere"}).exit_code, 3);
  }
}

}  // namespace
}  // namespace tasktrail::testing
